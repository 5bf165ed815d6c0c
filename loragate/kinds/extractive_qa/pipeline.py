"""Extractive QA's steps: the best span over strided windows, or no answer below a threshold chosen on the eval
split; SQuAD v2 metrics with the has-answer and no-answer subsets."""

from __future__ import annotations

import time

import torch
from transformers import AutoModelForQuestionAnswering

from loragate.card.settings import Tier
from loragate.data.examples import Example
from loragate.data.task import Task
from loragate.inference.mixed_batches import candidates, join_rows, split_rows
from loragate.inference.predictions import Constant, Predictions
from loragate.kinds.encoders import EncoderKind
from loragate.kinds.extractive_qa.metrics import qa_metrics
from loragate.kinds.extractive_qa.spans import (
    answers,
    best_spans,
    choose_null_threshold,
    first_window_logits,
    predict_spans,
    qa_features,
    qa_logits,
    window_logits,
)
from loragate.kinds.registry import KINDS
from loragate.kinds.text_report import TextReport
from loragate.kinds.trivial_predictors import always_abstain
from loragate.metrics.scores import TextMetrics
from loragate.models.bases import LoadedBase


class ExtractiveQA(TextReport, EncoderKind):
    spec = KINDS.get("extractive_qa")
    name = "extractive_qa"

    def head(self, task: Task, tier: Tier) -> tuple[type, dict]:
        return AutoModelForQuestionAnswering, {}

    def answer_tokens(self, task: Task, base: LoadedBase, examples: list[Example]) -> list[int] | None:
        """None: long contexts are read in windows (qa.max_length, qa.stride), nothing is fitted to train.max_length."""
        return None

    def features(self, task: Task, base: LoadedBase, examples: list[Example], max_length: int) -> list[dict]:
        qa = task.card.block("qa")
        return qa_features(base.tokenizer, examples, qa.max_length, qa.stride, with_positions=True)

    def predict(self, task: Task, model: torch.nn.Module, base: LoadedBase, examples: list[Example], tier: Tier,
                progress: bool, desc: str, calibration: list[Example] | float, batch_size: int) -> Predictions:
        """The best span of each question, or no answer where the null score beats it by more than the threshold
        that maximises exact match on `calibration` (or the threshold given there); with the first windows' logits
        as the probe where every question fits one window (the parameter checks then need no second pass over the
        test split). A mixed model's candidates (loragate.inference.mixed_batches) each choose their own threshold on
        their rows of `calibration`, kept in candidate order until their predictions are split."""
        started = time.perf_counter()
        qa = task.card.block("qa")
        if not isinstance(calibration, list):
            thresholds = [calibration] * candidates(model)
        else:
            spans = predict_spans(model, base.tokenizer, calibration, qa.max_length, qa.stride, batch_size,
                                  qa.max_answer_tokens, progress)
            thresholds = [choose_null_threshold(rows, examples_of)
                          for rows, examples_of in zip(split_rows(model, spans), split_rows(model, calibration))]
        windows, logits = window_logits(model, base.tokenizer, examples, qa.max_length, qa.stride, batch_size, progress)
        spans = best_spans(examples, windows, logits, qa.max_answer_tokens)
        outputs = join_rows([answers(rows, threshold)
                             for rows, threshold in zip(split_rows(model, spans), thresholds, strict=True)])
        threshold = thresholds[0] if len(thresholds) == 1 else tuple(thresholds)
        return Predictions(ids=[ex.id for ex in examples], gold=[ex.label for ex in examples], outputs=outputs,
                           parsed=[task.parse(text) for text in outputs], seconds=time.perf_counter() - started,
                           references=[list(ex.references) for ex in examples], threshold=threshold,
                           logits=first_window_logits(examples, windows, logits, qa.max_length))

    def probe_logits(self, task: Task, tier: Tier, model: torch.nn.Module, base: LoadedBase,
                     examples: list[Example]) -> torch.Tensor:
        """Start and end logits of each question's first window."""
        qa = task.card.block("qa")
        return qa_logits(model, base.tokenizer, examples, qa.max_length, qa.stride,
                         task.card.tier(tier).eval.batch_size)

    def score(self, task: Task, predictions: Predictions) -> TextMetrics:
        return qa_metrics(predictions.ids, predictions.outputs, predictions.references,
                          [p.valid for p in predictions.parsed])

    def constant(self, task: Task, examples: list[Example]) -> Constant:
        return always_abstain(task, examples)

    def subgroups(self, task: Task, examples: list[Example]) -> dict[str, list[int]]:
        """Answerable and unanswerable questions (no reference), each gated like a class."""
        answerable = [row for row, ex in enumerate(examples) if any(ref.strip() for ref in ex.references)]
        unanswerable = sorted(set(range(len(examples))) - set(answerable))
        return {name: rows for name, rows in (("has answer", answerable), ("no answer", unanswerable)) if rows}


KIND = ExtractiveQA()
