"""Retention probes judged (loragate.gates.retention): a probe task's drop and a text file's rise in perplexity, each
as non-inferiority against base on the paired interval's bound, on constructed scores."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loragate.card.settings import GateSettings
from loragate.gates.retention import LineLosses, PerplexityRise, is_retention, probe_drop
from loragate.metrics.scores import metrics_from_confusion


def two_class(right: int, of: int = 100):
    """Metrics of 2 x `of` examples, `right` of each class right."""
    return metrics_from_confusion([[right, of - right], [of - right, right]], ["a", "b"])


def test_a_probe_task_that_drops_beyond_its_margin_fails_and_one_that_holds_passes() -> None:
    base = two_class(90)
    dropped = probe_drop("sst2", "accuracy", 0.05, GateSettings()).judge(two_class(60), base)
    assert dropped.check == "retention sst2: accuracy" and is_retention(dropped)
    assert not dropped.passed
    assert "sst2 accuracy delta" in dropped.finding and "base 0.900, tuned 0.600, n=200" in dropped.finding, \
        dropped.finding
    assert dropped.numbers.required == pytest.approx(-0.05) and dropped.numbers.judged_on == "lower_bound"
    held = probe_drop("sst2", "accuracy", 0.05, GateSettings()).judge(two_class(90), base)
    assert held.passed, held.finding


def test_a_probe_task_is_judged_on_the_bound_whatever_the_card_judges_min_delta_on() -> None:
    """A drop of 0.03 inside a margin of 0.05 is not shown to be small on 20 examples a class: the point estimate
    alone would pass it."""
    base, tuned = two_class(18, 20), two_class(17, 20)  # 0.90 -> 0.85 (-0.05 in floats: on the margin, wide CI)
    on_point = GateSettings(judge_on="point")
    result = probe_drop("sst2", "accuracy", 0.06, on_point).judge(tuned, base)
    assert not result.passed, "a drop the interval cannot show under 0.06 passed"
    assert result.numbers.judged_on == "lower_bound"


def losses(per_token: list[float], tokens: list[int]) -> LineLosses:
    return LineLosses(np.array(per_token) * np.array(tokens), np.array(tokens))


def test_a_rise_in_perplexity_beyond_max_rise_fails_naming_the_rise_and_its_interval() -> None:
    rng = np.random.default_rng(0)
    tokens = rng.integers(5, 30, size=300).tolist()
    nats = rng.normal(3.0, 0.3, size=300)
    base = losses(nats.tolist(), tokens)
    worse = losses((nats + 0.3 + rng.normal(0, 0.05, size=300)).tolist(), tokens)  # e^0.3 - 1: a 35% rise
    result = PerplexityRise("data/general.txt", 0.05).judge(worse, base)
    assert result.check == "retention data/general.txt: perplexity" and is_retention(result)
    assert not result.passed
    assert result.status == "FAIL", result.finding
    assert result.finding.startswith("data/general.txt perplexity 1 - tuned/base "), result.finding
    assert "-0.050" in result.finding and "shown" in result.finding, result.finding
    assert "base perplexity" in result.finding and "rise +3" in result.finding and "300 rows" in result.finding
    assert result.numbers.reference == pytest.approx(base.perplexity)
    assert result.numbers.tuned == pytest.approx(worse.perplexity)
    assert -result.numbers.delta == pytest.approx(worse.perplexity / base.perplexity - 1), "the rise is relative"
    assert result.numbers.required == pytest.approx(-0.05)
    assert result.numbers.low <= result.numbers.delta <= result.numbers.high


def test_perplexity_within_max_rise_passes_and_a_fall_passes() -> None:
    rng = np.random.default_rng(1)
    tokens = rng.integers(5, 30, size=300).tolist()
    nats = rng.normal(3.0, 0.3, size=300)
    base = losses(nats.tolist(), tokens)
    same = losses((nats + rng.normal(0, 0.01, size=300)).tolist(), tokens)
    better = losses((nats - 0.2).tolist(), tokens)
    kept = PerplexityRise("general.txt", 0.05).judge(same, base)
    assert kept.passed and kept.comparisons[0].p_value < 0.05, kept.evidence
    fell = PerplexityRise("general.txt", 0.05).judge(better, base)
    assert fell.passed and fell.numbers.delta == pytest.approx(-math.expm1(-0.2)), fell.evidence


def test_a_rise_the_lines_cannot_bound_under_max_rise_is_inconclusive() -> None:
    """An average rise of 2% on a few noisy lines: the interval reaches beyond 5%, so the rise is not shown small, nor
    shown large: INCONCLUSIVE, which fails the run unless the card says `gates.inconclusive: warn`, naming the rows
    that would decide it."""
    rng = np.random.default_rng(2)
    tokens = [10] * 12
    nats = rng.normal(3.0, 0.3, size=12)
    base = losses(nats.tolist(), tokens)
    noisy = losses((nats + math.log(1.02) + rng.normal(0, 0.2, size=12)).tolist(), tokens)
    result = PerplexityRise("general.txt", 0.05).judge(noisy, base)
    assert not result.passed and result.inconclusive and result.numbers.low < -0.05 < result.numbers.high
    assert result.finding.startswith("INCONCLUSIVE: general.txt perplexity 1 - tuned/base"), result.finding
    assert "examples (now 12) would decide it" in result.finding, result.finding
    assert PerplexityRise("general.txt", 0.05, GateSettings(inconclusive="warn")).judge(noisy, base).passed


def test_lines_scored_on_other_tokens_cannot_be_paired() -> None:
    with pytest.raises(ValueError, match="base and tuned were scored on different lines or tokens"):
        PerplexityRise("general.txt", 0.05).judge(losses([1.0, 2.0], [3, 4]), losses([1.0, 2.0], [3, 5]))
