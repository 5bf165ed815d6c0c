"""Several candidate adapters of one task at one tier, or the adapters of several tasks that share a base (a fleet),
gated in one pass (issue 34).

The base is loaded once; it predicts each task's test split (and retention probes, and the last release's adapter
predicts) before any candidate wraps it. Then every adapter is loaded onto the one base model under its own name
(peft's named adapters: one copy of the base, whatever their number) and a task's candidates predict its test split
together, in mixed-adapter batches (loragate.run.mixed). In a fleet the tasks' predictions (the base's, then the
adapters') also share batches, whose prompts, labels and grammars differ (loragate.inference.shared_batches). Each
candidate is then judged as run_task judges one adapter, in the family its task's pick asks for (judge_families: one
over all candidates under `pick: best`).

Candidates are the --adapter directories given more than once, or the card's sweep (`candidates.variants`), which
loragate trains, each under its own store key (loragate.run.sweep); a task of a fleet without either has its one
adapter from the store.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from peft import PeftModel

from loragate.card.candidates import pick_of
from loragate.card.options import RunOptions
from loragate.card.settings import Tier
from loragate.data.examples import Splits
from loragate.data.task import Task
from loragate.data.truncation import InputFit
from loragate.gates.family import controlled
from loragate.inference.grammar import Constraint
from loragate.inference.mixed_batches import UnmixedCall
from loragate.inference.predictions import Predictions
from loragate.inference.shared_batches import SharedBatches, SharedModel
from loragate.models.bases import LoadedBase
from loragate.progress import reporter
from loragate.run.adapter import adapter_facts, bare_base, expected_lora_count, given_adapters, prepare_adapter
from loragate.run.decoding_modes import CONSTRAINED
from loragate.run.mixed import candidate_probe_logits, predict_candidates
from loragate.run.retention import as_judged, base_probes, judge_probes
from loragate.run.steps import fit_inputs, for_base, load_splits, predict, prepare_base
from loragate.run.sweep import sweep_adapters
from loragate.run.task_run import (
    Adapter,
    BaseOutputs,
    Laps,
    Outputs,
    TaskRun,
    assemble_run,
    base_predictions,
    checked_task,
    judge_run,
    predict_base,
    predict_baseline,
)
from loragate.store.adapters import Manifest, load_adapters
from loragate.training.lora import TrainResult

R = TypeVar("R")
T = TypeVar("T")
NOT_A_NAME = re.compile(r"[^A-Za-z0-9_-]")  # what a task's name may hold that a peft adapter name may not


@dataclass(frozen=True)
class Candidate:
    """One adapter of the pass: given with --adapter, or trained (or found in the store) for a variant of the card's
    sweep."""

    name: str
    directory: Path
    manifest: Manifest | None  # a stored entry's; None for a given directory (as run_task has it)
    trained: TrainResult | None  # where this run trained it
    expected_parameters: int  # the LoRA parameters it must hold, counted on the bare base
    given: bool  # --adapter: judged as a given adapter (its leakage and curve gates read it as such)
    notes: list[str] = field(default_factory=list)  # what checking it noted (its base name, its LoRA vs the card's)


def run_candidates(name: str, tier: Tier, options: RunOptions) -> dict[str, TaskRun]:
    """Every candidate of task `name` at `tier`, gated in one pass (the module's docstring): candidate name -> its run,
    in the order given. TaskRun.seconds holds the pass's stages, shared by its runs."""
    return outcome(run_pass([name], tier, options)[name])


@dataclass(eq=False)
class Member:
    """One task of a pass: its card, data fitted to the shared base, the base's outputs, and its candidates."""

    name: str  # the task as registered: the card's name may differ (--set name=...)
    task: Task
    decoding: str
    constraint: Constraint | None
    splits: Splits
    inputs: InputFit | None
    notes: list[str] = field(default_factory=list)  # what checking the last release's adapter noted
    candidates: list[Candidate] = field(default_factory=list)
    before: BaseOutputs | None = None
    probes: list = field(default_factory=list)
    baseline: Predictions | None = None

    def adapter_name(self, candidate: Candidate, shared: bool) -> str:
        """The candidate's adapter name in the pass's model: its own, prefixed with its task's where several tasks
        share the model (a fleet)."""
        if not shared:
            return candidate.name or "default"
        return f"{NOT_A_NAME.sub('_', self.task.card.name)}-{candidate.name}".rstrip("-")


Outcome = dict[str, TaskRun] | Exception  # a task's runs (candidate name -> run), or what stopped it in a fleet


def run_pass(names: list[str], tier: Tier, options: RunOptions) -> dict[str, Outcome]:
    """Every candidate of every task in `names` at `tier`, on the one base they share, in one pass: task -> candidate
    name ("" for a task's one adapter) -> its run. Several tasks share a base where their cards name the same one (a
    fleet: one adapter per customer); each task's comparisons form its own family, as each task is its own release
    decision. In a fleet, what stops one task (its data, its checks, its predictions, its retention probes, its judging)
    is that task's outcome and the others are gated; what changes the shared model (loading the base, training or
    loading an adapter, the last release's adapter) stops the pass. A task alone raises."""
    laps = Laps()
    shared, failed = len(names) > 1, {}  # failed: task -> what stopped it (a fleet's)
    members = isolated(names, lambda name: member_of(name, tier, options), failed, shared)
    if not members:
        return failed
    base = prepare_base(members[0].task, tier, members[0].splits, options)
    members = isolated(members, lambda member: checked_member(member, tier, base, options), failed, shared)
    laps.lap("load base")
    if shared:
        befores = dict(zip(members, fleet_base_outputs(members, tier, base, laps), strict=True))  # an error in place
        members = isolated(members, lambda member: replace(member, before=outcome(befores[member])), failed, shared)
        if not members:
            return failed
    for member in members:
        member.before = member.before or predict_base(
            member.task, tier, member.task.card.name, base, member.splits, options, member.constraint, laps)
    members = isolated(members, lambda member: probed(member, tier, base), failed, shared)
    if not members:
        return failed
    for member in members:
        member.baseline = predict_baseline(member.task, tier, base, member.splits, options,
                                           member.constraint if member.decoding == CONSTRAINED else None, laps)
    for member in members:
        member.candidates = member.candidates or adapters_of(member, tier, base, options)
    laps.lap("train candidates" if any(c.trained for m in members for c in m.candidates) else "check candidates")
    adapters = {member.adapter_name(c, shared): c.directory for member in members for c in member.candidates}
    with reporter().phase(f"load {len(adapters)} adapters", "loaded adapters"):
        model = load_adapters(base.model, adapters)
    laps.lap("load adapters")
    outputs = dict(zip(members, fleet_outputs(members, tier, model, base, options, laps) if shared else [
        tuned_outputs(members[0], tier, model, base, options, shared, laps)], strict=True))
    runs = dict(isolated(members, lambda member: (member.name, judge_member(
        member, tier, model, base, options, shared, outcome(outputs[member]), laps)), failed, shared))
    model.set_adapter(next(iter(adapters)))
    return {name: runs[name] if name in runs else failed[name] for name in names}


def member_of(name: str, tier: Tier, options: RunOptions) -> Member:
    """A task of the pass, checked before any model loads, with its splits as read."""
    task, decoding, constraint = checked_task(name, tier, options)
    return Member(name, task, decoding, constraint, load_splits(task, options), None)


def checked_member(member: Member, tier: Tier, base: LoadedBase, options: RunOptions) -> Member:
    """The member's splits fitted to the loaded base, the last release's adapter and the --adapter candidates checked
    against it, before any prediction."""
    task = member.task
    task.card, member.splits, member.inputs = fit_inputs(task, tier, for_base(task, member.splits, base), base)
    member.notes = given_adapters(task, tier, base, replace(options, adapter=None, candidates=()))
    member.candidates = [given_candidate(task, tier, base, options, *given) for given in options.candidates]
    return member


def probed(member: Member, tier: Tier, base: LoadedBase) -> Member:
    """The member with its retention probes answered by the base: a fleet task's own predictions (isolated)."""
    member.probes = base_probes(member.task.card, tier, base)
    return member


def isolated(items: list[T], step: Callable[[T], R], failed: dict[str, Exception], shared: bool) -> list[R]:
    """step(item) of each item, in order. In a fleet (`shared`) an item whose step raises is left out, its error kept
    as its task's outcome in `failed` (by its name: an item is a task's name or its Member), and the others go on;
    alone it raises."""
    kept = []
    for item in items:
        try:
            kept.append(step(item))
        except Exception as exc:
            if not shared:
                raise
            failed[item if isinstance(item, str) else item.name] = exc
    return kept


def outcome(value: R | Exception) -> R:
    """A shared job's result, or its error raised (fleet_base_outputs and fleet_outputs hand errors back as values:
    one task's error is its own)."""
    if isinstance(value, Exception):
        raise value
    return value


def adapters_of(member: Member, tier: Tier, base: LoadedBase, options: RunOptions) -> list[Candidate]:
    """A task's adapters when no --adapter names them: its card's sweep, else its one adapter from the store (trained
    and stored where the store lacks it), each taken off the base again, to be loaded with the others."""
    task, splits, inputs = member.task, member.splits, member.inputs
    if task.card.candidates is not None and task.card.candidates.variants:
        return swept_candidates(task, tier, base, splits, options, inputs)
    expected = expected_lora_count(task, tier, options, base.model)
    model, directory, manifest, trained = prepare_adapter(task, tier, base, splits, options, inputs)
    base.model = bare_base(model, base, str(directory))
    return [Candidate("", directory, manifest, trained, expected, False)]


def judge_member(member: Member, tier: Tier, model: PeftModel, base: LoadedBase, options: RunOptions, shared: bool,
                 outputs: dict[str, Outputs], laps: Laps) -> dict[str, TaskRun]:
    """One task's candidates, given their predictions (adapter name -> outputs), each judged as run_task judges one
    adapter, and their comparisons judged in the family its pick asks for."""
    task = member.task
    names = {candidate.name: member.adapter_name(candidate, shared) for candidate in member.candidates}
    runs, retained = {}, {}
    for candidate in member.candidates:
        name = names[candidate.name]
        if member.probes:  # the probes ask the active adapter; set_adapter walks every module, N times over N
            model.set_adapter(name)
        retained[candidate.name] = judge_probes(member.probes, tier, model, base, task.card.gates,
                                                task.card.tier(tier).eval.batch_size)
        own = options.for_candidate(candidate.directory) if candidate.given else options
        judged = judge_run(task, tier, task.card.name, member.splits, own, member.decoding, member.before,
                           outputs[name], member.baseline, candidate.manifest)
        judged = replace(judged, gates=[*judged.gates, *(result.gate for result in retained[candidate.name])])
        adapter = Adapter(model, candidate.directory, candidate.manifest, candidate.trained,
                          candidate.expected_parameters, adapter_facts(candidate.directory, candidate.manifest),
                          [*member.notes, *candidate.notes])
        runs[candidate.name] = replace(assemble_run(task, tier, member.splits, base, member.inputs, own, laps.seconds,
                                                    member.constraint, adapter, member.before, outputs[name], judged),
                                       candidate=candidate.name, adapter_name=name)
    if member.probes:
        laps.lap("tuned retention probes")
    judge_families(runs, retained, task, pick_of(task.card, options.pick_best))
    return runs


def given_candidate(task: Task, tier: Tier, base: LoadedBase, options: RunOptions, name: str,
                    directory: Path) -> Candidate:
    """An --adapter candidate, checked against the base as a single --adapter is (refused naming it, before any
    prediction), and the LoRA parameters it must hold, counted on the bare base."""
    own = replace(options.for_candidate(directory), baseline_adapter=None, baseline_report=None)
    try:
        notes = given_adapters(task, tier, base, own)
    except Exception as exc:
        raise type(exc)(f"candidate {name} ({directory}): {exc}") from exc
    return Candidate(name, directory, None, None, expected_lora_count(task, tier, own, base.model), True, notes)


def swept_candidates(task: Task, tier: Tier, base: LoadedBase, splits: Splits, options: RunOptions,
                     inputs: InputFit | None) -> list[Candidate]:
    """The card's sweep, each variant trained under its own store key (or read from the store), the base left bare."""
    return [Candidate(swept.name, swept.directory, swept.manifest, swept.trained, swept.expected_parameters, False)
            for swept in sweep_adapters(task, tier, base, splits, options, inputs)]


def fleet_base_outputs(members: list[Member], tier: Tier, base: LoadedBase,
                       laps: Laps) -> list[BaseOutputs | Exception]:
    """Every fleet task's base predictions, as predict_base makes them, the tasks' batches shared
    (loragate.inference.shared_batches); a task's error in its place."""
    def job(member: Member) -> Callable[[SharedModel], BaseOutputs | Exception]:
        task, name = member.task, member.task.card.name

        def predict_member(model: SharedModel) -> BaseOutputs:
            predictions, logits, probe = base_predictions(task, tier, name, model, base, member.splits, False)
            constrained = None if member.constraint is None else predict(
                task, model, base, member.splits.test, tier, False, f"base {name}/{tier} constrained",
                constraint=member.constraint)
            return BaseOutputs(predictions, logits, constrained, probe)
        return own_error(predict_member)

    with reporter().phase(f"predict base of {len(members)} tasks in shared batches", "predicted base"):
        befores = SharedBatches(base.model).run([job(member) for member in members])
    laps.lap("base predictions")
    return befores


def fleet_outputs(members: list[Member], tier: Tier, model: PeftModel, base: LoadedBase, options: RunOptions,
                  laps: Laps) -> list[dict[str, Outputs] | Exception]:
    """Every fleet task's candidates' predictions, the tasks' batches shared (loragate.inference.shared_batches); a task
    whose kind cannot name each row's adapter is predicted after, on its own (candidate_outputs warns); a task's error
    in its place."""
    def job(member: Member) -> Callable[[SharedModel], dict[str, Outputs] | Exception | None]:
        def predict_member(shared: SharedModel) -> dict[str, Outputs] | None:
            try:
                return candidate_outputs(member, tier, shared, base, False, True)
            except UnmixedCall:  # its kind changes the active adapter: not while others share the model
                return None
        return own_error(predict_member)

    count = sum(len(member.candidates) for member in members)
    with reporter().phase(f"predict {count} adapters of {len(members)} tasks in shared batches", "predicted adapters"):
        outputs = SharedBatches(model).run([job(member) for member in members])
        for index, member in enumerate(members):
            if outputs[index] is None:  # its kind cannot name each row's adapter: on its own, after the others
                outputs[index] = own_error(lambda whole, member=member: candidate_outputs(
                    member, tier, whole, base, options.progress, True))(model)
    laps.lap("candidate predictions")
    return outputs


def own_error(job: Callable[[SharedModel], R]) -> Callable[[SharedModel], R | Exception]:
    """`job`, its error handed back as its result: in a fleet one task's error is its outcome, not the others'."""
    def caught(model: SharedModel) -> R | Exception:
        try:
            return job(model)
        except Exception as exc:  # the task's outcome (run_pass), raised in its tests
            return exc
    return caught


def tuned_outputs(member: Member, tier: Tier, model: PeftModel, base: LoadedBase, options: RunOptions, shared: bool,
                  laps: Laps) -> dict[str, Outputs]:
    """A task's candidates' predictions (candidate_outputs), as one phase of the run."""
    with reporter().phase(f"predict {len(member.candidates)} candidates", "predicted candidates"):
        outputs = candidate_outputs(member, tier, model, base, options.progress, shared)
    laps.lap("candidate predictions")
    return outputs


def candidate_outputs(member: Member, tier: Tier, model: PeftModel | SharedModel, base: LoadedBase, progress: bool,
                      shared: bool) -> dict[str, Outputs]:
    """Every candidate's test predictions and logits (adapter name -> outputs), in mixed-adapter batches; then under
    the grammar, where the run decodes under it."""
    task, test = member.task, member.splits.test
    names = [member.adapter_name(candidate, shared) for candidate in member.candidates]
    desc = f"candidates {task.card.name}/{tier}"
    predictions = predict_candidates(task, tier, model, base, test, names, progress, desc, member.splits.eval)
    logits = candidate_probe_logits(task, tier, model, base, test, names, predictions)
    constrained: dict[str, Predictions | None] = dict.fromkeys(names)
    if member.constraint is not None:
        constrained = {**predict_candidates(task, tier, model, base, test, names, progress, f"{desc} constrained",
                                            constraint=member.constraint)}
    return {name: Outputs(predictions[name], logits[name], constrained[name]) for name in names}


def judge_families(runs: dict[str, TaskRun], retained: dict[str, list], task: Task, pick: str) -> None:
    """The families the candidates' comparisons are judged in, in place, and each run's retention probes read off its
    gates. Under `pick: best` all candidates' comparisons are one family (Holm over candidates x comparisons): the
    release ships whichever passes, so one of N passing by luck must be held at alpha. Under `pick: all` each
    candidate keeps its own family, as each task does: the release needs every candidate to pass, so where any one is
    bad, the chance the release passes is at most the chance that one passes by luck, alpha (an intersection-union
    test; docs/statistics.md)."""
    if pick == "best" and len(runs) > 1:
        judged = iter(controlled([gate for run in runs.values() for gate in run.gates], task.card.gates))
        for run in runs.values():
            run.gates = [next(judged) for _ in run.gates]
    for candidate, run in runs.items():
        run.retention = as_judged(retained[candidate], run.gates)
