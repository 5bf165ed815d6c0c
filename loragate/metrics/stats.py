"""Paired statistics for base vs tuned on the same examples: exact McNemar, a vectorised paired
bootstrap of any classification metric's delta with the p-value its resamples give, Tango's score interval for
right/wrong scores (where the bootstrap is wrong on small splits), Holm's step-down correction of a family of
p-values, and the minimum detectable effect with the test-set size that would detect an effect.

Paired, because base and tuned answer the same questions: the unpaired z-test that compares two means
throws that pairing away and needs far more examples to see the same difference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.stats import binom, norm

# metric -> how to compute it from per-class counts; each returns one value per bootstrap resample
_AVERAGED = {"macro_precision", "macro_recall", "macro_f1", "weighted_precision", "weighted_recall", "weighted_f1"}
BOOTSTRAP_CHUNK = 2_000_000  # resamples x examples held in memory at once
TIE = 1e-12  # deltas that are k/n fractions are not exact in floats: a resampled delta this close to a margin is on it


@dataclass(frozen=True)
class McNemar:
    base_only: int  # examples base got right and tuned got wrong
    tuned_only: int  # examples tuned got right and base got wrong
    p_value: float  # exact two-sided binomial test on the discordant pairs


@dataclass(frozen=True)
class DeltaInterval:
    delta: float  # tuned - base on all examples
    low: float
    high: float
    confidence: float
    standard_error: float  # of the delta: the bootstrap deltas' spread, or the score interval's width / (2 z)
    resamples: int  # 0 for the score interval, which draws none
    draws: np.ndarray | None = field(default=None, compare=False, repr=False)  # each resample's delta, which the
    # p-value of a margin counts (bootstrap_p_value): the interval's own resamples, never drawn twice
    score: ScoreTest | None = field(default=None, compare=False, repr=False)  # right/wrong scores: the score test
    # the interval inverts, which gives the p-value of a margin instead of draws (paired_score_interval)

    def p_value(self, margin: float, sign: float = 1.0) -> float:
        """p of the null "the signed delta (sign x delta) is below `margin`", from what gave the interval: its score
        test, else its resamples (bootstrap_p_value); below 1 - confidence exactly where its bound clears the margin."""
        if self.score is not None:
            return self.score.p_value(margin, sign)
        return bootstrap_p_value(self.draws, margin, sign)

    def p_value_beyond(self, margin: float, sign: float = 1.0) -> float:
        """p of the opposite null, "the signed delta is at or above `margin`" (bootstrap_p_value_beyond)."""
        if self.score is not None:
            return self.score.p_value_beyond(margin, sign)
        return bootstrap_p_value_beyond(self.draws, margin, sign)

    def signed(self, sign: float) -> DeltaInterval:
        """The interval of sign x delta (positive is better, for a lower-is-better metric), its p-values with it."""
        low, high = sorted((sign * self.low, sign * self.high))
        score = None if self.score is None else replace(self.score, orientation=sign * self.score.orientation)
        return replace(self, delta=sign * self.delta, low=low, high=high,
                       draws=None if self.draws is None else sign * self.draws, score=score)


def mcnemar_exact(base_correct: np.ndarray, tuned_correct: np.ndarray) -> McNemar:
    """Exact McNemar: under no difference each discordant pair is a fair coin."""
    base_only = int(np.sum(base_correct & ~tuned_correct))
    tuned_only = int(np.sum(tuned_correct & ~base_correct))
    discordant = base_only + tuned_only
    if discordant == 0:
        return McNemar(0, 0, 1.0)
    p_value = min(1.0, 2.0 * float(binom.cdf(min(base_only, tuned_only), discordant, 0.5)))
    return McNemar(base_only, tuned_only, p_value)


def metric_on_resamples(metric: str, gold: np.ndarray, predicted: np.ndarray, n_labels: int) -> np.ndarray:
    """`metric` of each row of (resamples x n) label indices; index n_labels stands for an invalid output,
    which is wrong for every class. Mirrors sklearn with zero_division=0 over the label set."""
    if metric == "accuracy":
        return (gold == predicted).mean(axis=1)
    if metric == "validity_rate":
        return (predicted != n_labels).mean(axis=1)
    if metric not in _AVERAGED:
        raise ValueError(f"no paired bootstrap for metric {metric!r}")
    classes = np.arange(n_labels)[:, None, None]  # (k, 1, 1) against (resamples, n)
    is_gold, is_pred = gold[None] == classes, predicted[None] == classes
    tp = (is_gold & is_pred).sum(axis=2).T.astype(float)  # (resamples, k)
    support, predicted_count = is_gold.sum(axis=2).T.astype(float), is_pred.sum(axis=2).T.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted_count > 0, tp / predicted_count, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    kind, score = metric.split("_", 1)
    values = {"precision": precision, "recall": recall, "f1": f1}[score]
    if kind == "macro":
        return values.mean(axis=1)
    totals = support.sum(axis=1, keepdims=True)
    return np.where(totals[:, 0] > 0, (values * support).sum(axis=1) / np.maximum(totals[:, 0], 1), 0.0)


def paired_interval(n: int, delta_of_rows, resamples: int, confidence: float, seed: int,
                    cells_per_row: int = 1, clusters: np.ndarray | None = None) -> DeltaInterval:
    """Percentile interval of a paired delta. `delta_of_rows(rows)` maps (resamples x n) example indices, the
    same rows for base and tuned, to one delta per resample; the full-split delta is its value on every example
    once. Resamples are drawn in chunks of at most BOOTSTRAP_CHUNK cells (`cells_per_row` per drawn example).

    `clusters` gives each row an id, its input's: rows of one input are drawn together (a cluster bootstrap), so
    the interval counts distinct inputs, not rows; where every row has its own id the rows are drawn one by one,
    with the very draws of no `clusters` at all."""
    rng = np.random.default_rng(seed)
    ids = cluster_ids(clusters, n)
    per_chunk = max(1, BOOTSTRAP_CHUNK // max(n * cells_per_row, 1))
    spread = np.concatenate([resample_deltas(delta_of_rows, rng, min(per_chunk, resamples - start), n, ids)
                             for start in range(0, resamples, per_chunk)])
    tail = (1 - confidence) / 2
    low, high = np.quantile(spread, [tail, 1 - tail])
    delta = float(delta_of_rows(np.arange(n)[None])[0])
    return DeltaInterval(delta, float(low), float(high), confidence, float(spread.std(ddof=1)), resamples, spread)


def cluster_ids(clusters: np.ndarray | None, n: int) -> np.ndarray | None:
    """Dense ids 0..k-1 of the rows' clusters, or None where no two rows share one: then nothing is drawn
    together and the plain row bootstrap applies unchanged."""
    if clusters is None:
        return None
    if len(clusters) != n:
        raise ValueError(f"{len(clusters)} cluster ids for {n} rows; give one per row")
    _, ids = np.unique(np.asarray(clusters), return_inverse=True)
    return None if ids.max(initial=-1) + 1 == n else ids.reshape(-1)


def resample_deltas(delta_of_rows, rng: np.random.Generator, count: int, n: int,
                    ids: np.ndarray | None) -> np.ndarray:
    """The deltas of `count` resamples: of n rows drawn one by one, or, given cluster `ids`, of as many clusters
    as there are, each drawn with all its rows."""
    if ids is None:
        return delta_of_rows(rng.integers(0, n, size=(count, n)))
    clusters = int(ids.max()) + 1
    return clustered_deltas(delta_of_rows, rng.integers(0, clusters, size=(count, clusters)), ids)


def clustered_deltas(delta_of_rows, picks: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """`delta_of_rows` of each resample of whole clusters: row r of `picks` names the clusters drawn, each
    bringing every row with its id. Resamples then differ in length, so those of one length go in one call."""
    order = np.argsort(ids, kind="stable")  # rows grouped by cluster
    sizes = np.bincount(ids)
    starts = np.cumsum(sizes) - sizes
    lengths = sizes[picks].sum(axis=1)
    deltas = np.empty(len(picks))
    for length in np.unique(lengths):
        which = np.flatnonzero(lengths == length)
        drawn = picks[which].ravel()
        owner = np.repeat(drawn, sizes[drawn])  # each drawn cluster once per row it holds
        within = np.arange(len(owner)) - np.repeat(np.cumsum(sizes[drawn]) - sizes[drawn], sizes[drawn])
        deltas[which] = delta_of_rows(order[starts[owner] + within].reshape(len(which), int(length)))
    return deltas


def paired_bootstrap(metric: str, gold: np.ndarray, base: np.ndarray, tuned: np.ndarray, n_labels: int,
                     resamples: int = 10_000, confidence: float = 0.95, seed: int = 0,
                     clusters: np.ndarray | None = None) -> DeltaInterval:
    """Percentile interval of metric(tuned) - metric(base), resampling examples (the same rows for both; rows of
    one cluster, one input repeated, together)."""
    def delta_of_rows(rows: np.ndarray) -> np.ndarray:
        return (metric_on_resamples(metric, gold[rows], tuned[rows], n_labels)
                - metric_on_resamples(metric, gold[rows], base[rows], n_labels))

    return paired_interval(len(gold), delta_of_rows, resamples, confidence, seed, clusters=clusters)


def paired_bootstrap_means(base_scores: np.ndarray, tuned_scores: np.ndarray, resamples: int = 10_000,
                           confidence: float = 0.95, seed: int = 0, of_mean=None,
                           weights: np.ndarray | None = None, clusters: np.ndarray | None = None) -> DeltaInterval:
    """Interval of f(mean tuned score) - f(mean base score) for per-example scores (EM, token F1, ROUGE-L,
    METEOR, negative log-likelihood). `of_mean` maps a mean to the reported metric: np.exp turns mean NLL
    per token into perplexity; None reports the mean itself. `weights` (e.g. tokens per example) make the
    means weighted, so per-example mean NLLs weighted by their tokens give the corpus NLL per token. Rows of one
    cluster (`clusters`: one input repeated) are resampled together."""
    if base_scores.shape != tuned_scores.shape or base_scores.ndim != 1 or len(base_scores) == 0:
        raise ValueError(f"need two equal-length 1-d score arrays, got {base_scores.shape} and {tuned_scores.shape}")
    transform = of_mean or (lambda x: x)
    w = np.ones_like(base_scores, dtype=float) if weights is None else np.asarray(weights, dtype=float)

    def delta_of_rows(rows: np.ndarray) -> np.ndarray:
        mean = lambda scores: (scores[rows] * w[rows]).sum(axis=-1) / w[rows].sum(axis=-1)  # noqa: E731
        return transform(mean(tuned_scores)) - transform(mean(base_scores))

    return paired_interval(len(base_scores), delta_of_rows, resamples, confidence, seed, clusters=clusters)


def paired_bootstrap_pooled(base_rows: np.ndarray, tuned_rows: np.ndarray, statistic, resamples: int = 10_000,
                            confidence: float = 0.95, seed: int = 0,
                            clusters: np.ndarray | None = None) -> DeltaInterval:
    """Interval of statistic(pooled tuned rows) - statistic(pooled base rows) for corpus-level metrics whose
    per-example counts add up (corpus BLEU: n-gram matches, totals, lengths). Resampled rows are summed, so each
    resample is the corpus metric of a resampled corpus, not a mean of sentence scores; rows of one cluster
    (`clusters`: one input repeated) are resampled together."""
    if base_rows.shape != tuned_rows.shape or base_rows.ndim != 2 or len(base_rows) == 0:
        raise ValueError(f"need two equal-shape (examples x counts) arrays, got {base_rows.shape} and "
                         f"{tuned_rows.shape}")

    def delta_of_rows(rows: np.ndarray) -> np.ndarray:
        return statistic(tuned_rows[rows].sum(axis=1)) - statistic(base_rows[rows].sum(axis=1))

    return paired_interval(len(base_rows), delta_of_rows, resamples, confidence, seed, base_rows.shape[1], clusters)


@dataclass(frozen=True)
class ScoreTest:
    """Tango's score test of tuned - base on paired right/wrong scores (Tango 1998, Stat Med 17:891): under a null
    difference d, the variance of one pair's difference is read off the proportions' maximum-likelihood estimate
    restricted to d, not off the sample's own. So a sample with no pair base got right and tuned got wrong still leaves
    room for a drop, where every resample of the percentile bootstrap is then a gain or nothing. At d = 0 its Z is
    McNemar's. Counts may be fractional: effective counts, rows divided by a design effect (paired_score_interval)."""

    base_only: float  # pairs base got right and tuned got wrong
    tuned_only: float  # pairs tuned got right and base got wrong
    n: float  # pairs in all
    orientation: float = 1.0  # -1: the test of base - tuned, a delta signed for a lower-is-better metric

    def statistic(self, null: float) -> float:
        """Z of the null "tuned - base = `null`", falling as `null` rises; 0 where the sample's delta is the null."""
        b, c, n = self.base_only, self.tuned_only, self.n
        linear = null * (2 * n + b - c) - (b + c)
        base_only = (math.sqrt(max(linear**2 + 8 * n * b * null * (1 - null), 0.0)) - linear) / (4 * n)
        variance = 2 * base_only + null * (1 - null)  # of one pair's difference, P(base only) restricted to the null
        distance = c - b - n * null
        if variance <= 0:  # the null is -1, 1, or 0 with no discordant pair: only the sample's own delta is possible
            return 0.0 if abs(distance) < TIE else math.copysign(math.inf, distance)
        return distance / math.sqrt(n * variance)

    def oriented(self, null: float) -> float:
        """The statistic of the null "orientation x (tuned - base) = `null`", falling as `null` rises."""
        return self.orientation * self.statistic(self.orientation * null)

    def p_value(self, margin: float, sign: float = 1.0) -> float:
        """p of the null "sign x delta is below `margin`" (delta as oriented), doubled as bootstrap_p_value is: below
        1 - confidence exactly where the interval's bound clears the margin."""
        return min(1.0, 2.0 * float(norm.cdf(-sign * self.oriented(sign * margin))))

    def p_value_beyond(self, margin: float, sign: float = 1.0) -> float:
        """p of the opposite null, "sign x delta is at or above `margin`", doubled likewise."""
        return min(1.0, 2.0 * float(norm.cdf(sign * self.oriented(sign * margin))))

    def bound(self, z: float) -> float:
        """The null of tuned - base whose statistic is `z` (the lower bound for z > 0, the upper for z < 0), found by
        bisection: the statistic falls from +inf at -1 to -inf at 1 through 0 at the sample's delta."""
        low, high = (-1.0, (self.tuned_only - self.base_only) / self.n)
        if z < 0:
            low, high = high, 1.0
        for _ in range(60):  # 2^-60: far below any difference a split of examples can show
            middle = (low + high) / 2
            low, high = (middle, high) if self.statistic(middle) > z else (low, middle)
        return (low + high) / 2


def paired_score_interval(base_correct: np.ndarray, tuned_correct: np.ndarray, confidence: float = 0.95,
                          clusters: np.ndarray | None = None) -> DeltaInterval:
    """Tango's score interval of tuned - base on paired right/wrong scores: the nulls its test does not reject at
    1 - confidence, two-sided. Used where a gate judges right/wrong scores, because the percentile bootstrap cannot
    be trusted on small splits of them (docs/statistics.md).

    `clusters` gives each row its input's id (an example's k samples, a repeated input): the counts are then divided
    by Kish's design effect at an intra-cluster correlation of 1, sum(size^2) / rows (Rao and Scott 1992), the most
    rows of one input can be alike; for k samples of every example it is k, so the interval is that of the examples."""
    base, tuned = (np.asarray(scores, dtype=float) for scores in (base_correct, tuned_correct))
    if base.shape != tuned.shape or base.ndim != 1 or len(base) == 0:
        raise ValueError(f"need two equal-length 1-d score arrays, got {base.shape} and {tuned.shape}")
    if not np.all(np.isin(base, (0, 1)) & np.isin(tuned, (0, 1))):
        raise ValueError("the score interval is for right/wrong scores (0 or 1 per example); use the paired bootstrap "
                         "for other scores")
    rows = len(base)
    ids = cluster_ids(clusters, rows)
    effect = 1.0 if ids is None else float(np.sum(np.bincount(ids) ** 2)) / rows
    base_only, tuned_only = float(np.sum(base > tuned)), float(np.sum(tuned > base))
    test = ScoreTest(base_only / effect, tuned_only / effect, rows / effect)
    z = float(norm.ppf(1 - (1 - confidence) / 2))
    low, high = test.bound(z), test.bound(-z)
    return DeltaInterval((tuned_only - base_only) / rows, low, high, confidence, (high - low) / (2 * z), 0,
                         score=test)


def sign_test(differences: np.ndarray) -> float:
    """Two-sided exact sign test: p-value that positive and negative differences are equally likely.
    Zeros are dropped. A small p means the differences lean to one side, whatever their size."""
    positive, negative = int(np.sum(differences > 0)), int(np.sum(differences < 0))
    if positive + negative == 0:
        return 1.0
    return min(1.0, 2.0 * float(binom.cdf(min(positive, negative), positive + negative, 0.5)))


def minimum_detectable_effect(standard_error: float, alpha: float, power: float) -> float:
    """Smallest true delta a two-sided test at `alpha` detects with probability `power`, given the
    delta's standard error: (z_{1-alpha/2} + z_power) x SE."""
    return float((norm.ppf(1 - alpha / 2) + norm.ppf(power)) * standard_error)


def bootstrap_p_value(draws: np.ndarray, margin: float, sign: float = 1.0) -> float:
    """p-value of the null "the signed delta (sign x delta) is below `margin`" from the paired bootstrap's resampled
    deltas: twice the share of draws on the null side, with the usual +1 for the observed sample, (1 + k)/(B + 1).
    Doubled so that it is below 1 - confidence exactly where the card's two-sided interval's bound clears the margin
    (up to the interpolation between two resamples): a family of one decides as the interval shows. A draw on the
    margin is on the passing side, as a bound on it passes."""
    below = int(np.sum(sign * np.asarray(draws) < margin - TIE))
    return min(1.0, 2.0 * (1 + below) / (len(draws) + 1))


def bootstrap_p_value_beyond(draws: np.ndarray, margin: float, sign: float = 1.0) -> float:
    """p-value of the opposite null, "the signed delta is at or above `margin`" (a non-inferiority gate's drop is at
    most -margin), from the same resampled deltas: twice the share of draws at or above it, (1 + k)/(B + 1), doubled
    as bootstrap_p_value is, so that alone it is below 1 - confidence where the interval's upper bound lies below the
    margin. A draw on the margin is on the null side: a FAIL needs the draws beyond it."""
    at_or_above = int(np.sum(sign * np.asarray(draws) >= margin - TIE))
    return min(1.0, 2.0 * (1 + at_or_above) / (len(draws) + 1))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values: the i-th smallest of m times (m - i + 1), each at least the one before,
    at most 1. Rejecting where the adjusted p is below alpha keeps the chance of any false rejection in the family
    at or under alpha, whatever the dependence between the tests."""
    m = len(p_values)
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def examples_to_detect(effect: float, standard_error: float, n: int, alpha: float, power: float) -> int | None:
    """The test-set size at which the minimum detectable effect shrinks to `effect` (the distance between the
    observed delta and the margin), the standard error falling as 1/sqrt(n): n x (MDE / effect)^2, at least n + 1.
    None where the delta sits on the margin: no size decides it."""
    if abs(effect) < TIE:
        return None
    mde = minimum_detectable_effect(standard_error, alpha, power)
    return max(n + 1, int(np.ceil(n * (mde / abs(effect)) ** 2)))
