"""Curve regression and the mean-score bootstrap, on curves and scores whose truth is known."""

from __future__ import annotations

import numpy as np
import pytest

from loragate.gates.curves import CurveCheck
from loragate.metrics.stats import paired_bootstrap_means, sign_test

REFERENCE = list(np.linspace(3.0, 0.5, 40))


def test_an_identical_curve_passes() -> None:
    assert CurveCheck().fails(REFERENCE, REFERENCE) is None


def test_noise_on_both_sides_within_tolerance_passes() -> None:
    noise = np.random.default_rng(0).normal(0, 0.005, len(REFERENCE))
    assert CurveCheck(rtol=0.05).fails(list(np.array(REFERENCE) * (1 + noise)), REFERENCE) is None


def test_a_jump_beyond_tolerance_names_the_step() -> None:
    current = list(REFERENCE)
    current[9] *= 1.2
    finding = CurveCheck(rtol=0.05).fails(current, REFERENCE)
    assert finding is not None and "step 10:" in finding and "20.0% > tolerance 5.0%" in finding, finding


def test_a_small_shift_to_one_side_is_caught_by_the_sign_test() -> None:
    current = list(np.array(REFERENCE) * 1.01)  # 1% above everywhere: inside a 5% tolerance
    finding = CurveCheck(rtol=0.05).fails(current, REFERENCE)
    assert finding is not None and "above the reference at 40 of 40 steps" in finding, finding


def test_curves_of_different_lengths_or_non_finite_are_refused() -> None:
    assert "40 in the reference" in CurveCheck().fails(REFERENCE[:-1], REFERENCE)
    assert "non-finite value at step 3" in CurveCheck().fails(REFERENCE[:2] + [float("nan")] + REFERENCE[3:], REFERENCE)


def test_sign_test_by_hand() -> None:
    # 9 of 10 above: p = 2 * P(X <= 1 | 10, 1/2) = 2 * 11 / 1024
    assert sign_test(np.array([1.0] * 9 + [-1.0])) == pytest.approx(22 / 1024)
    assert sign_test(np.zeros(5)) == 1.0


def test_mean_score_bootstrap_covers_a_known_perplexity_gain() -> None:
    """Per-example NLL drops by 0.2 nats on average; perplexity delta = exp(mean tuned) - exp(mean base)."""
    rng = np.random.default_rng(0)
    base = rng.normal(2.0, 0.5, 400)
    tuned = base - 0.2 + rng.normal(0, 0.1, 400)
    interval = paired_bootstrap_means(base, tuned, resamples=10_000, of_mean=np.exp)
    assert interval.delta == pytest.approx(np.exp(tuned.mean()) - np.exp(base.mean()))
    assert interval.low <= interval.delta <= interval.high < 0, interval
    truth = np.exp(1.8) - np.exp(2.0)
    assert interval.low - 0.1 < truth < interval.high + 0.1, (truth, interval)


def test_mean_score_bootstrap_refuses_unpaired_scores() -> None:
    with pytest.raises(ValueError, match="equal-length"):
        paired_bootstrap_means(np.zeros(3), np.zeros(4))
