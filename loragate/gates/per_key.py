"""One rule for every per-key gate: no key may lose more than a tolerance against base, and every key must reach a
floor. The keys are a label kind's classes (accuracy), structured output's fields (exact match) or the test split's
subgroups (any gated metric): three key sets, one rule, one wording of its findings. A kind adds its key set by
returning KeyDrop and KeyFloor checks from `Kind.checks`, with a function that reads the scores per key.

A drop is a non-inferiority claim judged on the paired interval of that key's own examples alone (Tango's score
interval of right/wrong scores, the bootstrap of others; loragate.gates.intervals): PASS where the drop is shown under
the tolerance, FAIL where it is shown beyond it, INCONCLUSIVE where the interval straddles it
(loragate.gates.result.Comparison). Each key is one comparison of the run's family."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from loragate.card.gate_settings import GateSettings
from loragate.gates.intervals import scores_interval
from loragate.gates.result import EPSILON, NON_INFERIORITY, Comparison, GateResult, judged_on, sample_size
from loragate.metrics.scores import Metrics
from loragate.metrics.stats import DeltaInterval, examples_to_detect


@dataclass(frozen=True)
class KeyScore:
    """One key's score for base and tuned, and how many test examples it holds; for a drop gate, its examples'
    per-example scores (whose means are `base` and `tuned`) and input groups, which its paired interval resamples."""

    key: str
    base: float
    tuned: float
    n: int
    base_scores: tuple[float, ...] = ()
    tuned_scores: tuple[float, ...] = ()
    groups: tuple[int, ...] = ()  # per example, its input's index: rows of one input are resampled together


def key_score(key: str, base: float, tuned: float, rows: np.ndarray, base_scores: np.ndarray,
              tuned_scores: np.ndarray, groups: tuple[int, ...]) -> KeyScore:
    """The key's KeyScore with the per-example scores of its `rows` (a mask over the test split's examples)."""
    rows = np.asarray(rows, dtype=bool)
    kept = tuple(int(g) for g in np.asarray(groups)[rows]) if groups else ()
    return KeyScore(key, base, tuned, int(rows.sum()), tuple(map(float, np.asarray(base_scores, dtype=float)[rows])),
                    tuple(map(float, np.asarray(tuned_scores, dtype=float)[rows])), kept)


def key_interval(score: KeyScore, settings: GateSettings) -> DeltaInterval:
    """The paired interval of tuned - base over the key's own examples: Tango's score interval where each is right or
    wrong (a class's accuracy, a field's exact match), else the bootstrap (loragate.gates.intervals)."""
    if not score.base_scores:
        raise ValueError(f"{score.key!r}: no per-example scores to resample; a kind's KeyScores for a drop gate must "
                         f"carry them (loragate.gates.per_key.key_score)")
    return scores_interval(np.array(score.base_scores), np.array(score.tuned_scores), settings,
                           np.array(score.groups) if score.groups else None)


def drop_comparison(what: str, metric: str, higher_is_better: bool, score: KeyScore, interval: DeltaInterval,
                    tolerance: float, settings: GateSettings, samples: int = 1) -> Comparison:
    """The key's drop as a non-inferiority comparison: its signed delta (positive is better) must be shown above
    -tolerance on the interval of tuned - base (`interval`, unsigned), with the p-values of the test it inverts: of the
    PASS claim (the drop is under the tolerance) and of the FAIL claim (it is beyond). The key's rows are `samples`
    rows of each example (a sampled run): its size, and the size that would decide it, count examples."""
    sign = 1.0 if higher_is_better else -1.0
    low, high = sorted((sign * interval.low, sign * interval.high))
    delta, alpha = sign * interval.delta, 1 - settings.confidence
    examples = score.n // samples
    detail = (f"base {score.base:.3f}, tuned {score.tuned:.3f}, {settings.confidence:.0%} CI [{low:+.3f}, "
              f"{high:+.3f}]")
    return Comparison(f"{what} {score.key!r} {metric}", NON_INFERIORITY, delta, low, high, -tolerance,
                      interval.p_value(-tolerance, sign), alpha, examples,
                      examples_to_detect(delta + tolerance, interval.standard_error, examples, alpha, settings.power),
                      detail, fail_p_value=interval.p_value_beyond(-tolerance, sign), samples=samples)


def reaches(value: float, floor: float, higher_is_better: bool) -> bool:
    """Whether `value` is at `floor` or beyond it in the better direction (at most it, where lower is better)."""
    return value >= floor - EPSILON if higher_is_better else value <= floor + EPSILON


def below_floor(what: str, metric: str, higher_is_better: bool, scores: list[KeyScore], floor: float,
                samples: int = 1) -> list[str]:
    """A finding for each key whose tuned score is short of `floor` (above it, as a ceiling, where lower is
    better); its size in examples of `samples` rows each (a sampled run)."""
    findings = []
    for score in scores:
        if reaches(score.tuned, floor, higher_is_better):
            continue
        bound = "< floor" if higher_is_better else "> ceiling"
        findings.append(f"{what} {score.key!r} {metric} {score.tuned:.3f} {bound} {floor:.3f} "
                        f"(base {score.base:.3f}, n={sample_size(score.n // samples, samples)})")
    return findings


def largest_drop(what: str, metric: str, higher_is_better: bool, scores: list[KeyScore], tolerance: float,
                 samples: int = 1) -> str:
    """The evidence of a drop gate: the key that lost most against base, or that none lost, among how many keys."""
    if not scores:
        return f"no {what} to compare"
    worst = max(scores, key=lambda s: s.base - s.tuned if higher_is_better else s.tuned - s.base)
    loss = worst.base - worst.tuned if higher_is_better else worst.tuned - worst.base
    if loss <= 0:
        return f"no {what} lost {metric} against base ({counted(what, scores)}, tolerance {tolerance:.3f})"
    return (f"largest drop: {what} {worst.key!r} {metric} {worst.base:.3f} -> {worst.tuned:.3f} "
            f"({worst.tuned - worst.base:+.3f}, tolerance {tolerance:.3f}, "
            f"n={sample_size(worst.n // samples, samples)}; {counted(what, scores)})")


def nearest_floor(what: str, metric: str, higher_is_better: bool, scores: list[KeyScore], floor: float,
                  samples: int = 1) -> str:
    """The evidence of a floor gate: the key whose tuned score is nearest the floor (the lowest, where higher is
    better), among how many keys."""
    if not scores:
        return f"no {what} to compare"
    worst = min(scores, key=lambda s: s.tuned if higher_is_better else -s.tuned)
    bound = "floor" if higher_is_better else "ceiling"
    return (f"{'lowest' if higher_is_better else 'highest'}: {what} {worst.key!r} {metric} {worst.tuned:.3f}, "
            f"{bound} {floor:.3f} (n={sample_size(worst.n // samples, samples)}; {counted(what, scores)})")


def counted(what: str, scores: list[KeyScore]) -> str:
    """"3 classes", "7 fields", "1 subgroup"."""
    plural = what if len(scores) == 1 else what + ("es" if what.endswith(("s", "x")) else "s")
    return f"{len(scores)} {plural}"


KeyScores = Callable[[Metrics, Metrics], list[KeyScore]]  # (tuned, base) -> each key's scores


@dataclass(frozen=True)
class KeyDrop:
    """No key of a key set (`what`: class, field) may lose more than `max_drop` of `metric` against base, shown on
    each key's paired interval."""

    what: str
    metric: str
    max_drop: float
    scores: KeyScores
    higher_is_better: bool = True
    settings: GateSettings = GateSettings()  # the card's confidence, power, resamples and seed

    @property
    def name(self) -> str:
        return f"per-{self.what} regression"

    def judge(self, tuned: Metrics, base: Metrics) -> GateResult:
        """Each key with examples as one comparison; the evidence names the key that lost most (or that none lost)."""
        scores = self.scores(tuned, base)
        samples = getattr(tuned, "samples", 1)  # a sampled run's k rows of one example (eval.sampling)
        comparisons = [drop_comparison(self.what, self.metric, self.higher_is_better, score,
                                       key_interval(score, self.settings), self.max_drop, self.settings, samples)
                       for score in scores if score.n]
        return judged_on(self.name, comparisons, largest_drop(self.what, self.metric, self.higher_is_better, scores,
                                                              self.max_drop, samples),
                         self.settings.inconclusive == "warn")

    def fails(self, tuned: Metrics, base: Metrics) -> str | None:
        result = self.judge(tuned, base)
        return None if result.passed else result.finding


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
                                                                           self.higher_is_better, scores, self.floor,
                                                                           getattr(tuned, "samples", 1)))

    def fails(self, tuned: Metrics, base: Metrics) -> str | None:
        found = below_floor(self.what, self.metric, self.higher_is_better, self.scores(tuned, base), self.floor,
                            getattr(tuned, "samples", 1))
        return "; ".join(found) or None
