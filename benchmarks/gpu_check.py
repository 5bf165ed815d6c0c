"""The GPU proof in one call: the full tier on a ~1B Llama built offline (bf16 and QLoRA 4-bit), the speed
comparison at 1B, and a real CUDA out-of-memory in evaluation; one JSON and one markdown table.

    python -m benchmarks.gpu_check --out reports/gpu-check          # on the GPU machine, about 8 minutes
    bash benchmarks/gpu_run.sh                                       # the same on a lent machine (gpu_bundle.py)
    python -m benchmarks.gpu_check --dry-run --out /tmp/gpu-check    # on CPU, tiny sizes (tests/project/)

On the GPU each step runs in its own process under its own time limit (the GPU's memory is freed between steps, a
crash or a timeout costs that step only) and writes its result, or its error with the log's tail, into
gpu-check.json; the table (gpu-check.md) has one row per step. The steps (STEPS): versions (torch, transformers,
peft, bitsandbytes, the GPU), base (a ~1.1B-parameter Llama with random weights and a BPE tokenizer trained on the
causal tasks' text, saved with save_pretrained), full-bf16-<task> (`pytest -m full --gpu --task <task> --base-model
<base>` for each causal task: wall time, peak GPU memory, verdict, the gate's table), full-4bit-sst2 (the same with
--quantize 4bit: parameter counts, the merge check on the dequantized base, peak memory against bf16), eval-oom
(evaluation under a memory cap that the card's eval batch exceeds: the halving fallback on the real error), speed
(benchmarks/compare.py at 1B: engine vs the seeds' per-example loop, label scoring, training tokens/s and MFU per
batching, batch-1 decode against the HBM bound), mfu (training MFU at 1B by tokens per optimizer step: eager,
torch.compile'd, and with Liger's kernels), candidates (benchmarks/candidates.py: 8 candidate adapters in one pass
against each gated alone, a pass over 32, and a fleet of 32 customers' tasks in shared batches against each on its
own).

`--dry-run` runs every step on CPU at tiny sizes in fp32, in one process (importing torch and loragate once
per step would take most of its minute on a busy 2-core machine; an error is still recorded per step, with its
traceback): the smoke tier instead of the full one at one epoch, for iris only (sst2 and instruct take the same
path and are skipped, saying so), the 4-bit step skipped with its reason (it needs CUDA), and the out-of-memory
raised by a wrapped forward instead of the allocator. The gate runs in its own project directory under --out, so
adapters/ and reports/ of this checkout are never written.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
import warnings
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CAUSAL_TASKS = ("sst2", "iris", "instruct")  # sst2 first: the 4-bit run of sst2 is compared with it
DRY_RUN_TASK = "iris"  # the quickest smoke gate
QUANTIZED_TASK = "sst2"
PACKAGES = ("torch", "transformers", "peft", "bitsandbytes", "accelerate", "pytest", "triton", "liger-kernel",
            "pydantic", "datasets", "pyarrow", "fsspec")  # the carried pydantic and datasets; the image's pyarrow and
# fsspec, which datasets needs at >= 24 and <= 2026.9.0
PEAK_TFLOPS = 989.0  # H100 and H200 SXM, bf16 dense: what MFU is a fraction of


@dataclass(frozen=True)
class Step:
    name: str
    limit_s: int  # in its own process on the GPU machine; the dry run runs in one process, without limits
    run: Callable[[argparse.Namespace], dict]


def step_result_path(out: Path, name: str) -> Path:
    return out / "steps" / f"{name}.json"


def read_step(out: Path, name: str) -> dict:
    """A finished step's result, for a later step that needs it (the base's path)."""
    path = step_result_path(out, name)
    if not path.exists():
        raise RuntimeError(f"step {name!r} left no result at {path}: see {out / 'logs' / f'{name}.log'}")
    return json.loads(path.read_text())


def device_of(args: argparse.Namespace) -> str:
    return "cpu" if args.dry_run else "cuda"


# ---------------------------------------------------------------- steps (each runs in a child process)


def versions(args: argparse.Namespace) -> dict:
    """What the machine has: the script works with what is installed there, so say it first."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    found = {}
    for package in PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    found["python"] = sys.version.split()[0]
    found["cuda"] = torch.version.cuda
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        found["gpu"] = f"{props.name}, {props.total_memory / 2**30:.0f} GiB, sm_{props.major}{props.minor}"
    return found


def build_base(args: argparse.Namespace) -> dict:
    """A Llama of ~1.1B parameters (TinyLlama's shape: hidden 2048, 22 layers, MLP 5632) with random weights, and a
    BPE tokenizer trained on the causal tasks' text with the tiny chat template (the instruct task needs one), built
    offline and saved with save_pretrained (seeded: the same bytes every time); the dry run builds the Iris card's
    tiny shape."""
    from transformers import AutoConfig

    from benchmarks.workloads import SIZES
    from loragate.models.bases import tiny_base_dir
    from loragate.run.steps import kind
    from loragate.tasks import get_task

    template, texts = None, []
    for name in CAUSAL_TASKS:
        task = get_task(name)
        task_template, task_texts = kind(task).tiny_tokenizer_text(task, task.load_splits())
        template, texts = task_template or template, texts + task_texts
    size = "tiny" if args.dry_run else "1b"
    started = time.perf_counter()
    path = tiny_base_dir(args.out / "cache", f"gpu-check-{size}", SIZES[size], texts, template)
    config = AutoConfig.from_pretrained(path)
    per_layer = 4 * config.hidden_size**2 + 3 * config.hidden_size * config.intermediate_size  # attention, MLP
    return {"path": str(path), "size": size, "seconds": round(time.perf_counter() - started, 1),
            "parameters_approx": per_layer * config.num_hidden_layers + config.vocab_size * config.hidden_size,
            "config": {key: getattr(config, key) for key in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                                            "num_attention_heads", "vocab_size")}}


class Outcomes:
    """A pytest plugin that keeps every test's outcome, for the step's result."""

    def __init__(self) -> None:
        self.by_test: dict[str, str] = {}

    def pytest_runtest_logreport(self, report) -> None:  # noqa: ANN001 - pytest's TestReport
        if report.when == "call" or report.outcome != "passed":
            self.by_test[report.nodeid] = report.outcome


def gate(args: argparse.Namespace, task: str, quantize: str | None) -> dict:
    """One task through the gate on the built base, in a project directory of its own under --out (its adapters/,
    .loragate/ and reports/), with the wall time, peak GPU memory, the verdict and the gate's table."""
    import pytest
    import torch

    base = read_step(args.out, "base")["path"]
    project = args.out / "gate"
    project.mkdir(parents=True, exist_ok=True)
    (project / "pytest.ini").write_text("[pytest]\naddopts = -ra\n")
    report_dir = project / "reports" / f"{task}-{quantize or 'bf16'}"
    tier_args = (["-m", "smoke", "--set", "tiers.tiny.train.epochs=1"] if args.dry_run
                 else ["-m", "full", "--gpu"])
    argv = ["-c", str(project / "pytest.ini"), "--rootdir", str(project), *tier_args, "--task", task,
            f"--base-model={base}", f"--report-dir={report_dir}", "-p", "no:cacheprovider", "-q"]
    if quantize:
        argv.append(f"--quantize={quantize}")
    outcomes = Outcomes()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    invoked = Path.cwd()
    os.chdir(project)  # pytest collects nothing of this checkout's tests/ and benchmarks/
    try:
        exit_code = pytest.main(argv, plugins=[outcomes])
    finally:
        os.chdir(invoked)
    wall = time.perf_counter() - started
    reports = sorted(report_dir.glob("*/report.json")) or sorted(report_dir.glob("report.json"))
    run = json.loads(reports[-1].read_text())["runs"][0] if reports else {}
    summary = sorted(report_dir.glob("**/summary.md"))
    failed = sorted(test for test, outcome in outcomes.by_test.items() if outcome == "failed")
    parameter_tests = {test.split("::")[-1]: outcome for test, outcome in outcomes.by_test.items()
                       if "test_parameters" in test}
    return {
        "command": "pytest " + " ".join(argv), "exit_code": int(exit_code), "wall_s": round(wall, 1),
        "peak_gpu_memory_gib": (round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available()
                                else None),
        "verdict": run.get("verdict"), "verdict_reasons": run.get("verdict_reasons"),
        "base_parameters": (run.get("base") or {}).get("parameters"),
        "quantization": (run.get("base") or {}).get("quantization"),
        "seconds_by_phase": run.get("seconds"), "tests": len(outcomes.by_test), "failed_tests": failed,
        "parameter_tests": parameter_tests, "table": summary[-1].read_text() if summary else None,
    }


def gate_step(task: str, quantize: str | None = None) -> Callable[[argparse.Namespace], dict]:
    def run(args: argparse.Namespace) -> dict:
        if quantize and args.dry_run:
            return {"skipped": "the dry run is on CPU: QLoRA's 4-bit path on CUDA needs the GPU (bitsandbytes' CPU "
                               "backend is covered by tests/models/test_quantize.py)"}
        if args.dry_run and task != DRY_RUN_TASK:
            return {"skipped": f"the dry run gates {DRY_RUN_TASK} only: {task} takes the same path"}
        if quantize:
            import torch

            try:
                import bitsandbytes  # noqa: F401
            except ImportError as exc:
                return {"skipped": f"bitsandbytes does not import ({exc}): bring its wheel for "
                                   f"torch {torch.__version__} (pip install 'loragate[quantize]')"}
        return gate(args, task, quantize)
    return run


def speed(args: argparse.Namespace) -> dict:
    """benchmarks/compare.py at 1B (one epoch per training contender, to fit the budget); tiny on the dry run."""
    from benchmarks import compare

    out = args.out / "steps" / "speed-compare.json"
    size = (["--model-size", "tiny", "--train-variants", "1", "--examples", "24"] if args.dry_run
            else ["--model-size", "1b"])
    argv = ["--device", device_of(args), *size, "--rounds", "5", "--train-epochs", "1", "--decode-tokens", "64",
            "--cache", str(args.out / "cache"), "--out", str(out)]
    compare.main(argv)
    result = json.loads(out.read_text())
    train, gen = result["training"], result["generation"]
    return {"command": "python -m benchmarks.compare " + " ".join(argv), "device": result["device"],
            "engine_vs_naive": gen["engine_vs_naive"], "scoring_vs_engine": gen["scoring_vs_engine"],
            "training_tokens_per_s": train["real_tokens_per_s"], "mfu": train.get("mfu"),
            "packed_vs_dynamic": train["packed_vs_dynamic"], "decode": result.get("decode"), "full": str(out)}


@dataclass(frozen=True)
class MfuRun:
    name: str
    batching: str  # grouped: batches of similar length; packed: rows of examples end to end (128 tokens a row)
    size: int  # examples a grouped batch, or tokens a packed micro-batch (the dry run: a sixteenth)
    kernels: str = "eager"  # eager; compiled: each decoder layer torch.compile'd; liger: Liger's Triton kernels


# About 70 tokens an example: 16, 64 and 256 a batch are about 1k, 4.5k and 18k tokens an optimizer step. The likeliest
# to matter first (a timeout keeps the runs done); Liger last: its RoPE patch holds for the rest of the process.
MFU_RUNS = (MfuRun("grouped-256", "grouped", 256), MfuRun("grouped-256-compiled", "grouped", 256, "compiled"),
            MfuRun("packed-4096", "packed", 4096), MfuRun("grouped-64", "grouped", 64),
            MfuRun("grouped-16", "grouped", 16), MfuRun("grouped-256-liger", "grouped", 256, "liger"))


def mfu(args: argparse.Namespace) -> dict:
    """Training MFU on the 1B base by the tokens of an optimizer step, which the speed step (batch 8, about 500
    tokens) leaves launch-bound: one epoch of loragate's own training (train_lora, sst2's full-tier LoRA: r 16 on
    the attention projections) over 2,160 Iris rows behind free-text preambles, per MFU_RUNS entry, each on a fresh
    load of the base after an untimed two-step warm-up (CUDA's libraries, torch.compile's compilation and its one
    recompilation for dynamic shapes). A run that fails records its error and costs itself only; the result is
    written after every run, so a timeout keeps the runs done. The dry run: the tiny base, 48 rows, a sixteenth of
    each size, torch.compile with its eager backend (dynamo traces the layers, nothing is code-generated), Liger
    skipped (Triton kernels, for CUDA)."""
    import gc

    import torch

    from benchmarks.workloads import load_data
    from loragate.tasks import get_task

    data = load_data(train_variants=1 if args.dry_run else 24)
    train = data.train[:48] if args.dry_run else data.train
    lora = get_task(QUANTIZED_TASK).card.tier("full").lora
    runs: dict[str, dict] = {}
    result = {"examples": len(train), "peak_tflops": PEAK_TFLOPS, "lora": lora.model_dump(), "runs": runs}
    for run in MFU_RUNS:
        try:
            runs[run.name] = mfu_run(run, args, data, train, lora)
        except Exception as exc:  # noqa: BLE001 - recorded in the step's result and table; the next run goes on
            runs[run.name] = {"error": f"{type(exc).__name__}: {exc}"[:1000]}
        write_result(args.out, "mfu", result)  # so far: what a timeout leaves
        gc.collect()  # the run's model goes before the next one loads: its peak memory is its own
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return result


def mfu_run(run: MfuRun, args: argparse.Namespace, data, train: list, lora) -> dict:  # noqa: ANN001 - Data, Lora
    """One MFU_RUNS entry: warm up, then time one epoch."""
    import torch

    from benchmarks.workloads import build_base, real_lengths, train_settings, training_flops
    from loragate.training.lora import attach_lora, train_lora

    if run.kernels == "liger":
        if args.dry_run:
            return {"skipped": "Liger's kernels are Triton, for CUDA: not on the dry run"}
        try:
            from liger_kernel.transformers import apply_liger_kernel_to_llama
        except ImportError as exc:
            return {"skipped": f"liger_kernel does not import ({exc}): bring its wheel (pip install liger-kernel)"}
    device, dtype = device_of(args), torch.float32 if args.dry_run else torch.bfloat16
    base = build_base("tiny" if args.dry_run else "1b", data, device, dtype, args.out / "cache")
    if run.kernels == "liger":
        apply_liger_kernel_to_llama(rope=True, rms_norm=True, swiglu=True, cross_entropy=False,
                                    fused_linear_cross_entropy=False, model=base.model)
    model = attach_lora(base.model, lora, seed=0)
    if run.kernels == "compiled":
        for layer in model.get_base_model().model.layers:
            layer.compile(backend="eager" if args.dry_run else "inductor")
    size = run.size // 16 if args.dry_run else run.size
    settings = train_settings(run.batching, 1, size if run.batching == "grouped" else 1, 2e-4, 0,
                              size if run.batching == "packed" else None)
    lengths = real_lengths(base.tokenizer, train)
    warm_rows = 2 * size if run.batching == "grouped" else bisect_right(list(accumulate(lengths)), 2 * size)
    train_lora(model, base.tokenizer, train[:warm_rows], data.eval[:4], settings, progress=False)  # two steps
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    result = train_lora(model, base.tokenizer, train, data.eval[:4], settings, progress=False)
    config = base.model.config
    flops = training_flops(model, lengths, config.num_hidden_layers, config.hidden_size)
    compiled = {}
    if run.kernels == "compiled":  # graphs dynamo built, and where it fell back to eager code
        from torch._dynamo.utils import counters

        compiled = {"dynamo_graphs": counters["stats"]["unique_graphs"],
                    "dynamo_graph_breaks": sum(counters["graph_break"].values())}
    return {**compiled, "steps": result.steps, "tokens_per_step": round(result.tokens / result.steps),
            "padding_share": round(1 - result.tokens / result.positions, 3), "seconds": round(result.seconds, 2),
            "tokens_per_s": round(result.tokens / result.seconds),
            "mfu": None if device == "cpu" else round(flops / result.seconds / (PEAK_TFLOPS * 1e12), 4),
            "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None}


def eval_oom(args: argparse.Namespace) -> dict:
    """Evaluation at eval batch 256 where only a smaller batch fits: on CUDA the allocator is capped (per-process
    memory fraction) at what is allocated plus 4x what batch 8 took, so batch 256 raises CUDA's own
    OutOfMemoryError; on the dry run a wrapped forward raises it above 32 rows. loragate.run.steps.predict must
    halve the batch, warn, and give the predictions batch 8 gives."""
    base_dir = read_step(args.out, "base")["path"]  # before the imports: without a base this fails in a second
    import torch

    from loragate.models.bases import load_causal
    from loragate.run.steps import predict
    from loragate.tasks import get_task

    tier = "tiny" if args.dry_run else "full"
    task = task_at_batch(get_task("iris"), tier, 256)
    base = load_causal(base_dir, device_of(args),
                       torch.float32 if args.dry_run else torch.bfloat16)
    splits = task.load_splits()
    # on the GPU 300 rows, so batch 256 is one full batch; the dry run's 150 are one batch of 150 rows
    examples = (splits.train + splits.eval + splits.test) * (1 if args.dry_run else 2)
    reference = predict(task_at_batch(task, tier, 8), base.model, base, examples, tier, False, "oom check, batch 8")
    if args.dry_run:
        cap = "forward wrapped to raise torch.OutOfMemoryError above 32 rows"
        forward = base.model.forward

        def capped_forward(*inputs, **kwargs):
            rows = (kwargs.get("input_ids") if kwargs.get("input_ids") is not None else inputs[0]).shape[0]
            if rows > 32:
                raise torch.OutOfMemoryError(f"simulated: {rows} rows > 32")
            return forward(*inputs, **kwargs)

        base.model.forward = capped_forward
    else:
        torch.cuda.synchronize()
        allocated = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        predict(task_at_batch(task, tier, 8), base.model, base, examples, tier, False, "oom check, batch 8 peak")
        batch8 = torch.cuda.max_memory_allocated() - allocated
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction((allocated + 4 * batch8) / total)
        cap = (f"allocator capped at {(allocated + 4 * batch8) / 2**30:.2f} GiB (weights + 4 x batch 8's "
               f"{batch8 / 2**20:.0f} MiB)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predictions = predict(task, base.model, base, examples, tier, False, "oom check")
    log = [str(w.message) for w in caught if "out of memory" in str(w.message)]
    if not log:
        raise RuntimeError(f"eval-oom: no out-of-memory fallback happened at eval batch 256 ({cap})")
    return {"cap": cap, "card_batch_size": predictions.card_batch_size, "final_batch_size": predictions.batch_size,
            "fallback_log": log, "same_outputs_as_batch_8": predictions.outputs == reference.outputs,
            "examples": len(examples)}


def candidates(args: argparse.Namespace) -> dict:
    """benchmarks/candidates.py on the built base at iris's full tier: 8 candidates (random LoRAs of the card's r) in
    one pass against each gated alone, their predictions checked equal, one pass over 32, and a fleet of 32 tasks on
    their tiny base in shared batches against each on its own; the dry run: the tiny tier, 3 candidates, N 2 and 4, a
    fleet of 4."""
    from benchmarks import candidates as bench

    out = args.out / "steps" / "candidates"
    argv = ["--tasks", "iris", "--device", device_of(args), "--base-model", read_step(args.out, "base")["path"],
            "--cache", str(args.out / "cache"), "--out", str(out),
            *(["--dry-run"] if args.dry_run else ["--tier", "full", "--rounds", "1", "--scale", "32"])]
    result = bench.main(argv)
    return {"command": "python -m benchmarks.candidates " + " ".join(argv), "compare": result["compare"][0],
            "scale": result["scale"]["rows"], "fleet": result["fleet"], "full": str(out / "candidates.json")}


def task_at_batch(task, tier: str, batch_size: int):  # noqa: ANN001, ANN201 - a loragate Task
    """A copy of `task` whose card evaluates at `batch_size`."""
    from copy import copy

    from loragate.card.overrides import apply_overrides

    other = copy(task)
    other.card = apply_overrides(task.card, (f"tiers.{tier}.eval.batch_size={batch_size}",))
    return other


STEPS = [
    Step("versions", 60, versions),
    Step("base", 150, build_base),
    *[Step(f"full-bf16-{task}", 150, gate_step(task)) for task in CAUSAL_TASKS[:1]],
    Step(f"full-4bit-{QUANTIZED_TASK}", 150, gate_step(QUANTIZED_TASK, "4bit")),
    Step("eval-oom", 90, eval_oom),
    Step("speed", 240, speed),
    Step("mfu", 150, mfu),
    *[Step(f"full-bf16-{task}", 150, gate_step(task)) for task in CAUSAL_TASKS[1:]],
    Step("candidates", 360, candidates),
]


# ---------------------------------------------------------------- the parent: runs the steps, writes JSON and table


def write_result(out: Path, name: str, result: dict) -> None:
    path = step_result_path(out, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")


def execute(step: Step, args: argparse.Namespace) -> None:
    """Run `step` here and write its result where `finished` reads it."""
    write_result(args.out, step.name, step.run(args))


def finished(step: Step, args: argparse.Namespace, seconds: float, limit: float | None) -> dict:
    result = json.loads(step_result_path(args.out, step.name).read_text())
    return {"status": "skipped" if "skipped" in result else "ok", "seconds": seconds,
            "limit_s": None if limit is None else round(limit), "result": result}


def run_in_process(step: Step, args: argparse.Namespace) -> dict:
    """The dry run's way: `step` in this process; an exception becomes the step's error, its traceback kept."""
    started = time.perf_counter()
    try:
        execute(step, args)
    except Exception:  # noqa: BLE001 - recorded with its traceback, and the run exits non-zero
        return {"status": "error", "seconds": round(time.perf_counter() - started, 1),
                "log_tail": traceback.format_exc()[-3000:]}
    return finished(step, args, round(time.perf_counter() - started, 1), None)


def run_step(step: Step, args: argparse.Namespace, remaining_s: float) -> dict:
    """`step` in a child process (`--step NAME`) under its limit; its result, or why there is none."""
    limit = min(step.limit_s, remaining_s)
    if limit < 10:
        return {"status": "not run", "why": f"{remaining_s:.0f} s of --budget-s left"}
    log = args.out / "logs" / f"{step.name}.log"
    command = [sys.executable, "-m", "benchmarks.gpu_check", "--step", step.name, "--out", str(args.out)]
    if args.dry_run:
        command.append("--dry-run")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    step_result_path(args.out, step.name).unlink(missing_ok=True)  # a timeout must not report an older call's result
    started = time.perf_counter()
    with log.open("w") as handle:
        try:
            code = subprocess.run(command, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT,
                                  timeout=limit).returncode
        except subprocess.TimeoutExpired:
            code = None
    seconds = round(time.perf_counter() - started, 1)
    tail = log.read_text(errors="replace")[-3000:]
    if code is None:  # with what the step wrote before it was stopped, if anything (mfu writes after every run)
        partial = step_result_path(args.out, step.name)
        return {"status": "timeout", "limit_s": round(limit), "seconds": seconds, "log_tail": tail,
                **({"result": json.loads(partial.read_text())} if partial.exists() else {})}
    if code != 0 or not step_result_path(args.out, step.name).exists():
        return {"status": "error", "exit_code": code, "seconds": seconds, "log_tail": tail}
    return finished(step, args, seconds, limit)


def headline(name: str, entry: dict) -> str:
    """One cell: what a reader needs from the step."""
    result = entry.get("result", {})
    if entry["status"] == "skipped":
        return result["skipped"]
    if entry["status"] == "not run":
        return entry["why"]
    if entry["status"] == "timeout" and result:
        return f"stopped at {entry['limit_s']} s; so far: {headline(name, {'status': 'ok', 'result': result})}"
    if entry["status"] != "ok":  # error or timeout: the log's last line, usually the exception
        lines = entry["log_tail"].strip().splitlines()
        return lines[-1] if lines else "no output"
    if name == "versions":
        return ", ".join(f"{key} {value}" for key, value in result.items())
    if name == "base":
        return f"{result['parameters_approx']:,} parameters ({result['size']}), built in {result['seconds']} s"
    if name.startswith("full-"):
        memory = result["peak_gpu_memory_gib"]
        return (f"verdict {result['verdict']}, exit {result['exit_code']}, {result['wall_s']} s, peak "
                f"{'n/a (cpu)' if memory is None else f'{memory} GiB'}, base {result['base_parameters']:,} parameters, "
                f"{len(result['failed_tests'])} of {result['tests']} tests failed")
    if name == "speed":
        mfu = result["mfu"] or {}
        decode = result["decode"] or {}
        return (f"engine {result['engine_vs_naive']:.1f}x seed loop, "
                f"scoring {result['scoring_vs_engine']:.2f}x engine, "
                f"packed {result['packed_vs_dynamic']:.2f}x dynamic tokens/s"
                + (f", MFU {max(mfu.values()):.1%} best" if mfu else "")
                + (f", decode {decode['fraction_of_bound']:.1%} of HBM bound" if decode else ""))
    if name == "mfu":
        done = {run: figures for run, figures in result["runs"].items() if "tokens_per_s" in figures}
        cells = [f"{run} {figures['mfu']:.1%} MFU" if figures["mfu"] is not None
                 else f"{run} {figures['tokens_per_s']:,} tokens/s" for run, figures in done.items()]
        others = [f"{run}: {figures.get('skipped') or figures['error']}" for run, figures in result["runs"].items()
                  if run not in done]
        return "; ".join(cells + others)
    if name == "candidates":
        compare, largest = result["compare"], result["scale"][-1]
        return (f"{compare['candidates']} candidates: one pass {compare['pass_vs_one']}x one alone, each alone in "
                f"turn {compare['sequential_vs_one']}x, predictions equal: {compare['predictions_equal']}; "
                f"{largest['adapters']} adapters in {largest['seconds']} s, {largest['per_adapter_s']} s an adapter "
                f"after the first; " + ", ".join(f"fleet of {row['customers']} on the {row['base'].split()[0]} base: "
                                                 f"each on its own {row['pass_alone_vs_shared']}x shared, predictions "
                                                 f"equal: {row['predictions_equal']}" for row in result["fleet"]))
    if name == "eval-oom":
        return (f"batch {result['card_batch_size']} -> {result['final_batch_size']}, same outputs as batch 8: "
                f"{result['same_outputs_as_batch_8']}; {result['fallback_log'][0]}")
    return ""


def table(results: dict[str, dict]) -> str:
    lines = ["| step | status | seconds | result |", "|---|---|---:|---|"]
    for name, entry in results.items():
        cell = headline(name, entry).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {name} | {entry['status']} | {entry.get('seconds', '')} | {cell} |")
    tables = [f"\n### {name}\n\n{entry['result']['table']}" for name, entry in results.items()
              if entry.get("result", {}).get("table")]
    return "\n".join(lines) + "\n" + "\n".join(tables) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu-check.json, gpu-check.md, logs/")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes, fp32: the same steps in seconds")
    parser.add_argument("--budget-s", type=float, default=480, help="stop starting steps after this many seconds")
    parser.add_argument("--only", action="append", choices=[step.name for step in STEPS],
                        help="run only this step (repeatable; the base is built when a later step needs it)")
    parser.add_argument("--step", choices=[step.name for step in STEPS], help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out = args.out.resolve()
    if args.dry_run:  # one thread: an OpenMP team of 2 on a busy 2-core machine runs several times slower
        import torch

        torch.set_num_threads(1)
    by_name = {step.name: step for step in STEPS}
    if args.step:  # a child: one step, its result written where the parent reads it
        execute(by_name[args.step], args)
        return 0
    (args.out / "logs").mkdir(parents=True, exist_ok=True)
    (args.out / "steps").mkdir(parents=True, exist_ok=True)
    chosen = [step for step in STEPS if not args.only or step.name in args.only or step.name in ("versions", "base")]
    started = time.perf_counter()
    results: dict[str, dict] = {}
    for step in chosen:
        remaining = args.budget_s - (time.perf_counter() - started)
        results[step.name] = run_in_process(step, args) if args.dry_run else run_step(step, args, remaining)
        print(f"{step.name}: {results[step.name]['status']} ({results[step.name].get('seconds', 0)} s) "
              f"{headline(step.name, results[step.name])}", flush=True)
    summary = {"dry_run": args.dry_run, "budget_s": args.budget_s, "wall_s": round(time.perf_counter() - started, 1),
               "steps": results}
    (args.out / "gpu-check.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (args.out / "gpu-check.md").write_text(table(results))
    print(f"wrote {args.out / 'gpu-check.json'} and {args.out / 'gpu-check.md'}")
    return 0 if all(entry["status"] in ("ok", "skipped") for entry in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
