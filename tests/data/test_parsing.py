"""parse_label: surrounding whitespace is ignored, anything else is invalid with a reason that says why."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel

from loragate.data.parsing import parse_label


class FooAnswer(BaseModel):
    word: Literal["foo", "foobar"]


FOO_LABELS = ["foo", "foobar"]


@pytest.mark.parametrize("text, label", [
    ("setosa", "setosa"),
    (" setosa", "setosa"),
    ("virginica\n", "virginica"),
    ("\t versicolor \n", "versicolor"),
])
def test_valid_labels_with_surrounding_whitespace(iris, text: str, label: str) -> None:
    parsed = iris.parse(text)
    assert parsed.valid, f"{text!r} should parse as {label!r}, got reason {parsed.reason!r}"
    assert parsed.value.species == label and parsed.reason is None, (text, parsed)


@pytest.mark.parametrize("text, reason", [
    ("", "empty output"),
    ("  \n\t", "whitespace-only output"),
    ("setosa.", "trailing junk after 'setosa': '.'"),
    ("setosa\nmore", "trailing junk after 'setosa': '\\nmore'"),
    ("rose", "unknown label 'rose'; expected one of setosa, versicolor, virginica"),
    ("Setosa", "unknown label 'Setosa' (labels are case-sensitive: did you mean 'setosa'?)"),
    ("VIRGINICA ", "did you mean 'virginica'?"),
])
def test_invalid_outputs_give_their_reason(iris, text: str, reason: str) -> None:
    parsed = iris.parse(text)
    assert not parsed.valid and parsed.value is None, f"{text!r} must not parse, got {parsed.value!r}"
    assert reason in (parsed.reason or ""), f"{text!r}: reason {parsed.reason!r} lacks {reason!r}"


def test_long_bad_output_is_quoted_shortened() -> None:
    parsed = parse_label("x" * 500, FOO_LABELS, FooAnswer, "word")
    assert "'" + "x" * 40 + "...'" in parsed.reason, f"reason should quote 40 chars then '...': {parsed.reason!r}"
    assert len(parsed.reason) < 200, f"reason is {len(parsed.reason)} chars long"


@pytest.mark.parametrize("text, label", [("foo", "foo"), ("foobar", "foobar"), (" foobar\n", "foobar")])
def test_label_that_prefixes_another_is_matched_exactly(text: str, label: str) -> None:
    parsed = parse_label(text, FOO_LABELS, FooAnswer, "word")
    assert parsed.valid and parsed.value.word == label, f"{text!r} -> {parsed}, expected {label!r}"


@pytest.mark.parametrize("text, junk", [("foob", "after 'foo': 'b'"), ("foobarx", "after 'foobar': 'x'")])
def test_trailing_junk_names_the_longest_label_it_extends(text: str, junk: str) -> None:
    parsed = parse_label(text, FOO_LABELS, FooAnswer, "word")
    assert not parsed.valid and junk in parsed.reason, f"{text!r}: reason {parsed.reason!r} lacks {junk!r}"


def test_label_the_schema_rejects_is_invalid_not_raised() -> None:
    parsed = parse_label("baz", [*FOO_LABELS, "baz"], FooAnswer, "word")
    assert not parsed.valid, f"'baz' is not in the schema's Literal yet parsed as {parsed.value!r}"
    assert parsed.reason.startswith("schema rejected 'baz'"), parsed.reason
