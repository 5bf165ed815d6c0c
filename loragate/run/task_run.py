"""One task at one tier, end to end: data -> base -> adapter (load or train) -> predictions -> metrics -> gates.

A straight pipeline: what differs per kind (loading, training, predicting, probing, scoring) is the kind's
(loragate.kinds), found from the card. Order matters in two places and is kept here: the base's probe logits
and predictions are taken before the adapter wraps the base, and the base model is never changed in place
(the parameter suite checks it bit for bit).

The plugin's session and train_fixtures.py both call in here, so the CLI and the gate cannot drift.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from peft import PeftModel

from loragate.card.options import RunOptions
from loragate.card.settings import CardError, Tier
from loragate.data.examples import Splits
from loragate.data.task import Task
from loragate.data.truncation import InputFit
from loragate.gates.checks import (
    GateResult,
    Subgroup,
    curve_gates,
    leakage_gate,
    regression_checks,
    run_gates,
)
from loragate.gates.duplicates import duplicate_gates
from loragate.gates.family import controlled
from loragate.gates.training_health import Curves, health_gates, health_notes
from loragate.gates.verdict import CaseTests, Verdict, case_name, judge_case
from loragate.inference.grammar import Constraint
from loragate.inference.predictions import Constant, Predictions
from loragate.kinds import KINDS, card_checks
from loragate.metrics.scores import Metrics
from loragate.models.bases import LoadedBase
from loragate.progress import reporter
from loragate.run.adapter import (
    adapter_facts,
    expected_lora_count,
    given_adapters,
    predict_with_baseline,
    prepare_adapter,
)
from loragate.run.baseline import baseline_from_report
from loragate.run.decoding_modes import (
    CONSTRAINED,
    FREE,
    Decoded,
    ModeDelta,
    constrains,
    declared_mode,
    task_constraint,
)
from loragate.run.judging import Judged, judge_predictions
from loragate.run.probes import check_probes
from loragate.run.retention import ProbeResult, as_judged, base_probes, judge_probes
from loragate.run.steps import (
    fit_inputs,
    for_base,
    load_splits,
    load_task,
    predict,
    prepare_base,
    probe_logits,
    probe_of,
    sampled_rows,
    score,
)
from loragate.store.adapter_facts import AdapterFacts
from loragate.store.adapters import (
    Manifest,
    manifest_of,
)
from loragate.training.lora import TrainResult

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
    data: Path | str | None = None  # --data: the file or Hugging Face dataset read instead of the task's own data
    benchmark_seconds: float | None = None  # test_evaluation_throughput's median time of the tuned pass, where it ran
    seconds: dict[str, float] = field(default_factory=dict)
    tests: CaseTests | None = None  # this case's gate tests and their outcomes, filled in by the plugin
    decoding: str = FREE  # the mode of base/tuned predictions and metrics above: the card's, which the gates read
    reported: Decoded | None = None  # the other mode (--constrain, or a card declaring schema): reported, not gated
    mode_deltas: list[ModeDelta] = field(default_factory=list)  # the tuned model's free -> constrained deltas
    constraint: Constraint | None = None  # the output's grammar, where the run decoded under it
    adapter_facts: AdapterFacts | None = None  # the gated adapter's r, alpha, target modules, named base, sha256
    adapter_notes: list[str] = field(default_factory=list)  # what the checks of --adapter/--baseline-adapter noted
    retention: list[ProbeResult] = field(default_factory=list)  # the card's retention probes, judged (also in gates)
    candidate: str = ""  # this adapter's name among its task's candidates, gated on one base (loragate.run.candidates)
    adapter_name: str = ""  # its adapter's name in a model it shares with other candidates or tasks; "": it has its own

    @property
    def name(self) -> str:
        return case_name(self.task.card.name, self.tier, self.candidate)

    def activate(self) -> None:
        """This run's adapter made the active one of the model: a candidate shares the model with its task's others,
        and every check of it (probes, merged copies, throughput) reads the active adapter. Where it is already the
        active one (a candidate's gate tests run one after another, each activating it), nothing is done: set_adapter
        walks every module of a model that holds every candidate's layers."""
        if self.adapter_name and self.model.active_adapters != [self.adapter_name]:
            self.model.set_adapter(self.adapter_name)

    @property
    def passed(self) -> bool:
        """The card's gates alone; `verdict` adds the gate tests."""
        return all(result.passed for result in self.gates)

    @property
    def verdict(self) -> Verdict:
        return judge_case([f"{r.check}: {r.finding}" for r in self.gates if not r.passed and not r.inconclusive],
                          self.tests, self.overrides,
                          undecided=[f"{r.check}: {r.finding}" for r in self.gates if not r.passed and r.inconclusive],
                          warned=[r.check for r in self.gates if r.warned])

    def health_notes(self) -> list[str]:
        """Training health as report notes, where the card reports it rather than gates it (the default)."""
        return health_notes(self.task.card.gates, Curves.of(self.manifest or manifest_of(self.adapter_dir)))

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


def run_task(name: str, tier: Tier, options: RunOptions) -> TaskRun:
    """One task at one tier, end to end, in the order the module's docstring gives; TaskRun.seconds holds the
    seconds of each stage."""
    laps = Laps()
    task, decoding, constraint = checked_task(name, tier, options)
    splits, base, inputs = load_inputs(task, tier, options)
    laps.lap("load base")
    notes = given_adapters(task, tier, base, options)  # refused here, before any prediction, if they do not fit
    before = predict_base(task, tier, name, base, splits, options, constraint, laps)
    probes = base_probes(task.card, tier, base)  # the retention probes, also before the adapter wraps the base
    if probes:
        laps.lap("base retention probes")
    baseline = predict_baseline(task, tier, base, splits, options, constraint if decoding == CONSTRAINED else None,
                                laps)
    adapter = replace(adapter_under_test(task, tier, base, splits, options, inputs), notes=notes)
    laps.lap("train adapter" if adapter.trained else "load adapter")
    after = predict_tuned(task, tier, name, adapter.model, base, splits, options, constraint, laps)
    retention = judge_probes(probes, tier, adapter.model, base, task.card.gates, task.card.tier(tier).eval.batch_size)
    if probes:
        laps.lap("tuned retention probes")
    judged = judge_run(task, tier, name, splits, options, decoding, before, after, baseline, adapter.manifest)
    judged = replace(judged, gates=[*judged.gates, *(result.gate for result in retention)])
    run = assemble_run(task, tier, splits, base, inputs, options, laps.seconds, constraint, adapter, before, after,
                       judged)
    run.retention = as_judged(retention, run.gates)  # the probes' gates joined the run's family in assemble_run
    return run


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
    facts: AdapterFacts
    notes: list[str] = field(default_factory=list)  # given_adapters' notes


def checked_task(name: str, tier: Tier, options: RunOptions) -> tuple[Task, str, Constraint | None]:
    """The task with the run's --set overrides, checked before any model loads; its gated decoding mode, and the
    output's grammar where the run decodes under it."""
    task = load_task(name, options)
    if options.baseline_report is not None and not KINDS.get(task.card.kind).labels:
        raise CardError(f"--baseline-report: {name} is a {task.card.kind} task; a stored report pairs labels, "
                        f"not text scores. Pass the last release's adapter with --baseline-adapter instead")
    if options.baseline_report is not None and task.card.tier(tier).eval.sampling is not None:
        raise CardError(f"--baseline-report: {name} samples at tiers.{tier}.eval.sampling, and a stored report holds "
                        f"one answer per example to pair with; pass the last release's adapter with "
                        f"--baseline-adapter instead (sampled as this run samples)")
    card_checks(task.card)  # an unknown metric in the card fails before any model loads
    check_probes(task.card, [tier])  # as do its retention probes' names, metrics and files
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
        predictions, logits, probe = base_predictions(task, tier, name, base.model, base, splits, options.progress)
    laps.lap("base predictions")
    constrained = predict_constrained("base", task, tier, name, base.model, base, splits, options, constraint, laps)
    return BaseOutputs(predictions, logits, constrained, probe)


def base_predictions(task: Task, tier: Tier, name: str, model: torch.nn.Module, base: LoadedBase, splits: Splits,
                     progress: bool) -> tuple[Predictions, torch.Tensor, torch.Tensor]:
    """The base's free test predictions, their logits and the first PROBE examples' probe logits (`model`: the base,
    or a fleet's shared model of it)."""
    predictions = predict(task, model, base, splits.test, tier, progress, f"base {name}/{tier}", splits.eval)
    logits = probe_of(task, tier, model, base, splits.test, predictions)
    return predictions, logits, probe_logits(task, tier, model, base, splits.test[:PROBE])


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
    before it wraps it. A --adapter was checked by given_adapters, as the run started."""
    expected = expected_lora_count(task, tier, options, base.model)
    model, directory, manifest, trained = prepare_adapter(task, tier, base, splits, options, inputs, checked=True)
    return Adapter(model, directory, manifest, trained, expected, adapter_facts(directory, manifest))


def judge_run(task: Task, tier: Tier, name: str, splits: Splits, options: RunOptions, decoding: str,
              before: BaseOutputs, after: Outputs, baseline: Predictions | None, manifest: Manifest | None) -> Judged:
    """judge_predictions' gates, then the train/test leakage and repeated-input gates, the training-health gates
    where the card gates them, and the regression gates against the last release, where the run was given one; their
    comparisons judged as one family (run_task widens it with the retention probes' gates, in assemble_run)."""
    constrained = None if after.constrained is None else (before.constrained, after.constrained)
    judged = judge_predictions(task, sampled_rows(task, tier, splits.test), before.predictions, after.predictions,
                               constrained, decoding)
    max_leakage = task.card.gates.max_leakage
    gates = [*judged.gates, leakage_gate(splits.leaked(), len(splits.test), max_leakage, options.adapter is not None),
             *duplicate_gates(splits, max_leakage),
             *health_gates(task.card.gates, Curves.of(manifest or manifest_of(options.adapter)))]
    baseline_metrics, regressions = against_baseline(task, tier, name, splits, options, judged.tuned_metrics,
                                                     baseline, manifest)
    return replace(judged, gates=controlled(gates + regressions, task.card.gates), baseline_metrics=baseline_metrics)


def against_baseline(task: Task, tier: Tier, name: str, splits: Splits, options: RunOptions, tuned: Metrics,
                     baseline: Predictions | None,
                     manifest: Manifest | None) -> tuple[Metrics | None, list[GateResult]]:
    """The last release's metrics and the regression gates against them: from its adapter's predictions (and its
    loss curves against this adapter's), else from its report.json; none where the run was given neither."""
    if baseline is not None:
        metrics = score(task, baseline)
        gates = run_gates(regression_checks(task.card.gates), tuned, metrics)
        gates += curve_gates(task.card.gates, manifest or manifest_of(options.adapter),
                             manifest_of(options.baseline_adapter))
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
        baseline_metrics=judged.baseline_metrics, gates=controlled(judged.gates, task.card.gates),
        ceiling=task.ceiling(splits.test),
        constant=judged.constant, constant_metrics=judged.constant_metrics, subgroups=judged.subgroups,
        trained=adapter.trained, inputs=inputs, overrides=options.overrides, data=options.data, seconds=seconds,
        decoding=judged.gated.mode, reported=judged.reported, mode_deltas=judged.mode_deltas, constraint=constraint,
        adapter_facts=adapter.facts, adapter_notes=adapter.notes,
    )
