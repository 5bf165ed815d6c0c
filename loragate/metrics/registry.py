"""The metric registry every consumer reads: one entry per metric with its display name and scale, the direction
that counts as better, and the statistic its paired bootstrap resamples. Gates, the terminal table, report.md/html,
summary.md and the JUnit properties read it, so a metric registered here shows up everywhere.

The metrics any kind may compute (classification, text overlap, validity) are registered here; a kind registers its
own (QA's exact match, structured output's field F1, ...) from its package, and names the order its table shows
them in (KindSpec.metrics). Light on purpose: no numpy or sklearn, so a kind registers without loading them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from loragate.registry import Registry

Statistic = Literal["labels", "mean", "token_weighted_nll", "pooled_ngrams", "pooled_counts"]


@dataclass(frozen=True)
class MetricSpec:
    """One metric as gates and reports read it."""

    name: str
    title: str  # what every table shows
    higher_is_better: bool  # gates read the direction from here, never assume it
    statistic: Statistic  # what its paired bootstrap resamples: label pairs (the metric recomputed from them),
    # per-example scores (their mean), per-example NLL weighted by tokens (exp of it: perplexity), or per-example
    # n-gram counts pooled into one corpus score (BLEU), or per-example field counts pooled into an F1
    scale: str = "0-1"  # the range its values are on
    right_or_wrong: bool = False  # each example scores 0 or 1: McNemar's exact test applies
    sub: bool = False  # shown indented under the row before it (a subset of the examples)
    shown: bool = True  # in the base-vs-tuned table (else only in report.json)

    def cell(self, value: float) -> str:
        return f"{value:.3f}"


METRICS: Registry[MetricSpec] = Registry("metric")
for _spec in (
    MetricSpec("accuracy", "accuracy", True, "labels", right_or_wrong=True),
    MetricSpec("macro_precision", "macro precision", True, "labels"),
    MetricSpec("macro_recall", "macro recall", True, "labels"),
    MetricSpec("macro_f1", "macro F1", True, "labels"),
    MetricSpec("weighted_precision", "weighted precision", True, "labels", shown=False),
    MetricSpec("weighted_recall", "weighted recall", True, "labels", shown=False),
    MetricSpec("weighted_f1", "weighted F1", True, "labels"),
    MetricSpec("rouge1", "ROUGE-1", True, "mean"),
    MetricSpec("rouge2", "ROUGE-2", True, "mean"),
    MetricSpec("rougeL", "ROUGE-L", True, "mean"),
    MetricSpec("meteor", "METEOR", True, "mean"),
    MetricSpec("bleu", "BLEU (0-100)", True, "pooled_ngrams", scale="0-100"),  # sacrebleu's scale
    MetricSpec("validity_rate", "validity", True, "labels"),
):
    METRICS.register(_spec.name, _spec)

LABEL_METRICS = ("accuracy", "macro_precision", "macro_recall", "macro_f1", "weighted_precision", "weighted_recall",
                 "weighted_f1")
TEXT_METRICS = ("rouge1", "rouge2", "rougeL", "meteor", "bleu")


def in_table_order(first: Sequence[str]) -> list[MetricSpec]:
    """Every registered metric, those named in `first` (a kind's KindSpec.metrics) first in that order, then the
    others in the order registered: the order of every table's rows and of report.json's metrics."""
    return [*(METRICS.get(name) for name in first), *(spec for spec in METRICS.entries() if spec.name not in first)]
