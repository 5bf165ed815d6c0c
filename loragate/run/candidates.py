"""Several candidate adapters of one task at one tier, or the adapters of several tasks that share a base (a fleet),
gated in one pass (issue 34).

The base is loaded once; it predicts each task's test split (and retention probes, and the last release's adapter
predicts) before any candidate wraps it. Then every adapter is loaded onto the one base model under its own name
(peft's named adapters: one copy of the base, whatever their number) and a task's candidates predict its test split
together, in mixed-adapter batches (loragate.run.mixed). Each candidate is then judged as run_task judges one adapter,
in the family its task's pick asks for (judge_families: one over all candidates under `pick: best`).

Candidates are the --adapter directories given more than once, or the card's sweep (`candidates.variants`), which
loragate trains, each under its own store key (loragate.run.sweep); a task of a fleet without either has its one
adapter from the store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from peft import PeftModel

from loragate.card.candidates import pick_of
from loragate.card.options import RunOptions
from loragate.card.settings import Tier
from loragate.data.examples import Splits
from loragate.data.task import Task
from loragate.data.truncation import InputFit
from loragate.gates.family import controlled
from loragate.inference.grammar import Constraint
from loragate.inference.predictions import Predictions
from loragate.models.bases import LoadedBase
from loragate.progress import reporter
from loragate.run.adapter import adapter_facts, bare_base, expected_lora_count, given_adapters, prepare_adapter
from loragate.run.decoding_modes import CONSTRAINED
from loragate.run.mixed import candidate_probe_logits, predict_candidates
from loragate.run.retention import as_judged, base_probes, judge_probes
from loragate.run.steps import fit_inputs, for_base, load_splits, prepare_base
from loragate.run.sweep import sweep_adapters
from loragate.run.task_run import (
    Adapter,
    BaseOutputs,
    Laps,
    Outputs,
    TaskRun,
    assemble_run,
    checked_task,
    judge_run,
    predict_base,
    predict_baseline,
)
from loragate.store.adapters import Manifest, load_adapters
from loragate.training.lora import TrainResult

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
    return run_pass([name], tier, options)[name]


@dataclass
class Member:
    """One task of a pass: its card, data fitted to the shared base, the base's outputs, and its candidates."""

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


def run_pass(names: list[str], tier: Tier, options: RunOptions) -> dict[str, dict[str, TaskRun]]:
    """Every candidate of every task in `names` at `tier`, on the one base they share, in one pass: task -> candidate
    name ("" for a task's one adapter) -> its run. Several tasks share a base where their cards name the same one
    (a fleet: one adapter per customer); each task's comparisons form its own family, as each task is its own
    release decision."""
    laps = Laps()
    members = [member_of(name, tier, options) for name in names]
    base = prepare_base(members[0].task, tier, members[0].splits, options)
    for member in members:
        member.task.card, member.splits, member.inputs = fit_inputs(member.task, tier, for_base(
            member.task, member.splits, base), base)
        member.notes = given_adapters(member.task, tier, base, replace(options, adapter=None, candidates=()))
        member.candidates = [given_candidate(member.task, tier, base, options, *given) for given in options.candidates]
    laps.lap("load base")
    for member in members:
        member.before = predict_base(member.task, tier, member.task.card.name, base, member.splits, options,
                                     member.constraint, laps)
        member.probes = base_probes(member.task.card, tier, base)
        member.baseline = predict_baseline(member.task, tier, base, member.splits, options,
                                           member.constraint if member.decoding == CONSTRAINED else None, laps)
    for member in members:
        member.candidates = member.candidates or adapters_of(member, tier, base, options)
    laps.lap("train candidates" if any(c.trained for m in members for c in m.candidates) else "check candidates")
    shared = len(members) > 1
    adapters = {member.adapter_name(c, shared): c.directory for member in members for c in member.candidates}
    with reporter().phase(f"load {len(adapters)} adapters", "loaded adapters"):
        model = load_adapters(base.model, adapters)
    laps.lap("load adapters")
    runs = {member.task.card.name: judge_member(member, tier, model, base, options, shared, laps)
            for member in members}
    model.set_adapter(next(iter(adapters)))
    return {name: runs[member.task.card.name] for name, member in zip(names, members)}


def member_of(name: str, tier: Tier, options: RunOptions) -> Member:
    """A task of the pass, checked before any model loads, with its splits as read."""
    task, decoding, constraint = checked_task(name, tier, options)
    return Member(task, decoding, constraint, load_splits(task, options), None)


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
                 laps: Laps) -> dict[str, TaskRun]:
    """One task's candidates predicted together on the pass's model, each judged as run_task judges one adapter, and
    their comparisons judged as one family."""
    task = member.task
    names = {candidate.name: member.adapter_name(candidate, shared) for candidate in member.candidates}
    outputs = tuned_outputs(task, tier, task.card.name, model, base, member.splits, options, member.constraint,
                            list(names.values()), laps)
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


def tuned_outputs(task: Task, tier: Tier, name: str, model, base: LoadedBase, splits: Splits, options: RunOptions,
                  constraint: Constraint | None, names: list[str], laps: Laps) -> dict[str, Outputs]:
    """Every candidate's test predictions and logits, in mixed-adapter batches; then under the grammar, where the run
    decodes under it."""
    with reporter().phase(f"predict {len(names)} candidates", "predicted candidates"):
        predictions = predict_candidates(task, tier, model, base, splits.test, names, options.progress,
                                         f"candidates {name}/{tier}", splits.eval)
        logits = candidate_probe_logits(task, tier, model, base, splits.test, names, predictions)
    laps.lap("candidate predictions")
    constrained: dict[str, Predictions | None] = dict.fromkeys(names)
    if constraint is not None:
        with reporter().phase(f"predict {len(names)} candidates constrained", "predicted candidates constrained"):
            constrained = {**predict_candidates(task, tier, model, base, splits.test, names, options.progress,
                                                f"candidates {name}/{tier} constrained", constraint=constraint)}
        laps.lap("candidate constrained predictions")
    return {candidate: Outputs(predictions[candidate], logits[candidate], constrained[candidate])
            for candidate in names}


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
