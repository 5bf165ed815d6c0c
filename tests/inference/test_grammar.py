"""Constrained decoding (loragate/inference/grammar.py) through the engine: a random model under a constraint says only
what the constraint allows, a tuned one keeps its own answers, no constraint changes nothing, and what llguidance
cannot enforce is refused when the constraint is made."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import pytest
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from loragate.inference.engine import generate
from loragate.inference.grammar import MetaspaceVocabulary, UnenforceableConstraint, json_of, one_of, one_of_budget
from loragate.models.bases import load_causal


class Item(BaseModel):
    """Bounded, so a random model under the constraint must close it within the budget (extra keys forbidden: the
    schema's additionalProperties false; allowed, a random model may add keys until the budget runs out)."""
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(max_length=8)]
    qty: Annotated[int, Field(ge=0, le=999)]
    tags: Annotated[list[Annotated[str, Field(max_length=6)]], Field(max_length=2)]


JSON_BUDGET = 128  # the longest Item under the constraint: ~90 one-character tokens, escapes aside


def targets_of(card) -> list[str]:
    return [card.target_template.format(label=label) for label in card.labels]


def validates(text: str) -> bool:
    try:
        Item.model_validate_json(text)
    except ValidationError:
        return False
    return True


@pytest.fixture(scope="module")
def random_base(tiny_dir: Path):
    """The iris tiny base untrained: its free outputs are noise."""
    return load_causal(str(tiny_dir), "cpu", torch.float32)


@pytest.fixture(scope="module")
def prompts(iris_splits) -> list[str]:
    return [ex.prompt for ex in iris_splits.test]


def test_a_random_model_under_one_of_says_only_targets(random_base, prompts, iris) -> None:
    tokenizer, targets = random_base.tokenizer, targets_of(iris.card)
    budget = one_of_budget(targets)
    free = generate(random_base.model, tokenizer, prompts, budget, 8)
    bound = generate(random_base.model, tokenizer, prompts, budget, 8, constraint=one_of(targets))
    labels = set(iris.card.labels)
    assert sum(text.strip() in labels for text in free.texts) < len(prompts) / 2, "free noise already says labels"
    wrong = [text for text in bound.texts if text.strip() not in labels]
    assert not wrong, f"{len(wrong)} of {len(prompts)} constrained outputs are not labels: {wrong[:3]}"
    assert all(bound.terminated), "a constrained row did not end with EOS within one_of_budget"


def test_targets_are_matched_literally(random_base, prompts) -> None:
    """Quotes, backslashes and regex characters in a target are text, not grammar."""
    targets = [' say "hi"', " C:\\temp", " a.*b"]
    out = generate(random_base.model, random_base.tokenizer, prompts, one_of_budget(targets), 8,
                   constraint=one_of(targets))
    assert all(text.strip() in [t.strip() for t in targets] for text in out.texts), out.texts[:3]
    assert all(out.terminated)


@pytest.mark.slow
def test_a_random_model_under_json_of_says_valid_compact_json(random_base, prompts) -> None:
    tokenizer = random_base.tokenizer
    free = generate(random_base.model, tokenizer, prompts, JSON_BUDGET, 8)
    bound = generate(random_base.model, tokenizer, prompts, JSON_BUDGET, 8, constraint=json_of(Item))
    assert sum(validates(text) for text in free.texts) < len(prompts) / 2, "free noise already validates"
    invalid = [text for text in bound.texts if not validates(text)]
    assert not invalid, f"{len(invalid)} of {len(prompts)} constrained outputs do not validate: {invalid[:3]}"
    assert all(bound.terminated), "a constrained row did not end with EOS"
    outside_strings = [re.sub(r'"(\\.|[^"\\])*"', '""', text.strip()) for text in bound.texts]
    assert not [text for text in outside_strings if re.search(r"\s", text)], "whitespace outside strings"


@pytest.mark.slow
def test_a_tuned_model_keeps_its_own_answers_under_one_of(tuned, prompts, iris) -> None:
    """The constraint must see the tokens the model was trained to emit (the Metaspace marker is a space): a model
    whose free answers are all labels answers the same under it."""
    base, model = tuned
    targets = targets_of(iris.card)
    free = generate(model, base.tokenizer, prompts, one_of_budget(targets), 8, labels=iris.card.labels)
    bound = generate(model, base.tokenizer, prompts, one_of_budget(targets), 8, labels=iris.card.labels,
                     constraint=one_of(targets))
    assert all(text.strip() in iris.card.labels for text in free.texts), "the check needs a model that answers"
    assert bound.texts == free.texts
    assert bound.new_tokens == free.new_tokens, "the constraint made the model spell its answers differently"


def test_no_constraint_is_plain_model_generate(tuned, prompts) -> None:
    base, model = tuned
    engine = generate(model, base.tokenizer, prompts[:8], 6, 8, constraint=None)
    plain = []
    for prompt in prompts[:8]:
        ids = base.tokenizer(prompt, return_tensors="pt").input_ids
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False,
                             pad_token_id=base.tokenizer.pad_token_id, eos_token_id=base.tokenizer.eos_token_id)
        plain.append(base.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True))
    assert engine.texts == plain


def test_a_byte_level_tokenizer_goes_through_llguidance_s_own_reader(tmp_path: Path) -> None:
    """Hub tokenizers (GPT-2 style byte-level BPE) are read by llguidance.hf, not MetaspaceVocabulary."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(["the cat sat on the mat", "a dog ran"] * 20, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<pad>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="</s>",
                                        padding_side="left")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id))
    targets = [" cat", " dog", " mat"]
    out = generate(model, tokenizer, ["the cat sat", "a dog"] * 4, one_of_budget(targets), 4,
                   constraint=one_of(targets))
    assert all(text in targets for text in out.texts) and all(out.terminated), out.texts


def test_metaspace_tokens_read_as_the_text_they_stand_for(random_base) -> None:
    tokenizer = random_base.tokenizer
    vocab = MetaspaceVocabulary(tokenizer)
    setosa = tokenizer(" setosa", add_special_tokens=False).input_ids
    assert b"".join(vocab.tokens[i] for i in setosa) == b" setosa"
    assert b"".join(vocab.tokens[i] for i in vocab("setosa")) == b"setosa", "encoding added a word-start marker"


def test_a_schema_llguidance_cannot_enforce_is_refused_with_its_reason() -> None:
    class Tagged(BaseModel):
        tags: set[str]  # JSON Schema's uniqueItems

    class Coded(BaseModel):
        model_config = ConfigDict(regex_engine="python-re")  # pydantic's default engine refuses look-around too
        code: Annotated[str, Field(pattern=r"^(?!x)[a-z]+$")]  # look-ahead

    with pytest.raises(UnenforceableConstraint, match=r"(?s)JSON of Tagged: .*uniqueItems.*Change .*Tagged"):
        json_of(Tagged)
    with pytest.raises(UnenforceableConstraint, match=r"(?s)JSON of Coded: .*look-around.*not supported"):
        json_of(Coded)


def test_blank_targets_are_refused() -> None:
    with pytest.raises(UnenforceableConstraint, match="non-blank targets"):
        one_of([" setosa", " "])
