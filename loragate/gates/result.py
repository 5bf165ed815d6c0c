"""What every gate check returns and the protocol a check follows: `judge(tuned, base)` gives the finding (None on a
pass) and what the report shows either way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

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
    low: float  # the paired-bootstrap interval of the signed delta
    high: float
    confidence: float
    required: float  # the card's min_delta (or -max_regression against the baseline)
    judged_on: str  # "point" or "lower_bound"


@dataclass(frozen=True)
class GateResult:
    check: str
    finding: str | None
    evidence: str | None = None
    numbers: DeltaNumbers | None = None  # a metric delta gate's interval and threshold
    skipped: bool = False  # nothing to compare (a curve an adapter trained elsewhere never logged): the evidence says
    # why; it fails nothing and is shown as skipped, never as ok

    @property
    def passed(self) -> bool:
        return self.finding is None

    @property
    def status(self) -> str:
        """What every report shows: ok, FAIL, or skipped."""
        return "FAIL" if self.finding is not None else "skipped" if self.skipped else "ok"
