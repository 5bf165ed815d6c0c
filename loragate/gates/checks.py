"""Gate checks: small objects whose `fails(tuned, base)` returns a finding, or None when it passes.

A finding is a sentence a release manager can act on: task, metric or class, both values, the delta,
the threshold, n.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loragate.card.settings import GateSettings
from loragate.gates.curves import CurveCheck
from loragate.gates.intervals import gate_interval
from loragate.gates.per_key import KeyScore, below_floor, drop_comparison, reaches
from loragate.gates.result import (
    EPSILON,
    NON_INFERIORITY,
    SUPERIORITY,
    Check,
    Comparison,
    DeltaNumbers,
    GateResult,
    examples_of,
    judged_on,
    repeats_inputs,
    sample_size,
)
from loragate.metrics.scores import METRICS, Metrics
from loragate.metrics.stats import DeltaInterval, examples_to_detect, mcnemar_exact, minimum_detectable_effect
from loragate.metrics.text import MetricUnavailable

if TYPE_CHECKING:  # the store loads torch; gates only read a manifest's curves
    from loragate.store.adapters import Manifest


@dataclass(frozen=True)
class MetricDelta:
    """tuned - base on `metric` (sign flipped for lower-is-better) must be at least `min_delta`.

    Judged on the observed delta, or on its paired interval when the card says `judge_on: lower_bound` (Tango's score
    interval for a right/wrong metric, else the bootstrap; loragate.gates.intervals): then it is a comparison of the
    run's family (its p-value from the test the interval inverts or its resamples, adjusted with the others;
    loragate.gates.family). On the observed delta, a pass the interval does not back up (its lower bound below the
    minimum) while the split is too small to detect the minimum is not a pass. A non-inferiority delta (`test`:
    min_delta is -m, against the last release) whose interval straddles -m is INCONCLUSIVE."""

    metric: str
    min_delta: float
    settings: GateSettings = GateSettings()
    reference: str = "base"  # what tuned is compared with: the base model, or the last release's adapter
    test: str = SUPERIORITY  # or NON_INFERIORITY: min_delta is -m, the largest drop allowed

    @property
    def name(self) -> str:
        return f"{self.metric} delta" if self.reference == "base" else f"{self.metric} vs {self.reference}"

    def judge(self, tuned: Metrics, base: Metrics) -> GateResult:
        """The finding, the sentence of evidence, and the numbers every report shows, computed once."""
        delta, interval, text = self.judged(tuned, base)
        numbers = DeltaNumbers(self.metric, base.value(self.metric), tuned.value(self.metric), delta, interval.low,
                               interval.high, interval.confidence, self.min_delta, self.settings.judge_on)
        if self.settings.judge_on == "point":  # no claim at a confidence: not in the family, its raw p shown
            text += f", p={interval.p_value(self.min_delta):.2g} (judged on the point, not in the family)"
            return GateResult(self.name, self.finding(delta, interval, text, tuned), text, numbers)
        return judged_on(self.name, [self.comparison(interval, text, *examples_of(tuned))], text,
                         self.settings.inconclusive == "warn", numbers)

    def comparison(self, interval: DeltaInterval, text: str, n: int, samples: int = 1) -> Comparison:
        """The delta's claim on its (signed) interval, with the p-value of the interval's own test or resamples (and,
        for non-inferiority, that of the opposite claim, a drop beyond -min_delta); `n` counts examples, each of
        `samples` rows, so the size that would decide it is in examples too."""
        s = self.settings
        alpha = 1 - s.confidence
        fail_p = interval.p_value_beyond(self.min_delta) if self.test == NON_INFERIORITY else None
        return Comparison(self.what, self.test, interval.delta, interval.low, interval.high, self.min_delta,
                          interval.p_value(self.min_delta), alpha, n,
                          examples_to_detect(interval.delta - self.min_delta, interval.standard_error, n, alpha,
                                             s.power), text, fail_p_value=fail_p, samples=samples)

    def interval(self, tuned: Metrics, base: Metrics) -> DeltaInterval:
        """The paired interval of tuned - base (unsigned) the gate judges (loragate.gates.intervals)."""
        return gate_interval(tuned, base, self.metric, self.settings)

    def judged(self, tuned: Metrics, base: Metrics) -> tuple[float, DeltaInterval, str]:
        """(signed delta, its interval, a sentence with base, tuned, n, CI, McNemar p and MDE)."""
        sign = 1.0 if METRICS.get(self.metric).higher_is_better else -1.0
        s = self.settings
        interval = self.interval(tuned, base).signed(sign)
        low, high = interval.low, interval.high
        mde = minimum_detectable_effect(interval.standard_error, 1 - s.confidence, s.power)
        text = (f"{self.reference} {base.value(self.metric):.3f}, tuned {tuned.value(self.metric):.3f}, "
                f"n={sample_size(*examples_of(tuned))}, {s.confidence:.0%} CI [{low:+.3f}, {high:+.3f}]")
        text += mcnemar(self.metric, tuned, base)
        text += f", MDE {mde:.3f} at power {s.power:.0%}"
        return interval.delta, interval, text

    def fails(self, tuned: Metrics, base: Metrics) -> str | None:
        result = self.judge(tuned, base)
        return None if result.passed else result.finding

    @property
    def what(self) -> str:
        """What a finding calls the delta."""
        return f"{self.metric} delta"

    def finding(self, delta: float, interval: DeltaInterval, text: str, tuned: Metrics) -> str | None:
        """On the point (judge_on: point): the observed delta, backed by the interval where the split is small."""
        if delta < self.min_delta - EPSILON:
            return f"{self.what} {delta:+.3f} < required {self.min_delta:+.3f} ({text})"
        mde = minimum_detectable_effect(interval.standard_error, 1 - self.settings.confidence, self.settings.power)
        if interval.low < self.min_delta and mde > self.min_delta:
            return (f"{self.what} {delta:+.3f} is not evidence of +{self.min_delta:.3f}: "
                    f"n={sample_size(*examples_of(tuned))} is too "
                    f"small to detect it (minimum detectable {mde:.3f}) and the interval reaches below it ({text})")
        return None


def mcnemar(metric: str, tuned: Metrics, base: Metrics) -> str:
    """McNemar's exact p of a right-or-wrong metric, where each row is its own example: it counts rows as
    independent pairs, so where rows repeat an input (a sampled run's k samples, a duplicated test input) its p would
    be too small, and it is left out for the clustered interval to decide (docs/statistics.md)."""
    if not METRICS.get(metric).right_or_wrong:
        return ""
    if repeats_inputs(tuned):
        return ", McNemar n/a: rows repeat inputs, the clustered interval decides"
    return f", McNemar p={mcnemar_exact(base.correct(metric), tuned.correct(metric)).p_value:.2g}"


@dataclass(frozen=True)
class BeatsTrivial(MetricDelta):
    """tuned - the best constant predictor of the test split (`reference`: "always abstain", "majority class
    'a'") on `metric` must reach `min_delta`, judged as tuned - base is: beating a weak base proves nothing when a
    model that ignores its input scores as well (an adapter that learned to abstain, or the majority label)."""

    @property
    def what(self) -> str:
        return f"{self.metric} delta over {self.reference}"


def trivial_gates(settings: GateSettings, predictor: str, tuned: Metrics, trivial: Metrics) -> list[GateResult]:
    """Tuned against the trivial predictor on each metric of `settings.over_trivial()` (a card's own margins, else
    min_delta's, else its kind's default: empty only where the card sets `min_delta_over_trivial: {}`, which its
    report states); a metric the constant predictor has no value for (perplexity: a constant response has no
    likelihood) is not compared, and says so."""
    results = []
    for metric, margin in settings.over_trivial().items():
        check = BeatsTrivial(metric, margin, settings, reference=predictor)
        if metric in trivial.unavailable:
            results.append(GateResult(check.name, None, f"not compared: {trivial.unavailable[metric]}", skipped=True))
        else:
            results.append(judge(check, tuned, trivial))
    return results


@dataclass(frozen=True)
class Subgroup:
    """One subgroup of the test split (QA's has-answer questions, or one value of the card's `subgroups` field),
    scored for base and tuned by the kind's own metrics."""

    name: str
    n: int
    base: Metrics
    tuned: Metrics

    @property
    def samples(self) -> int:
        """Rows per example: k where the run sampled (eval.sampling), so the subgroup's size counts examples."""
        return getattr(self.tuned, "samples", 1)


def subgroup_gates(settings: GateSettings, subgroups: list[Subgroup]) -> list[GateResult]:
    """No subgroup may lose more than `max_subgroup_drop` against base (each subgroup's drop a comparison of the run's
    family, on its own examples' paired interval), and each must reach `min_subgroup_score`, per metric, by the
    per-key rule classes and fields are gated by: a gain on the whole split can hide a subgroup the adapter gave up on
    (QA: never answering). A card that sets either with no subgroups to gate fails, naming the fix."""
    results = []
    evidence = ", ".join(f"{group.name} n={sample_size(group.n // group.samples, group.samples)}"
                         for group in subgroups)
    for name, field, limits in (("subgroup regression", "max_subgroup_drop", settings.max_subgroup_drop),
                                ("subgroup floor", "min_subgroup_score", settings.min_subgroup_score)):
        if not limits:
            continue
        if not subgroups:
            results.append(GateResult(name, f"gates.{field} is set but the test split has no subgroups: name an "
                                            f"example field in the card's `subgroups`"))
            continue
        try:
            if field == "max_subgroup_drop":
                results.append(judged_on(name, subgroup_drops(settings, subgroups), evidence,
                                         settings.inconclusive == "warn"))
                continue
            findings = [finding for metric, limit in limits.items()
                        for finding in below_floor("subgroup", metric, METRICS.get(metric).higher_is_better,
                                                   subgroup_scores(metric, subgroups), limit,
                                                   subgroups[0].samples)]
        except MetricUnavailable as exc:
            results.append(GateResult(name, f"{name}: not judged, {exc}. Make it computable, or take it out of "
                                            f"gates.{field}", evidence))
            continue
        results.append(GateResult(name, "; ".join(findings) or None, evidence))
    return results


def subgroup_drops(settings: GateSettings, subgroups: list[Subgroup]) -> list[Comparison]:
    """Each subgroup's drop on each metric of max_subgroup_drop, on the paired interval of its own examples."""
    comparisons = []
    for metric, limit in settings.max_subgroup_drop.items():
        higher = METRICS.get(metric).higher_is_better
        for group, score in zip(subgroups, subgroup_scores(metric, subgroups)):
            interval = gate_interval(group.tuned, group.base, metric, settings)
            comparisons.append(drop_comparison("subgroup", metric, higher, score, interval, limit, settings,
                                               group.samples))
    return comparisons


def subgroup_scores(metric: str, subgroups: list[Subgroup]) -> list[KeyScore]:
    return [KeyScore(group.name, group.base.value(metric), group.tuned.value(metric), group.n) for group in subgroups]


@dataclass(frozen=True)
class Validity:
    """The share of tuned outputs that parse into the schema."""

    min_rate: float
    name: str = "validity"

    def judge(self, tuned: Metrics, base: Metrics) -> GateResult:
        return GateResult(self.name, self.fails(tuned, base), f"validity rate {tuned.validity_rate:.3f}, required "
                          f"{self.min_rate:.3f} (base {base.validity_rate:.3f}, n={tuned.n})")

    def fails(self, tuned: Metrics, base: Metrics) -> str | None:
        if tuned.validity_rate >= self.min_rate:
            return None
        invalid = round((1 - tuned.validity_rate) * tuned.n)
        lenient = round(getattr(tuned, "lenient_validity_rate", 0.0) * tuned.n)  # structured output only
        stripped = f", {lenient} of them valid only once a code fence or prose is stripped" if lenient else ""
        return (f"validity rate {tuned.validity_rate:.3f} < required {self.min_rate:.3f} "
                f"({invalid} of {tuned.n} outputs did not parse{stripped}; base {base.validity_rate:.3f})")


@dataclass(frozen=True)
class Floor:
    """The tuned model's `metric` must reach `minimum` (or stay at most it, for lower-is-better), whatever base did."""

    metric: str
    minimum: float

    @property
    def name(self) -> str:
        return f"{self.metric} floor"

    def judge(self, tuned: Metrics, base: Metrics) -> GateResult:
        return GateResult(self.name, self.fails(tuned, base), f"tuned {tuned.value(self.metric):.3f}")

    def fails(self, tuned: Metrics, base: Metrics) -> str | None:
        value = tuned.value(self.metric)
        higher = METRICS.get(self.metric).higher_is_better
        if reaches(value, self.minimum, higher):
            return None
        bound = "below the floor" if higher else "above the ceiling"
        return (f"{self.metric} {value:.3f} {bound} {self.minimum:.3f} (base {base.value(self.metric):.3f}, "
                f"n={sample_size(*examples_of(tuned))})")


def leakage_gate(leaked: list[str], n_test: int, max_share: float | None, external: bool = False) -> GateResult:
    """Test inputs that also appear in train: above the card's share the gate refuses, naming them. For an adapter
    trained elsewhere (`external`) "train" is the card's train split, which that adapter may never have seen: the
    finding says so rather than claim what it trained on."""
    share = len(leaked) / n_test if n_test else 0.0
    evidence = f"{len(leaked)} of {n_test} test inputs also in train"
    fix = "remove them from train or test, or the tuned score measures memory"
    if external:
        evidence = (f"{len(leaked)} of {n_test} test inputs also in the card's train split, which an adapter trained "
                    f"elsewhere may never have seen")
        fix = "if the adapter was trained on them its score measures memory: remove them from the test split"
    if max_share is None:
        return GateResult("train/test leakage", None, evidence + " (not gated: the card allows repeated inputs)")
    if share <= max_share + EPSILON:
        return GateResult("train/test leakage", None, evidence)
    return GateResult("train/test leakage", f"{evidence} ({share:.1%} > allowed {max_share:.1%}): "
                      f"{', '.join(leaked[:10])}{' ...' if len(leaked) > 10 else ''}; {fix}", evidence)


def checks_from(gates: GateSettings, kind_checks: Sequence[Check] = ()) -> list[Check]:
    """The card's gates as checks, with the kind's own (per class, for classification kinds); an unknown metric
    name is an error with a did-you-mean."""
    for where, metrics in (("gates.min_delta", gates.min_delta), ("gates.floors", gates.floors),
                           ("gates.min_delta_over_trivial", gates.over_trivial()),
                           ("gates.max_subgroup_drop", gates.max_subgroup_drop),
                           ("gates.min_subgroup_score", gates.min_subgroup_score)):
        for metric in metrics:
            if metric not in METRICS:
                raise ValueError(f"{where}: {METRICS.unknown_message(metric)}")
    return [
        *(MetricDelta(metric, minimum, gates) for metric, minimum in gates.min_delta.items()),
        *kind_checks,
        *(Floor(metric, minimum) for metric, minimum in gates.floors.items()),
        Validity(gates.min_validity),
    ]


def curve_gates(settings: GateSettings, manifest: Manifest | None, reference: Manifest | None) -> list[GateResult]:
    """The adapter's training loss curve against the baseline adapter's, and its validation curve (instruct tasks
    log one every `eval_every` steps) where both have one: a tolerance per point and a sign test for a shift to
    one side. `manifest` and `reference` are the adapters' loragate manifests (None: the adapter has none)."""
    training = CurveCheck(settings.curve_rtol, settings.curve_alpha, f"training curve vs {BASELINE}")
    curve, reference_curve = (m.loss_curve if m else None for m in (manifest, reference))
    if not curve or not reference_curve:
        without = [who for who, m in (("the adapter under test", manifest), ("the baseline adapter", reference))
                   if not (m and m.loss_curve)]
        return [GateResult(training.name, None, f"not compared: {' and '.join(without)} "
                           f"{'have' if len(without) > 1 else 'has'} no loragate manifest with a loss curve "
                           f"(trained elsewhere)", skipped=True)]
    results = [GateResult(training.name, training.fails(curve, reference_curve),
                          f"{len(curve)} steps within {training.rtol:.0%}, no one-sided shift")]
    validation = CurveCheck(settings.curve_rtol, settings.curve_alpha, f"validation curve vs {BASELINE}")
    points, reference_points = (m.eval_curve if m else None for m in (manifest, reference))
    if not points or not reference_points:
        return results
    steps, reference_steps = [step for step, _ in points], [step for step, _ in reference_points]
    if steps != reference_steps:
        return [*results, GateResult(validation.name, f"{validation.name}: logged at steps {steps[:5]}... vs "
                                                      f"{reference_steps[:5]}... in the baseline; retrain with the "
                                                      f"same eval_every and data to compare")]
    return [*results, GateResult(validation.name, validation.fails([loss for _, loss in points],
                                                                   [loss for _, loss in reference_points]),
                                 f"{len(steps)} validation points within {validation.rtol:.0%}, no one-sided shift")]


BASELINE = "baseline"  # the reference of the gates against the last release: "accuracy vs baseline"


def regression_checks(gates: GateSettings) -> list[Check]:
    """Against the last release (non-inferiority): on each gated metric the paired interval of tuned - baseline must
    have its lower bound at or above -margin (`max_regression`, 0.02 by default), whatever the card judges min_delta
    on: a drop is only accepted as small where the interval shows it small."""
    on_bound = gates.model_copy(update={"judge_on": "lower_bound"})
    return [MetricDelta(metric, -margin, on_bound, reference=BASELINE, test=NON_INFERIORITY)
            for metric, margin in gates.regression_margins().items()]


def against_the_last_release(result: GateResult) -> bool:
    """Whether `result` is a gate against the last release: its metrics' regression gates and its curves'."""
    return result.check.endswith(f" vs {BASELINE}")


def run_gates(checks: list[Check], tuned: Metrics, base: Metrics) -> list[GateResult]:
    return [judge(check, tuned, base) for check in checks]


def judge(check: Check, tuned: Metrics, base: Metrics) -> GateResult:
    """The check's result; a gate on a metric this machine could not compute fails, saying why: a release
    cannot pass on a number nobody measured."""
    try:
        return check.judge(tuned, base)
    except MetricUnavailable as exc:
        return GateResult(check.name, f"{check.name}: not judged, {exc}. Make it computable, or take it out of "
                                      f"the card's gates")
