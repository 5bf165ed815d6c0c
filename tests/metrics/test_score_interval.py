"""Tango's score interval of paired right/wrong scores (issue 33): known values, the test it inverts, agreement with
the bootstrap where the bootstrap is right (a large split), and clusters counted as the examples they are."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.stats import norm

from loragate.metrics.stats import ScoreTest, paired_bootstrap_means, paired_score_interval

Z = float(norm.ppf(0.975))


def pairs(both: int, base_only: int, tuned_only: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    """(base, tuned) right/wrong scores of a paired table."""
    base = [1] * both + [1] * base_only + [0] * tuned_only + [0] * neither
    tuned = [1] * both + [0] * base_only + [1] * tuned_only + [0] * neither
    return np.array(base, dtype=float), np.array(tuned, dtype=float)


def test_ten_pairs_with_none_discordant_leave_room_for_a_drop_of_0_278() -> None:
    """Nothing changed on 10 examples: the percentile bootstrap's interval is [0, 0] (no resample differs); the score
    interval is +/- z^2 / (n + z^2) = 0.2775, so neither a drop of 0.05 nor a gain is shown."""
    interval = paired_score_interval(*pairs(7, 0, 0, 3))
    assert interval.delta == 0.0
    assert interval.high == pytest.approx(Z**2 / (10 + Z**2), abs=1e-9) and interval.high == pytest.approx(0.2775,
                                                                                                         abs=1e-4)
    assert interval.low == pytest.approx(-interval.high, abs=1e-9)
    assert interval.p_value(-0.05) > 0.05 and interval.p_value(0.0) == 1.0, "no drop under 0.05 is shown"
    bootstrap = paired_bootstrap_means(*pairs(7, 0, 0, 3), resamples=1000)
    assert (bootstrap.low, bootstrap.high) == (0.0, 0.0), "the gap this interval closes"


def test_at_no_difference_the_statistic_is_mcnemars() -> None:
    """The score test of tuned - base = 0 is McNemar's: (c - b) / sqrt(b + c)."""
    assert ScoreTest(5, 15, 100).statistic(0.0) == pytest.approx(10 / math.sqrt(20))
    assert ScoreTest(9, 2, 40).statistic(0.0) == pytest.approx(-7 / math.sqrt(11))


@pytest.mark.parametrize("null", [-0.3, -0.1, 0.05, 0.2])
def test_the_variance_comes_from_the_maximum_likelihood_restricted_to_the_null(null: float) -> None:
    """Tango's closed form of P(base only) under the null, against the multinomial likelihood maximised numerically."""
    b, c, n = 3, 7, 25

    def minus_log_likelihood(p: float) -> float:
        return -(b * math.log(p) + c * math.log(p + null) + (n - b - c) * math.log(1 - 2 * p - null))

    best = minimize_scalar(minus_log_likelihood, bounds=(max(1e-9, -null + 1e-9), (1 - null) / 2 - 1e-9),
                           method="bounded", options={"xatol": 1e-12}).x
    variance = 2 * best + null - null**2
    assert ScoreTest(b, c, n).statistic(null) == pytest.approx((c - b - n * null) / math.sqrt(n * variance), rel=1e-6)


def test_its_p_values_decide_as_its_bounds_show() -> None:
    """The interval is the nulls its test keeps: the PASS claim's p is below alpha exactly where the lower bound clears
    the margin, the FAIL claim's exactly where the upper bound lies below it; lower-is-better signs both."""
    interval = paired_score_interval(*pairs(50, 6, 14, 30))
    for margin in np.linspace(-0.3, 0.3, 121):
        assert (interval.p_value(margin) < 0.05) == (interval.low > margin), margin
        assert (interval.p_value_beyond(margin) < 0.05) == (interval.high < margin), margin
    flipped = interval.signed(-1.0)
    assert (flipped.delta, flipped.low, flipped.high) == (-interval.delta, -interval.high, -interval.low)
    assert flipped.p_value(-0.1) == pytest.approx(interval.p_value_beyond(0.1))
    assert interval.p_value(0.1, sign=-1.0) == pytest.approx(flipped.p_value(0.1))


@pytest.mark.parametrize("n", [500, 2000])
def test_on_a_large_split_it_agrees_with_the_bootstrap(n: int) -> None:
    """Where the bootstrap is right (hundreds of examples, many discordant), both bounds agree within 0.002 and so do
    the standard errors."""
    rng = np.random.default_rng(1)
    kind = rng.choice(4, size=n, p=[0.5, 0.10, 0.15, 0.25])
    base, tuned = np.isin(kind, [0, 1]).astype(float), np.isin(kind, [0, 2]).astype(float)
    score, bootstrap = paired_score_interval(base, tuned), paired_bootstrap_means(base, tuned, 10_000)
    assert score.delta == pytest.approx(bootstrap.delta)
    assert (score.low, score.high) == pytest.approx((bootstrap.low, bootstrap.high), abs=0.002)
    assert score.standard_error == pytest.approx(bootstrap.standard_error, rel=0.05)


def test_clusters_count_as_the_examples_they_are() -> None:
    """60 examples each repeated 4 times (or sampled 4 times alike) give the interval of the 60, not of 240 rows: the
    counts are divided by the design effect, 4. Unequal repeats divide by sum(size^2) / rows."""
    base, tuned = pairs(30, 6, 12, 12)
    distinct = paired_score_interval(base, tuned)
    clustered = paired_score_interval(np.tile(base, 4), np.tile(tuned, 4), clusters=np.tile(np.arange(60), 4))
    assert (clustered.delta, clustered.low, clustered.high) == pytest.approx((distinct.delta, distinct.low,
                                                                               distinct.high), abs=1e-12)
    naive = paired_score_interval(np.tile(base, 4), np.tile(tuned, 4))
    assert naive.high - naive.low < 0.6 * (clustered.high - clustered.low), "rows alone would narrow it"
    ids = np.array([0, 0, 0, 1, 2, 3])  # sizes 3, 1, 1, 1: design effect (9 + 3) / 6 = 2
    test = paired_score_interval(np.zeros(6), np.ones(6), clusters=ids).score
    assert (test.tuned_only, test.n) == pytest.approx((3.0, 3.0))


def test_only_right_or_wrong_scores_are_taken() -> None:
    with pytest.raises(ValueError, match="right/wrong scores"):
        paired_score_interval(np.array([0.5, 1.0]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="equal-length"):
        paired_score_interval(np.ones(3), np.ones(4))
