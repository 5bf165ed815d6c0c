"""Generative classification's steps: greedy labels (or label scoring), classification metrics, per-class gates."""

from __future__ import annotations

from dataclasses import replace

import torch

from loragate.card.settings import TaskCard, Tier
from loragate.data.examples import Example
from loragate.data.task import Task
from loragate.inference.engine import answer_budget
from loragate.inference.grammar import Constraint, one_of, one_of_budget
from loragate.inference.label_scoring import label_log_likelihoods, likeliest
from loragate.inference.predictions import Predictions, label_of
from loragate.kinds.causal import CausalKind
from loragate.kinds.labels import LabelKind
from loragate.kinds.registry import KINDS
from loragate.metrics.scores import ClassificationMetrics, classification_metrics
from loragate.models.bases import LoadedBase


def targets(task: Task) -> list[str]:
    """What the model should write for each label, in label order."""
    return label_targets(task.card)


def label_targets(card: TaskCard) -> list[str]:
    return [card.target_template.format(label=label) for label in card.labels]


class GenerativeClassification(LabelKind, CausalKind):
    spec = KINDS.get("generative_classification")

    def budget(self, task: Task, tier: Tier, base: LoadedBase) -> tuple[int, list[str] | None]:
        """The card's budget, else what the longest label needs; a row stops once it can no longer parse."""
        settings = task.card.tier(tier).eval
        return settings.max_new_tokens or answer_budget(base.tokenizer, targets(task)), task.card.labels

    def answer_tokens(self, task: Task, base: LoadedBase, examples: list[Example]) -> list[int] | None:
        """The longest label's target and EOS for every example, whatever its own label: a prompt cut to make room
        for its own label would be shorter for a longer label, and its length would tell the label."""
        return [answer_budget(base.tokenizer, targets(task))] * len(examples)

    def predict(self, task: Task, model: torch.nn.Module, base: LoadedBase, examples: list[Example], tier: Tier,
                progress: bool, desc: str, calibration: list[Example] | float, batch_size: int) -> Predictions:
        """Free generations (the schema gate reads them) and, with decode: score, each example's likeliest label."""
        predictions = super().predict(task, model, base, examples, tier, progress, desc, calibration, batch_size)
        if task.card.tier(tier).eval.decode != "score":
            return predictions
        scores = label_log_likelihoods(model, base.tokenizer, [ex.prompt for ex in examples], targets(task), batch_size)
        return replace(predictions, scored=likeliest(scores, task.card.labels))

    def constraint(self, card: TaskCard) -> Constraint:
        """Exactly one of the label targets, then EOS."""
        return one_of(label_targets(card))

    def constrained_budget(self, task: Task, tier: Tier, base: LoadedBase, examples: list[Example]) -> int:
        """Enough for every row to finish its label whatever tokens the model picks (constrain.one_of_budget)."""
        return one_of_budget(targets(task))

    def score(self, task: Task, predictions: Predictions) -> ClassificationMetrics:
        """An output that parsed counts as its label, or with scored labels as its likeliest one; an output that
        did not parse stays invalid either way (the validity gate reads free generation)."""
        predicted = [label_of(p) for p in predictions.parsed]
        if predictions.scored is not None:
            predicted = [s if p is not None else None for p, s in zip(predicted, predictions.scored)]
        return classification_metrics(predictions.gold, predicted, task.card.labels, predictions.outputs)


KIND = GenerativeClassification()
