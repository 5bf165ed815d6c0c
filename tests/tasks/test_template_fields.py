"""A built-in task module fills the card's templates itself, over its examples' fixed fields: a template changed with
--set that reads a field the examples lack is a CardError naming the card field, the closest field and those there
are (the start-up data check shows it as one line, exit 4), never a KeyError from str.format."""

from __future__ import annotations

import re

import pytest

from loragate.card.overrides import apply_overrides
from loragate.card.settings import CardError
from loragate.card.templates import fill
from loragate.tasks import get_task


@pytest.mark.parametrize("task, override, message", [
    ("iris", 'prompt_template="Flower: {petal}"',
     "prompt_template 'Flower: {petal}' reads {petal} (did you mean {petal_width} or {petal_length}?), a field this "
     "task's examples do not have; they have {sepal_length}, {sepal_width}, {petal_length}, {petal_width}: read "
     "those in prompt_template"),
    ("iris", 'target_template=" {species}"',
     "target_template ' {species}' reads {species}, a field this task's examples do not have; they have {label}: "
     "read those in target_template"),
    ("sst2", 'prompt_template="Review: {sentense}"',
     "prompt_template 'Review: {sentense}' reads {sentense} (did you mean {sentence}?)"),
    ("topics", 'prompt_template="{titel}: {description}"',
     "prompt_template '{titel}: {description}' reads {titel} (did you mean {title}?)"),
    ("squad_v2", 'prompt_template="Q: {qestion}"', "prompt_template 'Q: {qestion}' reads {qestion} (did you mean "
     "{question}?)"),
    ("instruct", 'prompt_template="{instrction}"', "prompt_template '{instrction}' reads {instrction} (did you mean "
     "{instruction}?)"),
])
def test_a_template_field_the_examples_lack_is_a_card_error_naming_the_field(task: str, override: str,
                                                                             message: str) -> None:
    built_in = get_task(task)
    built_in.card = apply_overrides(built_in.card, (override,))
    with pytest.raises(CardError, match=re.escape(message)):
        built_in.load_splits()


def test_a_template_the_values_cannot_fill_is_a_card_error_naming_the_field() -> None:
    with pytest.raises(CardError, match=re.escape("prompt_template '{text:d}' cannot be filled from this task's "
                                                  "examples (ValueError: Unknown format code 'd'")):
        fill("{text:d}", {"text": "a"}, "prompt_template")
    assert fill("{text!r} {{literal}}", {"text": "a"}, "prompt_template") == "'a' {literal}"
