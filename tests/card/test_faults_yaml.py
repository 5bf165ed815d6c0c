"""Issue 31, cases 3b, 3d, 3e: how a card's YAML is read. A key given twice is an error naming the file, the line
and the key (YAML would keep the last silently); only true/false are booleans, so YAML 1.1's yes/no/on/off stay
strings that a numeric field refuses naming it (they were read as 1 and 0.0). The same for `--set` values."""

from __future__ import annotations

from pathlib import Path

import pytest

from loragate.card.loader import load_yaml
from loragate.card.overrides import OverrideError, apply_overrides
from loragate.tasks import get_task
from tests.card.errors import card_error

IRIS = Path(__file__).parents[2] / "loragate" / "tasks" / "iris.yaml"


def text_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "card.yaml"
    path.write_text(text)
    return card_error(path)


def test_a_second_gates_block_is_an_error_naming_the_file_the_line_and_the_key(tmp_path: Path) -> None:
    text = IRIS.read_text()
    first = text.splitlines().index("gates:") + 1
    message = text_error(tmp_path, text + "gates:\n  min_delta: {accuracy: -1.0}\n")
    last = len(text.splitlines()) + 1
    assert message.startswith(f"{tmp_path / 'card.yaml'}: cannot read the card: line {last}: the key 'gates' is "
                              f"given twice in one mapping (first at line {first})"), message


def test_a_key_given_twice_deeper_in_the_card_is_refused_too(tmp_path: Path) -> None:
    text = IRIS.read_text().replace("  min_validity: 1.0\n", "  min_validity: 1.0\n  min_validity: 0.0\n")
    message = text_error(tmp_path, text)
    assert "the key 'min_validity' is given twice" in message, message


@pytest.mark.parametrize(("line", "value", "field"), [
    ("    lora: {r: 8,", "    lora: {r: yes,", "tiers.tiny.lora.r"),
    ("  min_validity: 1.0", "  min_validity: off", "gates.min_validity"),
    ("    train: {epochs: 12,", "    train: {gradient_checkpointing: on, epochs: 12,",
     "tiers.tiny.train.gradient_checkpointing"),
])
def test_yaml_1_1_booleans_are_strings_that_the_field_refuses(tmp_path: Path, line: str, value: str,
                                                              field: str) -> None:
    text = IRIS.read_text()
    assert line in text
    message = text_error(tmp_path, text.replace(line, value, 1))
    assert f"field '{field}'" in message, message


def test_only_true_and_false_in_any_case_are_booleans() -> None:
    assert load_yaml("a: true\nb: FALSE\nc: True\nd: yes\ne: off\nf: n") == {
        "a": True, "b": False, "c": True, "d": "yes", "e": "off", "f": "n"}


@pytest.mark.parametrize(("override", "field"), [
    ("tiers.tiny.lora.r=yes", "tiers.tiny.lora.r"),
    ("gates.min_validity=off", "gates.min_validity"),
    ("tiers.tiny.train.gradient_checkpointing=on", "tiers.tiny.train.gradient_checkpointing"),
])
def test_set_values_read_yes_and_off_as_strings(override: str, field: str) -> None:
    with pytest.raises(OverrideError, match=f"--set {override}: field '{field}'"):
        apply_overrides(get_task("iris").card, [override])


def test_a_set_value_that_gives_a_key_twice_is_refused() -> None:
    with pytest.raises(OverrideError, match=r"gives a key twice \(line 1: the key 'accuracy' is given twice"):
        apply_overrides(get_task("iris").card, ["gates.min_delta={accuracy: 0.1, accuracy: -1}"])


@pytest.mark.parametrize("override", ["gates.max_leakage=true", "gates.min_validity=false", "tiers.tiny.lora.r=true",
                                      "gates.min_delta.accuracy=true"])
def test_a_boolean_is_no_number(override: str) -> None:
    """pydantic reads true as 1 and false as 0: `max_leakage: true` allowed every repeat, `min_validity: false` gated
    no validity (review of issue 31, 3d/3e)."""
    with pytest.raises(OverrideError, match="where a number is due: booleans are not numbers here"):
        apply_overrides(get_task("iris").card, (override,))


def test_a_yes_no_field_still_takes_a_boolean() -> None:
    card = apply_overrides(get_task("iris").card, ("tiers.tiny.train.gradient_checkpointing=true",))
    assert card.tier("tiny").train.gradient_checkpointing is True
