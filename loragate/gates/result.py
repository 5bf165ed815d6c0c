"""What every gate check returns and the protocol a check follows: `judge(tuned, base)` gives the finding (None on a
pass) and what the report shows either way. A statistical gate also returns its comparisons, each with the p-value
that the run's family (loragate.gates.family) adjusts and judges again."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from loragate.metrics.scores import Metrics

EPSILON = 1e-12  # scores that are k/n fractions are not exact in floats: a value this close to its threshold is on it


class Check(Protocol):
    name: str

    def fails(self, tuned: Metrics, base: Metrics) -> str | None: ...

    def judge(self, tuned: Metrics, base: Metrics) -> GateResult:
        """The finding (None on a pass) and what the report shows either way, computed once."""


@dataclass(frozen=True)
class DeltaNumbers:
    """A metric gate's numbers, as tables and report.json show them."""

    metric: str
    reference: float  # base, or the last release's adapter
    tuned: float
    delta: float  # signed: positive is better, whatever the metric's direction
    low: float  # the paired interval of the signed delta (loragate.gates.intervals)
    high: float
    confidence: float
    required: float  # the card's min_delta (or -max_regression against the baseline)
    judged_on: str  # "point" or "lower_bound"


SUPERIORITY = "superiority"  # the delta must be shown above the margin (min_delta, over the trivial predictor)
NON_INFERIORITY = "non-inferiority"  # the drop must be shown under m: the delta above -m (per-key drops, regressions)
Outcome = Literal["PASS", "FAIL", "INCONCLUSIVE"]


@dataclass(frozen=True)
class Comparison:
    """One statistical claim of a gate, on the paired interval of a signed delta (positive is better): the delta is
    above `margin` (superiority), or no drop of -margin or more (non-inferiority). Its p-value is of the null that
    the claim is false; the run's family adjusts it (`adjusted`, over `family` comparisons) and judges it: PASS where
    the adjusted p is below alpha; else FAIL for superiority (not shown). A non-inferiority comparison makes a second,
    opposite claim, "it drops by more than -margin", with its own p-value (`fail_p_value`) adjusted over the family's
    FAIL claims (`fail_adjusted`, over `fail_family`): FAIL where that is below alpha, else INCONCLUSIVE. So both
    claims a drop gate can make are family-controlled (docs/statistics.md)."""

    what: str  # "accuracy delta", "class 'setosa' accuracy"
    test: Literal["superiority", "non-inferiority"]
    delta: float
    low: float
    high: float
    margin: float  # the signed delta's threshold: min_delta, or -m
    p_value: float  # raw, from what gave the interval: its score test or its resamples (DeltaInterval.p_value)
    alpha: float  # 1 - the card's confidence
    n: int  # the examples the interval resampled (distinct examples: a sampled run's k rows of one count once)
    needed: int | None  # the test-set size, in examples, at which the card's power would decide it; None: the delta
    # is on the margin
    detail: str = ""  # the check's own sentence (base, tuned, n, CI, McNemar p, MDE), carried into its finding
    adjusted: float | None = None  # the family's adjusted p (the raw p without correction); None: not yet judged in
    # a family, which judges it alone
    family: int = 1  # comparisons in the family
    correction: str = "holm"  # the card's gates.correction
    fail_p_value: float | None = None  # non-inferiority: raw p of the null "the drop is at most -margin", from the
    # same test or resamples (DeltaInterval.p_value_beyond); None for superiority, which claims no FAIL
    fail_adjusted: float | None = None  # adjusted over the family's FAIL claims; None: not yet judged in a family
    fail_family: int = 1  # FAIL claims (non-inferiority comparisons) in the family
    samples: int = 1  # rows per example: k where the run sampled (eval.sampling)

    def __post_init__(self) -> None:
        if self.test == NON_INFERIORITY and self.fail_p_value is None:
            raise ValueError(f"{self.what}: a non-inferiority comparison needs fail_p_value, the p-value of its FAIL "
                             f"claim (loragate.metrics.stats.DeltaInterval.p_value_beyond)")

    @property
    def decisive(self) -> float:
        """The p-value the comparison is judged on: adjusted, once the family has judged it."""
        return self.p_value if self.adjusted is None else self.adjusted

    @property
    def fail_decisive(self) -> float:
        """The FAIL claim's p-value as judged: adjusted over the family's FAIL claims, once it has judged them."""
        if self.fail_p_value is None:
            return 1.0
        return self.fail_p_value if self.fail_adjusted is None else self.fail_adjusted

    @property
    def outcome(self) -> Outcome:
        if self.decisive < self.alpha:
            return "PASS"
        if self.test == SUPERIORITY or self.fail_decisive < self.alpha:
            return "FAIL"
        return "INCONCLUSIVE"

    def shown(self) -> tuple[float, float, int]:
        """(raw p, adjusted p, family size) of the claim the outcome rests on: a declared drop's FAIL claim, else
        the PASS claim."""
        if self.test == NON_INFERIORITY and self.outcome == "FAIL":
            return self.fail_p_value, self.fail_decisive, self.fail_family
        return self.p_value, self.decisive, self.family

    def evidence(self) -> str:
        """The raw and adjusted evidence every renderer shows: "p=0.0002, Holm p=0.0014 over 7 comparisons"; for a
        declared drop, its FAIL claim's: "p(drop > 0.05)=0.0002, Holm p=0.004 over 20 FAIL claims"."""
        raw, adjusted, family = self.shown()
        declared = self.test == NON_INFERIORITY and self.outcome == "FAIL"
        claim, p = ("FAIL claim", f"p(drop > {-self.margin:.3g})") if declared else ("comparison", "p")
        counted = f"{family} {claim}{'' if family == 1 else 's'}"
        if self.correction == "none":
            return f"{p}={raw:.2g}, uncorrected ({counted})"
        return f"{p}={raw:.2g}, Holm p={adjusted:.2g} over {counted}"

    @property
    def size(self) -> str:
        """The test-set size as findings name it: "30", or "30 x 5 samples" where each example was sampled k times."""
        return sample_size(self.n, self.samples)

    def explained(self) -> str:
        """The p-values, with the check's own sentence where it has one."""
        return f"{self.detail}, {self.evidence()}" if self.detail else self.evidence()

    def finding(self) -> str | None:
        """None on a PASS; else what failed or could not be decided, with the interval and the size that would
        decide it."""
        outcome = self.outcome
        if outcome == "PASS":
            return None
        interval = f"{self.delta:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"
        size = (f"about {self.needed} examples (now {self.size}) would decide it at the card's power" if self.needed
                else "the delta sits on the margin: no test-set size decides it")
        if outcome == "INCONCLUSIVE":
            where = (f"clears the allowed drop {self.margin:+.3f} alone but not with its family"
                     if self.low >= self.margin - EPSILON else
                     f"lies beyond the allowed drop {self.margin:+.3f} alone but not with its family's FAIL claims"
                     if self.high < self.margin - EPSILON else f"straddles the allowed drop {self.margin:+.3f}")
            return (f"INCONCLUSIVE: {self.what} {interval} {where}: n={self.size} cannot tell whether it drops by "
                    f"more; {size} ({self.explained()})")
        if self.test == NON_INFERIORITY:
            return (f"{self.what} lower bound {self.low:+.3f} < required {self.margin:+.3f}, and so is its upper bound "
                    f"{self.high:+.3f}: a drop of more than {-self.margin:.3f} is shown (delta {self.delta:+.3f}, "
                    f"n={self.size}, {self.explained()})")
        if self.low < self.margin - EPSILON:
            return (f"{self.what} lower bound {self.low:+.3f} < required {self.margin:+.3f} (delta {self.delta:+.3f}, "
                    f"{self.explained()})")
        return (f"{self.what} lower bound {self.low:+.3f} clears {self.margin:+.3f}, but its p-value is not below "
                f"alpha {self.alpha:.2g} (delta {self.delta:+.3f}, {self.explained()})")

    def in_family(self, adjusted: float, family: int, correction: str, fail_adjusted: float | None = None,
                  fail_family: int = 1) -> Comparison:
        return replace(self, adjusted=adjusted, family=family, correction=correction, fail_adjusted=fail_adjusted,
                       fail_family=fail_family)


def sample_size(examples: int, samples: int) -> str:
    """"30" examples, or "30 x 5 samples" where each was sampled k times: rows are not independent examples."""
    return f"{examples} x {samples} samples" if samples > 1 else f"{examples}"


def examples_of(metrics: Metrics) -> tuple[int, int]:
    """(examples, samples of each) that `metrics` scored: a sampled run's k rows of one example count once, as the
    paired interval counts them as one cluster."""
    samples = getattr(metrics, "samples", 1)  # a kind's own container without it scored each example once
    return metrics.n // samples, samples


def repeats_inputs(metrics: Metrics) -> bool:
    """Whether rows of `metrics` repeat an input (an example's samples, or a duplicated test input)."""
    groups = getattr(metrics, "input_groups", ())
    return len(set(groups)) < len(groups)


@dataclass(frozen=True)
class GateResult:
    check: str
    finding: str | None
    evidence: str | None = None
    numbers: DeltaNumbers | None = None  # a metric delta gate's interval and threshold
    skipped: bool = False  # nothing to compare (a curve an adapter trained elsewhere never logged): the evidence says
    # why; it fails nothing and is shown as skipped, never as ok
    comparisons: tuple[Comparison, ...] = ()  # a statistical gate's claims, judged by the run's family: its finding
    # is theirs (judged_on); empty for deterministic checks and for deltas judged on the point
    inconclusive: bool = False  # the finding is that the split cannot decide, not that the gate failed
    warned: bool = False  # inconclusive under the card's `gates.inconclusive: warn`: shown, failing nothing

    @property
    def passed(self) -> bool:
        return self.finding is None or self.warned

    @property
    def status(self) -> str:
        """What every report shows: ok, FAIL, INCONCLUSIVE, or skipped."""
        if self.finding is not None:
            return "INCONCLUSIVE" if self.inconclusive else "FAIL"
        return "skipped" if self.skipped else "ok"

    @property
    def word(self) -> str:
        """The status as report.md, report.html and summary.md show it: PASS, FAIL, INCONCLUSIVE or SKIPPED."""
        return {"ok": "PASS", "skipped": "SKIPPED"}.get(self.status, self.status)


def judged_on(check: str, comparisons: list[Comparison], evidence: str | None, warn: bool,
              numbers: DeltaNumbers | None = None) -> GateResult:
    """A statistical gate's result from its comparisons' outcomes: FAIL where any failed, else INCONCLUSIVE where any
    could not be decided (a warning only, under `warn`), else a pass."""
    findings = [c.finding() for c in comparisons]
    failed = [text for c, text in zip(comparisons, findings) if c.outcome == "FAIL"]
    undecided = [text for c, text in zip(comparisons, findings) if c.outcome == "INCONCLUSIVE"]
    if failed:
        return GateResult(check, "; ".join([*failed, *undecided]), evidence, numbers, comparisons=tuple(comparisons))
    if undecided:
        return GateResult(check, "; ".join(undecided), evidence, numbers, comparisons=tuple(comparisons),
                          inconclusive=True, warned=warn)
    return GateResult(check, None, evidence, numbers, comparisons=tuple(comparisons))
