"""Gate checks: small objects whose `fails(tuned, base)` returns a finding, or None when it passes.

A finding is a sentence a release manager can act on: task, metric or class, both values, the delta,
the threshold, n.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from loragate.card import GateSettings
from loragate.metrics import HIGHER_IS_BETTER, ClassificationMetrics


class Check(Protocol):
    name: str

    def fails(self, tuned: ClassificationMetrics, base: ClassificationMetrics) -> str | None: ...


@dataclass(frozen=True)
class MetricDelta:
    """tuned - base on `metric` (sign flipped for lower-is-better) must be at least `min_delta`."""

    metric: str
    min_delta: float

    @property
    def name(self) -> str:
        return f"{self.metric} delta"

    def fails(self, tuned: ClassificationMetrics, base: ClassificationMetrics) -> str | None:
        sign = 1.0 if HIGHER_IS_BETTER.get(self.metric) else -1.0
        delta = sign * (tuned.value(self.metric) - base.value(self.metric))
        if delta >= self.min_delta - 1e-12:  # tuned - base of k/n fractions is not exact in floats
            return None
        return (f"{self.metric} delta {delta:+.3f} < required {self.min_delta:+.3f} "
                f"(base {base.value(self.metric):.3f}, tuned {tuned.value(self.metric):.3f}, n={tuned.n})")


@dataclass(frozen=True)
class ClassDrop:
    """No class may lose more than `max_drop` accuracy against base."""

    max_drop: float
    name: str = "per-class regression"

    def fails(self, tuned: ClassificationMetrics, base: ClassificationMetrics) -> str | None:
        findings = []
        for label in tuned.labels:
            before, after = base.per_class_accuracy[label], tuned.per_class_accuracy[label]
            if before - after > self.max_drop + 1e-12:
                findings.append(f"class {label!r} accuracy fell {before:.3f} -> {after:.3f} "
                                f"({after - before:+.3f}, tolerance {self.max_drop:.3f}, "
                                f"n={tuned.per_class_support[label]})")
        return "; ".join(findings) or None


@dataclass(frozen=True)
class ClassFloor:
    """Every class must reach `min_accuracy`: a model that never gets a class right does not ship."""

    min_accuracy: float
    name: str = "per-class floor"

    def fails(self, tuned: ClassificationMetrics, base: ClassificationMetrics) -> str | None:
        findings = []
        for label in tuned.labels:
            accuracy, support = tuned.per_class_accuracy[label], tuned.per_class_support[label]
            if accuracy < self.min_accuracy:
                findings.append(f"class {label!r} accuracy {accuracy:.3f} < floor {self.min_accuracy:.3f} "
                                f"({round(accuracy * support)}/{support} correct)")
        return "; ".join(findings) or None


@dataclass(frozen=True)
class Validity:
    """The share of tuned outputs that parse into the schema."""

    min_rate: float
    name: str = "validity"

    def fails(self, tuned: ClassificationMetrics, base: ClassificationMetrics) -> str | None:
        if tuned.validity_rate >= self.min_rate:
            return None
        invalid = round((1 - tuned.validity_rate) * tuned.n)
        return (f"validity rate {tuned.validity_rate:.3f} < required {self.min_rate:.3f} "
                f"({invalid} of {tuned.n} outputs did not parse; base {base.validity_rate:.3f})")


@dataclass(frozen=True)
class GateResult:
    check: str
    finding: str | None

    @property
    def passed(self) -> bool:
        return self.finding is None


def checks_from(gates: GateSettings) -> list[Check]:
    """The card's gates as checks; an unknown metric name is an error with a did-you-mean."""
    for metric in gates.min_delta:
        if metric not in HIGHER_IS_BETTER:
            raise ValueError(f"gates.min_delta: {HIGHER_IS_BETTER.unknown_message(metric)}")
    return [
        *(MetricDelta(metric, minimum) for metric, minimum in gates.min_delta.items()),
        ClassDrop(gates.max_class_drop),
        ClassFloor(gates.min_class_accuracy),
        Validity(gates.min_validity),
    ]


def run_gates(checks: list[Check], tuned: ClassificationMetrics, base: ClassificationMetrics) -> list[GateResult]:
    return [GateResult(check.name, check.fails(tuned, base)) for check in checks]
