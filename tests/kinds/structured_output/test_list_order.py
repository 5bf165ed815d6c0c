"""Issue 32, point 5: a list field's exact match ignored order, though the schema's `list` is ordered. A list now
compares in order for exact match and F1 alike (F1 counts the items of the longest common subsequence); a set field
(`set[...]`, `frozenset[...]`) or one the card names in `structured.unordered_fields` compares as a multiset."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from loragate.card.settings import CardError
from loragate.kinds.structured_output.fields import field_counts, field_equal, field_layout, layout, list_fields
from loragate.kinds.structured_output.schema import declared_schema
from tests.kinds.structured_output.booking import booking, score, text, write_project
from tests.kinds.structured_output.booking_schema import Booking

SWAPPED = text(booking(stops=["Porto", "Lisbon", "Faro"]))  # gold: Lisbon, Porto, Faro


def test_the_schema_s_lists_and_sets_are_found_by_path() -> None:
    assert list_fields(Booking) == {"location.codes": False, "stops": False, "badges": True, "backup.codes": False}
    assert field_layout(Booking).unordered == {"badges"}


def test_an_order_swapped_list_is_not_an_exact_match_and_finds_its_common_subsequence() -> None:
    ordered = frozenset()
    assert not field_equal(["a", "b"], ["b", "a"], "stops", ordered) and field_equal(["a", "b"], ["a", "b"], "stops",
                                                                                       ordered)
    assert field_counts(["a", "b"], ["b", "a"], "stops", ordered) == (1, 1, 1), "a swapped pair finds one of two"
    assert field_counts(["a", "b", "c"], ["x", "a", "b", "c"], "stops", ordered) == (3, 1, 0), "an insertion costs one"
    assert field_counts(["a", "b", "b"], ["b", "a", "b"], "stops", ordered) == (2, 1, 1)
    metrics = score([SWAPPED])
    assert metrics.validity_rate == 1.0 and metrics.object_exact == 0.0 and metrics.field_exact["stops"] == 0.0
    # tp/fp/fn: guest, location, badges 1/0/0 each; stops 2/1/1 (Lisbon, Faro in order); backup null = null, 0/0/0
    assert metrics.field_micro_f1 == pytest.approx(2 * 5 / (2 * 5 + 1 + 1))
    assert metrics.field_macro_f1 == pytest.approx((1 + 1 + 4 / 6 + 1 + 1) / 5)


@pytest.mark.parametrize("order", [["red", "blue"], ["blue", "red"]])
def test_a_set_field_matches_in_any_order(order: list[str]) -> None:
    gold = text(booking(badges=order))
    for output in (text(booking(badges=["red", "blue"])), text(booking(badges=["blue", "red"]))):
        metrics = score([output], gold=gold)
        assert metrics.object_exact == 1.0 and metrics.field_micro_f1 == 1.0, (gold, output)


def test_a_list_the_card_marks_unordered_matches_in_any_order_at_any_depth(tmp_path: Path) -> None:
    card = write_project(tmp_path, '{output_schema: "booking_schema:Booking", unordered_fields: [stops, '
                                   'location.codes]}')
    fields = layout(card, declared_schema(card, constrained=False))
    assert fields.unordered == {"badges", "stops", "location.codes"}
    codes_swapped = text(booking(**{"location.codes": ["y", "x"]}))
    metrics = score([SWAPPED, codes_swapped], fields)
    assert metrics.object_exact == 1.0 and metrics.field_micro_f1 == 1.0 and metrics.field_exact["location"] == 1.0
    ordered = score([SWAPPED, codes_swapped])
    assert ordered.field_exact["location"] == 0.5 and ordered.field_exact["location.codes"] == 0.5


@pytest.mark.parametrize(("named", "message"), [
    ("stop", r"structured.unordered_fields names 'stop', which is not a list field of Booking \(did you mean "
             r"'stops'\?\); its list fields are location.codes, stops, badges, backup.codes: name one of them"),
    ("guest", r"structured.unordered_fields names 'guest', which is not a list field of Booking; its list fields "
              r"are location.codes, stops"),
])
def test_unordered_fields_must_name_list_fields_of_the_schema(tmp_path: Path, named: str, message: str) -> None:
    card = write_project(tmp_path, f'{{output_schema: "booking_schema:Booking", unordered_fields: [{named}]}}')
    with pytest.raises(CardError, match=rf"^{tmp_path / 'card.yaml'}: task bookings: {message}"):
        declared_schema(card, constrained=False)


EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "json_extraction"


@pytest.mark.slow
def test_a_misspelled_unordered_field_is_a_usage_error_at_start_up(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLE, tmp_path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("adapters", "reports",
                                                                                         ".loragate"))
    card = tmp_path / "tasks" / "orders.yaml"
    card.write_text(card.read_text().replace("output_schema: order_schema:Order",
                                             "output_schema: order_schema:Order\n  unordered_fields: [tag]"))
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    result = subprocess.run([sys.executable, "-m", "pytest", "-m", "smoke", "-p", "no:cacheprovider", "--collect-only",
                             "-q"], cwd=tmp_path, env={**env, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, (result.stdout + result.stderr)[-3000:]
    assert "structured.unordered_fields names 'tag', which is not a list field of Order (did you mean 'tags'?)" in \
        result.stderr and "Traceback" not in result.stderr, result.stderr[-3000:]
