"""The shipped card loads, and card errors name the file and the field."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from loragate.card.settings import CardError, TaskCard
from loragate.tasks import CARDS_DIR

SHIPPED = yaml.safe_load((CARDS_DIR / "iris.yaml").read_text())


def test_shipped_card_loads() -> None:
    card = TaskCard.from_yaml(CARDS_DIR / "iris.yaml")
    assert card.labels == ["setosa", "versicolor", "virginica"]


def write_card(tmp_path: Path, edit) -> Path:
    raw = copy.deepcopy(SHIPPED)
    edit(raw)
    path = tmp_path / "bad_card.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def set_in(raw: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        raw = raw[part]
    raw[last] = value


CASES = {
    "unknown field": ("tiers.tiny.lora.rank", 8, "tiers.tiny.lora.rank", "Extra inputs are not permitted"),
    "wrong type": ("tiers.tiny.train.epochs", "ten", "tiers.tiny.train.epochs", "valid integer"),
    "duplicate labels": ("labels", ["setosa", "virginica", "setosa"], "labels", "labels repeat ['setosa']"),
    "heads do not divide": ("tiers.tiny.tiny_base.num_attention_heads", 3, "tiers.tiny.tiny_base",
                            "hidden_size 128 must be a multiple of num_attention_heads 3"),
    "unknown tier": ("tiers.huge", SHIPPED["tiers"]["tiny"], "tiers.huge.[key]", "Input should be 'tiny' or 'full'"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_card_error_names_file_and_field(tmp_path: Path, case: str) -> None:
    dotted, value, field, why = CASES[case]
    path = write_card(tmp_path, lambda raw: set_in(raw, dotted, value))
    with pytest.raises(CardError) as caught:
        TaskCard.from_yaml(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:"), f"{case}: error does not start with the file name: {message}"
    assert f"field '{field}'" in message, f"{case}: error does not name field {field!r}: {message}"
    assert why in message, f"{case}: error does not say {why!r}: {message}"


def test_unreadable_yaml_and_missing_file_name_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: iris\nlabels: [a, b\n")
    with pytest.raises(CardError, match=f"^{broken}: cannot read the card"):
        TaskCard.from_yaml(broken)
    missing = tmp_path / "missing.yaml"
    with pytest.raises(CardError, match=f"^{missing}: cannot read the card"):
        TaskCard.from_yaml(missing)


def test_missing_tier_names_the_card_key_to_add() -> None:
    raw = copy.deepcopy(SHIPPED)
    del raw["tiers"]["full"]
    card = TaskCard.model_validate(raw)
    with pytest.raises(CardError, match=r"task 'iris' has no 'full' tier: add tiers.full"):
        card.tier("full")
