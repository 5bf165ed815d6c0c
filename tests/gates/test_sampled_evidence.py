"""A sampled run (eval.sampling: k rows of each example) or a split with repeated inputs: the gates' evidence counts
examples, not rows ("n=20 x 5 samples"), sizes what would decide an INCONCLUSIVE gate in examples, and leaves out
McNemar's test, which counts every row as an independent pair (its p would be too small)."""

from __future__ import annotations

from dataclasses import replace

from loragate.card.settings import GateSettings
from loragate.gates.checks import MetricDelta, Subgroup, regression_checks, run_gates, subgroup_gates
from loragate.gates.per_key import KeyDrop, KeyFloor
from loragate.kinds.labels import class_scores
from loragate.metrics.scores import ClassificationMetrics, classification_metrics, with_input_groups
from loragate.metrics.stats import examples_to_detect

LABELS = ["a", "b"]
SETTINGS = GateSettings(bootstrap_resamples=2000)


def sampled(right: list[bool], gold: list[str], k: int) -> ClassificationMetrics:
    """Metrics of each example answered k times alike (right or wrong), as a sampled run scores them."""
    rows_gold = [g for g in gold for _ in range(k)]
    rows_right = [r for r in right for _ in range(k)]
    predicted = [g if r else LABELS[1 - LABELS.index(g)] for g, r in zip(rows_gold, rows_right)]
    metrics = classification_metrics(rows_gold, predicted, LABELS, predicted)
    return with_input_groups(metrics, tuple(e for e in range(len(gold)) for _ in range(k)), k)


def test_a_sampled_delta_counts_examples_and_leaves_mcnemar_to_the_clustered_interval() -> None:
    gold = ["a", "b"] * 10
    base, tuned = sampled([False] * 20, gold, 5), sampled([True] * 15 + [False] * 5, gold, 5)
    _, _, evidence = MetricDelta("accuracy", 0.1, SETTINGS).judged(tuned, base)
    assert "n=20 x 5 samples," in evidence and "n=100" not in evidence, evidence
    assert "McNemar n/a: rows repeat inputs, the clustered interval decides" in evidence, evidence
    assert "McNemar p=" not in evidence, evidence


def test_repeated_inputs_not_sampled_count_rows_but_drop_mcnemar_and_distinct_rows_keep_it() -> None:
    gold = ["a", "b"] * 10
    base, tuned = sampled([False] * 20, gold, 5), sampled([True] * 15 + [False] * 5, gold, 5)
    repeated = [replace(m, samples=1) for m in (base, tuned)]  # 20 inputs of 5 rows each, not sampled
    _, _, evidence = MetricDelta("accuracy", 0.1, SETTINGS).judged(repeated[1], repeated[0])
    assert "n=100," in evidence and "McNemar n/a: rows repeat inputs" in evidence, evidence
    distinct = [with_input_groups(m, (), 1) for m in repeated]  # 100 distinct examples: McNemar applies
    _, _, evidence = MetricDelta("accuracy", 0.1, SETTINGS).judged(distinct[1], distinct[0])
    assert "n=100," in evidence and "McNemar p=" in evidence, evidence


def test_an_inconclusive_regression_of_a_sampled_run_sizes_the_split_in_examples() -> None:
    """100 examples x 3 samples, one example wrong in every sample against a release right on all: -0.010 straddles
    -0.02; the size that would decide it is solved for the 100 examples (the interval's clusters), not 300 rows."""
    gold = ["a", "b"] * 50
    baseline, tuned = sampled([True] * 100, gold, 3), sampled([True] * 99 + [False], gold, 3)
    check = regression_checks(SETTINGS.model_copy(update={"min_delta": {"accuracy": 0.05}}))[0]
    result = run_gates([check], tuned, baseline)[0]
    assert result.status == "INCONCLUSIVE", result.finding
    comparison = result.comparisons[0]
    _, interval, _ = check.judged(tuned, baseline)
    expected = examples_to_detect(interval.delta + 0.02, interval.standard_error, 100, 1 - SETTINGS.confidence,
                                  SETTINGS.power)
    assert (comparison.n, comparison.samples, comparison.needed) == (100, 3, expected), comparison
    assert f"about {expected} examples (now 100 x 3 samples) would decide it" in result.finding, result.finding
    assert "n=100 x 3 samples cannot tell" in result.finding, result.finding


def test_a_sampled_class_drop_counts_the_class_examples() -> None:
    gold = ["a"] * 10 + ["b"] * 10
    base, tuned = sampled([True] * 20, gold, 5), sampled([False] + [True] * 19, gold, 5)
    result = KeyDrop("class", "accuracy", 0.05, class_scores, settings=SETTINGS).judge(tuned, base)
    assert result.status == "INCONCLUSIVE", result.finding
    assert "straddles the allowed drop -0.050: n=10 x 5 samples cannot tell" in result.finding, result.finding
    assert "(now 10 x 5 samples)" in result.finding, result.finding
    assert [c.n for c in result.comparisons] == [10, 10], result.comparisons


def test_sampled_subgroups_and_class_floors_name_their_size_in_examples() -> None:
    gold = ["a"] * 10 + ["b"] * 10
    base, tuned = sampled([True] * 20, gold, 5), sampled([False] * 4 + [True] * 16, gold, 5)
    settings = SETTINGS.model_copy(update={"max_subgroup_drop": {"accuracy": 0.5},
                                           "min_subgroup_score": {"accuracy": 0.9}})
    drop, floor = subgroup_gates(settings, [Subgroup("domain=a", 100, base, tuned)])
    assert drop.evidence == "domain=a n=20 x 5 samples", drop.evidence
    assert floor.finding == "subgroup 'domain=a' accuracy 0.800 < floor 0.900 (base 1.000, n=20 x 5 samples)", \
        floor.finding
    evidence = KeyFloor("class", "accuracy", 0.5, class_scores).judge(tuned, base).evidence
    assert evidence == "lowest: class 'a' accuracy 0.600, floor 0.500 (n=10 x 5 samples; 2 classes)", evidence
    lost = KeyDrop("class", "accuracy", 0.5, class_scores, settings=SETTINGS).judge(tuned, base).evidence
    assert "tolerance 0.500, n=10 x 5 samples; 2 classes)" in lost, lost
