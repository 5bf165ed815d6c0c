"""One task at one tier, end to end: data -> base -> adapter (load or train) -> predictions -> metrics -> gates.

A straight pipeline: what differs per kind (loading, training, predicting, probing, scoring) is the kind's
(loragate.kinds), found from the card. Order matters in two places and is kept here: the base's probe logits
and predictions are taken before the adapter wraps the base, and the base model is never changed in place
(the parameter suite checks it bit for bit).

The plugin's session and train_fixtures.py both call in here, so the CLI and the gate cannot drift.
"""

from __future__ import annotations

import platform
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import peft
import torch
import transformers
from filelock import FileLock, Timeout
from peft import LoraConfig, PeftModel

import loragate
from loragate.card.options import RunOptions
from loragate.card.overrides import apply_overrides
from loragate.card.settings import CardError, TaskCard, Tier
from loragate.data.examples import Example, Splits, field_subgroups
from loragate.data.hf_dataset import is_dataset, materialize
from loragate.data.task import Task
from loragate.data.truncation import SPLITS, InputFit, fit_splits, position_cap
from loragate.gates.checks import (
    GateResult,
    Subgroup,
    curve_gates,
    leakage_gate,
    regression_checks,
    run_gates,
    subgroup_gates,
    trivial_gates,
)
from loragate.gates.verdict import CaseTests, Verdict, judge_case
from loragate.inference.grammar import Constraint
from loragate.inference.predictions import Constant, Predictions
from loragate.kinds import KINDS, Kind, card_checks, kind_of
from loragate.metrics.scores import Metrics
from loragate.models.bases import LoadedBase, fingerprint
from loragate.models.parameters import expected_lora_parameters
from loragate.progress import reporter
from loragate.run.baseline import baseline_from_report
from loragate.run.decoding_modes import (
    CONSTRAINED,
    FREE,
    Decoded,
    ModeDelta,
    constrains,
    declared_mode,
    mode_deltas,
    name_the_gap,
    task_constraint,
)
from loragate.store.adapters import (
    AdapterStore,
    AdapterStoreError,
    BaseRecord,
    Manifest,
    adapter_key,
    check_origin,
    load_adapter,
    manifest_of,
    read_manifest,
)
from loragate.tasks import get_task
from loragate.training.distributed import current
from loragate.training.lora import TrainingDiverged, TrainResult, attach_lora, training_machine

__all__ = ["PROBE", "Predictions", "RunOptions", "TaskRun", "run_task"]

# Test examples on which the checks of structure compare logits bit for bit: the adapter disabled against the base,
# the merged copy reloaded from its files against the merged model. The same weights make the same bits on any input,
# so a few examples show it; each full pass over the test split would cost seconds of a CPU smoke run (squad_v2: 2.5).
PROBE = 8


@dataclass
class TaskRun:
    task: Task
    tier: Tier
    splits: Splits
    base: LoadedBase
    model: PeftModel
    adapter_dir: Path | None
    manifest: Manifest | None
    expected_lora_parameters: int
    base_logits: torch.Tensor  # next-token logits on test prompts, taken before the adapter was attached
    base_probe_logits: torch.Tensor  # the same on the first PROBE test prompts, batched among themselves
    tuned_logits: torch.Tensor  # the same with the adapter applied
    base_predictions: Predictions
    tuned_predictions: Predictions
    base_metrics: Metrics
    tuned_metrics: Metrics
    gates: list[GateResult]
    ceiling: float | None
    constant: Constant  # the best constant predictor of the test split, which tuned must beat
    constant_metrics: Metrics
    subgroups: list[Subgroup]  # the kind's (QA: has/no answer) and the card's `subgroups` field's
    baseline_metrics: Metrics | None = None  # the last release's adapter, with --baseline-adapter
    trained: TrainResult | None = None
    inputs: InputFit | None = None  # how the examples were fitted to train.max_length; None: the kind windows them
    overrides: tuple[str, ...] = ()  # the run's --set path=value, applied to the card
    seconds: dict[str, float] = field(default_factory=dict)
    tests: CaseTests | None = None  # this case's gate tests and their outcomes, filled in by the plugin
    decoding: str = FREE  # the mode of base/tuned predictions and metrics above: the card's, which the gates read
    reported: Decoded | None = None  # the other mode (--constrain, or a card declaring schema): reported, not gated
    mode_deltas: list[ModeDelta] = field(default_factory=list)  # the tuned model's free -> constrained deltas
    constraint: Constraint | None = None  # the output's grammar, where the run decoded under it

    @property
    def name(self) -> str:
        return f"{self.task.card.name}/{self.tier}"

    @property
    def passed(self) -> bool:
        """The card's gates alone; `verdict` adds the gate tests."""
        return all(result.passed for result in self.gates)

    @property
    def verdict(self) -> Verdict:
        return judge_case([f"{r.check}: {r.finding}" for r in self.gates if not r.passed], self.tests)

    def test_logits(self, model: torch.nn.Module) -> torch.Tensor:
        """The logits of `model` on the test split, batched exactly as base_logits was."""
        return probe_logits(self.task, self.tier, model, self.base, self.splits.test)

    def probe(self, model: torch.nn.Module) -> torch.Tensor:
        """The logits of `model` on the first PROBE test examples, batched among themselves as base_probe_logits
        was."""
        return probe_logits(self.task, self.tier, model, self.base, self.splits.test[:PROBE])

    def predict(self, model: torch.nn.Module) -> Predictions:
        """Test predictions of `model`, as the gate made the tuned model's, in the mode it gated and at the
        threshold it chose on eval, if the kind chose one (the throughput benchmark repeats this and times the
        answers alone)."""
        threshold = self.tuned_predictions.threshold
        return predict(self.task, model, self.base, self.splits.test, self.tier, False, f"predict {self.name}",
                       calibration=self.splits.eval if threshold is None else threshold,
                       constraint=self.constraint if self.decoding == CONSTRAINED else None)


def kind(task: Task) -> Kind:
    return kind_of(task.card.kind)


def probe_logits(task: Task, tier: Tier, model: torch.nn.Module, base: LoadedBase,
                 examples: list[Example]) -> torch.Tensor:
    """What the parameter invariants compare, as the task's kind takes it."""
    return kind(task).probe_logits(task, tier, model, base, examples)


def probe_of(task: Task, tier: Tier, model: torch.nn.Module, base: LoadedBase, examples: list[Example],
             predictions: Predictions) -> torch.Tensor:
    """The probe logits of `model`; where its predictions already hold them at the card's batch size (a classifier
    head's logits are both), they are not computed twice: the same batches give the same bits."""
    if predictions.logits is not None and predictions.batch_size == predictions.card_batch_size:
        return predictions.logits
    return probe_logits(task, tier, model, base, examples)


def predict(task: Task, model: torch.nn.Module, base: LoadedBase, examples: list[Example], tier: Tier,
            progress: bool, desc: str, calibration: list[Example] | float | None = None,
            constraint: Constraint | None = None) -> Predictions:
    """The model's answer to each example, as the task's kind makes it (under `constraint`, the kind's grammar,
    where given), at the card's eval batch size; when the GPU runs out of memory the batch is halved and the whole
    prediction redone (the report says so). Batching changes no greedy output, so a smaller batch gives the same
    predictions, only slower."""
    card_batch = batch_size = task.card.tier(tier).eval.batch_size
    while True:
        try:
            if constraint is None:
                predictions = kind(task).predict(task, model, base, examples, tier, progress, desc,
                                                 examples if calibration is None else calibration, batch_size)
            else:
                predictions = kind(task).predict_constrained(task, model, base, examples, tier, progress, desc,
                                                             batch_size, constraint)
            return replace(predictions, batch_size=batch_size, card_batch_size=card_batch)
        except torch.OutOfMemoryError as exc:
            if batch_size == 1:
                raise RuntimeError(f"{desc}: out of memory even at eval batch size 1 (card: {card_batch}); use a "
                                   f"smaller base or a GPU with more memory") from exc
            batch_size //= 2
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            warnings.warn(f"{desc}: out of memory at eval batch size {batch_size * 2}; retrying at {batch_size}")


def score(task: Task, predictions: Predictions) -> Metrics:
    """The kind's metrics of `predictions`."""
    return kind(task).score(task, predictions)


def score_subgroups(task: Task, examples: list[Example], base: Predictions, tuned: Predictions) -> list[Subgroup]:
    """Base and tuned scored by the kind on each subgroup of the test split: the kind's own, then one per value of
    the card's `subgroups` field."""
    groups = kind(task).subgroups(task, examples)
    if task.card.subgroups is not None:
        groups |= field_subgroups(examples, task.card.subgroups)
    return [Subgroup(name, len(rows), score(task, base.subset(rows)), score(task, tuned.subset(rows)))
            for name, rows in groups.items()]


@dataclass(frozen=True)
class Judged:
    """Base and tuned predictions on the test split scored and gated: against base (the card's checks), against
    the trivial predictor, and per subgroup; in the mode the card declares (`gated`), with the other reported.
    run_task adds the leakage gate and, given the last release, its metrics and the regression gates against it."""

    base_metrics: Metrics
    tuned_metrics: Metrics
    constant: Constant
    constant_metrics: Metrics
    subgroups: list[Subgroup]
    gates: list[GateResult]
    gated: Decoded
    reported: Decoded | None = None
    mode_deltas: list[ModeDelta] = field(default_factory=list)
    baseline_metrics: Metrics | None = None  # the last release's, where run_task was given it (judge_run)


def judge_predictions(task: Task, test: list[Example], base: Predictions, tuned: Predictions,
                      constrained: tuple[Predictions, Predictions] | None = None, decoding: str = FREE) -> Judged:
    """Every gate that reads only the test split's predictions; tests feed it constructed predictions (an adapter
    that always abstains) to prove the gate refuses them without a model. `base` and `tuned` are free outputs,
    `constrained` the (base, tuned) outputs under the grammar where computed; the gates read the `decoding` mode
    and the other is scored and reported. Where the gates read free outputs, a failed validity gate names the gap
    to the constrained outputs' validity."""
    if decoding == CONSTRAINED and constrained is None:
        raise ValueError(f"task {task.card.name}: the card declares constrained decoding, but only free predictions "
                         f"were given")
    gates = task.card.gates
    modes = {FREE: (base, tuned), CONSTRAINED: constrained}
    gated_base, gated_tuned = modes[decoding]
    base_metrics, tuned_metrics = score(task, gated_base), score(task, gated_tuned)
    gated = Decoded(decoding, gated_base, gated_tuned, base_metrics, tuned_metrics)
    constant = kind(task).constant(task, test)
    constant_metrics = score(task, constant.predictions)
    subgroups = score_subgroups(task, test, gated_base, gated_tuned)
    results = [*run_gates(card_checks(task.card), tuned_metrics, base_metrics),
               *trivial_gates(gates, constant.name, tuned_metrics, constant_metrics),
               *subgroup_gates(gates, subgroups)]
    if constrained is None:
        return Judged(base_metrics, tuned_metrics, constant, constant_metrics, subgroups, results, gated)
    other = CONSTRAINED if decoding == FREE else FREE
    reported = Decoded(other, *modes[other], score(task, modes[other][0]), score(task, modes[other][1]))
    free, under_grammar = (gated, reported) if decoding == FREE else (reported, gated)
    if decoding == FREE:
        results = name_the_gap(results, free.tuned_metrics, under_grammar.tuned_metrics, gates.min_validity)
    deltas = mode_deltas(free.tuned_metrics, under_grammar.tuned_metrics, list(gates.min_delta), gates)
    return Judged(base_metrics, tuned_metrics, constant, constant_metrics, subgroups, results, gated, reported, deltas)


def load_splits(task: Task, options: RunOptions) -> Splits:
    """The task's shipped data, a --data file in its real format, or a Hugging Face dataset (hub id or local
    directory) written once in that format: the task's loader and its checks read all three."""
    data = options.data
    with reporter().phase("load data", "loaded data"):
        if is_dataset(data):  # data-parallel: rank 0 downloads and converts, the others read its file
            data = current().from_main(lambda: materialize(task.card.name, task, options.data, options.cache))
        return task.load_splits(data)


def prepare_base(task: Task, tier: Tier, splits: Splits, options: RunOptions) -> LoadedBase:
    """The card's base for `tier` (or --base-model), as the task's kind loads it ('tiny': built offline)."""
    with reporter().phase("load base", "loaded base"):
        return kind(task).load_base(task, tier, splits, options)


def for_base(task: Task, splits: Splits, base: LoadedBase) -> Splits:
    """The splits as the loaded base reads them (instruct: its chat template)."""
    return kind(task).for_base(task, splits, base)


def load_task(name: str, options: RunOptions) -> Task:
    """The registered task with the run's --set overrides applied to its card."""
    task = get_task(name)
    task.card = apply_overrides(task.card, options.overrides)
    return task


def with_max_length(card: TaskCard, tier: Tier, max_length: int) -> TaskCard:
    """`card` with tiers.<tier>.train.max_length set (`auto` resolved)."""
    settings = card.tier(tier)
    train = settings.train.model_copy(update={"max_length": max_length})
    return card.model_copy(update={"tiers": {**card.tiers, tier: settings.model_copy(update={"train": train})}})


def fit_inputs(task: Task, tier: Tier, splits: Splits, base: LoadedBase) -> tuple[TaskCard, Splits, InputFit | None]:
    """The card with an `auto` max_length resolved, and the splits with every example fitted to it (refused, or its
    prompt cut, as train.truncation says: loragate.data.truncation); the card and splits as they are for a kind that
    windows long inputs."""
    answers = {}
    for name in SPLITS:
        tokens = kind(task).answer_tokens(task, base, getattr(splits, name))
        if tokens is None:
            return task.card, splits, None
        answers[name] = tokens
    fitted, fit = fit_splits(splits, base.tokenizer, answers, task.card.tier(tier).train, position_cap(base.model),
                             f"tiers.{tier}")
    return with_max_length(task.card, tier, fit.max_length), fitted, fit


def versions() -> dict[str, str]:
    """The library versions an adapter was trained with, for its manifest."""
    return {"loragate": loragate.__version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__, "python": platform.python_version()}


def train_and_store(task: Task, tier: Tier, base: LoadedBase, splits: Splits, options: RunOptions,
                    key: str, inputs: InputFit | None) -> tuple[PeftModel, Path, Manifest, TrainResult]:
    settings = task.card.tier(tier)
    model = attach_lora(base.model, settings.lora, settings.train.seed, KINDS.get(task.card.kind).peft_task_type,
                        settings.lora.modules_to_save or None)
    model.peft_config["default"].base_model_name_or_path = base.name  # not a local cache path
    result = kind(task).train(task, tier, model, base, splits, options)
    eval_metrics = score(task, predict(task, model, base, splits.eval, tier, False, "eval split"))
    at_train = {f"eval_{name}": value for name, value in eval_metrics.headline().items()}
    manifest = Manifest(
        task=task.card.name, tier=tier,
        base=BaseRecord(name=base.name, fingerprint=base.fingerprint, parameters=base.parameters,
                        quantization=base.quantization),
        data_hash=splits.data_hash(), lora=settings.lora.model_dump(), train=settings.train.model_dump(),
        seed=settings.train.seed, versions=versions(), machine=training_machine(options.device),
        loss_curve=[round(loss, 6) for loss in result.loss_curve], train_seconds=round(result.seconds, 2),
        data_parallel_processes=current().world,
        eval_curve=[(step, round(loss, 6)) for step, loss in result.eval_curve],
        metrics_at_train={"eval_loss": round(result.eval_loss, 6), **at_train,
                          "eval_validity": eval_metrics.validity_rate},
        overrides=list(options.overrides), inputs=inputs.to_json() if inputs else None,
        **kind(task).manifest_facts(base),
    )
    store = AdapterStore(options.store_root)
    entry = current().from_main(lambda: store.save(model, manifest, task.card.name, tier, key))
    return model, entry, read_manifest(entry, key), result


class CanaryFailed(RuntimeError):
    """The tiny-tier canary of a task failed, so its full-tier training was not started."""


def run_canary(task: Task, splits: Splits, options: RunOptions) -> None:
    """Tiny-then-full: before GPU hours go into the full adapter, the tiny adapter of the same task and data
    must train with a falling, finite loss and produce outputs that parse (in the tiny tier's declared decoding)."""
    tiny = replace(options, base_model=None, adapter=None, baseline_adapter=None, baseline_report=None)
    where = f"canary {task.card.name}/tiny"
    try:
        base = prepare_base(task, "tiny", splits, tiny)
        task.card, splits, inputs = fit_inputs(task, "tiny", for_base(task, splits, base), base)
        model, entry, manifest, _ = prepare_adapter(task, "tiny", base, splits, tiny, inputs)
    except TrainingDiverged as exc:
        raise CanaryFailed(f"{where}: {exc}; the full run was not started") from exc
    curve = manifest.loss_curve if manifest else []
    problems = []
    if len(curve) < 2 or not curve[-1] < curve[0]:
        problems.append(f"loss did not fall ({curve[:1]} -> {curve[-1:]}, {len(curve)} steps)")
    declared = task_constraint(task.card) if declared_mode(task.card, "tiny") == CONSTRAINED else None
    predictions = predict(task, model, base, splits.eval, "tiny", False, where, constraint=declared)
    invalid = predictions.invalid()
    validity = 1 - len(invalid) / len(predictions.ids)
    if validity < task.card.gates.min_validity:
        problems.append(f"{len(invalid)} of {len(predictions.ids)} eval outputs do not parse, e.g. "
                        + "; ".join(f"{i}: {out!r} ({reason})" for i, out, reason in invalid[:3]))
    if problems:
        raise CanaryFailed(f"{where} ({entry}): {'; '.join(problems)}. The full run was not started: fix the "
                           f"data, the card's prompt or its training settings first.")


def prepare_adapter(task: Task, tier: Tier, base: LoadedBase, splits: Splits, options: RunOptions,
                    inputs: InputFit | None = None) -> tuple[PeftModel, Path, Manifest | None, TrainResult | None]:
    """--adapter if given; else the store's entry for this key; else train one and store it (its manifest records
    how the examples were fitted, `inputs`)."""
    if options.adapter is not None:
        if not options.allow_foreign_adapter:
            check_origin(options.adapter, task.card.name, base.name, base.fingerprint)
        kind(task).check_adapter(task, base, options.adapter)
        with reporter().phase("load adapter", "loaded adapter"):
            return load_adapter(base.model, options.adapter), options.adapter, None, None
    settings = task.card.tier(tier)
    key = adapter_key(base.fingerprint, splits.data_hash(), settings.lora, settings.train)
    store = AdapterStore(options.store_root)
    ranks = current()
    lock: FileLock | None = None

    def take_lock() -> None:  # data-parallel: only the main rank locks, stores and decides for all ranks
        nonlocal lock
        lock = acquire(store, task.card.name, tier, key)

    ranks.from_main(take_lock)
    try:
        entry = ranks.from_main(lambda: store.find(task.card.name, tier, key))
        if entry is not None and not options.retrain:
            manifest = read_manifest(entry, key)
            if manifest.base.fingerprint != base.fingerprint:
                raise AdapterStoreError(f"{entry}: trained on base {manifest.base.fingerprint[:12]}, "
                                        f"loaded base is {base.fingerprint[:12]}; retrain with --retrain")
            kind(task).check_adapter(task, base, entry)
            with reporter().phase("load adapter", "loaded adapter"):
                return load_adapter(base.model, entry), entry, manifest, None
        if tier == "full":
            with reporter().case(f"{task.card.name}/tiny canary"):
                run_canary(task, splits, options)
        with reporter().phase("train", "trained"):
            return train_and_store(task, tier, base, splits, options, key, inputs)
    finally:
        if lock is not None:
            lock.release()


def acquire(store: AdapterStore, task: str, tier: Tier, key: str) -> FileLock:
    """The store's lock for one key: of several runs that need the same adapter, one trains while the
    others wait, then load it. Temp dirs of killed saves are removed first."""
    lock = store.lock(task, tier, key)
    store.remove_stale_temps(task, tier)  # what saves killed earlier left behind
    try:
        lock.acquire()
    except Timeout as exc:
        raise AdapterStoreError(f"waited {lock.timeout:.0f} s for another run training {task}/{tier} "
                                f"key {key} (lock {lock.lock_file}); let it finish or stop it") from exc
    return lock


def predict_with_baseline(task: Task, tier: Tier, base: LoadedBase, splits: Splits, options: RunOptions,
                          constraint: Constraint | None) -> Predictions:
    """Test predictions of the last release's adapter (under `constraint`, the gated mode's grammar, where given),
    which is then unloaded: the base is left bit-identical (checked) for the adapter under test."""
    if not options.allow_foreign_adapter:
        check_origin(options.baseline_adapter, task.card.name, base.name, base.fingerprint)
    baseline = load_adapter(base.model, options.baseline_adapter)
    with reporter().phase("predict baseline", "predicted baseline"):
        predictions = predict(task, baseline, base, splits.test, tier, options.progress, "baseline", splits.eval,
                              constraint)
    base.model = baseline.unload()
    if fingerprint(base.model) != base.fingerprint:
        raise RuntimeError(f"unloading the baseline adapter {options.baseline_adapter} changed the base weights")
    return predictions


def lora_shape(task: Task, tier: Tier, options: RunOptions) -> tuple[int, list[str]]:
    """Rank and target modules of the adapter that will be gated, read before it wraps the base."""
    if options.adapter is not None:
        config = LoraConfig.from_pretrained(str(options.adapter))
        return config.r, sorted(config.target_modules)
    lora = task.card.tier(tier).lora
    return lora.r, lora.target_modules


def run_task(name: str, tier: Tier, options: RunOptions) -> TaskRun:
    """One task at one tier, end to end, in the order the module's docstring gives; TaskRun.seconds holds the
    seconds of each stage."""
    laps = Laps()
    task, decoding, constraint = checked_task(name, tier, options)
    splits, base, inputs = load_inputs(task, tier, options)
    laps.lap("load base")
    before = predict_base(task, tier, name, base, splits, options, constraint, laps)
    baseline = predict_baseline(task, tier, base, splits, options, constraint if decoding == CONSTRAINED else None,
                                laps)
    adapter = adapter_under_test(task, tier, base, splits, options, inputs)
    laps.lap("train adapter" if adapter.trained else "load adapter")
    after = predict_tuned(task, tier, name, adapter.model, base, splits, options, constraint, laps)
    judged = judge_run(task, tier, name, splits, options, decoding, before, after, baseline, adapter.manifest)
    return assemble_run(task, tier, splits, base, inputs, options, laps.seconds, constraint, adapter, before, after,
                        judged)


class Laps:
    """The seconds of each stage of a run (TaskRun.seconds), each counted from the end of the one before."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.clock = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = round(now - self.clock, 3)
        self.clock = now


@dataclass(frozen=True)
class Outputs:
    """One model's outputs on the test split: free predictions and their logits, and its predictions under the
    grammar where the run decodes under it."""

    predictions: Predictions
    logits: torch.Tensor
    constrained: Predictions | None


@dataclass(frozen=True)
class BaseOutputs(Outputs):
    """The base's outputs, with its logits on the first PROBE test examples, batched among themselves."""

    probe_logits: torch.Tensor


@dataclass(frozen=True)
class Adapter:
    """The adapter under test, wrapping the base, and the LoRA parameters it must hold."""

    model: PeftModel
    directory: Path
    manifest: Manifest | None
    trained: TrainResult | None  # None where it was loaded
    expected_parameters: int  # counted on the base before the adapter wrapped it


def checked_task(name: str, tier: Tier, options: RunOptions) -> tuple[Task, str, Constraint | None]:
    """The task with the run's --set overrides, checked before any model loads; its gated decoding mode, and the
    output's grammar where the run decodes under it."""
    task = load_task(name, options)
    if options.baseline_report is not None and not KINDS.get(task.card.kind).labels:
        raise CardError(f"--baseline-report: {name} is a {task.card.kind} task; a stored report pairs labels, "
                        f"not text scores. Pass the last release's adapter with --baseline-adapter instead")
    card_checks(task.card)  # an unknown metric in the card fails before any model loads
    decoding = declared_mode(task.card, tier)
    # a grammar llguidance cannot enforce fails here too, as does a kind that cannot decode under one
    constraint = task_constraint(task.card) if constrains(task.card, [tier], options.constrain) else None
    return task, decoding, constraint


def load_inputs(task: Task, tier: Tier, options: RunOptions) -> tuple[Splits, LoadedBase, InputFit | None]:
    """The splits and the base, and the splits as the base reads them, fitted to train.max_length (task.card's
    `auto` max_length is resolved in place)."""
    splits = load_splits(task, options)
    base = prepare_base(task, tier, splits, options)
    task.card, splits, inputs = fit_inputs(task, tier, for_base(task, splits, base), base)
    return splits, base, inputs


def predict_base(task: Task, tier: Tier, name: str, base: LoadedBase, splits: Splits, options: RunOptions,
                 constraint: Constraint | None, laps: Laps) -> BaseOutputs:
    """The base's test predictions, logits and probe logits, then its constrained predictions where asked: all
    taken before any adapter wraps the base."""
    with reporter().phase("predict base", "predicted base"):
        predictions = predict(task, base.model, base, splits.test, tier, options.progress, f"base {name}/{tier}",
                              splits.eval)
        logits = probe_of(task, tier, base.model, base, splits.test, predictions)
        probe = probe_logits(task, tier, base.model, base, splits.test[:PROBE])
    laps.lap("base predictions")
    constrained = predict_constrained("base", task, tier, name, base.model, base, splits, options, constraint, laps)
    return BaseOutputs(predictions, logits, constrained, probe)


def predict_tuned(task: Task, tier: Tier, name: str, model: PeftModel, base: LoadedBase, splits: Splits,
                  options: RunOptions, constraint: Constraint | None, laps: Laps) -> Outputs:
    """The adapter's test predictions and logits, then its constrained predictions where asked."""
    with reporter().phase("predict tuned", "predicted tuned"):
        predictions = predict(task, model, base, splits.test, tier, options.progress, f"tuned {name}/{tier}",
                              splits.eval)
        logits = probe_of(task, tier, model, base, splits.test, predictions)
    laps.lap("tuned predictions")
    constrained = predict_constrained("tuned", task, tier, name, model, base, splits, options, constraint, laps)
    return Outputs(predictions, logits, constrained)


def predict_constrained(who: str, task: Task, tier: Tier, name: str, model: torch.nn.Module, base: LoadedBase,
                        splits: Splits, options: RunOptions, constraint: Constraint | None,
                        laps: Laps) -> Predictions | None:
    """The test predictions of `who` (base or tuned) under the grammar; None where the run decodes free alone."""
    if constraint is None:
        return None
    with reporter().phase(f"predict {who} constrained", f"predicted {who} constrained"):
        predictions = predict(task, model, base, splits.test, tier, options.progress,
                              f"{who} {name}/{tier} constrained", constraint=constraint)
    laps.lap(f"{who} constrained predictions")
    return predictions


def predict_baseline(task: Task, tier: Tier, base: LoadedBase, splits: Splits, options: RunOptions,
                     constraint: Constraint | None, laps: Laps) -> Predictions | None:
    """The last release's test predictions, with --baseline-adapter (before the adapter under test wraps the
    base); None without it."""
    if options.baseline_adapter is None:
        return None
    predictions = predict_with_baseline(task, tier, base, splits, options, constraint)
    laps.lap("baseline predictions")
    return predictions


def adapter_under_test(task: Task, tier: Tier, base: LoadedBase, splits: Splits, options: RunOptions,
                       inputs: InputFit | None) -> Adapter:
    """The adapter loaded or trained (prepare_adapter), and the LoRA parameters it must hold, counted on the base
    before it wraps it."""
    expected = expected_lora_parameters(base.model, *lora_shape(task, tier, options))
    model, directory, manifest, trained = prepare_adapter(task, tier, base, splits, options, inputs)
    return Adapter(model, directory, manifest, trained, expected)


def judge_run(task: Task, tier: Tier, name: str, splits: Splits, options: RunOptions, decoding: str,
              before: BaseOutputs, after: Outputs, baseline: Predictions | None, manifest: Manifest | None) -> Judged:
    """judge_predictions' gates, then the train/test leakage gate and the regression gates against the last
    release, where the run was given one."""
    constrained = None if after.constrained is None else (before.constrained, after.constrained)
    judged = judge_predictions(task, splits.test, before.predictions, after.predictions, constrained, decoding)
    gates = [*judged.gates, leakage_gate(splits.leaked(), len(splits.test), task.card.gates.max_leakage)]
    baseline_metrics, regressions = against_baseline(task, tier, name, splits, options, judged.tuned_metrics,
                                                     baseline, manifest)
    return replace(judged, gates=gates + regressions, baseline_metrics=baseline_metrics)


def against_baseline(task: Task, tier: Tier, name: str, splits: Splits, options: RunOptions, tuned: Metrics,
                     baseline: Predictions | None,
                     manifest: Manifest | None) -> tuple[Metrics | None, list[GateResult]]:
    """The last release's metrics and the regression gates against them: from its adapter's predictions (and its
    loss curves against this adapter's), else from its report.json; none where the run was given neither."""
    if baseline is not None:
        metrics = score(task, baseline)
        gates = run_gates(regression_checks(task.card.gates), tuned, metrics)
        gates += curve_gates(task.card.gates, manifest, manifest_of(options.baseline_adapter))
        return metrics, gates
    if options.baseline_report is not None:
        metrics = baseline_from_report(options.baseline_report, name, tier, splits, task.card.labels)
        return metrics, run_gates(regression_checks(task.card.gates), tuned, metrics)
    return None, []


def assemble_run(task: Task, tier: Tier, splits: Splits, base: LoadedBase, inputs: InputFit | None,
                 options: RunOptions, seconds: dict[str, float], constraint: Constraint | None, adapter: Adapter,
                 before: BaseOutputs, after: Outputs, judged: Judged) -> TaskRun:
    """The TaskRun of the steps above, its predictions and metrics in the gated mode."""
    return TaskRun(
        task=task, tier=tier, splits=splits, base=base, model=adapter.model, adapter_dir=adapter.directory,
        manifest=adapter.manifest, expected_lora_parameters=adapter.expected_parameters, base_logits=before.logits,
        base_probe_logits=before.probe_logits, tuned_logits=after.logits,
        base_predictions=judged.gated.base_predictions, tuned_predictions=judged.gated.tuned_predictions,
        base_metrics=judged.base_metrics, tuned_metrics=judged.tuned_metrics,
        baseline_metrics=judged.baseline_metrics, gates=judged.gates, ceiling=task.ceiling(splits.test),
        constant=judged.constant, constant_metrics=judged.constant_metrics, subgroups=judged.subgroups,
        trained=adapter.trained, inputs=inputs, overrides=options.overrides, seconds=seconds,
        decoding=judged.gated.mode, reported=judged.reported, mode_deltas=judged.mode_deltas, constraint=constraint,
    )
