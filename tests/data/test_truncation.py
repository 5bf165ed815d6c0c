"""Examples longer than train.max_length: refused with the --set that lifts it, or their prompts cut from the left or
right (which tokens go, and the answer never), and `max_length: auto` resolved from the data, capped at the base's
positions."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from loragate.card.options import RunOptions
from loragate.card.overrides import apply_overrides
from loragate.card.settings import CardError, TrainSettings
from loragate.data.examples import Splits
from loragate.data.truncation import SPLITS, cut_prompt, fit_splits, position_cap
from loragate.kinds.sequence_classification.heads import classification_features
from loragate.models.bases import load_causal, resolve_encoder
from loragate.run.steps import fit_inputs, kind, load_splits, load_task
from loragate.tasks import get_task
from loragate.tasks.iris import IrisTask

AUTO = TrainSettings(epochs=1, batch_size=1, lr=1e-3)  # max_length and truncation left at their defaults


@pytest.fixture(scope="module")
def tokenizer(tiny_dir: Path) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(str(tiny_dir))


def answers_of(task, tokenizer: PreTrainedTokenizerBase, splits: Splits) -> dict[str, list[int]]:
    base = SimpleNamespace(tokenizer=tokenizer)
    return {name: kind(task).answer_tokens(task, base, getattr(splits, name)) for name in SPLITS}


def needs(tokenizer: PreTrainedTokenizerBase, splits: Splits, answers: dict[str, list[int]]) -> dict[str, list[int]]:
    return {name: [len(tokenizer(ex.prompt).input_ids) + answer
                   for ex, answer in zip(getattr(splits, name), answers[name])]
            for name in SPLITS}


def test_max_length_defaults_to_auto_and_is_resolved_before_training() -> None:
    assert AUTO.max_length == "auto" and AUTO.truncation == "refuse"
    with pytest.raises(CardError, match="train.max_length is still 'auto': resolve it with loragate.data.truncation"):
        AUTO.resolved_max_length()


def test_a_cut_drops_tokens_from_the_named_side_and_keeps_the_special_tokens(tokenizer, iris_splits: Splits) -> None:
    prompt = iris_splits.train[0].prompt
    bos, *content = tokenizer(prompt).input_ids
    left, right = (cut_prompt(tokenizer, prompt, 6, side) for side in ("left", "right"))
    assert tokenizer(left).input_ids == [bos, *content[-5:]] and prompt.endswith(left)
    assert tokenizer(right).input_ids == [bos, *content[:5]] and prompt.startswith(right)
    assert cut_prompt(tokenizer, prompt, len(content) + 1, "left") == prompt


def test_every_label_gets_the_longest_labels_room_so_a_cut_prompt_cannot_tell_its_label(
        iris: IrisTask, tokenizer, iris_splits: Splits) -> None:
    task = SimpleNamespace(card=apply_overrides(iris.card, ["labels=[setosa, setosa versicolor virginica]"]))
    own = [len(tokenizer(f" {label}", add_special_tokens=False).input_ids) + 1 for label in task.card.labels]
    assert len(set(own)) > 1, "the labels tokenize to the same length: this test would not notice its own rule"
    answers = answers_of(task, tokenizer, iris_splits)
    assert {answer for split in answers.values() for answer in split} == {max(own)}


def test_refusing_names_the_sets_that_lift_it(iris: IrisTask, tokenizer, iris_splits: Splits) -> None:
    answers = answers_of(iris, tokenizer, iris_splits)
    longest = max(need for split in needs(tokenizer, iris_splits, answers).values() for need in split)
    with pytest.raises(CardError) as error:
        fit_splits(iris_splits, tokenizer, answers, AUTO.model_copy(update={"max_length": longest - 1}), 256,
                   "tiers.tiny")
    assert f"take more than train.max_length {longest - 1} tokens" in str(error.value)
    assert (f"lift it with --set tiers.tiny.train.max_length={longest} or cut their prompts with "
            f"--set tiers.tiny.train.truncation=right (or =left)") in str(error.value)
    with pytest.raises(CardError, match=rf"takes {longest}\): the base reads at most {longest - 2} positions, so cut "
                                        r"their prompts with "
                                        r"--set tiers.full.train.truncation=right"):
        fit_splits(iris_splits, tokenizer, answers, AUTO, longest - 2, "tiers.full")


def test_an_answer_that_cannot_fit_is_refused_since_only_prompts_are_cut(iris: IrisTask, tokenizer,
                                                                         iris_splits: Splits) -> None:
    answers = answers_of(iris, tokenizer, iris_splits)
    room = answers["train"][0]  # the answer alone, with no room for the prompt's BOS
    with pytest.raises(CardError, match=f"its answer takes {room} tokens, which with the prompt's 1 special tokens "
                                        f"exceed train.max_length {room}; truncation cuts prompts, never the answer: "
                                        f"raise it with --set tiers.tiny.train.max_length={room + 2}"):
        fit_splits(iris_splits, tokenizer, answers, AUTO.model_copy(update={"max_length": room, "truncation": "left"}),
                   256, "tiers.tiny")


def test_auto_is_the_longest_example_and_leaves_every_example_as_it_was(iris: IrisTask, tokenizer,
                                                                        iris_splits: Splits) -> None:
    answers = answers_of(iris, tokenizer, iris_splits)
    longest = max(need for split in needs(tokenizer, iris_splits, answers).values() for need in split)
    fitted, fit = fit_splits(iris_splits, tokenizer, answers, AUTO, 256, "tiers.tiny")
    assert fitted == iris_splits
    assert (fit.max_length, fit.auto, fit.longest, fit.truncated) == (longest, True, longest,
                                                                      {"train": 0, "eval": 0, "test": 0})
    assert fit.note() is None  # nothing was cut: the tables stay as they were


@pytest.mark.parametrize("side", ["left", "right"])
def test_auto_is_capped_at_the_bases_positions_and_truncation_fits_every_split(iris: IrisTask, tokenizer, side: str,
                                                                               iris_splits: Splits) -> None:
    answers = answers_of(iris, tokenizer, iris_splits)
    before = needs(tokenizer, iris_splits, answers)
    cap = max(need for split in before.values() for need in split) - 3
    fitted, fit = fit_splits(iris_splits, tokenizer, answers, AUTO.model_copy(update={"truncation": side}), cap,
                             "tiers.tiny")
    assert fit.max_length == cap and "capped at the base's" in fit.note()
    assert fit.truncated == {name: sum(need > cap for need in before[name]) for name in SPLITS}
    assert max(need for split in needs(tokenizer, fitted, answers).values() for need in split) <= cap
    for name in SPLITS:
        for was, now in zip(getattr(iris_splits, name), getattr(fitted, name)):
            kept = was.prompt.endswith if side == "left" else was.prompt.startswith
            assert kept(now.prompt) and (now.target, now.label, now.id) == (was.target, was.label, was.id)


def test_an_encoders_text_is_cut_to_max_length_with_its_special_tokens() -> None:
    topics = get_task("topics")
    splits = topics.load_splits()
    tokenizer = AutoTokenizer.from_pretrained(resolve_encoder("minilm"))
    answers = answers_of(topics, tokenizer, splits)
    assert {answer for split in answers.values() for answer in split} == {0}
    settings = AUTO.model_copy(update={"max_length": 12, "truncation": "right"})
    fitted, fit = fit_splits(splits, tokenizer, answers, settings, 512, "tiers.tiny")
    assert fit.truncated["train"] > 0
    features = classification_features(tokenizer, fitted.train, topics.card.labels, 12)  # refuses anything longer
    assert max(len(feature["input_ids"]) for feature in features) == 12
    assert all(was.prompt.startswith(now.prompt) for was, now in zip(splits.train, fitted.train))


def test_a_kind_that_windows_its_inputs_is_left_as_it_is() -> None:
    squad = get_task("squad_v2")
    splits = load_splits(squad, RunOptions())
    card, fitted, fit = fit_inputs(squad, "tiny", splits, SimpleNamespace())  # the base is not read
    assert (card, fitted, fit) == (squad.card, splits, None)


def test_the_cap_is_the_bases_max_position_embeddings(tiny_dir: Path) -> None:
    import torch

    base = load_causal(str(tiny_dir), "cpu", torch.float32)
    assert position_cap(base.model) == base.model.config.max_position_embeddings == 256


def test_auto_is_resolved_in_the_card_before_the_key_and_the_key_is_that_of_the_number(tiny_dir: Path) -> None:
    import torch

    from loragate.store.adapters import adapter_key

    task = load_task("iris", RunOptions(overrides=("tiers.tiny.train.max_length=auto",)))
    base = load_causal(str(tiny_dir), "cpu", torch.float32)
    card, splits, fit = fit_inputs(task, "tiny", task.load_splits(), base)
    assert fit is not None and fit.auto and card.tier("tiny").train.max_length == fit.max_length == fit.longest
    numbered = load_task("iris", RunOptions(overrides=(f"tiers.tiny.train.max_length={fit.max_length}",))).card
    assert adapter_key("f" * 64, "d" * 64, card.tier("tiny").lora, card.tier("tiny").train) == \
        adapter_key("f" * 64, "d" * 64, numbered.tier("tiny").lora, numbered.tier("tiny").train)


def test_a_built_in_card_takes_a_users_longer_text_without_a_refusal(tiny_dir: Path) -> None:
    """Real reviews and news items are longer than the generated ones (#17): the shipped cards let the data choose
    max_length, so a --data file of longer text trains as it is instead of stopping at a fixed 64."""
    import torch

    task = load_task("iris", RunOptions())
    base = load_causal(str(tiny_dir), "cpu", torch.float32)
    splits = task.load_splits()
    long = replace(splits.test[0], prompt=splits.test[0].prompt + " measured again" * 15)
    splits = replace(splits, test=[long, *splits.test[1:]])
    card, fitted, fit = fit_inputs(task, "tiny", splits, base)
    assert fit is not None and fit.longest > 64 and fit.max_length == fit.longest and fit.auto
    assert fitted == splits and card.tier("tiny").train.max_length == fit.longest


CARDS = sorted(Path(__file__).parents[2].glob("loragate/tasks/*.yaml")) + \
    sorted(Path(__file__).parents[2].glob("examples/*/tasks/*.yaml"))


@pytest.mark.parametrize("path", CARDS, ids=lambda path: path.stem)
def test_every_shipped_cards_tiny_tier_lets_the_data_choose_max_length(path: Path) -> None:
    """A number in a shipped card's tiny tier refuses a user's longer text by default (the CPU tier people try real
    data on); only extractive QA, which windows long passages (qa.max_length), keeps one. The full tiers keep the
    seeds' numbers: a GPU memory budget, refused with the --set that lifts it."""
    card = yaml.safe_load(path.read_text())
    if card["kind"] != "extractive_qa":
        assert card["tiers"]["tiny"]["train"].get("max_length", "auto") == "auto", f"{path.name}: tiny max_length"
