"""Sequence classification's steps: the head's argmax label, whose logits are also the parameter probe."""

from __future__ import annotations

import time

import torch

from loragate.card.settings import Tier
from loragate.data.examples import Example
from loragate.data.task import Task
from loragate.inference.predictions import Predictions, label_of
from loragate.kinds.encoders import EncoderKind
from loragate.kinds.labels import LabelKind
from loragate.kinds.registry import KINDS
from loragate.kinds.sequence_classification.heads import classification_features, classifier_head, classify_logits
from loragate.metrics.scores import ClassificationMetrics, classification_metrics
from loragate.models.bases import LoadedBase


class SequenceClassification(LabelKind, EncoderKind):
    spec = KINDS.get("sequence_classification")
    name = "sequence_classification"

    def head(self, task: Task, tier: Tier) -> tuple[type, dict]:
        return classifier_head(task.card.labels, task.card.tier(tier).pooling)

    def features(self, task: Task, base: LoadedBase, examples: list[Example], max_length: int) -> list[dict]:
        return classification_features(base.tokenizer, examples, task.card.labels, max_length)

    def predict(self, task: Task, model: torch.nn.Module, base: LoadedBase, examples: list[Example], tier: Tier,
                progress: bool, desc: str, calibration: list[Example] | float, batch_size: int) -> Predictions:
        """The head's argmax label per example: always in the schema, so validity is 1 by construction."""
        started = time.perf_counter()
        logits = classify_logits(model, base.tokenizer, examples, batch_size, progress)
        outputs = [task.card.labels[int(i)] for i in logits.argmax(-1)]
        return Predictions(ids=[ex.id for ex in examples], gold=[ex.label for ex in examples], outputs=outputs,
                           parsed=[task.parse(text) for text in outputs], seconds=time.perf_counter() - started,
                           logits=logits)

    def probe_logits(self, task: Task, tier: Tier, model: torch.nn.Module, base: LoadedBase,
                     examples: list[Example]) -> torch.Tensor:
        return classify_logits(model, base.tokenizer, examples, task.card.tier(tier).eval.batch_size)

    def score(self, task: Task, predictions: Predictions) -> ClassificationMetrics:
        return classification_metrics(predictions.gold, [label_of(p) for p in predictions.parsed], task.card.labels,
                                      predictions.outputs)



KIND = SequenceClassification()
