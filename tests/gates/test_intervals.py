"""The one interval a gate judges and reports (issue 33): Tango's score interval for right/wrong metrics and keys, the
metrics' bootstrap for the others, rows of one input counted once either way."""

from __future__ import annotations

import numpy as np
import pytest

from loragate.card.settings import GateSettings
from loragate.gates.checks import MetricDelta, judge, regression_checks
from loragate.gates.family import controlled
from loragate.gates.intervals import scores_interval
from loragate.metrics.scores import metrics_from_confusion, with_input_groups
from loragate.metrics.stats import paired_score_interval

SETTINGS = GateSettings(judge_on="lower_bound")


def ab(a_row: list[int], b_row: list[int]):
    return metrics_from_confusion([a_row, b_row], ["a", "b"])


def test_a_release_equal_to_the_last_on_a_small_split_is_not_shown_undropped() -> None:
    """30 examples, tuned and the last release alike on every one: the bootstrap's interval was [0, 0], a PASS of
    max_regression 0.02 by construction; the score interval leaves a drop of 0.114 possible: INCONCLUSIVE. The report
    shows that interval, the one judged."""
    release = ab([14, 1], [2, 13])
    [check] = regression_checks(GateSettings(min_delta={"accuracy": 0.05}))
    [result] = controlled([judge(check, release, release)], GateSettings())
    assert result.status == "INCONCLUSIVE", result.finding
    right = np.array(release.correct("accuracy"), dtype=float)
    expected = paired_score_interval(right, right)
    assert (result.numbers.low, result.numbers.high) == pytest.approx((expected.low, expected.high))
    assert (expected.low, expected.high) == pytest.approx((-0.114, 0.114), abs=1e-3)
    assert "95% CI [-0.114, +0.114]" in result.evidence, result.evidence


def test_accuracy_is_judged_on_the_score_interval_and_macro_f1_on_the_bootstrap() -> None:
    base, tuned = ab([30, 20], [20, 30]), ab([40, 10], [20, 30])  # class a gains 10 examples of 100
    accuracy = MetricDelta("accuracy", 0.0, SETTINGS).judge(tuned, base)
    right = [np.array(m.correct("accuracy"), dtype=float) for m in (base, tuned)]
    expected = paired_score_interval(*right)
    assert (accuracy.numbers.low, accuracy.numbers.high) == pytest.approx((expected.low, expected.high))
    f1 = MetricDelta("macro_f1", 0.0, SETTINGS)
    bootstrap = tuned.paired_interval(base, "macro_f1", SETTINGS.bootstrap_resamples, 0.95, SETTINGS.bootstrap_seed)
    assert (f1.judge(tuned, base).numbers.low, f1.judge(tuned, base).numbers.high) == (bootstrap.low, bootstrap.high)


def test_rows_of_one_input_count_once_in_the_score_interval() -> None:
    """A split of 20 examples whose every input is repeated 3 times: its accuracy interval is the 20 examples'."""
    base, tuned = ab([6, 4], [4, 6]), ab([9, 1], [4, 6])
    alone = MetricDelta("accuracy", 0.0, SETTINGS).judge(tuned, base).numbers
    tripled = [metrics_from_confusion([[3 * x for x in row] for row in m.confusion], ["a", "b"]) for m in (base, tuned)]
    groups = tuple(np.repeat(np.arange(20), 3))
    # metrics_from_confusion lists a class's rows in order, so each example's 3 copies are adjacent in both
    clustered = [with_input_groups(m, groups) for m in tripled]
    repeated = MetricDelta("accuracy", 0.0, SETTINGS).judge(clustered[1], clustered[0]).numbers
    assert (repeated.low, repeated.high) == pytest.approx((alone.low, alone.high), abs=1e-9)


def test_a_key_of_other_scores_keeps_the_bootstrap() -> None:
    """A key's interval is the score interval only where every per-example score is right or wrong."""
    base, tuned = np.array([0.5, 1.0, 0.0, 1.0]), np.array([1.0, 1.0, 0.5, 1.0])
    assert scores_interval(base, tuned, GateSettings(), None).draws is not None
    binary = scores_interval(np.array([1.0, 0.0, 1.0]), np.array([1.0, 1.0, 1.0]), GateSettings(), None)
    assert binary.draws is None and binary.score is not None
