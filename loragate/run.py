"""One task at one tier, end to end: data -> base -> adapter (load or train) -> predictions -> gates.

The plugin's session and train_fixtures.py both call in here, so the CLI and the gate cannot drift.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from filelock import Timeout
from peft import LoraConfig, PeftModel
from transformers import PreTrainedTokenizerBase

import loragate
from loragate.baseline import baseline_from_report
from loragate.card import Tier
from loragate.curves import CurveCheck
from loragate.data import Example, Splits
from loragate.engine import Generations, answer_budget, generate, next_token_logits
from loragate.gates import GateResult, checks_from, regression_checks, run_gates
from loragate.metrics import ClassificationMetrics, classification_metrics
from loragate.models import LoadedBase, fingerprint, load_causal, tiny_base_dir
from loragate.parameters import expected_lora_parameters
from loragate.parsing import ParsedOutput
from loragate.scoring import label_log_likelihoods, likeliest
from loragate.store import AdapterStore, AdapterStoreError, adapter_key, load_adapter, read_manifest
from loragate.tasks import Task, get_task
from loragate.training import TrainingDiverged, TrainResult, attach_lora, train_lora


@dataclass(frozen=True)
class RunOptions:
    device: str = "cpu"
    base_model: str | None = None  # overrides the card's base for the tier
    adapter: Path | None = None  # gate this adapter instead of the store's
    baseline_adapter: Path | None = None  # the last release's adapter: tuned must not regress against it
    baseline_report: Path | None = None  # or the last release's report.json, with its per-example predictions
    data: Path | None = None  # the task's data in its real format, instead of the shipped data
    retrain: bool = False
    store_root: Path = Path("adapters")
    cache: Path = Path(".loragate")
    progress: bool = True

    @property
    def dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.device.startswith("cuda") else torch.float32  # bf16 is slow on CPU


@dataclass(frozen=True)
class Predictions:
    ids: list[str]
    gold: list[str]
    outputs: list[str]
    parsed: list[ParsedOutput]
    generations: Generations
    scored: list[str] | None = None  # decode: score: the likeliest label of each example

    def invalid(self) -> list[tuple[str, str, str]]:
        """(example id, raw output, reason) of every output that did not parse."""
        return [(i, out, p.reason or "") for i, out, p in zip(self.ids, self.outputs, self.parsed) if not p.valid]


@dataclass
class TaskRun:
    task: Task
    tier: Tier
    splits: Splits
    base: LoadedBase
    model: PeftModel
    adapter_dir: Path | None
    manifest: dict | None
    expected_lora_parameters: int
    base_logits: torch.Tensor  # next-token logits on test prompts, taken before the adapter was attached
    tuned_logits: torch.Tensor  # the same with the adapter applied
    base_predictions: Predictions
    tuned_predictions: Predictions
    base_metrics: ClassificationMetrics
    tuned_metrics: ClassificationMetrics
    gates: list[GateResult]
    ceiling: float | None
    baseline_metrics: ClassificationMetrics | None = None  # the last release's adapter, with --baseline-adapter
    trained: TrainResult | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.task.card.name}/{self.tier}"

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.gates)

    def test_logits(self, model: torch.nn.Module) -> torch.Tensor:
        """Next-token logits of `model` on the test prompts, batched exactly as base_logits was."""
        return next_token_logits(model, self.base.tokenizer, [ex.prompt for ex in self.splits.test],
                                 self.task.card.tier(self.tier).eval.batch_size)


def label_of(parsed: ParsedOutput) -> str | None:
    """The label a valid output names: the schema's one field."""
    if parsed.value is None:
        return None
    (value,) = parsed.value.model_dump().values()
    return str(value)


def generations_of(task: Task, tier: Tier, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase,
                   prompts: list[str], progress: bool = False, desc: str = "generate") -> Generations:
    """Greedy outputs under the card's eval settings; the budget defaults to what the longest label needs."""
    settings = task.card.tier(tier).eval
    budget = settings.max_new_tokens or answer_budget(tokenizer, targets(task))
    return generate(model, tokenizer, prompts, budget, settings.batch_size, labels=task.card.labels,
                    progress=progress, desc=desc)


def targets(task: Task) -> list[str]:
    """What the model should write for each label, in label order."""
    return [task.card.target_template.format(label=label) for label in task.card.labels]


def predict(task: Task, model: torch.nn.Module, base: LoadedBase, examples: list[Example], tier: Tier,
            progress: bool, desc: str) -> Predictions:
    """Free generations (the schema gate reads them) and, with decode: score, each example's likeliest label."""
    prompts = [ex.prompt for ex in examples]
    generations = generations_of(task, tier, model, base.tokenizer, prompts, progress, desc)
    scored = None
    if task.card.tier(tier).eval.decode == "score":
        scores = label_log_likelihoods(model, base.tokenizer, prompts, targets(task),
                                       task.card.tier(tier).eval.batch_size)
        scored = likeliest(scores, task.card.labels)
    return Predictions(
        ids=[ex.id for ex in examples],
        gold=[ex.label for ex in examples],
        outputs=generations.texts,
        parsed=[task.parse(text) for text in generations.texts],
        generations=generations,
        scored=scored,
    )


def score(task: Task, predictions: Predictions) -> ClassificationMetrics:
    """Metrics of the parsed outputs; with scored labels, an example whose output parsed counts as its
    likeliest label. An output that did not parse stays invalid either way: invalid outputs are wrong answers,
    and the validity gate reads free generation."""
    predicted = [label_of(p) for p in predictions.parsed]
    if predictions.scored is not None:
        predicted = [s if p is not None else None for p, s in zip(predicted, predictions.scored)]
    return classification_metrics(predictions.gold, predicted, task.card.labels, predictions.outputs)


def prepare_base(task: Task, tier: Tier, splits: Splits, options: RunOptions) -> LoadedBase:
    """The card's base for `tier` (or --base-model): 'tiny' is built offline from the task's text."""
    name = options.base_model or task.card.tier(tier).base_model
    if name == "tiny":
        path = tiny_base_dir(options.cache, task.card.name, task.card.tier(tier).tiny_base, splits.texts())
        return load_causal(str(path), options.device, options.dtype, display_name=f"tiny:{task.card.name}")
    return load_causal(name, options.device, options.dtype)


def versions() -> dict[str, str]:
    import peft
    import transformers

    return {"loragate": loragate.__version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__, "python": platform.python_version()}


def train_and_store(task: Task, tier: Tier, base: LoadedBase, splits: Splits, options: RunOptions,
                    key: str) -> tuple[PeftModel, Path, dict, TrainResult]:
    settings = task.card.tier(tier)
    model = attach_lora(base.model, settings.lora, settings.train.seed)
    model.peft_config["default"].base_model_name_or_path = base.name  # not a local cache path
    result = train_lora(model, base.tokenizer, splits.train, splits.eval, settings.train,
                        progress=options.progress, desc=f"train {task.card.name}/{tier}")
    eval_metrics = score(task, predict(task, model, base, splits.eval, tier, False, "eval split"))
    manifest = {
        "task": task.card.name,
        "tier": tier,
        "base": {"name": base.name, "fingerprint": base.fingerprint, "parameters": base.parameters},
        "data_hash": splits.data_hash(),
        "lora": settings.lora.model_dump(),
        "train": settings.train.model_dump(),
        "seed": settings.train.seed,
        "versions": versions(),
        "loss_curve": [round(loss, 6) for loss in result.loss_curve],
        "train_seconds": round(result.seconds, 2),
        "metrics_at_train": {"eval_loss": round(result.eval_loss, 6), "eval_accuracy": eval_metrics.accuracy,
                             "eval_macro_f1": eval_metrics.macro_f1, "eval_validity": eval_metrics.validity_rate},
    }
    entry = AdapterStore(options.store_root).save(model, manifest, task.card.name, tier, key)
    return model, entry, read_manifest(entry, key), result


class CanaryFailed(RuntimeError):
    """The tiny-tier canary of a task failed, so its full-tier training was not started."""


def run_canary(task: Task, splits: Splits, options: RunOptions) -> None:
    """Tiny-then-full: before GPU hours go into the full adapter, the tiny adapter of the same task and data
    must train with a falling, finite loss and produce outputs that parse."""
    tiny = replace(options, base_model=None, adapter=None, baseline_adapter=None, baseline_report=None)
    where = f"canary {task.card.name}/tiny"
    try:
        base = prepare_base(task, "tiny", splits, tiny)
        model, entry, manifest, _ = prepare_adapter(task, "tiny", base, splits, tiny)
    except TrainingDiverged as exc:
        raise CanaryFailed(f"{where}: {exc}; the full run was not started") from exc
    curve = (manifest or {}).get("loss_curve", [])
    problems = []
    if len(curve) < 2 or not curve[-1] < curve[0]:
        problems.append(f"loss did not fall ({curve[:1]} -> {curve[-1:]}, {len(curve)} steps)")
    predictions = predict(task, model, base, splits.eval, "tiny", False, where)
    invalid = predictions.invalid()
    validity = 1 - len(invalid) / len(predictions.ids)
    if validity < task.card.gates.min_validity:
        problems.append(f"{len(invalid)} of {len(predictions.ids)} eval outputs do not parse, e.g. "
                        + "; ".join(f"{i}: {out!r} ({reason})" for i, out, reason in invalid[:3]))
    if problems:
        raise CanaryFailed(f"{where} ({entry}): {'; '.join(problems)}. The full run was not started: fix the "
                           f"data, the card's prompt or its training settings first.")


def prepare_adapter(task: Task, tier: Tier, base: LoadedBase, splits: Splits,
                    options: RunOptions) -> tuple[PeftModel, Path, dict | None, TrainResult | None]:
    """--adapter if given; else the store's entry for this key; else train one and store it."""
    if options.adapter is not None:
        return load_adapter(base.model, options.adapter), options.adapter, None, None
    settings = task.card.tier(tier)
    key = adapter_key(base.fingerprint, splits.data_hash(), settings.lora, settings.train)
    store = AdapterStore(options.store_root)
    lock = store.lock(task.card.name, tier, key)
    try:
        lock.acquire()
    except Timeout as exc:
        raise AdapterStoreError(f"waited {lock.timeout:.0f} s for another run training {task.card.name}/{tier} "
                                f"key {key} (lock {lock.lock_file}); let it finish or stop it") from exc
    try:
        entry = store.find(task.card.name, tier, key)
        if entry is not None and not options.retrain:
            manifest = read_manifest(entry, key)
            if manifest["base"]["fingerprint"] != base.fingerprint:
                raise AdapterStoreError(f"{entry}: trained on base {manifest['base']['fingerprint'][:12]}, "
                                        f"loaded base is {base.fingerprint[:12]}; retrain with --retrain")
            return load_adapter(base.model, entry), entry, manifest, None
        if tier == "full":
            run_canary(task, splits, options)
        return train_and_store(task, tier, base, splits, options, key)
    finally:
        lock.release()


def predict_with_baseline(task: Task, tier: Tier, base: LoadedBase, splits: Splits,
                          options: RunOptions) -> Predictions:
    """Test predictions of the last release's adapter, which is then unloaded: the base is left bit-identical
    (checked) for the adapter under test."""
    baseline = load_adapter(base.model, options.baseline_adapter)
    predictions = predict(task, baseline, base, splits.test, tier, options.progress, "baseline")
    base.model = baseline.unload()
    if fingerprint(base.model) != base.fingerprint:
        raise RuntimeError(f"unloading the baseline adapter {options.baseline_adapter} changed the base weights")
    return predictions


def curve_gate(task: Task, manifest: dict | None, baseline_dir: Path) -> GateResult:
    """The training loss curve against the baseline adapter's, where both adapters carry a manifest."""
    check = CurveCheck(task.card.gates.curve_rtol, task.card.gates.curve_alpha, "training curve vs baseline")
    reference = json.loads((baseline_dir / "manifest.json").read_text()) if (baseline_dir / "manifest.json").is_file() else {}
    if not (manifest or {}).get("loss_curve") or not reference.get("loss_curve"):
        return GateResult(check.name, None, "not compared: an adapter without a loragate manifest has no loss curve")
    return GateResult(check.name, check.fails(manifest["loss_curve"], reference["loss_curve"]),
                      f"{len(manifest['loss_curve'])} steps within {check.rtol:.0%}, no one-sided shift")


def lora_shape(task: Task, tier: Tier, options: RunOptions) -> tuple[int, list[str]]:
    """Rank and target modules of the adapter that will be gated, read before it wraps the base."""
    if options.adapter is not None:
        config = LoraConfig.from_pretrained(str(options.adapter))
        return config.r, sorted(config.target_modules)
    lora = task.card.tier(tier).lora
    return lora.r, lora.target_modules


def run_task(name: str, tier: Tier, options: RunOptions) -> TaskRun:
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = round(now - clock, 3)
        clock = now

    task = get_task(name)
    checks = checks_from(task.card.gates)
    splits = task.load_splits(options.data)
    base = prepare_base(task, tier, splits, options)
    lap("load base")
    test_prompts = [ex.prompt for ex in splits.test]
    base_logits = next_token_logits(base.model, base.tokenizer, test_prompts, task.card.tier(tier).eval.batch_size)
    base_predictions = predict(task, base.model, base, splits.test, tier, options.progress, f"base {name}/{tier}")
    lap("base predictions")
    baseline_predictions = None
    if options.baseline_adapter is not None:
        baseline_predictions = predict_with_baseline(task, tier, base, splits, options)
        lap("baseline predictions")
    expected = expected_lora_parameters(base.model, *lora_shape(task, tier, options))
    model, adapter_dir, manifest, trained = prepare_adapter(task, tier, base, splits, options)
    lap("train adapter" if trained else "load adapter")
    tuned_logits = next_token_logits(model, base.tokenizer, test_prompts, task.card.tier(tier).eval.batch_size)
    tuned_predictions = predict(task, model, base, splits.test, tier, options.progress, f"tuned {name}/{tier}")
    lap("tuned predictions")
    base_metrics, tuned_metrics = score(task, base_predictions), score(task, tuned_predictions)
    gates = run_gates(checks, tuned_metrics, base_metrics)
    baseline_metrics = None
    if baseline_predictions is not None:
        baseline_metrics = score(task, baseline_predictions)
        gates += run_gates(regression_checks(task.card.gates), tuned_metrics, baseline_metrics)
        gates.append(curve_gate(task, manifest, options.baseline_adapter))
    elif options.baseline_report is not None:
        baseline_metrics = baseline_from_report(options.baseline_report, name, tier, splits, task.card.labels)
        gates += run_gates(regression_checks(task.card.gates), tuned_metrics, baseline_metrics)
    return TaskRun(
        task=task, tier=tier, splits=splits, base=base, model=model, adapter_dir=adapter_dir, manifest=manifest,
        expected_lora_parameters=expected, base_logits=base_logits, tuned_logits=tuned_logits, base_predictions=base_predictions,
        tuned_predictions=tuned_predictions, base_metrics=base_metrics, tuned_metrics=tuned_metrics,
        baseline_metrics=baseline_metrics, gates=gates, ceiling=task.ceiling(splits.test),
        trained=trained, seconds=seconds,
    )
