"""Issue 32, point 4 (nested fields): `location.room` wrong 30 times in 400 was visible only example by example. Each
field of a nested object is scored by its path, after the object's own whole-object row: in the per-field rows under
object_exact, the per-field gates (max_field_drop, min_field_score) and report.json's per-example records."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from loragate.gates.per_key import KeyDrop, KeyFloor
from loragate.kinds.structured_output.checks import field_scores
from loragate.kinds.structured_output.fields import field_layout
from loragate.kinds.structured_output.pipeline import KIND
from loragate.kinds.structured_output.schema import parse_object
from tests.kinds.structured_output.booking import GOLD, booking, score, text
from tests.kinds.structured_output.booking_schema import Booking

WRONG_ROOM = text(booking(**{"location.room": "1"}))


def test_nested_fields_are_scored_by_path_after_their_object() -> None:
    assert field_layout(Booking).paths == ["guest", "location", "location.building", "location.room",
                                           "location.codes", "stops", "badges", "backup", "backup.building",
                                           "backup.room", "backup.codes"]
    metrics = score([GOLD] * 3 + [WRONG_ROOM])
    assert metrics.field_exact["location.room"] == 0.75 and metrics.field_exact["location"] == 0.75
    assert metrics.field_exact["location.building"] == 1.0 and metrics.field_exact["location.codes"] == 1.0
    assert metrics.field_exact["backup.room"] == 1.0, "a null object's fields agree with null"
    assert metrics.per_example["field:location.room"] == [1.0, 1.0, 1.0, 0.0]
    # F1 counts top-level fields only (6 items a booking: guest, location, 3 stops, 1 badge): the wrong room costs
    # the one location item, not a second one for location.room
    assert len(metrics.counts[0]) == 3 * 5 and metrics.field_micro_f1 == pytest.approx(2 * 23 / (2 * 23 + 1 + 1))


def test_a_nested_field_against_a_null_object_is_wrong() -> None:
    metrics = score([text(booking(backup={"building": "A", "room": "3", "codes": []}))])
    assert metrics.field_exact["backup"] == 0.0 and metrics.field_exact["backup.room"] == 0.0
    assert score(["not json"]).field_exact["location.room"] == 0.0, "an invalid output has no nested fields either"


def test_nested_fields_get_rows_and_gates_of_their_own() -> None:
    base, tuned = score([GOLD] * 10), score([GOLD] * 7 + [WRONG_ROOM] * 3)
    rows = [row[0] for row in tuned.sub_rows("object_exact", base)]
    assert rows[1:5] == ["field 'location' exact", "field 'location.building' exact", "field 'location.room' exact",
                         "field 'location.codes' exact"], rows
    assert ("field 'location.room' exact", "1.000", "0.700", "-0.300") in tuned.sub_rows("object_exact", base)
    floor = KeyFloor("field", "exact match", 0.8, field_scores).fails(tuned, base)
    assert floor is not None and "field 'location.room' exact match 0.700 < floor 0.800" in floor, floor
    assert "location.building" not in floor
    drop = KeyDrop("field", "exact match", 0.05, field_scores).fails(tuned, base)
    assert drop is not None and "INCONCLUSIVE: field 'location.room' exact match -0.300 [" in drop, drop  # n=10


def test_report_records_and_the_wrong_objects_name_the_nested_field() -> None:
    outputs = [GOLD, WRONG_ROOM]
    predictions = SimpleNamespace(ids=["e0", "e1"], gold=[GOLD] * 2, outputs=outputs,
                                  parsed=[parse_object(output, Booking) for output in outputs])
    run = SimpleNamespace(tuned_metrics=score(outputs), base_metrics=score([GOLD] * 2), tuned_predictions=predictions)
    records = KIND.example_records(run)
    assert records[1]["tuned_fields_exact"]["location.room"] is False
    assert records[1]["tuned_fields_exact"]["location.building"] is True
    assert records[1]["base_fields_exact"]["location.room"] is True
    table = KIND.examples_table(run)
    assert [row[:2] for row in table.rows] == [["e1", f"wrong: location, location.room; gold {GOLD}"]], table.rows
