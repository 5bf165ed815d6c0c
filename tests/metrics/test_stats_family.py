"""Holm's step-down, the bootstrap p-value of a margin and the test-set size that would decide a comparison
(issue 33, points 1 and 2)."""

from __future__ import annotations

import numpy as np
import pytest

from loragate.metrics.stats import (
    bootstrap_p_value,
    bootstrap_p_value_beyond,
    examples_to_detect,
    holm,
    minimum_detectable_effect,
    paired_bootstrap_means,
)


def test_holm_adjusts_the_textbook_example() -> None:
    """p = (0.01, 0.04, 0.03, 0.005): sorted, 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 held at
    0.06 (step-down: never below the one before). At alpha 0.05 only the first and the last hypotheses are rejected,
    where testing each alone would reject all four."""
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5]) == [0.5] and holm([]) == []
    assert holm([0.3, 0.4]) == pytest.approx([0.6, 0.6]) and max(holm([0.9, 0.8, 0.7])) == 1.0, "capped at 1"


def test_the_p_value_counts_the_draws_on_the_null_side_with_the_plus_one_correction() -> None:
    draws = np.arange(-5, 95) / 100  # 100 resampled deltas, 5 of them below 0
    assert bootstrap_p_value(draws, 0.0) == pytest.approx(2 * 6 / 101)
    assert bootstrap_p_value(draws, -0.05) == pytest.approx(2 / 101), "a draw on the margin is on the passing side"
    assert bootstrap_p_value(draws, 0.5) == 1.0, "capped at 1"
    assert bootstrap_p_value(-draws, 0.0, sign=-1.0) == pytest.approx(2 * 6 / 101), "lower-is-better: signed draws"


def test_the_fail_claims_p_value_counts_the_draws_at_or_above_the_margin() -> None:
    """The opposite null, "the signed delta is at or above the margin" (a drop no larger than allowed): a draw on the
    margin is on its null side, so a FAIL needs the draws beyond it."""
    draws = np.arange(-95, 5) / 100  # 100 resampled deltas, 5 of them at or above 0
    assert bootstrap_p_value_beyond(draws, 0.0) == pytest.approx(2 * 6 / 101)
    assert bootstrap_p_value_beyond(draws, 0.04) == pytest.approx(2 * 2 / 101), "the draw on the margin counts"
    assert bootstrap_p_value_beyond(-draws, 0.0, sign=-1.0) == pytest.approx(2 * 6 / 101), "signed draws"
    assert bootstrap_p_value_beyond(draws, -0.5) == 1.0, "capped at 1"


def test_the_p_value_reads_the_intervals_own_resamples_and_agrees_with_its_bound() -> None:
    rng = np.random.default_rng(0)
    base, tuned = rng.random(200), rng.random(200) + 0.1
    interval = paired_bootstrap_means(base, tuned, resamples=4000, seed=3)
    assert interval.draws is not None and len(interval.draws) == 4000
    assert np.quantile(interval.draws, [0.025, 0.975]) == pytest.approx([interval.low, interval.high])
    for margin in (interval.low - 0.02, interval.low + 0.02):
        assert (bootstrap_p_value(interval.draws, margin) < 0.05) == (interval.low >= margin), margin


def test_the_size_that_would_decide_a_comparison_brings_the_mde_down_to_its_distance_from_the_margin() -> None:
    se, n = 0.05, 40  # MDE 0.140 at alpha 0.05, power 0.8
    needed = examples_to_detect(0.07, se, n, 0.05, 0.8)
    assert needed == int(np.ceil(n * (minimum_detectable_effect(se, 0.05, 0.8) / 0.07) ** 2)) and needed > n
    assert minimum_detectable_effect(se * np.sqrt(n / needed), 0.05, 0.8) <= 0.07 + 1e-9
    assert examples_to_detect(-0.07, se, n, 0.05, 0.8) == needed, "a drop beyond the margin is decided alike"
    assert examples_to_detect(0.0, se, n, 0.05, 0.8) is None, "a delta on the margin: no size decides it"
