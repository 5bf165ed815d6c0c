"""Many candidate adapters on one base (issue 34): one pass (run_candidates) against gating each candidate alone
(run_task, today's gate), side by side in one process; today's gate end to end (pytest processes); and the pass's time
and memory against the number of adapters; and a fleet (many tasks, one adapter each, on one base) with the tasks'
batches shared against each task predicted on its own.

    python -m benchmarks.candidates --gate iris sst2_encoder --out reports/candidates   # CPU: 8 candidates; N 32, 128
    python -m benchmarks.candidates --dry-run --gate iris --out /tmp/candidates        # 3 candidates, N 2 and 4
    python -m benchmarks.candidates --tasks --scale --fleet 8 32 --out reports/fleet   # only the fleet part
    python -m benchmarks.candidates --device cuda --tier full --base-model PATH --tasks iris   # benchmarks/gpu_check

Candidates are copies of the task's committed store adapter (adapters/<task>/tiny/) with every lora_B tensor scaled by
its own factor, written to a temporary directory; with --base-model (another base than the card's) the source is
instead one LoRA of the card's r on that base with small random lora_B weights. After one untimed warm-up (imports,
the first model load), each task is timed in alternated rounds: the pass over all candidates, then each candidate gated
alone in turn; medians over the rounds ("one candidate": the median of all lone runs). Each candidate's predictions in
the pass must equal its lone run's: the same outputs, the same logits, bit for bit. --gate times the same in pytest
processes as a user runs the gate (`pytest -m smoke --task T --adapter NAME=PATH ...`, imports and every gate test
included), once. The scale part times the pass for N adapters and samples its peak resident memory (psutil, every
10 ms). The fleet part (benchmarks/fleet.py) times a pass over N customers of one base with the tasks' batches
shared against the same pass with each task predicted on its own, their predictions checked equal. Prints the tables
and writes candidates.json and candidates.md to --out; absolute times swing by a quarter on a shared machine, ratios
measured in one run much less.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import psutil
import torch
from safetensors.torch import load_file, save_file

from benchmarks.fleet import BASES, fleet, fleet_table
from benchmarks.timed_runs import Timed, measured, mib, middle, timed
from loragate.card.options import RunOptions
from loragate.kinds import KINDS
from loragate.run.candidates import run_candidates
from loragate.run.steps import load_task
from loragate.run.task_run import load_inputs, run_task
from loragate.training.lora import attach_lora

REPO = Path(__file__).resolve().parent.parent
TASKS = ("iris", "sst2_encoder")  # the tiny causal base (generative classification) and MiniLM (an encoder head)
SCALE_TASK = "iris"


@dataclass(frozen=True)
class Setup:
    """What every run of the benchmark shares."""

    tier: str
    device: str
    base_model: str | None
    cache: Path
    work: Path  # a temporary directory: the candidates' copies and an empty store

    def options(self, **given: object) -> RunOptions:
        return RunOptions(device=self.device, base_model=self.base_model, store_root=self.work / "store",
                          cache=self.cache, progress=False, **given)


def committed_adapter(task: str) -> Path:
    """The task's one committed tiny-tier store entry."""
    entries = [path for path in (REPO / "adapters" / task / "tiny").iterdir() if (path / "manifest.json").exists()]
    if len(entries) != 1:
        raise RuntimeError(f"adapters/{task}/tiny: expected one committed entry, found {len(entries)}")
    return entries[0]


def random_adapter(task: str, setup: Setup, out: Path) -> Path:
    """A LoRA of the card's shape on --base-model, its lora_B small and random (seeded): peft starts lora_B at zero,
    which would make every scaled copy the same no-op."""
    loaded = load_task(task, setup.options())
    settings = loaded.card.trainable(setup.tier)
    _, base, _ = load_inputs(loaded, setup.tier, setup.options())
    model = attach_lora(base.model, settings.lora, 0, KINDS.get(loaded.card.kind).peft_task_type,
                        settings.lora.modules_to_save or None)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.02)
    model.peft_config["default"].base_model_name_or_path = base.name
    model.save_pretrained(str(out))
    del model, base
    gc.collect()
    return out


def scaled_copies(source: Path, count: int, out: Path) -> list[tuple[str, Path]]:
    """`count` distinct candidates: copies of `source` whose lora_B tensors are scaled by 0.25 ... 1.75."""
    weights = load_file(source / "adapter_model.safetensors")
    candidates = []
    for index in range(count):
        factor = 0.25 + 1.5 * index / max(count - 1, 1)
        directory = out / f"c{index:03d}"
        directory.mkdir(parents=True)
        for path in source.iterdir():
            if path.is_file() and path.name != "adapter_model.safetensors":
                (directory / path.name).write_bytes(path.read_bytes())
        save_file({key: value * factor if "lora_B" in key else value for key, value in weights.items()},
                  directory / "adapter_model.safetensors")
        candidates.append((directory.name, directory))
    return candidates


def source_adapter(task: str, setup: Setup) -> Path:
    """What the candidates are copies of: the committed adapter, or on --base-model one random LoRA (made once)."""
    if not setup.base_model:
        return committed_adapter(task)
    made = setup.work / f"{task}-source"
    return made if (made / "adapter_config.json").exists() else random_adapter(task, setup, made)


def compare(task: str, count: int, rounds: int, setup: Setup) -> dict:
    """The pass over `count` candidates against each gated alone, alternated `rounds` times after a warm-up (one
    candidate alone, two in a pass); every candidate's predictions checked equal in every round."""
    candidates = scaled_copies(source_adapter(task, setup), count, setup.work / f"{task}-{count}")

    def one_pass(chosen: list[tuple[str, Path]]) -> Timed:
        return timed(lambda: run_candidates(task, setup.tier, setup.options(candidates=tuple(chosen))))

    def alone(name: str, directory: Path) -> Timed:
        return timed(lambda: {name: run_task(task, setup.tier, setup.options(adapter=directory))})

    alone(*candidates[0]), one_pass(candidates[:2])  # warm-up: imports, the first loads, the kinds' caches
    passes, lone = [], []
    for _ in range(rounds):
        passes.append(one_pass(candidates))
        lone.append([alone(name, directory) for name, directory in candidates])
    pass_s = statistics.median(call.seconds for call in passes)
    one_s = statistics.median(call.seconds for round_ in lone for call in round_)
    sequential_s = statistics.median(sum(call.seconds for call in round_) for round_ in lone)
    differing = sorted({name for call, round_ in zip(passes, lone) for (name, _), own in zip(candidates, round_)
                        if not call.answers[name].equals(own.answers[name])})
    return {"task": task, "candidates": count, "rounds": rounds, "pass_s": round(pass_s, 3),
            "one_s": round(one_s, 3), "sequential_s": round(sequential_s, 3),
            "pass_vs_one": round(pass_s / one_s, 2), "sequential_vs_one": round(sequential_s / one_s, 2),
            "sequential_vs_pass": round(sequential_s / pass_s, 2),
            "pass_rounds_s": [round(call.seconds, 3) for call in passes],
            "alone_rounds_s": [[round(call.seconds, 3) for call in round_] for round_ in lone],
            "pass_stages": middle(passes).stages,
            "one_stages": middle([call for round_ in lone for call in round_]).stages,
            "pass_peak_rss_mib": round(max(call.peak_rss for call in passes) / 2**20),
            "one_peak_rss_mib": round(max(call.peak_rss for round_ in lone for call in round_) / 2**20),
            "pass_peak_gpu_mib": mib(max(call.peak_gpu or 0 for call in passes)),
            "one_peak_gpu_mib": mib(max(call.peak_gpu or 0 for round_ in lone for call in round_)),
            "predictions_equal": not differing, "differing": differing,
            "max_logit_diff": max(passes[0].answers[name].logit_diff(lone[0][index].answers[name]) or 0.0
                                  for index, (name, _) in enumerate(candidates))}


def gate_run(task: str, candidates: list[tuple[str, Path]], setup: Setup, threads: int) -> tuple[float, int]:
    """The wall seconds and exit code of today's gate of `candidates` (one, or all in one pass): a fresh pytest
    process, as a user runs it (imports, collection, every gate test of each candidate, the report), in a project
    directory of its own under the work directory (its store, tiny bases and reports)."""
    project = setup.work / "project"
    project.mkdir(exist_ok=True)
    (project / "pytest.ini").write_text("[pytest]\naddopts = -ra\n")
    tier = ["-m", "smoke"] if setup.tier == "tiny" else ["-m", "full", "--gpu"]
    command = [sys.executable, "-m", "pytest", "-c", str(project / "pytest.ini"), "--rootdir", str(project), *tier,
               "--task", task, *[f"--adapter={name}={directory}" for name, directory in candidates],
               f"--report-dir={project / 'reports'}", "-p", "no:cacheprovider", "-q"]
    if setup.base_model:
        command.append(f"--base-model={setup.base_model}")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_XDIST_")}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=project, env={**env, "OMP_NUM_THREADS": str(threads)}, capture_output=True,
                          text=True)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):  # 1: a candidate failed its gates, which is an answer; others are errors
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    return seconds, done.returncode


def gate(task: str, count: int, setup: Setup, threads: int) -> dict:
    """Today's gate end to end, one pytest process per candidate, against one process gating all `count` in one
    pass; after an untimed warm-up run (the project's tiny base built, bytecode written)."""
    candidates = scaled_copies(source_adapter(task, setup), count, setup.work / f"{task}-gate-{count}")
    gate_run(task, candidates[:1], setup, threads)
    pass_s, pass_exit = gate_run(task, candidates, setup, threads)
    lone = [gate_run(task, [candidate], setup, threads) for candidate in candidates]
    one_s, sequential_s = statistics.median(seconds for seconds, _ in lone), sum(seconds for seconds, _ in lone)
    return {"task": task, "candidates": count, "pass_s": round(pass_s, 2), "one_s": round(one_s, 2),
            "sequential_s": round(sequential_s, 2), "pass_vs_one": round(pass_s / one_s, 2),
            "sequential_vs_one": round(sequential_s / one_s, 2), "sequential_vs_pass": round(sequential_s / pass_s, 2),
            "alone_s": [round(seconds, 2) for seconds, _ in lone], "pass_exit": pass_exit,
            "alone_exits": [code for _, code in lone]}


def scale(task: str, sizes: list[int], rounds: int, setup: Setup) -> dict:
    """The pass's wall time and peak resident memory for N adapters, each N in `sizes`, and each adapter's cost once
    the base is loaded and has predicted: (time(N) - time(1)) / (N - 1), time(1) the median of `rounds` passes over
    one adapter (the largest N are timed once: their time is many times the noise)."""
    source = source_adapter(task, setup)
    rows = []
    for count in [1, *sizes]:
        candidates = scaled_copies(source, count, setup.work / f"{task}-scale-{count}")
        gc.collect()
        before = psutil.Process().memory_info().rss
        times = []
        for _ in range(rounds if count == 1 else 1):
            runs, seconds, peak, gpu = measured(
                lambda: run_candidates(task, setup.tier, setup.options(candidates=tuple(candidates))))
            times.append(seconds)
        model = next(iter(runs.values())).model
        parameters = {"base_parameters": 0, "adapter_parameters": 0}
        for name, parameter in model.named_parameters():
            adapter = "lora_" in name or "modules_to_save" in name
            parameters["adapter_parameters" if adapter else "base_parameters"] += parameter.numel()
        stages = dict(next(iter(runs.values())).seconds)
        del runs, model
        gc.collect()
        rows.append({"adapters": count, "seconds": round(statistics.median(times), 3),
                     "peak_rss_mib": round(peak / 2**20), "rss_growth_mib": round((peak - before) / 2**20),
                     "peak_gpu_mib": mib(gpu or 0), **parameters, "stages": stages})
    for row in rows[1:]:
        row["per_adapter_s"] = round((row["seconds"] - rows[0]["seconds"]) / (row["adapters"] - 1), 4)
    return {"task": task, "rows": rows}


def table(result: dict) -> str:
    """The figures as markdown: the comparison, where its time goes, and the scale."""
    lines = []
    if result["compare"]:
        lines += ["| base (task) | candidates | one pass (s) | one candidate alone (s) | each alone in turn (s) | "
                  "pass / one | sequential / one | predictions equal | peak RSS pass / alone (MiB) |",
                  "|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for row in result["compare"]:
        lines.append(f"| {row['task']} | {row['candidates']} | {row['pass_s']:.2f} | {row['one_s']:.2f} | "
                     f"{row['sequential_s']:.2f} | **{row['pass_vs_one']:.2f}x** | {row['sequential_vs_one']:.2f}x | "
                     f"{'yes' if row['predictions_equal'] else 'NO: ' + ', '.join(row['differing'])} | "
                     f"{row['pass_peak_rss_mib']} / {row['one_peak_rss_mib']}"
                     + (f"; GPU {row['pass_peak_gpu_mib']} / {row['one_peak_gpu_mib']}" if row["pass_peak_gpu_mib"]
                        else "") + " |")
    for row in result["compare"]:
        lines += ["", f"Where the time goes ({row['task']}, the runs of median time; seconds): one pass of "
                      f"{row['candidates']} vs one candidate alone", "", "| stage | pass | alone |", "|---|---:|---:|"]
        for stage in dict.fromkeys([*row["pass_stages"], *row["one_stages"]]):
            lines.append(f"| {stage} | {row['pass_stages'].get(stage, '')} | {row['one_stages'].get(stage, '')} |")
    if result["gate"]:
        lines += ["", "End to end: one pytest process gating every candidate vs one process per candidate", "",
                  "| base (task) | candidates | one pass (s) | one candidate alone (s) | each alone in turn (s) | "
                  "pass / one | sequential / one | exit codes pass / alone |",
                  "|---|---:|---:|---:|---:|---:|---:|---|"]
        for row in result["gate"]:
            lines.append(f"| {row['task']} | {row['candidates']} | {row['pass_s']:.1f} | {row['one_s']:.1f} | "
                         f"{row['sequential_s']:.1f} | **{row['pass_vs_one']:.2f}x** | "
                         f"{row['sequential_vs_one']:.2f}x | {row['pass_exit']} / "
                         f"{' '.join(map(str, row['alone_exits']))} |")
    if result["scale"]:
        lines += ["", f"Scale ({result['scale']['task']}): one pass over N adapters", "",
                  "| N | seconds | per adapter after the first (s) | peak RSS (MiB) | RSS growth (MiB) | "
                  "base parameters | adapter parameters |", "|---:|---:|---:|---:|---:|---:|---:|"]
        for row in result["scale"]["rows"]:
            lines.append(f"| {row['adapters']} | {row['seconds']:.2f} | {row.get('per_adapter_s', '')} | "
                         f"{row['peak_rss_mib']}" + (f"; GPU {row['peak_gpu_mib']}" if row["peak_gpu_mib"] else "")
                         + f" | {row['rss_growth_mib']} | {row['base_parameters']:,} | "
                         f"{row['adapter_parameters']:,} |")
    if result["fleet"]:
        lines += fleet_table(result["fleet"])
    return "\n".join(lines) + "\n"


def provenance() -> dict:
    """When, at which commit, with which of loragate's files differing from it (others' work in progress in a shared
    checkout), on what machine."""
    def git(*args: str, given: str | None = None) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, input=given).stdout.strip()

    committed = {line.split("\t", 1)[1]: line.split()[2]  # "mode type blob\tpath"
                 for line in git("ls-tree", "-r", "HEAD", "--", "loragate").splitlines()}
    new = git("ls-files", "--others", "--exclude-standard", "--", "loragate").splitlines()
    present = sorted(path for path in {*committed, *new} if (REPO / path).is_file())
    hashes = dict(zip(present, git("hash-object", "--stdin-paths", given="\n".join(present)).splitlines()))
    changed = sorted({path for path in present if committed.get(path) != hashes.get(path)} |
                     (set(committed) - set(present)))
    return {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": git("rev-parse", "HEAD"),
            "loragate_changed": changed, "cpu_cores": psutil.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("reports/candidates"), help="for candidates.json and .md")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes: 3 candidates, one round, scale N 2 and 4, "
                        "a fleet of 4")
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), help="tasks compared one pass vs alone (none: "
                        "skip the comparison)")
    parser.add_argument("--candidates", type=int, default=8, help="candidates a task in the comparison")
    parser.add_argument("--scale", type=int, nargs="*", help="N adapters of the scale part (default 32 128; none: "
                        "skip it)")
    parser.add_argument("--fleet", type=int, nargs="*", help="customers of the fleet part, each N on each of "
                        "its bases (default 32; none: skip it)")
    parser.add_argument("--rounds", type=int, help="alternated rounds of pass and lone runs (default 3)")
    parser.add_argument("--gate", nargs="+", default=[], metavar="TASK",
                        help="also time today's gate end to end (pytest processes) on these tasks")
    parser.add_argument("--tier", default="tiny", choices=["tiny", "full"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch's CPU threads (default 1: a team of 2 on a "
                        "shared 2-core machine spun, the same pass took 15 s instead of 1.6 s)")
    parser.add_argument("--base-model", help="another base than the card's: the candidates are random LoRAs on it")
    parser.add_argument("--cache", type=Path, default=REPO / ".loragate", help="where tiny bases are built")
    args = parser.parse_args(argv)
    if args.dry_run:
        args.candidates = 3
    defaults = ([2, 4], 1) if args.dry_run else ([32, 128], 3)
    args.scale = defaults[0] if args.scale is None else args.scale
    args.fleet = ([4] if args.dry_run else [32]) if args.fleet is None else args.fleet
    args.rounds = args.rounds or defaults[1]
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="loragate-candidates-") as work:
        setup = Setup(args.tier, args.device, args.base_model, args.cache.resolve(), Path(work))
        result = {**provenance(), "command": "python -m benchmarks.candidates " + " ".join(argv or sys.argv[1:]),
                  "tier": args.tier, "device": args.device, "base_model": args.base_model,
                  "compare": [compare(task, args.candidates, args.rounds, setup) for task in args.tasks],
                  "gate": [gate(task, args.candidates, setup, args.threads) for task in args.gate],
                  "scale": scale(SCALE_TASK, args.scale, args.rounds, setup) if args.scale else None,
                  "fleet": [fleet(base, count, args.rounds, setup.work, setup.options()) for base in BASES
                            for count in args.fleet]}
    (args.out / "candidates.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "candidates.md").write_text(table(result))
    print(table(result))
    print(f"wrote {args.out / 'candidates.json'} and {args.out / 'candidates.md'}")
    return result


if __name__ == "__main__":
    main()
