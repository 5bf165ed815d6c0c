"""Scores of structured outputs against gold objects: whole-object exact match, exact match per field (every field by
path, nested ones too: loragate.kinds.structured_output.fields), and micro and macro F1 over the top-level fields,
where a list field's items are counted in order unless it is unordered (fields.field_counts). An output that does
not validate strictly scores as if it had no fields at all.

F1 is pooled from per-example counts (true positives, false positives, false negatives per field), so its paired
bootstrap resamples examples and recomputes the pooled F1, as corpus BLEU does."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np

from loragate.data.parsing import ParsedOutput
from loragate.kinds.structured_output.fields import MISSING, FieldLayout, field_counts, field_equal, value_at
from loragate.metrics.registry import METRICS
from loragate.metrics.scores import clusters, without_groups
from loragate.metrics.stats import DeltaInterval, paired_bootstrap_means, paired_bootstrap_pooled


def f1_of(pooled: np.ndarray) -> np.ndarray:
    """F1 from pooled (..., 3) counts (tp, fp, fn); 1.0 where there was nothing to find and nothing was found."""
    tp, fp, fn = pooled[..., 0], pooled[..., 1], pooled[..., 2]
    denominator = 2 * tp + fp + fn
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 1.0)


def micro_f1(pooled: np.ndarray) -> np.ndarray:
    """Over every field at once: pooled (..., fields * 3) counts summed across fields."""
    return f1_of(pooled.reshape(*pooled.shape[:-1], -1, 3).sum(axis=-2))


def macro_f1(pooled: np.ndarray) -> np.ndarray:
    """The mean of each field's F1."""
    return f1_of(pooled.reshape(*pooled.shape[:-1], -1, 3)).mean(axis=-1)


POOLED = {"field_micro_f1": micro_f1, "field_macro_f1": macro_f1}


@dataclass(frozen=True)
class StructuredMetrics:
    n: int
    fields: list[str]  # every field by path: the schema's top-level ones in order, each nested object's after it
    object_exact: float
    field_micro_f1: float
    field_macro_f1: float
    validity_rate: float  # strictly valid outputs
    lenient_validity_rate: float  # valid only once a fence or prose is stripped: not counted valid
    empty_outputs: int
    field_exact: dict[str, float]  # per field path, the share of examples whose value is exactly right
    schema_errors: dict[str, dict[str, int]]  # location -> pydantic error type -> outputs failing it
    ids: list[str]
    per_example: dict[str, list[float]]  # object_exact, and field:<path> exact, 0 or 1 per example
    counts: list[list[int]]  # per example: tp, fp, fn of each top-level field in order, for the pooled F1s
    input_groups: tuple[int, ...] = ()  # per example, its input's index (with_input_groups); (): all distinct
    samples: int = 1  # rows per test example: k where the run sampled (eval.sampling)

    def value(self, metric: str) -> float:
        METRICS.get(metric)  # raises with did-you-mean on an unknown name
        if not self.has(metric):
            raise ValueError(f"{metric} is not computed for structured output; it has object_exact, field_micro_f1, "
                             f"field_macro_f1, validity_rate, lenient_validity_rate")
        return float(getattr(self, metric))

    def has(self, metric: str) -> bool:
        return metric in ("object_exact", "field_micro_f1", "field_macro_f1", "validity_rate", "lenient_validity_rate")

    @property
    def unavailable(self) -> dict[str, str]:
        return {}

    def correct(self, metric: str) -> np.ndarray:
        """Per example, whether the whole object was right (for McNemar's test)."""
        return np.array(self.per_example[metric]) == 1

    def paired_interval(self, base: StructuredMetrics, metric: str, resamples: int, confidence: float,
                        seed: int) -> DeltaInterval:
        """tuned - base: exact match as a mean of per-example 0/1; the F1s recomputed from resampled pooled counts."""
        if self.ids != base.ids:
            raise ValueError(f"{metric}: base and tuned were scored on different examples; cannot pair them")
        if metric in POOLED:
            return paired_bootstrap_pooled(np.array(base.counts, dtype=float), np.array(self.counts, dtype=float),
                                           POOLED[metric], resamples, confidence, seed, clusters(self.input_groups))
        if metric not in self.per_example:
            raise ValueError(f"{metric} has no per-example scores, so it cannot be gated with a paired interval; gate "
                             f"on object_exact, field_micro_f1 or field_macro_f1 instead")
        return paired_bootstrap_means(np.array(base.per_example[metric], dtype=float),
                                      np.array(self.per_example[metric], dtype=float), resamples, confidence, seed,
                                      clusters=clusters(self.input_groups))

    def headline(self) -> dict[str, float]:
        return {"object_exact": self.object_exact, "field_micro_f1": self.field_micro_f1,
                "validity_rate": self.validity_rate}

    def sub_rows(self, metric: str, base: StructuredMetrics) -> list[tuple[str, str, str, str]]:
        """Per-field exact match (nested fields by path) under the whole-object row; the share of outputs failing each
        schema error type at each location under validity."""
        if metric == "object_exact":
            return [(f"field {name!r} exact", f"{base.field_exact[name]:.3f}", f"{self.field_exact[name]:.3f}",
                     f"{self.field_exact[name] - base.field_exact[name]:+.3f}") for name in self.fields]
        if metric == "validity_rate":
            return [(f"error at {loc}: {kind}", f"{base.error_share(loc, kind):.3f}",
                     f"{self.error_share(loc, kind):.3f}",
                     f"{self.error_share(loc, kind) - base.error_share(loc, kind):+.3f}")
                    for loc, kind in error_keys(base, self)]
        return []

    def error_share(self, loc: str, kind: str) -> float:
        return self.schema_errors.get(loc, {}).get(kind, 0) / self.n

    def to_json(self) -> dict:
        return without_groups(asdict(self))


def error_keys(*metrics: StructuredMetrics) -> list[tuple[str, str]]:
    """Every (location, error type) any of `metrics` saw, most frequent first."""
    totals: Counter = Counter()
    for m in metrics:
        for loc, kinds in m.schema_errors.items():
            for kind, count in kinds.items():
                totals[(loc, kind)] += count
    return [key for key, _ in totals.most_common()]


def structured_metrics(ids: list[str], gold: list[str], parsed: list[ParsedOutput], outputs: list[str],
                       fields: FieldLayout) -> StructuredMetrics:
    """Scores of `parsed` outputs against `gold` objects (canonical JSON texts of the schema)."""
    if not gold:
        raise ValueError("no examples to score: the split is empty")
    if not (len(ids) == len(gold) == len(parsed) == len(outputs)):
        raise ValueError(f"lengths differ: {len(ids)} ids, {len(gold)} gold, {len(parsed)} parsed, {len(outputs)} "
                         f"outputs")
    exact_per_field: dict[str, list[float]] = {path: [] for path in fields.paths}
    object_exact: list[float] = []
    counts: list[list[int]] = []
    errors: dict[str, Counter] = {}
    for gold_text, p in zip(gold, parsed):
        gold_value = json.loads(gold_text)
        predicted = p.value.model_dump(mode="json") if p.value is not None else MISSING
        for path in fields.paths:
            exact_per_field[path].append(float(field_equal(value_at(gold_value, path), value_at(predicted, path), path,
                                                           fields.unordered)))
        counts.append([count for name in fields.top_level for count in field_counts(
            gold_value.get(name), value_at(predicted, name), name, fields.unordered)])
        object_exact.append(float(all(exact_per_field[name][-1] for name in fields.top_level)))
        for error in {(e.loc, e.type) for e in p.errors}:  # an output counts once per location and type
            errors.setdefault(error[0], Counter())[error[1]] += 1
    pooled = np.array(counts, dtype=float).sum(axis=0)
    return StructuredMetrics(
        n=len(gold), fields=list(fields.paths), object_exact=float(np.mean(object_exact)),
        field_micro_f1=float(micro_f1(pooled)), field_macro_f1=float(macro_f1(pooled)),
        validity_rate=sum(p.valid for p in parsed) / len(parsed),
        lenient_validity_rate=sum(p.lenient for p in parsed) / len(parsed),
        empty_outputs=sum(not text.strip() for text in outputs),
        field_exact={name: float(np.mean(values)) for name, values in exact_per_field.items()},
        schema_errors={loc: dict(kinds.most_common()) for loc, kinds in errors.items()},
        ids=list(ids),
        per_example={"object_exact": object_exact, **{f"field:{k}": v for k, v in exact_per_field.items()}},
        counts=counts,
    )
