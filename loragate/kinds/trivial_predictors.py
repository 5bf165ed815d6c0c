"""The best constant predictor of a test split, per kind: the model that ignores its input. A tuned adapter must
beat it (loragate.gates.checks.BeatsTrivial), or its gain over base may be no more than the split's base rate."""

from __future__ import annotations

from collections import Counter

from loragate.data.examples import Example
from loragate.data.task import Task
from loragate.inference.predictions import Constant, constant_predictions


def majority_class(task: Task, examples: list[Example]) -> Constant:
    """The test split's most common label for every example (a tie goes to the card's first label): the best
    constant on accuracy and weighted F1."""
    counts = Counter(ex.label for ex in examples)
    label = max(task.card.labels, key=lambda name: counts[name])  # max keeps the first of equal counts
    return Constant(f"majority class {label!r}", constant_predictions(examples, [label] * len(examples), task.parse))


def always_abstain(task: Task, examples: list[Example]) -> Constant:
    """No answer to every question: exact on every unanswerable one, so on a split with a large unanswerable share
    it beats a base that answers everything."""
    return Constant("always abstain", constant_predictions(examples, [""] * len(examples), task.parse))


def most_common_response(task: Task, examples: list[Example], noun: str = "response") -> Constant:
    """The test split's most common reference response for every prompt (the first one when none repeats). The
    empty response scores 0 on every overlap metric, so this is the stronger of the two constants. `noun` names it in
    findings ("constant object" for structured output, whose reference is the gold object's JSON)."""
    counts = Counter(ex.references[0] for ex in examples)
    response = max(counts, key=lambda text: counts[text])  # Counter keeps first-seen order; max keeps the first
    shown = response if len(response) <= 40 else response[:37] + "..."
    return Constant(f"constant {noun} {shown!r}", constant_predictions(examples, [response] * len(examples),
                                                                         task.parse))
