"""Every gate that passes says why (issue 32, point 8: the per-class, per-field and validity gates showed "-" as
their evidence in report.html)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from loragate.gates.checks import Validity
from loragate.gates.per_key import KeyDrop, KeyFloor, KeyScore, key_score


def key(name: str, base: list[int], tuned: list[int]) -> KeyScore:
    """A key's score from its examples' per-example rightness (0 or 1 each), which its drop's interval resamples."""
    return key_score(name, float(np.mean(base)), float(np.mean(tuned)), np.ones(len(base), dtype=bool),
                     np.array(base), np.array(tuned), ())


SCORES = [key("setosa", [1] * 40, [1] * 40), key("virginica", [1] * 40, [1] * 38 + [0] * 2),
          key("versicolor", [1] * 20 + [0] * 20, [1] * 32 + [0] * 8)]


def scores(tuned: object, base: object) -> list[KeyScore]:
    return SCORES


def test_a_passing_drop_gate_names_the_key_that_lost_most() -> None:
    result = KeyDrop("class", "accuracy", 0.2, scores).judge(None, None)
    assert result.passed
    assert result.evidence == ("largest drop: class 'virginica' accuracy 1.000 -> 0.950 (-0.050, tolerance 0.200, "
                               "n=40; 3 classes)")


def test_a_drop_gate_where_nothing_fell_says_so() -> None:
    gains = lambda tuned, base: [key("room", [1] * 8 + [0] * 32, [1] * 36 + [0] * 4)]  # noqa: E731
    assert KeyDrop("field", "exact match", 0.05, gains).judge(None, None).evidence == \
        "no field lost exact match against base (1 field, tolerance 0.050)"


def test_a_passing_floor_gate_names_the_key_nearest_the_floor() -> None:
    result = KeyFloor("class", "accuracy", 0.7, scores).judge(None, None)
    assert result.passed
    assert result.evidence == "lowest: class 'versicolor' accuracy 0.800, floor 0.700 (n=40; 3 classes)"


def test_a_passing_validity_gate_states_its_numbers() -> None:
    tuned, base = SimpleNamespace(validity_rate=0.96, n=50), SimpleNamespace(validity_rate=0.1, n=50)
    result = Validity(0.95).judge(tuned, base)
    assert result.passed and result.evidence == "validity rate 0.960, required 0.950 (base 0.100, n=50)"
