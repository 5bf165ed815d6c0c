"""A kind's card block (`qa:`, `instruct:`, `structured:`) is declared by the kind's package and validated by the card
as the card's own fields are: errors at the block's field, with the card's other errors, in the same words."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from loragate.card.overrides import apply_overrides
from loragate.card.settings import CardError, TaskCard
from loragate.kinds import KINDS
from loragate.tasks import CARDS_DIR

SQUAD = yaml.safe_load((CARDS_DIR / "squad_v2.yaml").read_text())
IRIS = yaml.safe_load((CARDS_DIR / "iris.yaml").read_text())


def card_error(tmp_path: Path, raw: dict) -> str:
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(CardError) as caught:
        TaskCard.from_yaml(path)
    return str(caught.value)


def test_the_block_is_the_kinds_model_and_reads_as_before() -> None:
    card = TaskCard.from_yaml(CARDS_DIR / "squad_v2.yaml")
    assert isinstance(card.block("qa"), KINDS.get("extractive_qa").block_model)
    assert card.block("qa").stride == SQUAD["qa"]["stride"] and card.block("instruct") is None
    assert card.model_dump()["qa"]["stride"] == SQUAD["qa"]["stride"]


def test_a_bad_block_field_and_a_bad_card_field_are_named_together(tmp_path: Path) -> None:
    raw = copy.deepcopy(SQUAD)
    raw["qa"]["strid"] = 32
    raw["qa"]["stride"] = -1
    raw["tiers"]["tiny"]["train"]["epochs"] = 0
    message = card_error(tmp_path, raw)
    assert "field 'qa.strid': Extra inputs are not permitted" in message, message
    assert "field 'qa.stride': Input should be greater than or equal to 0" in message, message
    assert "field 'tiers.tiny.train.epochs': Input should be greater than 0" in message, message


def test_an_unknown_top_level_key_is_still_refused(tmp_path: Path) -> None:
    raw = copy.deepcopy(IRIS)
    raw["qaa"] = {}
    assert "field 'qaa': Extra inputs are not permitted" in card_error(tmp_path, raw)


def test_a_kind_without_its_block_names_the_block(tmp_path: Path) -> None:
    raw = copy.deepcopy(SQUAD)
    del raw["qa"]
    assert "kind extractive_qa needs a 'qa' block; add 'qa: {}' for its defaults" in card_error(tmp_path, raw)


def test_set_fills_a_block_the_card_left_out() -> None:
    card = TaskCard.from_yaml(CARDS_DIR / "iris.yaml")
    assert card.model_dump()["qa"] is None
    assert apply_overrides(card, ("qa.stride=32",)).block("qa").stride == 32


def test_pooling_on_a_kind_that_reads_none_names_the_kinds_that_do(tmp_path: Path) -> None:
    raw = copy.deepcopy(IRIS)
    raw["tiers"]["tiny"]["pooling"] = "mean"
    readers = [name for name in KINDS.names() if KINDS.get(name).pooling]
    assert readers, "no kind reads pooling: the test proves nothing"
    message = card_error(tmp_path, raw)
    assert f"pooling is read only by the kinds {', '.join(readers)}" in message, message
