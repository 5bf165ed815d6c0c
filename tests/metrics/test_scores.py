"""Metrics against hand-computed values: the classification metrics, the confusion matrix and its invalid column."""

from __future__ import annotations

import pytest

from loragate.metrics.scores import classification_metrics, metrics_from_confusion

ABC = ["a", "b", "c"]
IRIS = ["setosa", "versicolor", "virginica"]


@pytest.fixture
def small():
    """6 examples: a a a b b c predicted a a b b <unparsed> c; the unparsed output is empty."""
    return classification_metrics(gold=["a", "a", "a", "b", "b", "c"], predicted=["a", "a", "b", "b", None, "c"],
                                   labels=ABC, outputs=["a", "a", "b", "b", " ", "c"])


def test_classification_metrics_by_hand(small) -> None:
    # per class: a P=2/2 R=2/3 F1=.8 | b P=1/2 R=1/2 F1=.5 | c P=1 R=1 F1=1; supports 3, 2, 1
    expected = {
        "accuracy": 4 / 6, "macro_precision": (1 + 0.5 + 1) / 3, "macro_recall": (2 / 3 + 0.5 + 1) / 3,
        "macro_f1": (0.8 + 0.5 + 1) / 3, "weighted_f1": (0.8 * 3 + 0.5 * 2 + 1 * 1) / 6, "validity_rate": 5 / 6,
    }
    for metric, value in expected.items():
        assert small.value(metric) == pytest.approx(value), f"{metric}: {small.value(metric)} != {value}"
    assert small.per_class_accuracy == pytest.approx({"a": 2 / 3, "b": 0.5, "c": 1.0}), small.per_class_accuracy
    assert small.per_class_support == {"a": 3, "b": 2, "c": 1}
    assert small.empty_outputs == 1, f"one whitespace output, counted {small.empty_outputs}"
    assert small.n == 6


def test_confusion_has_an_invalid_column(small) -> None:
    assert small.confusion == [[2, 1, 0, 0], [0, 1, 0, 1], [0, 0, 1, 0]], small.confusion
    assert metrics_from_confusion(small.confusion, ABC).accuracy == small.accuracy, "round trip changed accuracy"
    assert metrics_from_confusion(small.confusion, ABC).n == small.n, "round trip dropped the invalid column"


@pytest.mark.parametrize("matrix", [[[1, 0], [0, 1]], [[1, 0, 0, 0, 0]] * 3, [[1, 0, 0]] * 4])
def test_confusion_of_the_wrong_shape_is_refused(matrix) -> None:
    with pytest.raises(ValueError, match="confusion matrix is"):
        metrics_from_confusion(matrix, ABC)


def test_classification_metrics_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="no examples"):
        classification_metrics([], [], ABC, [])
    with pytest.raises(ValueError, match="lengths differ: 2 gold, 1 predicted, 2 outputs"):
        classification_metrics(["a", "b"], ["a"], ABC, ["a", "b"])
    with pytest.raises(ValueError, match=r"gold labels \['d'\] are not in the label set"):
        classification_metrics(["d"], ["a"], ABC, ["a"])
    with pytest.raises(KeyError, match="Did you mean 'accuracy'"):
        metrics_from_confusion([[1, 0, 0]] * 3, ABC).value("acuracy")


def test_seed_confusion_matrices() -> None:
    base = metrics_from_confusion([[10, 0, 0], [10, 0, 0], [10, 0, 0]], IRIS)  # all setosa
    tuned = metrics_from_confusion([[9, 1, 0], [0, 10, 0], [2, 8, 0]], IRIS)
    assert (base.accuracy, tuned.accuracy) == pytest.approx((10 / 30, 19 / 30)), (base.accuracy, tuned.accuracy)
    # F1 = 2TP / (2TP + FP + FN): setosa 18/21, versicolor 20/29, virginica 0
    assert tuned.macro_f1 == pytest.approx((18 / 21 + 20 / 29) / 3), tuned.macro_f1
    assert tuned.per_class_accuracy == pytest.approx({"setosa": 0.9, "versicolor": 1.0, "virginica": 0.0})
    assert base.validity_rate == tuned.validity_rate == 1.0
