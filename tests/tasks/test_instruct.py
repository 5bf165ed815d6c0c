"""Instruct: the generated data, the chat template both tiers go through, response-only loss, the two loaders."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from loragate.card.settings import CardError, TinyBase
from loragate.data.examples import Splits
from loragate.models.bases import ModelLoadError, tiny_base_dir, train_tokenizer
from loragate.models.chat import (
    TINY_CHAT_TEMPLATE,
    ChatTemplateError,
    drop_overlong,
    example_messages,
    format_prompt,
    format_splits,
    render_tiny,
    render_tiny_splits,
)
from loragate.tasks.instruct import (
    MIN_EXAMPLES,
    Pair,
    generate_pairs,
    load_splits,
    parse_response,
    read_pairs,
)
from loragate.training.lora import IGNORE, encode_all

CARD = Path(__file__).parents[2] / "loragate" / "tasks" / "instruct.yaml"


@pytest.fixture(scope="module")
def splits() -> Splits:
    return load_splits()


@pytest.fixture(scope="module")
def tokenizer(splits: Splits):
    """A tiny BPE tokenizer over the task text, saved-with-template as the tiny base's is."""
    return train_tokenizer(splits.texts(), 384, chat_template=TINY_CHAT_TEMPLATE)


# --- generated data ---------------------------------------------------------------------------------------------

def test_generator_is_deterministic_unique_and_short() -> None:
    pairs = generate_pairs()
    assert pairs == generate_pairs(), "two calls gave different pairs"
    assert len(pairs) == 400, len(pairs)
    instructions = [pair.instruction for pair in pairs]
    assert len(set(instructions)) == len(instructions), "an instruction repeats"
    assert all(pair.response and len(pair.response.split()) <= 16 for pair in pairs), \
        max(pairs, key=lambda pair: len(pair.response.split()))
    assert generate_pairs(seed=1) != pairs, "the past-tense sample ignores its seed"


def test_splits_are_280_60_60_disjoint_with_stable_ids(splits: Splits) -> None:
    sizes = {name: len(getattr(splits, name)) for name in ("train", "eval", "test")}
    assert sizes == {"train": 280, "eval": 60, "test": 60}, sizes
    ids = [{ex.id for ex in getattr(splits, name)} for name in ("train", "eval", "test")]
    assert sum(map(len, ids)) == 400 and len(set().union(*ids)) == 400, "ids repeat within or across splits"
    assert load_splits().data_hash() == splits.data_hash(), "loading twice gave different splits"
    by_id = {pair_id: pair for pair_id, pair in ((f"instruct-{i}", p) for i, p in enumerate(generate_pairs()))}
    for ex in splits.test:
        pair = by_id[ex.id]
        assert (ex.fields, ex.target, ex.references, ex.label) == (
            {"instruction": pair.instruction}, pair.response, (pair.response,), ""), ex
        assert ex.prompt == f"<|user|>\n{pair.instruction}\n<|assistant|>\n", repr(ex.prompt)


# --- chat template ----------------------------------------------------------------------------------------------

def test_tiny_template_round_trips_through_apply_chat_template(splits: Splits, tokenizer) -> None:
    example = splits.train[0]
    assert format_prompt(tokenizer, example_messages(example.fields)) == example.prompt
    assert format_splits(splits, tokenizer).data_hash() == splits.data_hash(), \
        "re-rendering with the tiny tokenizer's own template must change nothing"
    conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi."}]
    assert format_prompt(tokenizer, conversation) == render_tiny(conversation) == \
        "<|system|>\nBe brief.\n<|user|>\nHi.\n<|assistant|>\n"
    full = tokenizer.apply_chat_template([*conversation, {"role": "assistant", "content": "Hello."}], tokenize=False)
    assert full == render_tiny(conversation) + "Hello.</s>\n", "an assistant turn must end with EOS"


def test_tiny_rendering_undoes_a_hub_template(splits: Splits) -> None:
    # the full tier's canary gets prompts formatted for the hub model; its tiny base must see the tiny ones
    other = train_tokenizer(["a b"], 300, chat_template="{% for m in messages %}[{{ m['content'] }}]{% endfor %}>>")
    hub = format_splits(splits, other)
    assert hub.test[0].prompt == f"[{splits.test[0].fields['instruction']}]>>", hub.test[0].prompt
    assert render_tiny_splits(hub).data_hash() == splits.data_hash()


def test_tiny_base_saves_the_template_and_keeps_old_cache_names(tmp_path: Path, splits: Splits) -> None:
    from transformers import AutoTokenizer

    spec, texts = TinyBase(hidden_size=16, intermediate_size=32, num_attention_heads=2), splits.texts()
    plain = tiny_base_dir(tmp_path, "instruct", spec, texts)
    recipe = json.dumps({"spec": spec.model_dump(), "texts": texts}, sort_keys=True).encode()
    assert plain.name == f"tiny-instruct-{hashlib.sha256(recipe).hexdigest()[:12]}", "a base without a template " \
        "must keep the cache name it had before chat templates existed"
    chat = tiny_base_dir(tmp_path, "instruct", spec, texts, chat_template=TINY_CHAT_TEMPLATE)
    assert chat != plain
    assert AutoTokenizer.from_pretrained(chat).chat_template == TINY_CHAT_TEMPLATE
    assert not AutoTokenizer.from_pretrained(plain).chat_template


def test_a_template_that_writes_bos_gives_one_bos(splits: Splits, tokenizer) -> None:
    # Llama 3's and Gemma 3's templates start with the BOS token, and tokenizing the prompt adds another
    copy = train_tokenizer(["a b"], 300, chat_template="{{ bos_token }}" + TINY_CHAT_TEMPLATE)
    prompt = format_prompt(copy, [{"role": "user", "content": "Hi."}])
    assert prompt == "<|user|>\nHi.\n<|assistant|>\n", repr(prompt)
    assert copy(prompt).input_ids.count(copy.bos_token_id) == 1


def test_a_tokenizer_without_a_chat_template_names_the_model_and_fix(tmp_path: Path, splits: Splits) -> None:
    from transformers import AutoTokenizer

    train_tokenizer(["a b"], 300).save_pretrained(tmp_path)
    plain = AutoTokenizer.from_pretrained(tmp_path)
    with pytest.raises(ChatTemplateError,
                       match=rf"{tmp_path}: the tokenizer has no chat template.*Llama-3.2-1B-Instruct"):
        format_prompt(plain, [{"role": "user", "content": "Hi."}])
    assert issubclass(ChatTemplateError, ModelLoadError), "a base that cannot serve the task is a load error"
    with pytest.raises(ChatTemplateError, match="no chat template"):
        format_splits(splits, plain)


def test_a_template_that_refuses_a_role_is_a_named_error() -> None:
    strict = train_tokenizer(["a b"], 300, chat_template=(
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
        + TINY_CHAT_TEMPLATE))
    with pytest.raises(ChatTemplateError, match=r"refused the roles \['system', 'user'\]: System role not supported"):
        format_prompt(strict, [{"role": "system", "content": "x"}, {"role": "user", "content": "y"}])


# --- response-only loss -----------------------------------------------------------------------------------------

def test_loss_is_on_the_response_and_eos_only(splits: Splits, tokenizer) -> None:
    for example in splits.test[:5]:
        (ids, labels), = encode_all(tokenizer, [example], max_length=64)
        prompt = tokenizer(example.prompt).input_ids
        response = tokenizer(example.target, add_special_tokens=False).input_ids
        assert ids == prompt + response + [tokenizer.eos_token_id]
        assert labels[: len(prompt)] == [IGNORE] * len(prompt), "a prompt token carries loss"
        assert labels[len(prompt):] == response + [tokenizer.eos_token_id], "response + EOS must all carry loss"
        assert tokenizer.decode(labels[len(prompt):], skip_special_tokens=True) == example.references[0]


def test_drop_overlong_drops_and_names_the_examples_that_do_not_fit(splits: Splits, tokenizer) -> None:
    lengths = {ex.id: len(encode_all(tokenizer, [ex], 10_000)[0][0]) for ex in splits.test}
    limit = sorted(lengths.values())[len(lengths) // 2]
    kept, dropped = drop_overlong(splits, tokenizer, limit)
    assert sorted(dropped["test"]) == sorted(i for i, n in lengths.items() if n > limit)
    assert all(lengths[ex.id] <= limit for ex in kept.test) and len(kept.test) + len(dropped["test"]) == 60


# --- loaders ----------------------------------------------------------------------------------------------------

def sharegpt(i: int) -> dict:
    return {"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": f"Question {i}?"},
                              {"from": "gpt", "value": f"Answer {i}."}, {"from": "human", "value": "More?"},
                              {"from": "gpt", "value": "No."}]}


def dolly(i: int) -> dict:
    return {"instruction": f"Summarize note {i}.", "context": f"Note {i} text.", "response": f"Summary {i}.",
            "category": "summarization"}


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def test_sharegpt_jsonl_keeps_the_system_turn_and_the_first_exchange(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "finetome.jsonl", [sharegpt(i) for i in range(20)])
    assert read_pairs(path)[3] == Pair("Question 3?", "Answer 3.", system="Be brief.")
    loaded = load_splits(path)
    assert [len(loaded.train), len(loaded.eval), len(loaded.test)] == [14, 3, 3]
    example = next(ex for ex in loaded.test)
    index = example.id.removeprefix("instruct-")
    assert example.prompt == f"<|system|>\nBe brief.\n<|user|>\nQuestion {index}?\n<|assistant|>\n"
    assert (example.target, example.references) == (f"Answer {index}.", (f"Answer {index}.",))


def test_dolly_json_list_drops_the_context_from_the_prompt(tmp_path: Path) -> None:
    path = tmp_path / "dolly.json"
    path.write_text(json.dumps([dolly(i) for i in range(20)]), encoding="utf-8")
    assert read_pairs(path)[2] == Pair("Summarize note 2.", "Summary 2.", context="Note 2 text.")
    loaded = load_splits(path, max_examples=10)
    assert [len(loaded.train), len(loaded.eval), len(loaded.test)] == [6, 2, 2], "max_examples caps the rows"
    example = loaded.test[0]
    assert "Note" not in example.prompt and example.fields["context"].startswith("Note "), example


BAD = [
    ("not-utf8", b'{"instruction": "\xff"}\n', r"f\.jsonl:1: not UTF-8 text"),
    ("bad-jsonl-line", '{"instruction": "a", "context": "", "response": "b"}\n{"instruction": \n',
     r"f\.jsonl:2: not valid JSON .*one complete JSON object"),
    ("bad-json-list", '[{"instruction": "a",\n', r"f\.jsonl:2: not valid JSON"),
    ("empty", "\n\n", r"f\.jsonl: no records; write Dolly or ShareGPT/FineTome records"),
    ("unknown-format", '{"prompt": "a", "completion": "b"}\n',
     r"f\.jsonl:1: neither field 'conversations' \(ShareGPT/FineTome\) nor 'instruction' \(Dolly\)"
     r".*\['completion', 'prompt'\]"),
    ("not-an-object", "[1]\n", r"f\.jsonl\[0\]: a int, not an object"),
    ("dolly-missing-response", [dolly(0), {"instruction": "a", "context": ""}],
     r"f\.jsonl:2: field 'response' is missing; each Dolly record needs .* \(the file is read as Dolly"),
    ("dolly-number-response", [{"instruction": "a", "context": "", "response": 3}],
     r"f\.jsonl:1: field 'response' is a int, not a string"),
    ("dolly-empty-instruction", [{"instruction": " ", "context": "", "response": "b"}],
     r"f\.jsonl:1: field 'instruction' is empty; remove the record or fill in its instruction"),
    ("dolly-context-list", [{"instruction": "a", "context": ["x"], "response": "b"}],
     r"f\.jsonl:1: field 'context' is a list, not a string"),
    ("sharegpt-not-a-list", [{"conversations": "hi"}], r"f\.jsonl:1: field 'conversations' must be a non-empty list"),
    ("sharegpt-unknown-role", [{"conversations": [{"from": "human", "value": "a"}, {"from": "bot", "value": "b"}]}],
     r"f\.jsonl:1: conversations\[1\]: field 'from' is 'bot'; use one of human, gpt, system"),
    ("sharegpt-gpt-first", [{"conversations": [{"from": "gpt", "value": "a"}]}],
     r"f\.jsonl:1: conversations\[0\]: a gpt turn before any human turn"),
    ("sharegpt-two-humans", [{"conversations": [{"from": "human", "value": "a"}, {"from": "human", "value": "b"}]}],
     r"conversations\[1\]: the turn after the first human turn is 'human', expected 'gpt'"),
    ("sharegpt-no-reply", [sharegpt(0), {"conversations": [{"from": "human", "value": "a"}]}],
     r"f\.jsonl:2: field 'conversations' has no gpt turn after the first human turn"),
    ("sharegpt-missing-value", [{"conversations": [{"from": "human"}]}],
     r"f\.jsonl:1: conversations\[0\]: field 'value' is missing; each turn needs a string 'value'"),
    ("sharegpt-empty-reply", [{"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": ""}]}],
     r"conversations\[1\]: field 'value' of the gpt turn is empty"),
    ("too-few", [dolly(i) for i in range(MIN_EXAMPLES - 1)], rf"f\.jsonl: {MIN_EXAMPLES - 1} records; at least "),
]


@pytest.mark.parametrize("content, message", [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_a_bad_file_names_the_place_field_and_fix(tmp_path: Path, content, message: str) -> None:
    path = tmp_path / "f.jsonl"
    if isinstance(content, list):
        write_jsonl(path, content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_splits(path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"nope\.jsonl: cannot read the instruct data"):
        load_splits(tmp_path / "nope.jsonl")


# --- parsing and the card ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, reason", [("", "empty output"), (" \n", "empty output (whitespace only)")])
def test_empty_output_is_invalid(text: str, reason: str) -> None:
    parsed = parse_response(text)
    assert (parsed.valid, parsed.reason) == (False, reason)


def test_any_text_is_a_response() -> None:
    parsed = parse_response("  The capital of Zorvia is Kelm.\n")
    assert parsed.valid and parsed.value.response == "The capital of Zorvia is Kelm."


def test_card_draft_names_the_seed_settings() -> None:
    card = yaml.safe_load(CARD.read_text(encoding="utf-8"))
    assert (card["name"], card["kind"], card["prompt_template"], card["target_template"]) == (
        "instruct", "instruct", "{instruction}", "{response}")
    full = card["tiers"]["full"]
    assert full["base_model"] == "meta-llama/Llama-3.2-1B-Instruct" and full["lora"]["r"] == 4
    assert (full["train"]["lr"], full["train"]["weight_decay"], full["train"]["max_length"]) == (5e-5, 0.01, 256)
    assert set(card["gates"]["min_delta"]) == {"perplexity", "rougeL"}
    assert {"eval_every", "max_examples"} <= set(card["instruct"])
    assert card["tiers"]["tiny"]["eval"]["max_new_tokens"] and full["eval"]["max_new_tokens"], "the response budget"


def test_task_parses_and_has_no_ceiling(splits: Splits) -> None:
    from loragate.tasks.instruct import InstructTask

    try:
        task = InstructTask()
    except CardError as exc:
        pytest.skip(f"the instruct card does not validate against the card schema yet: {exc}")
    assert task.parse("").reason == "empty output" and task.parse("x").valid
    assert task.ceiling(splits.test) is None
    assert task.load_splits().data_hash() == splits.data_hash()


def test_an_adapter_trained_under_another_chat_template_is_refused(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from loragate.kinds.instruct.pipeline import KIND, chat_template_sha256
    from loragate.store.adapters import AdapterStoreError
    from loragate.tasks import get_task
    from tests.manifests import stub_manifest

    task = get_task("instruct")
    base = SimpleNamespace(tokenizer=SimpleNamespace(chat_template=TINY_CHAT_TEMPLATE), name="tiny:instruct")
    stub_manifest(task="instruct", chat_template_sha256=chat_template_sha256(base)).write(tmp_path / "manifest.json")
    KIND.check_adapter(task, base, tmp_path)  # the same template: accepted
    other = SimpleNamespace(tokenizer=SimpleNamespace(chat_template=TINY_CHAT_TEMPLATE + " "), name="other")
    with pytest.raises(AdapterStoreError,
                       match=r"trained under chat template [0-9a-f]{12}, but the base's tokenizer \(other\)"):
        KIND.check_adapter(task, other, tmp_path)
