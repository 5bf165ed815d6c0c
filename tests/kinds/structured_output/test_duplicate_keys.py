"""Issue 32, point 5: a JSON object that writes a key twice (`{"room": "1", "room": "12"}`) counted as strictly
valid, the last value winning. It is invalid, not lenient-valid, with a `duplicate_key` error at the key's path in
the error breakdown and a reason naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from loragate.card.settings import CardError
from loragate.kinds.structured_output.pipeline import KIND
from loragate.kinds.structured_output.schema import duplicate_keys, parse_object
from tests.kinds.structured_output.booking import GOLD, booking, score, write_project
from tests.kinds.structured_output.booking_schema import Booking

# the gold booking with its room written twice, the right value last: a JSON reader keeps "12" and validates it
TWICE = GOLD.replace('"room":"12"', '"room":"1","room":"12"')


def test_a_key_written_twice_makes_the_output_invalid_naming_the_key() -> None:
    assert Booking.model_validate_json(TWICE).location.room == "12", "pydantic alone keeps the last value"
    parsed = parse_object(TWICE, Booking)
    assert not parsed.valid and not parsed.lenient
    assert [(e.loc, e.type) for e in parsed.errors] == [("location.room", "duplicate_key")]
    assert parsed.reason.startswith("location.room: duplicate key 'room', of which a JSON reader keeps only the last "
                                    "value (1 error)"), parsed.reason


def test_duplicates_are_found_at_any_depth_beside_the_schema_s_own_errors() -> None:
    assert duplicate_keys('{"room": "1", "room": "12"}') == [("room",)]
    assert duplicate_keys('{"a": [{"x": 1, "y": 2, "x": 3}], "b": {}, "b": 1}') == [("b",), ("a", 0, "x")]
    assert duplicate_keys('{"a": 1, "b": {"a": 2}}') == [] and duplicate_keys("not json") == []
    both = parse_object('{"guest": "Ada", "guest": "Bo"}', Booking)
    assert ("guest", "duplicate_key") == (both.errors[0].loc, both.errors[0].type)
    assert ("location", "missing") in [(e.loc, e.type) for e in both.errors], both.errors
    assert both.reason.startswith("guest: duplicate key 'guest'") and f"({len(both.errors)} errors)" in both.reason


def test_a_fenced_output_with_a_key_twice_is_not_lenient_valid() -> None:
    assert parse_object(f"```json\n{GOLD}\n```", Booking).lenient
    fenced = parse_object(f"```json\n{TWICE}\n```", Booking)
    assert not fenced.valid and not fenced.lenient, fenced
    chatty = parse_object(f"Here: {TWICE}", Booking)
    assert not chatty.valid and not chatty.lenient, chatty


def test_the_error_breakdown_counts_duplicate_keys_by_path() -> None:
    base, tuned = score([GOLD, GOLD]), score([TWICE, GOLD])
    assert tuned.validity_rate == 0.5 and tuned.object_exact == 0.5, "a duplicate-key output has no fields"
    assert tuned.schema_errors == {"location.room": {"duplicate_key": 1}}
    assert ("error at location.room: duplicate_key", "0.000", "0.500", "+0.500") in tuned.sub_rows("validity_rate",
                                                                                                   base)


def test_a_gold_output_with_a_key_twice_is_a_card_error_naming_the_row(tmp_path: Path) -> None:
    card = write_project(tmp_path)
    row = {"text": "a booking", "output": TWICE}
    with pytest.raises(CardError, match=r"rows.jsonl:3: the gold output writes the key location.room twice"):
        KIND.card_example(card, "r3", row, "rows.jsonl:3")
    assert KIND.card_example(card, "r3", {"text": "a booking", "output": booking()}, "rows.jsonl:3").label == GOLD
