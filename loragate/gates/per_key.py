"""One rule for every per-key gate: no key may lose more than a tolerance against base, and every key must reach a
floor. The keys are a label kind's classes (accuracy), structured output's fields (exact match) or the test split's
subgroups (any gated metric): three key sets, one rule, one wording of its findings. A kind adds its key set by
returning KeyDrop and KeyFloor checks from `Kind.checks`, with a function that reads the scores per key."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from loragate.gates.result import EPSILON, GateResult
from loragate.metrics.scores import Metrics


@dataclass(frozen=True)
class KeyScore:
    """One key's score for base and tuned, and how many test examples it holds."""

    key: str
    base: float
    tuned: float
    n: int


def drops(what: str, metric: str, higher_is_better: bool, scores: list[KeyScore], tolerance: float) -> list[str]:
    """A finding for each key that lost more than `tolerance` against base (rose, where lower is better)."""
    findings = []
    for score in scores:
        loss = score.base - score.tuned if higher_is_better else score.tuned - score.base
        if loss > tolerance + EPSILON:
            findings.append(f"{what} {score.key!r} {metric} fell {score.base:.3f} -> {score.tuned:.3f} "
                            f"({score.tuned - score.base:+.3f}, tolerance {tolerance:.3f}, n={score.n})")
    return findings


def reaches(value: float, floor: float, higher_is_better: bool) -> bool:
    """Whether `value` is at `floor` or beyond it in the better direction (at most it, where lower is better)."""
    return value >= floor - EPSILON if higher_is_better else value <= floor + EPSILON


def below_floor(what: str, metric: str, higher_is_better: bool, scores: list[KeyScore], floor: float) -> list[str]:
    """A finding for each key whose tuned score is short of `floor` (above it, as a ceiling, where lower is
    better)."""
    findings = []
    for score in scores:
        if reaches(score.tuned, floor, higher_is_better):
            continue
        bound = "< floor" if higher_is_better else "> ceiling"
        findings.append(f"{what} {score.key!r} {metric} {score.tuned:.3f} {bound} {floor:.3f} "
                        f"(base {score.base:.3f}, n={score.n})")
    return findings


def largest_drop(what: str, metric: str, higher_is_better: bool, scores: list[KeyScore], tolerance: float) -> str:
    """The evidence of a drop gate: the key that lost most against base, or that none lost, among how many keys."""
    if not scores:
        return f"no {what} to compare"
    worst = max(scores, key=lambda s: s.base - s.tuned if higher_is_better else s.tuned - s.base)
    loss = worst.base - worst.tuned if higher_is_better else worst.tuned - worst.base
    if loss <= 0:
        return f"no {what} lost {metric} against base ({counted(what, scores)}, tolerance {tolerance:.3f})"
    return (f"largest drop: {what} {worst.key!r} {metric} {worst.base:.3f} -> {worst.tuned:.3f} "
            f"({worst.tuned - worst.base:+.3f}, tolerance {tolerance:.3f}, n={worst.n}; {counted(what, scores)})")


def nearest_floor(what: str, metric: str, higher_is_better: bool, scores: list[KeyScore], floor: float) -> str:
    """The evidence of a floor gate: the key whose tuned score is nearest the floor (the lowest, where higher is
    better), among how many keys."""
    if not scores:
        return f"no {what} to compare"
    worst = min(scores, key=lambda s: s.tuned if higher_is_better else -s.tuned)
    bound = "floor" if higher_is_better else "ceiling"
    return (f"{'lowest' if higher_is_better else 'highest'}: {what} {worst.key!r} {metric} {worst.tuned:.3f}, "
            f"{bound} {floor:.3f} (n={worst.n}; {counted(what, scores)})")


def counted(what: str, scores: list[KeyScore]) -> str:
    """"3 classes", "7 fields", "1 subgroup"."""
    plural = what if len(scores) == 1 else what + ("es" if what.endswith(("s", "x")) else "s")
    return f"{len(scores)} {plural}"


KeyScores = Callable[[Metrics, Metrics], list[KeyScore]]  # (tuned, base) -> each key's scores


@dataclass(frozen=True)
class KeyDrop:
    """No key of a key set (`what`: class, field) may lose more than `max_drop` of `metric` against base."""

    what: str
    metric: str
    max_drop: float
    scores: KeyScores
    higher_is_better: bool = True

    @property
    def name(self) -> str:
        return f"per-{self.what} regression"

    def judge(self, tuned: Metrics, base: Metrics) -> GateResult:
        """The finding, and on a pass the key that lost most (or that none lost), so the report shows evidence."""
        scores = self.scores(tuned, base)
        return GateResult(self.name, self.fails(tuned, base), largest_drop(self.what, self.metric,
                                                                          self.higher_is_better, scores, self.max_drop))

    def fails(self, tuned: Metrics, base: Metrics) -> str | None:
        found = drops(self.what, self.metric, self.higher_is_better, self.scores(tuned, base), self.max_drop)
        return "; ".join(found) or None


@dataclass(frozen=True)
class KeyFloor:
    """Every key of a key set must reach `floor` on `metric`: a model that never gets a class right does not ship."""

    what: str
    metric: str
    floor: float
    scores: KeyScores
    higher_is_better: bool = True

    @property
    def name(self) -> str:
        return f"per-{self.what} floor"

    def judge(self, tuned: Metrics, base: Metrics) -> GateResult:
        """The finding, and on a pass the key nearest the floor, so the report shows evidence."""
        scores = self.scores(tuned, base)
        return GateResult(self.name, self.fails(tuned, base), nearest_floor(self.what, self.metric,
                                                                           self.higher_is_better, scores, self.floor))

    def fails(self, tuned: Metrics, base: Metrics) -> str | None:
        found = below_floor(self.what, self.metric, self.higher_is_better, self.scores(tuned, base), self.floor)
        return "; ".join(found) or None
