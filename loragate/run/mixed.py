"""Every candidate adapter's test predictions and probe logits in one pass (issue #34): one PeftModel holds them all
and answers each row once per candidate in mixed-adapter batches (loragate.inference.mixed_batches), so the base's
weights are read once per batch whatever the number of candidates.

Each candidate's result is what steps.predict (resp. steps.probe_of) gives with that adapter alone: the same rows (k
samples of each example where the tier samples, with the same seeds), its own threshold where the kind chooses one on
the eval split, the same outputs and logits, and the same out-of-memory halving (of the examples in a batch, each
answered once per candidate). A kind whose code calls the model without naming each row's adapter (a project's kind
that does not pass row_adapters: UnmixedCall) cannot batch mixed; its candidates are predicted one at a time with
set_adapter, as the warning says. The active adapter is left as it was.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

import torch
from peft import PeftModel

from loragate.card.settings import Tier
from loragate.data.examples import Example
from loragate.data.task import Task
from loragate.inference.grammar import Constraint
from loragate.inference.mixed_batches import BASE, MixedAdapters, UnmixedCall, interleave
from loragate.inference.predictions import Predictions
from loragate.models.bases import LoadedBase
from loragate.run.steps import halving, kind, predict, probe_logits, sampled_rows

T = TypeVar("T")


def predict_candidates(task: Task, tier: Tier, model: PeftModel, base: LoadedBase, examples: list[Example],
                       names: list[str], progress: bool, desc: str, calibration: list[Example] | float | None = None,
                       constraint: Constraint | None = None) -> dict[str, Predictions]:
    """Each candidate's predictions of `examples` (name -> Predictions, in `names` order), as steps.predict makes one
    adapter's; `model` holds every adapter in `names` ("__base__": the base alone). `seconds` is each candidate's
    share of the pass."""
    try:
        return predict_mixed(task, tier, model, base, examples, names, progress, desc, calibration, constraint)
    except UnmixedCall as exc:
        warnings.warn(f"{desc}: the {task.card.kind} kind cannot batch candidates mixed ({exc}); predicting "
                      f"{len(names)} candidates one at a time")
    return {name: alone(model, name, lambda: predict(task, model, base, examples, tier, progress, f"{desc} [{name}]",
                                                     calibration, constraint))
            for name in names}


def predict_mixed(task: Task, tier: Tier, model: PeftModel, base: LoadedBase, examples: list[Example],
                  names: list[str], progress: bool, desc: str, calibration: list[Example] | float | None,
                  constraint: Constraint | None) -> dict[str, Predictions]:
    """steps.predict's loop over a mixed model: every candidate's rows in one prediction, `batch_size` examples a batch
    (each once per candidate), halved on out-of-memory and the whole prediction redone."""
    if not names:
        return {}
    count = len(names)
    mixed = MixedAdapters(model, names)
    rows = interleave(sampled_rows(task, tier, examples), count)
    if isinstance(calibration, list):  # each candidate calibrates on its own copy of it
        calibration = interleave(calibration, count)
    calibration = rows if calibration is None else calibration
    card_batch = task.card.tier(tier).eval.batch_size

    def attempt(batch_size: int) -> Predictions:
        if constraint is None:
            return kind(task).predict(task, mixed, base, rows, tier, progress, desc, calibration, batch_size)
        return kind(task).predict_constrained(task, mixed, base, rows, tier, progress, desc, batch_size, constraint)

    predictions, batch_size = halving(desc, card_batch, attempt, count)
    return {name: replace(split(predictions, index, count), batch_size=batch_size, card_batch_size=card_batch)
            for index, name in enumerate(names)}


def split(predictions: Predictions, index: int, count: int) -> Predictions:
    """Candidate `index`'s rows of a mixed prediction of `count` candidates (row r is candidate r % count's), its own
    threshold, and its share of the seconds and of the prompt tokens (every candidate reads the same prompts)."""
    def rows(values: list[T] | None) -> list[T] | None:
        return None if values is None else values[index::count]

    generations = predictions.generations
    if generations is not None:
        new_tokens = generations.row_new_tokens[index::count]
        generations = replace(generations, texts=rows(generations.texts), terminated=rows(generations.terminated),
                              row_new_tokens=new_tokens, new_tokens=sum(new_tokens),
                              prompt_tokens=generations.prompt_tokens // count, seconds=generations.seconds / count)
    threshold = predictions.threshold[index] if isinstance(predictions.threshold, tuple) else predictions.threshold
    logits = None if predictions.logits is None else predictions.logits[index::count].clone()
    return replace(predictions, ids=rows(predictions.ids), gold=rows(predictions.gold),
                   outputs=rows(predictions.outputs), parsed=rows(predictions.parsed),
                   seconds=predictions.seconds / count, generations=generations, scored=rows(predictions.scored),
                   references=rows(predictions.references), nll=rows(predictions.nll), tokens=rows(predictions.tokens),
                   threshold=threshold, logits=logits)


def candidate_probe_logits(task: Task, tier: Tier, model: PeftModel, base: LoadedBase, examples: list[Example],
                           names: list[str], predictions: dict[str, Predictions]) -> dict[str, torch.Tensor]:
    """Each candidate's probe logits, as steps.probe_of gives them alone: its predictions' logits where they are the
    probe at the card's batch size, else the kind's probe of every candidate that needs one, in one mixed pass (one
    at a time where the kind cannot batch mixed)."""
    probes = {}
    for name in names:
        own = predictions[name]
        if own.logits is not None and own.batch_size == own.card_batch_size:  # steps.probe_of's rule
            probes[name] = own.logits
    needed = [name for name in names if name not in probes]
    if needed:
        try:
            logits = probe_logits(task, tier, MixedAdapters(model, needed), base, interleave(examples, len(needed)))
            probes |= {name: logits[index::len(needed)].clone() for index, name in enumerate(needed)}
        except UnmixedCall as exc:
            warnings.warn(f"probe {task.card.name}/{tier}: the {task.card.kind} kind cannot batch candidates mixed "
                          f"({exc}); probing {len(needed)} candidates one at a time")
            probes |= {name: alone(model, name, lambda: probe_logits(task, tier, model, base, examples))
                       for name in needed}
    return {name: probes[name] for name in names}


def alone(model: PeftModel, name: str, compute: Callable[[], T]) -> T:
    """`compute()` with adapter `name` alone active (the base alone for "__base__"); the active adapter and every
    parameter's requires_grad are left as they were."""
    active, grads = model.active_adapter, [parameter.requires_grad for parameter in model.parameters()]
    try:
        if name == BASE:
            with model.disable_adapter():
                return compute()
        model.set_adapter(name)
        return compute()
    finally:
        model.set_adapter(active)
        for parameter, grad in zip(model.parameters(), grads, strict=True):
            parameter.requires_grad_(grad)
