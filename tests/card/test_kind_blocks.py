"""A kind's card block (`qa:`, `instruct:`, `structured:`) is declared by the kind's package and validated by the card
as the card's own fields are: errors at the block's field, with the card's other errors, in the same words."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from pydantic import field_validator
from pydantic_core import PydanticCustomError

from loragate.card.overrides import apply_overrides
from loragate.card.settings import TaskCard
from loragate.kinds import KINDS
from loragate.tasks import CARDS_DIR
from tests.card.errors import card_error

SQUAD = yaml.safe_load((CARDS_DIR / "squad_v2.yaml").read_text())
IRIS = yaml.safe_load((CARDS_DIR / "iris.yaml").read_text())


def raw_error(tmp_path: Path, raw: dict) -> str:
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump(raw))
    return card_error(path)


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
    message = raw_error(tmp_path, raw)
    assert "field 'qa.strid': Extra inputs are not permitted" in message, message
    assert "field 'qa.stride': Input should be greater than or equal to 0" in message, message
    assert "field 'tiers.tiny.train.epochs': Input should be greater than 0" in message, message


def test_an_unknown_top_level_key_is_still_refused(tmp_path: Path) -> None:
    raw = copy.deepcopy(IRIS)
    raw["qaa"] = {}
    assert "field 'qaa': Extra inputs are not permitted" in raw_error(tmp_path, raw)


def test_a_kind_without_its_block_names_the_block(tmp_path: Path) -> None:
    raw = copy.deepcopy(SQUAD)
    del raw["qa"]
    assert "kind extractive_qa needs a 'qa' block; add 'qa: {}' for its defaults" in raw_error(tmp_path, raw)


def test_set_fills_a_block_the_card_left_out() -> None:
    card = TaskCard.from_yaml(CARDS_DIR / "squad_v2.yaml")
    raw = card.model_dump()
    del raw["qa"]
    raw["tiers"]["tiny"]["eval"]["batch_size"] = 4  # any valid change: the dump of a card without its block
    assert list(raw)[list(raw).index("subgroups") + 1:][:3] == ["instruct", "structured", "data"], list(raw)
    assert apply_overrides(card, ("qa.stride=32",)).block("qa").stride == 32


def test_a_block_of_another_kind_is_refused_naming_its_kind(tmp_path: Path) -> None:
    raw = copy.deepcopy(IRIS)
    raw["qa"] = {"stride": 32}  # an Iris card would silently carry settings no step reads
    message = raw_error(tmp_path, raw)
    assert "the 'qa' block belongs to kind extractive_qa, and this card's kind is generative_classification" in \
        message, message


def test_a_blocks_own_error_type_is_a_card_error_at_its_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kind's block model may raise pydantic's custom errors; they are reported as the card's own are."""
    model = KINDS.get("extractive_qa").block_model

    class Picky(model):
        @field_validator("stride")
        @classmethod
        def even(cls, stride: int) -> int:
            if stride % 2:
                raise PydanticCustomError("odd_stride", "stride {stride} must be even", {"stride": stride})
            return stride

    monkeypatch.setitem(KINDS._entries, "extractive_qa", replace(KINDS.get("extractive_qa"), block_model=Picky))
    raw = copy.deepcopy(SQUAD)
    raw["qa"]["stride"] = 33
    assert "field 'qa.stride': stride 33 must be even" in raw_error(tmp_path, raw)


def test_two_kinds_declaring_one_block_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    twin = replace(KINDS.get("extractive_qa"), name="twin_qa")
    monkeypatch.setitem(KINDS._entries, "twin_qa", twin)
    assert "kinds extractive_qa and twin_qa both declare the card block 'qa'" in raw_error(tmp_path, SQUAD)


def test_a_kind_spec_is_checked_where_it_is_made() -> None:
    spec = KINDS.get("extractive_qa")
    with pytest.raises(ValueError, match="block and block_model go together"):
        replace(spec, block_model=None)
    with pytest.raises(ValueError, match=r"metrics \['nonesuch'\] are not registered"):
        replace(spec, metrics=("nonesuch",))


def test_pooling_on_a_kind_that_reads_none_names_the_kinds_that_do(tmp_path: Path) -> None:
    raw = copy.deepcopy(IRIS)
    raw["tiers"]["tiny"]["pooling"] = "mean"
    readers = [name for name in KINDS.names() if KINDS.get(name).pooling]
    assert readers, "no kind reads pooling: the test proves nothing"
    message = raw_error(tmp_path, raw)
    assert f"pooling is read only by the kinds {', '.join(readers)}" in message, message
