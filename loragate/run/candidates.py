"""Several candidate adapters of one task at one tier, gated in one pass (issue 34): a sweep or a fleet of adapters on
one base.

The base is loaded once and predicts once (its predictions, probe logits and retention probes, and the last release's
predictions, are every candidate's reference). Then every candidate is loaded onto the one base model under its own
name (peft's named adapters: one copy of the base, whatever their number) and all of them predict the test split
together, in mixed-adapter batches (loragate.run.mixed). Each candidate is then judged as run_task judges one adapter,
and the comparisons of all candidates form one family (Holm over candidates x comparisons: with N candidates, one
passing by luck is as likely as one of N x m comparisons passing by luck, and the family holds that at alpha).

Candidates are the --adapter directories given more than once, or the card's sweep (`candidates.variants`), which
loragate trains, each under its own store key (loragate.run.sweep).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

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
from loragate.run.adapter import adapter_facts, expected_lora_count, given_adapters
from loragate.run.decoding_modes import CONSTRAINED
from loragate.run.mixed import candidate_probe_logits, predict_candidates
from loragate.run.retention import as_judged, base_probes, judge_probes
from loragate.run.sweep import sweep_adapters
from loragate.run.task_run import (
    Adapter,
    Laps,
    Outputs,
    TaskRun,
    assemble_run,
    checked_task,
    judge_run,
    load_inputs,
    predict_base,
    predict_baseline,
)
from loragate.store.adapters import Manifest, load_adapters
from loragate.training.lora import TrainResult


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
    laps = Laps()
    task, decoding, constraint = checked_task(name, tier, options)
    splits, base, inputs = load_inputs(task, tier, options)
    laps.lap("load base")
    notes = given_adapters(task, tier, base, replace(options, adapter=None, candidates=()))  # the last release's
    given = [given_candidate(task, tier, base, options, *candidate) for candidate in options.candidates]
    before = predict_base(task, tier, name, base, splits, options, constraint, laps)
    probes = base_probes(task.card, tier, base)
    if probes:
        laps.lap("base retention probes")
    baseline = predict_baseline(task, tier, base, splits, options, constraint if decoding == CONSTRAINED else None,
                                laps)
    candidates = given or swept_candidates(task, tier, base, splits, options, inputs)
    laps.lap("train candidates" if any(c.trained for c in candidates) else "check candidates")
    with reporter().phase(f"load {len(candidates)} candidates", "loaded candidates"):
        model = load_adapters(base.model, {c.name: c.directory for c in candidates})
    laps.lap("load candidates")
    outputs = tuned_outputs(task, tier, name, model, base, splits, options, constraint, [c.name for c in candidates],
                            laps)
    runs, retained = {}, {}
    for candidate in candidates:
        model.set_adapter(candidate.name)
        retained[candidate.name] = judge_probes(probes, tier, model, base, task.card.gates,
                                                task.card.tier(tier).eval.batch_size)
        own = options.for_candidate(candidate.directory) if candidate.given else options
        judged = judge_run(task, tier, name, splits, own, decoding, before, outputs[candidate.name], baseline,
                           candidate.manifest)
        judged = replace(judged, gates=[*judged.gates, *(result.gate for result in retained[candidate.name])])
        adapter = Adapter(model, candidate.directory, candidate.manifest, candidate.trained,
                          candidate.expected_parameters, adapter_facts(candidate.directory, candidate.manifest),
                          [*notes, *candidate.notes])
        runs[candidate.name] = replace(assemble_run(task, tier, splits, base, inputs, own, laps.seconds, constraint,
                                                    adapter, before, outputs[candidate.name], judged),
                                       candidate=candidate.name)
    if probes:
        laps.lap("tuned retention probes")
    one_family(runs, retained, task)
    model.set_adapter(candidates[0].name)
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


def one_family(runs: dict[str, TaskRun], retained: dict[str, list], task: Task) -> None:
    """Every candidate's comparisons judged as one family, in place: each run's gates with p-values adjusted over all
    candidates' comparisons, and its retention probes read off them."""
    judged = iter(controlled([gate for run in runs.values() for gate in run.gates], task.card.gates))
    for candidate, run in runs.items():
        run.gates = [next(judged) for _ in run.gates]
        run.retention = as_judged(retained[candidate], run.gates)
