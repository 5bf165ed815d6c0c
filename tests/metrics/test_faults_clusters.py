"""Issue 31, case 4b: test rows repeated four times counted as 240 independent examples and narrowed the paired
interval as if they were. Rows of one input are now resampled together (a cluster bootstrap), so 60 distinct
rows repeated 4 times give the interval of the 60; where no input repeats, the draws and the interval are the
old ones exactly."""

from __future__ import annotations

import numpy as np
import pytest

from loragate.data.examples import Example
from loragate.inference.predictions import constant_predictions
from loragate.metrics.stats import (
    paired_bootstrap,
    paired_bootstrap_means,
    paired_bootstrap_pooled,
    paired_interval,
)
from loragate.run.judging import judge_predictions
from loragate.tasks import get_task

RNG = np.random.default_rng(3)
GOLD = RNG.integers(0, 3, 60)
BASE = np.where(RNG.random(60) < 0.5, GOLD, (GOLD + 1) % 3)
TUNED = np.where(RNG.random(60) < 0.7, GOLD, (GOLD + 1) % 3)


@pytest.mark.parametrize("metric", ["accuracy", "macro_f1"])
def test_clusters_of_one_row_give_exactly_the_old_interval(metric: str) -> None:
    old = paired_bootstrap(metric, GOLD, BASE, TUNED, 3, resamples=2000, seed=5)
    for ids in (np.arange(60), RNG.permutation(60), np.array([f"input {i}" for i in range(60)])):
        assert paired_bootstrap(metric, GOLD, BASE, TUNED, 3, resamples=2000, seed=5, clusters=ids) == old


def test_clusters_of_one_row_give_exactly_the_old_interval_of_means_and_pooled_counts() -> None:
    base, tuned = RNG.random(60), RNG.random(60)
    ids = RNG.permutation(60)
    assert paired_bootstrap_means(base, tuned, 2000, clusters=ids) == paired_bootstrap_means(base, tuned, 2000)
    rows_base, rows_tuned = RNG.random((60, 2)) + 0.1, RNG.random((60, 2)) + 0.1

    def ratio(pooled: np.ndarray) -> np.ndarray:
        return pooled[..., 0] / pooled[..., 1]

    assert paired_bootstrap_pooled(rows_base, rows_tuned, ratio, 2000, clusters=ids) == \
        paired_bootstrap_pooled(rows_base, rows_tuned, ratio, 2000)


@pytest.mark.parametrize("metric", ["accuracy", "macro_f1"])
def test_rows_repeated_four_times_give_the_interval_of_their_distinct_inputs(metric: str) -> None:
    distinct = paired_bootstrap(metric, GOLD, BASE, TUNED, 3, resamples=2000, seed=5)
    copies = [np.tile(values, 4) for values in (GOLD, BASE, TUNED)]
    naive = paired_bootstrap(metric, *copies, 3, resamples=2000, seed=5)
    clustered = paired_bootstrap(metric, *copies, 3, resamples=2000, seed=5, clusters=np.tile(np.arange(60), 4))
    assert naive.high - naive.low < 0.7 * (distinct.high - distinct.low), "the naive interval should be narrower"
    assert (clustered.low, clustered.high) == pytest.approx((distinct.low, distinct.high), abs=1e-12), \
        f"4 copies of 60 rows: interval {clustered}, the 60 rows alone give {distinct}"
    assert clustered.standard_error == pytest.approx(distinct.standard_error, abs=1e-12)


def test_every_resample_holds_whole_clusters_of_unequal_sizes() -> None:
    """Each resample draws as many clusters as there are, each with every one of its rows."""
    ids = np.array([2, 0, 0, 1, 2, 2, 3, 3, 0, 3, 3])
    drawn: list[np.ndarray] = []

    def delta_of_rows(rows: np.ndarray) -> np.ndarray:
        drawn.append(rows)
        return rows.sum(axis=1).astype(float)

    paired_interval(len(ids), delta_of_rows, 300, 0.95, 0, clusters=ids)
    resamples = [row for rows in drawn[:-1] for row in rows]  # the last call is the full split, once
    assert len(resamples) == 300
    for row in resamples:
        copies = np.bincount(row, minlength=len(ids))
        for cluster in range(4):
            members = copies[ids == cluster]
            assert (members == members[0]).all(), f"cluster {cluster} split up in resample {sorted(row)}"
        assert sum(copies[ids == cluster][0] for cluster in range(4)) == 4, f"not 4 clusters: {sorted(row)}"


def sst2_examples(copies: int) -> list[Example]:
    labels = ["negative", "positive"]
    return [Example(id=f"ex-{i}-{c}", prompt=f"review {i}", target=labels[int(GOLD[i]) % 2],
                    label=labels[int(GOLD[i]) % 2]) for c in range(copies) for i in range(60)]


def accuracy_interval(copies: int) -> tuple[float, float]:
    """The accuracy delta gate's interval, through the run's own scoring and gates (no model)."""
    task = get_task("sst2")
    examples = sst2_examples(copies)
    parse = task.parse
    right = [int(BASE[i]) == int(GOLD[i]) for i in range(60)] * copies
    better = [int(TUNED[i]) == int(GOLD[i]) for i in range(60)] * copies
    flip = {"negative": "positive", "positive": "negative"}
    base = constant_predictions(examples, [ex.label if ok else flip[ex.label] for ex, ok in zip(examples, right)],
                                parse)
    tuned = constant_predictions(examples, [ex.label if ok else flip[ex.label] for ex, ok in zip(examples, better)],
                                 parse)
    gate = next(r for r in judge_predictions(task, examples, base, tuned).gates if r.check == "accuracy delta")
    return gate.numbers.low, gate.numbers.high


def test_the_gated_interval_of_a_test_split_repeated_four_times_is_that_of_its_distinct_rows() -> None:
    once, four_times = accuracy_interval(1), accuracy_interval(4)
    assert four_times == pytest.approx(once, abs=1e-12), \
        f"60 rows repeated 4 times gave the interval {four_times}; the 60 distinct rows give {once}"
