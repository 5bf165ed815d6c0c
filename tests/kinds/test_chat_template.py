"""`chat_template: true` on a causal card: prompts are the user turn of a conversation rendered with the base
tokenizer's chat template, on the tiny tier (the tiny base saved with the tiny template) as on a hub base; training
reads those prompts, the adapter key changes with them, and a base without a template is refused naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from loragate.card.options import RunOptions
from loragate.card.overrides import OverrideError, apply_overrides
from loragate.data.examples import Splits
from loragate.models.bases import LoadedBase
from loragate.models.chat import TINY_CHAT_TEMPLATE, ChatTemplateError
from loragate.run.steps import for_base, kind, load_task
from loragate.tasks import get_task
from loragate.tasks.iris import IrisTask

CHAT = ("chat_template=true",)


@pytest.fixture(scope="module")
def chat_iris() -> IrisTask:
    return load_task("iris", RunOptions(overrides=CHAT))


def tiny_base(task: IrisTask, splits: Splits, cache: Path) -> LoadedBase:
    import torch

    from loragate.models.bases import load_causal

    source, shown = kind(task).base_source(task, "tiny", splits, RunOptions(cache=cache))
    return load_causal(source, "cpu", torch.float32, display_name=shown)


@pytest.fixture(scope="module")
def chat_base(tmp_path_factory: pytest.TempPathFactory, chat_iris: IrisTask, iris_splits: Splits) -> LoadedBase:
    return tiny_base(chat_iris, iris_splits, tmp_path_factory.mktemp("cache"))


def test_an_encoder_card_refuses_chat_template() -> None:
    with pytest.raises(OverrideError, match="chat_template: kind sequence_classification reads prompts with an "
                                            "encoder.*remove chat_template"):
        apply_overrides(get_task("topics").card, CHAT)
    with pytest.raises(OverrideError, match="chat_template"):
        apply_overrides(get_task("iris").card, ("chat_template=yes",))  # YAML 1.1's yes is no boolean here


def test_prompts_are_the_user_turn_of_the_base_template_in_every_split(chat_iris: IrisTask, iris_splits: Splits,
                                                                       chat_base: LoadedBase) -> None:
    assert chat_base.tokenizer.chat_template == TINY_CHAT_TEMPLATE, "the tiny base of a chat card needs a template"
    formatted = for_base(chat_iris, iris_splits, chat_base)
    for name in ("train", "eval", "test"):
        for plain, chat in zip(getattr(iris_splits, name), getattr(formatted, name)):
            assert chat.prompt == f"<|user|>\n{plain.prompt}\n<|assistant|>\n", chat.prompt
            assert (chat.target, chat.label, chat.fields) == (plain.target, plain.label, plain.fields)
    assert for_base(chat_iris, formatted, chat_base) == formatted, "rendering again from the fields changes nothing"
    assert for_base(get_task("iris"), iris_splits, chat_base) == iris_splits, "a card without chat_template"


def test_training_reads_the_formatted_prompt_and_the_target_then_eos(chat_iris: IrisTask, iris_splits: Splits,
                                                                     chat_base: LoadedBase) -> None:
    from loragate.training.lora import IGNORE, encode_all

    tokenizer = chat_base.tokenizer
    example = for_base(chat_iris, iris_splits, chat_base).train[0]
    ((ids, labels),) = encode_all(tokenizer, [example], 128)
    prompt = tokenizer(example.prompt).input_ids
    assert ids[: len(prompt)] == prompt and tokenizer.decode(prompt, skip_special_tokens=True).startswith("<|user|>")
    assert labels[: len(prompt)] == [IGNORE] * len(prompt), "no loss on the chat-formatted prompt"
    assert labels[len(prompt):] == tokenizer(example.target, add_special_tokens=False).input_ids + \
        [tokenizer.eos_token_id]


def test_chat_template_changes_the_adapter_key(tmp_path: Path, chat_iris: IrisTask, iris_splits: Splits,
                                               chat_base: LoadedBase) -> None:
    from loragate.store.adapters import adapter_key

    plain_task = get_task("iris")
    plain_base = tiny_base(plain_task, iris_splits, tmp_path)
    settings = chat_iris.card.tier("tiny")
    keys = {adapter_key(base.fingerprint, for_base(task, iris_splits, base).data_hash(), settings.lora,
                        settings.train) for task, base in ((plain_task, plain_base), (chat_iris, chat_base))}
    assert len(keys) == 2, "the same key for chat-formatted and plain prompts would load the wrong adapter"
    assert for_base(chat_iris, iris_splits, chat_base).data_hash() != iris_splits.data_hash()


def test_a_base_without_a_chat_template_is_refused_naming_the_card_field(chat_iris: IrisTask, iris_splits: Splits,
                                                                         fresh_base: LoadedBase) -> None:
    assert not fresh_base.tokenizer.chat_template  # iris's plain tiny base
    with pytest.raises(ChatTemplateError, match=r"has no chat template, so the card's prompts \(kind instruct, or "
                                                r"chat_template: true\).*remove chat_template from the card"):
        for_base(chat_iris, iris_splits, fresh_base)


@pytest.mark.slow
def test_a_chat_card_trains_and_passes_the_gate_on_formatted_prompts(tmp_path: Path) -> None:
    from loragate.run.task_run import run_task

    options = RunOptions(overrides=CHAT, store_root=tmp_path / "adapters", cache=tmp_path / ".loragate",
                         progress=False)
    run = run_task("iris", "tiny", options)
    assert run.trained is not None and run.manifest is not None
    assert all(ex.prompt.startswith("<|user|>\nSepal length: ") and ex.prompt.endswith("\n<|assistant|>\n")
               for ex in run.splits.test), run.splits.test[0].prompt
    assert run.manifest.data_hash == run.splits.data_hash()
    assert run.passed, [f"{gate.check}: {gate.finding}" for gate in run.gates if not gate.passed]
