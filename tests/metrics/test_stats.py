"""Paired statistics against textbook values and against known truth on synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import f1_score, precision_score, recall_score

from loragate.metrics.stats import mcnemar_exact, metric_on_resamples, minimum_detectable_effect, paired_bootstrap


def pairs(both: int, base_only: int, tuned_only: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    base = np.array([1] * both + [1] * base_only + [0] * tuned_only + [0] * neither, dtype=bool)
    tuned = np.array([1] * both + [0] * base_only + [1] * tuned_only + [0] * neither, dtype=bool)
    return base, tuned


def test_mcnemar_exact_by_hand() -> None:
    # 1 vs 10 discordant pairs: p = 2 * P(X <= 1 | 11, 1/2) = 2 * (1 + 11) / 2**11
    result = mcnemar_exact(*pairs(9, 1, 10, 10))
    assert (result.base_only, result.tuned_only) == (1, 10)
    assert result.p_value == pytest.approx(24 / 2048, abs=1e-12), result


@pytest.mark.parametrize("base_only,tuned_only", [(150, 86), (5, 5), (0, 7), (40, 12)])
def test_mcnemar_exact_matches_a_binomial_test(base_only: int, tuned_only: int) -> None:
    result = mcnemar_exact(*pairs(300, base_only, tuned_only, 100))
    expected = binomtest(min(base_only, tuned_only), base_only + tuned_only, 0.5).pvalue
    assert result.p_value == pytest.approx(expected, rel=1e-9), (result, expected)


def test_mcnemar_without_discordant_pairs_is_no_evidence() -> None:
    assert mcnemar_exact(*pairs(10, 0, 0, 5)).p_value == 1.0


@pytest.mark.parametrize("metric,sklearn_metric,average", [
    ("macro_f1", f1_score, "macro"), ("weighted_f1", f1_score, "weighted"),
    ("macro_precision", precision_score, "macro"), ("macro_recall", recall_score, "macro"),
])
def test_resampled_metrics_equal_sklearn(metric: str, sklearn_metric, average: str) -> None:
    rng = np.random.default_rng(3)
    gold = rng.integers(0, 3, size=(20, 50))
    predicted = np.where(rng.random((20, 50)) < 0.6, gold, rng.integers(0, 4, size=(20, 50)))  # 3 = invalid
    ours = metric_on_resamples(metric, gold, predicted, 3)
    theirs = [sklearn_metric(g, p, labels=[0, 1, 2], average=average, zero_division=0) for g, p in zip(gold, predicted)]
    np.testing.assert_allclose(ours, theirs, atol=1e-12, err_msg=metric)


def test_bootstrap_interval_covers_the_truth_about_95_percent() -> None:
    """200 synthetic splits with a known accuracy gain of +0.10; the 95% interval must cover it ~95% of the time."""
    rng = np.random.default_rng(0)
    n, covered, trials = 150, 0, 200
    for trial in range(trials):
        gold = np.zeros(n, dtype=int)
        base = np.where(rng.random(n) < 0.6, 0, 1)  # 60% right
        tuned = np.where(rng.random(n) < 0.7, 0, 1)  # 70% right, independent of base
        interval = paired_bootstrap("accuracy", gold, base, tuned, 2, resamples=2000, seed=trial)
        covered += interval.low <= 0.10 <= interval.high
    assert 0.90 <= covered / trials <= 0.99, f"coverage {covered / trials:.3f} of a nominal 95% interval"


def test_bootstrap_is_seeded_and_its_delta_is_exact() -> None:
    rng = np.random.default_rng(1)
    gold = rng.integers(0, 3, 80)
    base, tuned = rng.integers(0, 3, 80), gold.copy()
    first = paired_bootstrap("macro_f1", gold, base, tuned, 3, resamples=1000, seed=7)
    assert first == paired_bootstrap("macro_f1", gold, base, tuned, 3, resamples=1000, seed=7)
    expected = 1.0 - f1_score(gold, base, average="macro")
    assert first.delta == pytest.approx(expected, abs=1e-12)
    assert first.low <= first.delta <= first.high


def test_minimum_detectable_effect_formula() -> None:
    # (z_0.975 + z_0.8) x SE = (1.959964 + 0.841621) x 0.1
    assert minimum_detectable_effect(0.1, alpha=0.05, power=0.8) == pytest.approx(0.2801585, abs=1e-6)
    assert minimum_detectable_effect(0.1, alpha=0.01, power=0.9) > minimum_detectable_effect(0.1, 0.05, 0.8)


def test_pooled_bootstrap_resamples_the_corpus_not_sentence_scores() -> None:
    """A ratio of sums (a corpus metric) bootstrapped by summing resampled rows: the delta is the full-corpus
    difference, identical systems give a zero interval, and a better system's interval is above zero."""
    from loragate.metrics.stats import paired_bootstrap_pooled

    def ratio(pooled: np.ndarray) -> np.ndarray:
        return pooled[..., 0] / pooled[..., 1]

    rng = np.random.default_rng(1)
    totals = rng.integers(5, 20, size=40).astype(float)
    base = np.stack([np.floor(totals * 0.3), totals], axis=1)
    tuned = np.stack([np.floor(totals * 0.8), totals], axis=1)
    same = paired_bootstrap_pooled(base, base, ratio, resamples=2000)
    assert same.delta == same.low == same.high == 0.0
    better = paired_bootstrap_pooled(base, tuned, ratio, resamples=2000)
    assert better.delta == pytest.approx(tuned[:, 0].sum() / totals.sum() - base[:, 0].sum() / totals.sum())
    assert 0 < better.low <= better.delta <= better.high
