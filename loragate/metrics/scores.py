"""Metrics of a split: classification (scikit-learn) or text (per-example scores for QA and instructions), and
the registry every consumer reads: one entry per metric with its display name and scale, the direction that
counts as better, and the statistic its paired bootstrap resamples. Gates, the terminal table, report.md/html,
summary.md and the JUnit properties read it, so a metric registered here shows up everywhere."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from loragate.metrics.registry import METRICS
from loragate.metrics.stats import DeltaInterval, paired_bootstrap, paired_bootstrap_means, paired_bootstrap_pooled
from loragate.metrics.text import MetricUnavailable, bleu_from_statistics

INVALID = "<invalid>"  # the predicted "class" of an output that did not parse; always wrong



@dataclass(frozen=True)
class ClassificationMetrics:
    n: int
    accuracy: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    weighted_precision: float
    weighted_recall: float
    weighted_f1: float
    validity_rate: float
    empty_outputs: int
    per_class_accuracy: dict[str, float]  # recall of each gold class
    per_class_support: dict[str, int]
    confusion: list[list[int]]  # rows: gold labels; columns: labels then INVALID
    labels: list[str]
    gold: list[str]  # per example, so base and tuned can be compared pairwise
    predicted: list[str | None]  # None: the output did not parse
    input_groups: tuple[int, ...] = ()  # per example, its input's index (with_input_groups); (): all distinct
    samples: int = 1  # rows per test example: k where the run sampled (eval.sampling), each example's k in a row

    def label_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """Gold and predicted as indices into `labels`; len(labels) marks an invalid prediction."""
        index = {label: i for i, label in enumerate(self.labels)}
        return (np.array([index[g] for g in self.gold]),
                np.array([index.get(p, len(self.labels)) if p is not None else len(self.labels)
                          for p in self.predicted]))

    def value(self, metric: str) -> float:
        METRICS.get(metric)  # raises with did-you-mean on an unknown name
        return float(getattr(self, metric))

    def has(self, metric: str) -> bool:
        return METRICS.get(metric).statistic == "labels"

    @property
    def unavailable(self) -> dict[str, str]:
        return {}

    def correct(self, metric: str) -> np.ndarray:
        """Per example, whether it was right (for McNemar's test on accuracy)."""
        gold, predicted = self.label_indices()
        return predicted == gold

    def paired_interval(self, base: ClassificationMetrics, metric: str, resamples: int, confidence: float,
                        seed: int) -> DeltaInterval:
        """The paired-bootstrap interval of self (tuned) - base on `metric`, recomputed from resampled label pairs."""
        gold, base_pred = base.label_indices()
        tuned_gold, tuned_pred = self.label_indices()
        if not np.array_equal(gold, tuned_gold):
            raise ValueError(f"{metric}: base and tuned were scored on different examples; cannot pair them")
        return paired_bootstrap(metric, gold, base_pred, tuned_pred, len(self.labels), resamples, confidence, seed,
                                clusters(self.input_groups))

    def headline(self) -> dict[str, float]:
        """What the adapter's manifest records at train time."""
        return {"accuracy": self.accuracy, "macro_f1": self.macro_f1}

    def sub_rows(self, metric: str, base: ClassificationMetrics) -> list[tuple[str, str, str, str]]:
        """Per-class accuracy rows under accuracy: (title, base, tuned, delta)."""
        if metric != "accuracy":
            return []
        return [(f"{label} (n={self.per_class_support[label]})", f"{base.per_class_accuracy[label]:.3f}",
                 f"{self.per_class_accuracy[label]:.3f}",
                 f"{self.per_class_accuracy[label] - base.per_class_accuracy[label]:+.3f}") for label in self.labels]

    def to_json(self) -> dict:
        return without_groups(asdict(self))


def classification_metrics(gold: list[str], predicted: list[str | None], labels: list[str],
                           outputs: list[str]) -> ClassificationMetrics:
    """`predicted[i]` is None where output i did not parse; it then counts as wrong for every metric."""
    if not gold:
        raise ValueError("no examples to score: the split is empty")
    if not (len(gold) == len(predicted) == len(outputs)):
        raise ValueError(f"lengths differ: {len(gold)} gold, {len(predicted)} predicted, {len(outputs)} outputs")
    unknown = sorted(set(gold) - set(labels))
    if unknown:
        raise ValueError(f"gold labels {unknown} are not in the label set {labels}")
    pred = [p if p is not None else INVALID for p in predicted]
    macro = precision_recall_fscore_support(gold, pred, labels=labels, average="macro", zero_division=0)
    weighted = precision_recall_fscore_support(gold, pred, labels=labels, average="weighted", zero_division=0)
    _, recall, _, support = precision_recall_fscore_support(gold, pred, labels=labels, average=None, zero_division=0)
    matrix = confusion_matrix(gold, pred, labels=[*labels, INVALID])[: len(labels)]
    return ClassificationMetrics(
        n=len(gold),
        accuracy=float(accuracy_score(gold, pred)),
        macro_precision=float(macro[0]),
        macro_recall=float(macro[1]),
        macro_f1=float(macro[2]),
        weighted_precision=float(weighted[0]),
        weighted_recall=float(weighted[1]),
        weighted_f1=float(weighted[2]),
        validity_rate=sum(p is not None for p in predicted) / len(predicted),
        empty_outputs=sum(not text.strip() for text in outputs),
        per_class_accuracy={label: float(r) for label, r in zip(labels, recall)},
        per_class_support={label: int(s) for label, s in zip(labels, support)},
        confusion=matrix.tolist(),
        labels=list(labels),
        gold=list(gold),
        predicted=list(predicted),
    )


def metrics_from_confusion(matrix: list[list[int]], labels: list[str]) -> ClassificationMetrics:
    """Metrics of a reported confusion matrix (rows gold, columns predicted): to gate a seed's table.

    A last column beyond the labels counts outputs that did not parse, as in `ClassificationMetrics.confusion`."""
    if len(matrix) != len(labels) or any(len(row) not in (len(labels), len(labels) + 1) for row in matrix):
        raise ValueError(f"confusion matrix is {len(matrix)} rows of {sorted({len(row) for row in matrix})} columns; "
                         f"expected {len(labels)} rows (one per label) of {len(labels)} columns, "
                         f"or {len(labels) + 1} with the {INVALID} column")
    gold: list[str] = []
    predicted: list[str | None] = []
    for gold_label, row in zip(labels, matrix):
        for predicted_label, count in zip([*labels, None], row):
            gold += [gold_label] * count
            predicted += [predicted_label] * count
    return classification_metrics(gold, predicted, labels, outputs=[p or INVALID for p in predicted])


@dataclass(frozen=True)
class TextMetrics:
    """Scores of free-text answers (QA spans, instruction responses) against references.

    `values` holds every aggregate shown in the report; `per_example` the scores a paired bootstrap resamples
    (the mean of each is its aggregate). Perplexity is exp of the token-weighted mean NLL: its per-example
    entry is each example's mean NLL per token, weighted by `tokens`."""

    n: int
    values: dict[str, float]
    per_example: dict[str, list[float]]
    validity_rate: float  # outputs that parse into the schema
    empty_outputs: int
    ids: list[str]
    outputs: list[str]
    references: list[list[str]]
    tokens: list[int] = field(default_factory=list)  # reference tokens per example, for perplexity
    bleu_statistics: list[list[float]] = field(default_factory=list)  # per example, the counts corpus BLEU pools
    unavailable: dict[str, str] = field(default_factory=dict)  # metric -> why it was not computed
    input_groups: tuple[int, ...] = ()  # per example, its input's index (with_input_groups); (): all distinct
    samples: int = 1  # rows per test example: k where the run sampled (eval.sampling), each example's k in a row

    def value(self, metric: str) -> float:
        METRICS.get(metric)  # raises with did-you-mean on an unknown name
        if metric == "validity_rate":
            return self.validity_rate
        if metric in self.unavailable:
            raise MetricUnavailable(f"{metric} is unavailable: {self.unavailable[metric]}")
        if metric not in self.values:
            raise ValueError(f"{metric} is not computed for this task; it has {', '.join(sorted(self.values))}")
        return self.values[metric]

    def has(self, metric: str) -> bool:
        return metric in self.values or metric == "validity_rate"

    def correct(self, metric: str) -> np.ndarray:
        """Per example, whether it scored 1 (for McNemar's test on exact match)."""
        return np.array(self.per_example[metric]) == 1

    def sub_rows(self, metric: str, base: TextMetrics) -> list[tuple[str, str, str, str]]:
        return []

    def headline(self) -> dict[str, float]:
        """What the adapter's manifest records at train time: every computed aggregate."""
        return dict(self.values)

    def paired_interval(self, base: TextMetrics, metric: str, resamples: int, confidence: float,
                        seed: int) -> DeltaInterval:
        """The paired-bootstrap interval of self (tuned) - base on `metric`: a mean of per-example scores;
        perplexity as exp of the token-weighted mean NLL; corpus BLEU from pooled n-gram counts."""
        self.value(metric)
        if self.ids != base.ids:
            raise ValueError(f"{metric}: base and tuned were scored on different examples; cannot pair them")
        statistic = METRICS.get(metric).statistic
        if statistic == "pooled_ngrams":
            return paired_bootstrap_pooled(np.array(base.bleu_statistics), np.array(self.bleu_statistics),
                                           bleu_from_statistics, resamples, confidence, seed,
                                           clusters(self.input_groups))
        if metric not in self.per_example:
            raise ValueError(f"{metric} has no per-example scores, so it cannot be gated with a paired interval; "
                             f"gate on {', '.join(sorted([*self.per_example, 'bleu']))} instead")
        weights, of_mean = ((np.array(self.tokens, dtype=float), np.exp) if statistic == "token_weighted_nll"
                            else (None, None))
        return paired_bootstrap_means(np.array(base.per_example[metric], dtype=float),
                                      np.array(self.per_example[metric], dtype=float), resamples, confidence, seed,
                                      of_mean, weights, clusters(self.input_groups))

    def to_json(self) -> dict:
        return without_groups(asdict(self))


Metrics = ClassificationMetrics | TextMetrics


def with_input_groups(metrics: Metrics, groups: tuple[int, ...], samples: int = 1) -> Metrics:
    """`metrics` whose paired intervals resample the rows of one input together (`groups`: per example, its
    input's index, loragate.data.examples.input_groups), so repeating a test row does not narrow them, and whose
    gates count examples, not rows, where each example has `samples` rows (eval.sampling). A kind's own container
    without `input_groups` is returned as it is and resamples rows one by one."""
    if "input_groups" not in {f.name for f in fields(metrics)}:
        return metrics
    return replace(metrics, input_groups=tuple(groups), samples=samples)


def clusters(groups: tuple[int, ...]) -> np.ndarray | None:
    """The cluster ids a paired bootstrap takes: None where no groups were given."""
    return np.array(groups) if groups else None


def without_groups(record: dict) -> dict:
    """A metrics record for report.json: the input groups and samples are how intervals resample, not a result
    (report.json's `sampling` names the samples)."""
    record.pop("input_groups")
    record.pop("samples")
    return record
