"""The trivial-predictor gate and subgroup gates on constructed metrics: boundaries, directions, and what each
kind takes as its best constant predictor and its subgroups."""

from __future__ import annotations

import pytest

from loragate.card.settings import GateSettings
from loragate.data.examples import Example, field_subgroups
from loragate.gates.checks import BeatsTrivial, Subgroup, checks_from, subgroup_gates, trivial_gates
from loragate.kinds.extractive_qa.metrics import qa_metrics
from loragate.kinds.instruct.metrics import instruct_metrics
from loragate.kinds.trivial_predictors import always_abstain, majority_class, most_common_response
from loragate.metrics.scores import classification_metrics, metrics_from_confusion
from loragate.tasks import get_task


def ab(a_row: list[int], b_row: list[int]):
    return metrics_from_confusion([a_row, b_row], ["a", "b"])


def test_beats_trivial_boundary_on_the_observed_delta() -> None:
    # majority class 'a' (600 of 1000) scores 0.6; tuned 0.7: exactly +0.1 over it
    trivial, tuned = ab([600, 0], [400, 0]), ab([500, 100], [200, 200])
    assert BeatsTrivial("accuracy", 0.1, reference="majority class 'a'").fails(tuned, trivial) is None
    finding = BeatsTrivial("accuracy", 0.11, reference="majority class 'a'").fails(tuned, trivial)
    assert finding.startswith("accuracy delta over majority class 'a' +0.100 < required +0.110 "
                              "(majority class 'a' 0.600, tuned 0.700, n=1000"), finding


def test_trivial_gates_use_min_delta_unless_the_card_sets_its_own_margins() -> None:
    trivial, tuned = ab([600, 0], [400, 0]), ab([500, 100], [200, 200])  # +0.1 accuracy over trivial
    by_min_delta = trivial_gates(GateSettings(min_delta={"accuracy": 0.2}), "majority class 'a'", tuned, trivial)
    assert [r.check for r in by_min_delta] == ["accuracy vs majority class 'a'"] and not by_min_delta[0].passed
    own = GateSettings(min_delta={"accuracy": 0.2}, min_delta_over_trivial={"accuracy": 0.05})
    (result,) = trivial_gates(own, "majority class 'a'", tuned, trivial)
    assert result.passed and result.numbers.reference == pytest.approx(0.6) and result.numbers.required == 0.05


def test_an_unknown_metric_in_the_new_gate_settings_is_refused() -> None:
    for settings in ({"min_delta_over_trivial": {"acuracy": 0.1}}, {"max_subgroup_drop": {"f2": 0.1}},
                     {"min_subgroup_score": {"exact_match": 0.5}}):
        with pytest.raises(ValueError, match=f"gates.{next(iter(settings))}: Unknown metric"):
            checks_from(GateSettings(**settings))


def group(name: str, base, tuned) -> Subgroup:
    return Subgroup(name, tuned.n, base, tuned)


def test_subgroup_drops_are_judged_on_each_subgroups_interval_and_floors_on_the_value() -> None:
    """A subgroup's drop is non-inferiority on the paired interval of its own examples (issue 33, point 2): shown
    under the tolerance it passes, straddling it is INCONCLUSIVE (so is a subgroup of 20 nothing changed on: Tango's
    interval of 20 unchanged pairs is +/-0.161); the floor reads the tuned value at its boundary."""
    news = group("domain=news", ab([90, 10], [10, 90]), ab([89, 11], [10, 90]))  # accuracy 0.9 -> 0.895 of 200
    many = group("domain=sports", ab([50, 50], [50, 50]), ab([50, 50], [50, 50]))  # 0.5 -> 0.5 of 200, unchanged
    passes = GateSettings(max_subgroup_drop={"accuracy": 0.05}, min_subgroup_score={"accuracy": 0.5})
    assert all(r.passed for r in subgroup_gates(passes, [news, many])), subgroup_gates(passes, [news, many])
    sports = group("domain=sports", ab([5, 5], [5, 5]), ab([5, 5], [5, 5]))  # unchanged, but of 20
    unchanged, _ = subgroup_gates(passes, [news, sports])
    assert unchanged.status == "INCONCLUSIVE" and unchanged.finding.startswith(
        "INCONCLUSIVE: subgroup 'domain=sports' accuracy +0.000 [-0.161, +0.161]"), unchanged.finding
    few = group("domain=news", ab([9, 1], [1, 9]), ab([8, 2], [1, 9]))  # 0.9 -> 0.85 of 20
    strict = GateSettings(max_subgroup_drop={"accuracy": 0.04}, min_subgroup_score={"accuracy": 0.51})
    drop, floor = subgroup_gates(strict, [few, sports])
    assert drop.status == "INCONCLUSIVE" and drop.finding.startswith(
        "INCONCLUSIVE: subgroup 'domain=news' accuracy -0.050 ["), drop.finding
    assert floor.finding == "subgroup 'domain=sports' accuracy 0.500 < floor 0.510 (base 0.500, n=20)", floor.finding


def test_subgroup_gates_read_the_metric_direction() -> None:
    """Perplexity is lower-is-better: a rise is the drop, and the floor is a ceiling."""
    ids, ones = ["p-0", "p-1"], [True, True]

    def ppl(nll: float):
        return instruct_metrics(ids, ["a", "b"], ["a", "b"], ones, ones, [nll, nll], [1, 1])

    worse = group("length=long", ppl(1.0), ppl(2.0))  # perplexity e -> e^2
    drop, ceiling = subgroup_gates(GateSettings(max_subgroup_drop={"perplexity": 1.0},
                                                min_subgroup_score={"perplexity": 5.0}), [worse])
    assert drop.status == "FAIL" and drop.finding.startswith(
        "subgroup 'length=long' perplexity lower bound -4.671 < required -1.000") and \
        "base 2.718, tuned 7.389" in drop.finding, drop.finding
    assert "subgroup 'length=long' perplexity 7.389 > ceiling 5.000" in ceiling.finding, ceiling.finding


def test_subgroup_gates_without_subgroups_fail_naming_the_card_field() -> None:
    (result,) = subgroup_gates(GateSettings(min_subgroup_score={"accuracy": 0.5}), [])
    assert not result.passed and "name an example field in the card's `subgroups`" in result.finding
    assert subgroup_gates(GateSettings(), []) == [], "no subgroup settings: no subgroup gates"


def test_field_subgroups_split_by_value_and_name_a_missing_field() -> None:
    examples = [Example(f"e{i}", "p", "t", "a", fields={"domain": d}) for i, d in enumerate(["news", "sports", "news"])]
    assert field_subgroups(examples, "domain") == {"domain=news": [0, 2], "domain=sports": [1]}
    with pytest.raises(ValueError, match=r"example e0 has no field 'length'; its fields are \['domain'\]"):
        field_subgroups(examples, "length")


def test_majority_class_counts_the_split_and_breaks_ties_by_card_order() -> None:
    task = get_task("sst2")  # labels [positive, negative]

    def examples(labels: list[str]) -> list[Example]:
        return [Example(f"e{i}", "p", label, label) for i, label in enumerate(labels)]

    assert majority_class(task, examples(["negative", "negative", "positive"])).name == "majority class 'negative'"
    tie = majority_class(task, examples(["negative", "positive"]))
    assert tie.name == "majority class 'positive'" and tie.predictions.outputs == ["positive", "positive"]


def test_always_abstain_is_exact_on_the_unanswerable_share() -> None:
    task = get_task("squad_v2")
    examples = [Example(f"q{i}", "q", "", "", references=("x",) if i < 3 else ()) for i in range(5)]
    constant = always_abstain(task, examples)
    metrics = qa_metrics(constant.predictions.ids, constant.predictions.outputs, constant.predictions.references,
                         [p.valid for p in constant.predictions.parsed])
    assert constant.name == "always abstain" and metrics.value("exact") == pytest.approx(0.4)


def test_most_common_response_and_its_missing_perplexity() -> None:
    task = get_task("instruct")
    refs = ["blue.", "red.", "red.", "green."]
    examples = [Example(f"p{i}", "q", ref, "", references=(ref,)) for i, ref in enumerate(refs)]
    constant = most_common_response(task, examples)
    assert constant.name == "constant response 'red.'" and constant.predictions.outputs == ["red."] * 4
    metrics = instruct_metrics(constant.predictions.ids, constant.predictions.outputs, refs, [True] * 4, [True] * 4,
                               None, None)
    assert "perplexity" in metrics.unavailable and metrics.value("rougeL") == pytest.approx(0.5)


def test_predictions_subset_keeps_rows_aligned() -> None:
    from loragate.inference.predictions import constant_predictions

    task = get_task("sst2")
    examples = [Example(f"e{i}", "p", label, label) for i, label in enumerate(["positive", "negative", "negative"])]
    predictions = constant_predictions(examples, ["positive", "negative", "None"], task.parse)
    part = predictions.subset([0, 2])
    assert part.ids == ["e0", "e2"] and part.gold == ["positive", "negative"] and part.outputs == ["positive", "None"]
    metrics = classification_metrics(part.gold, [p.value and p.value.sentiment for p in part.parsed],
                                     task.card.labels, part.outputs)
    assert metrics.accuracy == 0.5 and metrics.validity_rate == 0.5


def test_a_subgroup_gate_on_an_unavailable_metric_fails_saying_why() -> None:
    ids, ones = ["p-0"], [True]
    metrics = instruct_metrics(ids, ["a"], ["a"], ones, ones, None, None)  # no perplexity
    (result,) = subgroup_gates(GateSettings(min_subgroup_score={"perplexity": 5.0}), [group("all", metrics, metrics)])
    assert not result.passed and "perplexity is unavailable: a constant response has no likelihood" in result.finding
