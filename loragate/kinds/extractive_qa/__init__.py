"""Extractive QA: an encoder with a span head over strided windows; no answer when the null score wins."""

from loragate.kinds.extractive_qa.settings import QASettings
from loragate.kinds.registry import KINDS, KindSpec
from loragate.metrics.registry import METRICS, TEXT_METRICS, MetricSpec

QA_METRICS = ("exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1")
for _spec in (
    MetricSpec("exact", "exact match", True, "mean", right_or_wrong=True),
    MetricSpec("f1", "F1", True, "mean"),
    MetricSpec("HasAns_exact", "has answer: exact", True, "mean", sub=True),
    MetricSpec("HasAns_f1", "has answer: F1", True, "mean", sub=True),
    MetricSpec("NoAns_exact", "no answer: exact", True, "mean", sub=True),
    MetricSpec("NoAns_f1", "no answer: F1", True, "mean", sub=True),
):
    METRICS.register(_spec.name, _spec)

KINDS.register("extractive_qa", KindSpec("extractive_qa", "QUESTION_ANS", encoder=True, labels=False, block="qa",
                                         block_model=QASettings, metrics=(*QA_METRICS, *TEXT_METRICS), windows=True))
