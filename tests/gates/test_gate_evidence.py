"""Every gate that passes says why (issue 32, point 8: the per-class, per-field and validity gates showed "-" as
their evidence in report.html)."""

from __future__ import annotations

from types import SimpleNamespace

from loragate.gates.checks import Validity
from loragate.gates.per_key import KeyDrop, KeyFloor, KeyScore

SCORES = [KeyScore("setosa", 1.0, 1.0, 10), KeyScore("virginica", 1.0, 0.9, 10), KeyScore("versicolor", 0.5, 0.8, 10)]


def scores(tuned: object, base: object) -> list[KeyScore]:
    return SCORES


def test_a_passing_drop_gate_names_the_key_that_lost_most() -> None:
    result = KeyDrop("class", "accuracy", 0.2, scores).judge(None, None)
    assert result.passed
    assert result.evidence == ("largest drop: class 'virginica' accuracy 1.000 -> 0.900 (-0.100, tolerance 0.200, "
                               "n=10; 3 classes)")


def test_a_drop_gate_where_nothing_fell_says_so() -> None:
    gains = lambda tuned, base: [KeyScore("room", 0.2, 0.9, 40)]  # noqa: E731
    assert KeyDrop("field", "exact match", 0.05, gains).judge(None, None).evidence == \
        "no field lost exact match against base (1 field, tolerance 0.050)"


def test_a_passing_floor_gate_names_the_key_nearest_the_floor() -> None:
    result = KeyFloor("class", "accuracy", 0.7, scores).judge(None, None)
    assert result.passed
    assert result.evidence == "lowest: class 'versicolor' accuracy 0.800, floor 0.700 (n=10; 3 classes)"


def test_a_passing_validity_gate_states_its_numbers() -> None:
    tuned, base = SimpleNamespace(validity_rate=0.96, n=50), SimpleNamespace(validity_rate=0.1, n=50)
    result = Validity(0.95).judge(tuned, base)
    assert result.passed and result.evidence == "validity rate 0.960, required 0.950 (base 0.100, n=50)"
