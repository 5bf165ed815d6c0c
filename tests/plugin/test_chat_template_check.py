"""A chat-formatted card (chat_template: true, or the instruct kind) on a base whose tokenizer has no chat template is
refused by the start-up data check, naming where the base was given and the card field, where the tokenizer can be
read without the weights; it was a ChatTemplateError traceback when the base loaded, under the first gate test."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from loragate.card.options import RunOptions
from loragate.models.bases import train_tokenizer
from loragate.models.chat import TINY_CHAT_TEMPLATE, has_chat_template
from loragate.plugin.data_check import check_data

TEXTS = ["a flower with long petals", "a short sepal", "setosa versicolor virginica"]


def tokenizer_dir(path: Path, chat_template: str | None) -> Path:
    train_tokenizer(TEXTS, 64, chat_template).save_pretrained(path)
    return path


def test_a_chat_template_card_on_a_base_without_one_is_refused_naming_the_flag_and_the_field(tmp_path: Path) -> None:
    base = tokenizer_dir(tmp_path / "base", None)
    options = RunOptions(base_model=str(base), overrides=("chat_template=true",), cache=tmp_path / "cache")
    with pytest.raises(pytest.UsageError, match=re.escape(
            f"task iris: --base-model {str(base)!r}: its tokenizer has no chat template, and the card's prompts go "
            f"through one (chat_template: true). Fix: use the model's instruct/chat variant")) as refused:
        check_data(["iris"], options, ["tiny"])
    assert str(refused.value).endswith("or remove chat_template from the card")


def test_the_instruct_kind_names_itself_and_a_tier_base_names_its_card_field(tmp_path: Path) -> None:
    base = tokenizer_dir(tmp_path / "base", None)
    options = RunOptions(overrides=(f"tiers.full.base_model={base}",), cache=tmp_path / "cache")
    with pytest.raises(pytest.UsageError, match=re.escape(
            f"task instruct: tiers.full.base_model {str(base)!r}: its tokenizer has no chat template, and the card's "
            f"prompts go through one (kind instruct, whose prompts are always a conversation)")):
        check_data(["instruct"], options, ["tiny", "full"])
    check_data(["instruct"], options, ["tiny"])  # a smoke run loads the tiny base only, built with a template


def test_a_base_with_a_template_a_plain_card_and_an_uncached_hub_id_pass(tmp_path: Path) -> None:
    with_template = tokenizer_dir(tmp_path / "chat", TINY_CHAT_TEMPLATE)
    check_data(["iris"], RunOptions(base_model=str(with_template), overrides=("chat_template=true",),
                                    cache=tmp_path / "cache"), ["tiny"])
    without = tokenizer_dir(tmp_path / "plain", None)
    check_data(["iris"], RunOptions(base_model=str(without), cache=tmp_path / "cache"), ["tiny"])
    assert has_chat_template(str(with_template)) is True and has_chat_template(str(without)) is False
    assert has_chat_template("loragate-tests/not-in-any-cache") is None  # left to the load, which says why
