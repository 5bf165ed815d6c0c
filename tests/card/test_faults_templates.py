"""Issue 31, cases 4a, 6a, 6b: a card's templates checked when the card is read. A prompt that reads a field the
target reads (the gold label in the prompt) is refused unless the card allows it, which the report then states; a
template with a positional field `{}` or an unmatched brace is a card error naming the template field and the fix,
not an IndexError or ValueError at the first example."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from loragate.card.settings import TaskCard
from loragate.report.rows import card_notes
from tests.card.errors import card_error

ROOT = Path(__file__).parents[2]
TICKETS = ROOT / "examples" / "csv_classification" / "tasks" / "tickets.yaml"


def tickets_with(tmp_path: Path, **fields: object) -> Path:
    """The tickets example card with `fields` replaced (gates: merged into its gates), written to tmp_path."""
    card = yaml.safe_load(TICKETS.read_text())
    card["gates"].update(fields.pop("gates", {}))
    card.update(fields)
    path = tmp_path / "tickets.yaml"
    path.write_text(yaml.safe_dump(card))
    return path


def test_a_prompt_that_reads_the_target_s_field_is_refused(tmp_path: Path) -> None:
    message = card_error(tickets_with(tmp_path, prompt_template="Ticket: {text} [{label}]\nTeam:"))
    assert ("prompt_template 'Ticket: {text} [{label}]\\nTeam:' reads ['label'], which target_template ' {label}' "
            "reads too: the prompt would show the model the answer it is gated on. Take {label} out of "
            "prompt_template, or set gates.allow_target_in_prompt: true") in message, message


def test_a_card_may_allow_it_explicitly_and_the_report_says_so(tmp_path: Path) -> None:
    card = TaskCard.from_yaml(tickets_with(tmp_path, prompt_template="Ticket: {text} [{label}]\nTeam:",
                                           gates={"allow_target_in_prompt": True}))
    run = SimpleNamespace(overrides=(), task=SimpleNamespace(card=card), inputs=None)
    assert ("the prompt may read the target's fields: the card sets gates.allow_target_in_prompt: true"
            in card_notes(run)), card_notes(run)


@pytest.mark.parametrize("path", sorted([*(ROOT / "loragate" / "tasks").glob("*.yaml"),
                                         *(ROOT / "examples").glob("*/tasks/*.yaml")]), ids=lambda p: p.name)
def test_the_built_in_and_example_cards_still_load(path: Path) -> None:
    assert not TaskCard.from_yaml(path).gates.allow_target_in_prompt


@pytest.mark.parametrize(("field", "template", "problem"), [
    ("prompt_template", "Ticket: {}\nTeam:", "has the field {}, which names no example field"),
    ("prompt_template", "Ticket: {0}\nTeam:", "has the field {0}, which names no example field"),
    ("prompt_template", "Ticket: {text\n", "is not a str.format template (expected '}' before end of string)"),
    ("prompt_template", "Ticket: text}\nTeam:", "is not a str.format template (Single '}' encountered"),
    ("target_template", " {label", "is not a str.format template (expected '}' before end of string)"),
])
def test_a_template_that_cannot_be_filled_is_a_card_error_naming_it(tmp_path: Path, field: str, template: str,
                                                                     problem: str) -> None:
    message = card_error(tickets_with(tmp_path, **{field: template}))
    assert f"field '{field}': Value error, {template!r} {problem}" in message, message
    assert "write a literal brace as {{ or }}" in message, message


def test_doubled_braces_are_literal_braces(tmp_path: Path) -> None:
    card = TaskCard.from_yaml(tickets_with(tmp_path, prompt_template="{{ticket}}: {text}\nTeam:"))
    assert card.prompt_template.format(text="refund") == "{ticket}: refund\nTeam:"


def test_a_prompt_that_reads_part_of_the_target_is_context_not_the_answer(tmp_path: Path) -> None:
    """A target that reads the prompt's field and one more (`Translate to {lang}` -> `{lang}: {translation}`) is
    answered, not shown: refused only where the prompt reads every field the target reads."""
    path = tickets_with(tmp_path, prompt_template="Ticket: {text}\nTeam:", target_template=" {label} for {text}")
    assert TaskCard.from_yaml(path).target_template == " {label} for {text}"
