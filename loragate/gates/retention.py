"""Retention probes judged: what the tuned model must keep of its base's skill outside the card's task (the card's
`retention:`, loragate.card.retention), as non-inferiority against base on the paired interval's bound, the rule the
gates against the last release follow (checks.regression_checks): a drop is only accepted as small where the interval
shows it small, whatever the card judges its min_delta on.

- A task probe: tuned - base on the probe task's metric, over its test split, must have its lower bound at or above
  -max_drop (ProbeDrop, a MetricDelta: the same interval, McNemar's test and minimum detectable effect).
- A text probe: the rise in perplexity on the user's general text, tuned/base - 1, must have its upper bound at or
  under max_rise (PerplexityRise). Relative, so one margin means the same on any tokenizer: a rise of r is
  log(1 + r) nats per token whatever the base's perplexity. Lines are the paired rows: the interval resamples lines,
  each scored by both models, its mean NLL weighted by its tokens.

Each probe is one comparison of the run's family (loragate.gates.family, Holm with the target's): PASS where the
interval shows the loss within the margin, FAIL where it shows it beyond, INCONCLUSIVE where it straddles it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from loragate.card.gate_settings import GateSettings
from loragate.gates.checks import MetricDelta
from loragate.gates.result import NON_INFERIORITY, Comparison, DeltaNumbers, GateResult, judged_on
from loragate.metrics.stats import (
    DeltaInterval,
    bootstrap_p_value,
    bootstrap_p_value_beyond,
    examples_to_detect,
    minimum_detectable_effect,
    paired_bootstrap_means,
)

RETENTION = "retention"  # every probe's gate is named "retention <probe>: <metric>"


def on_bound(settings: GateSettings) -> GateSettings:
    """The card's gate settings (confidence, resamples, seed, power), judged on the interval's bound."""
    return settings.model_copy(update={"judge_on": "lower_bound"})


def is_retention(result: GateResult) -> bool:
    """Whether `result` is a retention probe's gate."""
    return result.check.startswith(f"{RETENTION} ")


@dataclass(frozen=True)
class ProbeDrop(MetricDelta):
    """tuned - base on a probe task's `metric` (sign flipped for lower-is-better), whose lower bound must reach
    `min_delta`, the probe's -max_drop."""

    probe: str = ""

    @property
    def name(self) -> str:
        return f"{RETENTION} {self.probe}: {self.metric}"

    @property
    def what(self) -> str:
        return f"{self.probe} {self.metric} delta"


def probe_drop(probe: str, metric: str, max_drop: float, settings: GateSettings) -> ProbeDrop:
    return ProbeDrop(metric, -max_drop, on_bound(settings), test=NON_INFERIORITY, probe=probe)


@dataclass(frozen=True)
class LineLosses:
    """One model's losses on a text probe: per line (or chunk of a long line), the summed NLL of its tokens and
    their count; both models are scored on the same lines in the same order."""

    nll: np.ndarray
    tokens: np.ndarray

    @property
    def nats_per_token(self) -> float:
        return float(self.nll.sum() / self.tokens.sum())

    @property
    def perplexity(self) -> float:
        return math.exp(self.nats_per_token)


@dataclass(frozen=True)
class PerplexityRise:
    """The rise in perplexity on a text probe, tuned/base - 1, whose upper bound must be at most `max_rise`."""

    probe: str  # the text file as the card names it
    max_rise: float
    settings: GateSettings = GateSettings()

    @property
    def name(self) -> str:
        return f"{RETENTION} {self.probe}: perplexity"

    def interval(self, tuned: LineLosses, base: LineLosses) -> DeltaInterval:
        """The paired-bootstrap interval of tuned - base in nats per token (lines resampled, each weighted by its
        tokens): exp of it is the ratio of the perplexities."""
        if not np.array_equal(tuned.tokens, base.tokens):
            raise ValueError(f"{self.probe}: base and tuned were scored on different lines or tokens; cannot pair them")
        s = self.settings
        return paired_bootstrap_means(base.nll / base.tokens, tuned.nll / tuned.tokens, s.bootstrap_resamples,
                                      s.confidence, s.bootstrap_seed, weights=tuned.tokens)

    def judge(self, tuned: LineLosses, base: LineLosses) -> GateResult:
        """The finding (None on a pass), the evidence, and the numbers as every report shows a gated metric: the
        delta signed so that positive is better (1 - tuned/base, the rise negated), its interval, and -max_rise as
        the required lower bound. One non-inferiority comparison of the run's family, its p-value counted in nats
        per token on the interval's own resamples (the rise is a monotone function of them)."""
        nats = self.interval(tuned, base)
        rise, low, high = (math.expm1(value) for value in (nats.delta, nats.low, nats.high))
        s = self.settings
        alpha = 1 - s.confidence
        margin = math.log1p(self.max_rise)  # the largest rise allowed, in nats per token
        mde = math.expm1(minimum_detectable_effect(nats.standard_error, alpha, s.power))
        rows = len(tuned.tokens)
        evidence = (f"base perplexity {base.perplexity:.3f}, tuned {tuned.perplexity:.3f}, rise {rise:+.1%}, "
                    f"{nats.confidence:.0%} CI [{low:+.1%}, {high:+.1%}], allowed {self.max_rise:+.1%}, {rows} rows, "
                    f"{int(tuned.tokens.sum())} tokens, MDE {mde:.1%} at power {s.power:.0%}")
        comparison = Comparison(f"{self.probe} perplexity 1 - tuned/base", NON_INFERIORITY, -rise, -high, -low,
                                -self.max_rise, bootstrap_p_value(nats.draws, -margin, sign=-1.0), alpha, rows,
                                examples_to_detect(margin - nats.delta, nats.standard_error, rows, alpha, s.power),
                                evidence, fail_p_value=bootstrap_p_value_beyond(nats.draws, -margin, sign=-1.0))
        numbers = DeltaNumbers("perplexity", base.perplexity, tuned.perplexity, -rise, -high, -low, nats.confidence,
                               -self.max_rise, "lower_bound")
        return judged_on(self.name, [comparison], evidence, s.inconclusive == "warn", numbers)
