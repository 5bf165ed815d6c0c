"""A card's `labels`: names as text or whole numbers, or a mapping from the data's values to names; the names are the
labels everywhere, the mapping survives a `--set`, and what cannot be a label is refused saying to quote it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from loragate.card.overrides import apply_overrides
from loragate.card.settings import CardError, TaskCard

TIER = {"base_model": "tiny", "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj"]},
        "train": {"epochs": 1, "batch_size": 4, "lr": 1e-3}}


def raw(labels: object) -> dict:
    return {"name": "news", "description": "d", "kind": "generative_classification", "labels": labels,
            "prompt_template": "{text}\nTopic:", "tiers": {"tiny": TIER}, "gates": {}}


def card(labels: object) -> TaskCard:
    return TaskCard.model_validate(raw(labels))


def test_whole_numbers_are_labels_as_they_read() -> None:
    numbered = card([1, 2, 3])
    assert numbered.labels == ["1", "2", "3"] and numbered.label_values == {"1": "1", "2": "2", "3": "3"}


def test_a_mapping_names_the_data_values_and_the_names_are_the_labels() -> None:
    named = card({1: "World", 2: "Sports", "3": "Sci/Tech"})
    assert named.labels == ["World", "Sports", "Sci/Tech"]
    assert named.label_values == {"1": "World", "2": "Sports", "3": "Sci/Tech"}


def test_a_mapping_survives_a_set_override() -> None:
    """`--set` dumps the card and validates it again: a mapping dumped as a list of names would lose the values."""
    overridden = apply_overrides(card({1: "World", 2: "Sports"}), ("gates.min_validity=0.5",))
    assert overridden.labels == ["World", "Sports"] and overridden.label_values == {"1": "World", "2": "Sports"}
    assert card(["a", "b"]).model_dump()["labels"] == ["a", "b"], "a list dumps as it was (adapter keys unchanged)"


@pytest.mark.parametrize(("labels", "expected"), [
    ([0.5, 1.5], 'labels[0] is 0.5, a float: a label is text or a whole number; quote it ("0.5") to make it text'),
    ([True, False], 'labels[0] is true, a bool: a label is text or a whole number; quote it ("true") to make it text'),
    ({1: "World", "1": "Sports"}, "the data value '1' is mapped twice ('World' and 'Sports'); map each value once"),
    ({1: "World", 2: 2.5}, "the name of the data value 2 is 2.5, a float"),
    ({1: "World", 2: "World"}, "labels repeat ['World']: list each label once"),
])
def test_what_cannot_be_a_label_is_refused_at_the_labels_field(tmp_path: Path, labels: object, expected: str) -> None:
    path = tmp_path / "news.yaml"
    path.write_text(yaml.safe_dump(raw(labels)))
    with pytest.raises(CardError) as raised:
        TaskCard.from_yaml(path)
    assert f"field 'labels': Value error, {expected}" in str(raised.value), str(raised.value)
