"""What an adapter trained elsewhere says about itself, checked against the base it is gated on."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM

from loragate.card.settings import LoraSettings
from loragate.store.adapter_facts import base_name_problem, card_differences, check_base_name, check_shapes, read_facts
from loragate.store.adapters import AdapterStoreError, file_sha256


@pytest.mark.parametrize("recorded, base, refused, note", [
    ("meta-llama/Llama-3.2-1B", "meta-llama/Llama-3.2-1B", False, None),
    ("meta-llama/Llama-3.2-1B", "META-LLAMA/llama-3.2-1b", False, None),
    ("meta-llama/Llama-3.2-1B", "/models/Llama-3.2-1B", False, "compared by name only"),
    ("/home/alice/models/base-1b", "/work/models/base-1b", False, "compared by name only"),
    ("meta-llama/Llama-3.2-1B", "/models/my-copy", False, "cannot be compared"),
    ("/home/alice/my-base", "google/gemma-3-1b-it", False, "cannot be compared"),
    ("tiny:iris", "/work/data/base", False, "cannot be compared"),
    ("/root/.cache/huggingface/hub/models--meta-llama--Llama-3.2-1B/snapshots/4e20de36", "meta-llama/Llama-3.2-1B",
     False, "one name read from the hub's cache"),
    ("/root/.cache/huggingface/hub/models--google--gemma-3-1b-it/snapshots/4e20de36", "meta-llama/Llama-3.2-1B", True,
     None),
    (None, "tiny:iris", False, "names no base_model_name_or_path"),
    ("meta-llama/Llama-3.2-1B", "google/gemma-3-1b-it", True, None),
    ("meta-llama/Llama-3.2-1B", "tiny:iris", True, None),
    ("tiny:sst2", "tiny:iris", True, None),
])
def test_the_base_an_adapter_names_is_compared_as_far_as_names_allow(recorded: str | None, base: str, refused: bool,
                                                                       note: str | None) -> None:
    refusal, said = base_name_problem(recorded, base)
    assert (refusal is not None) == refused, refusal
    assert (said is None) if note is None else (note in said), said
    if refused:
        assert repr(recorded) in refusal and repr(base) in refusal, refusal


def adapter(directory: Path, hidden: int, recorded: str = "meta-llama/Llama-3.2-1B") -> Path:
    config = LlamaConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=1, num_attention_heads=4,
                         num_key_value_heads=4, vocab_size=64)
    torch.manual_seed(0)
    model = get_peft_model(LlamaForCausalLM(config), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                                init_lora_weights=False))
    model.save_pretrained(directory)  # then the base named: peft would look a hub id up to save it
    config_file = directory / "adapter_config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "base_model_name_or_path": recorded}))
    return directory


def llama(hidden: int) -> LlamaForCausalLM:
    return LlamaForCausalLM(LlamaConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=1,
                                        num_attention_heads=4, num_key_value_heads=4, vocab_size=64))


def test_an_adapter_of_another_hidden_size_is_refused_in_the_bases_terms(tmp_path: Path) -> None:
    """peft's raw `size mismatch ... torch.Size([4, 64]) ... torch.Size([4, 128])`, printed for every tensor and
    naming no file, became one line naming the widths and the fix."""
    directory = adapter(tmp_path / "narrow", hidden=64)
    weights = directory / "adapter_model.safetensors"
    saved = load_file(weights)
    check_shapes(llama(64), weights, saved, 64)  # its own base: no error
    expected = f"{weights}: trained on a base with hidden size 64, this base has 128 (4 LoRA tensors do not fit"
    with pytest.raises(AdapterStoreError, match=re.escape(expected)):
        check_shapes(llama(128), weights, saved, 128)


def test_facts_and_the_foreign_base_check_of_an_adapter_trained_elsewhere(tmp_path: Path) -> None:
    directory = adapter(tmp_path / "a", hidden=64)
    facts = read_facts(directory)
    assert (facts.r, facts.alpha, facts.target_modules) == (4, 8.0, ["q_proj", "v_proj"])
    assert facts.sha256 == file_sha256(directory / "adapter_model.safetensors")
    assert facts.base_model_name_or_path == "meta-llama/Llama-3.2-1B"
    assert facts.summary() == f"r 4, alpha 8, 2 modules, sha256 {facts.sha256[:12]}"
    with pytest.raises(AdapterStoreError, match=re.escape(
            f"--adapter {directory}: trained on base 'meta-llama/Llama-3.2-1B' (its adapter_config.json's "
            f"base_model_name_or_path), not on this run's base 'tiny:iris'. Pass that base with --base-model=ID|PATH, "
            f"or --allow-foreign-adapter")):
        check_base_name(directory, "tiny:iris", "--adapter", allow_foreign=False)
    note = check_base_name(directory, "tiny:iris", "--baseline-adapter", allow_foreign=True)
    assert note is not None and note.startswith(f"--baseline-adapter {directory}: trained on base") and \
        note.endswith("gated anyway (--allow-foreign-adapter)"), note
    assert check_base_name(directory, "meta-llama/Llama-3.2-1B", "--adapter", allow_foreign=False) is None


def test_a_card_that_does_not_describe_the_adapter_is_said_to_differ(tmp_path: Path) -> None:
    facts = read_facts(adapter(tmp_path / "a", hidden=64))
    seven = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    note = card_differences(facts, LoraSettings(r=16, alpha=32, target_modules=seven), "tiers.tiny.lora")
    assert note == ("the adapter differs from the card's tiers.tiny.lora: r 4 (the card's 16), alpha 8 (the card's "
                    "32), target modules ['q_proj', 'v_proj'] (the card's ['down_proj', 'gate_proj', 'k_proj', "
                    "'o_proj', 'q_proj', 'up_proj', 'v_proj']); the parameter checks use the adapter's own shape")
    same = LoraSettings(r=4, alpha=8, target_modules=["v_proj", "q_proj"])
    assert card_differences(facts, same, "tiers.tiny.lora") is None
    assert card_differences(facts, None, "tiers.tiny.lora") is None, "a card without lora has nothing to differ"


def test_the_expected_lora_count_reads_an_adapters_own_targets_and_ranks(tmp_path: Path) -> None:
    """peft takes target_modules as one regular expression, matched against full module names (read as a list of
    suffixes it was a list of characters), and per-module ranks in rank_pattern: the trainable-count gate test failed
    such sound adapters."""
    from loragate.card.options import RunOptions
    from loragate.models.parameters import lora_parameters
    from loragate.run.adapter import expected_lora_count

    for name, config in (("regex", LoraConfig(r=4, lora_alpha=8, target_modules=r".*\.(q_proj|v_proj)")),
                         ("ranks", LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                              rank_pattern={"q_proj": 4}))):
        get_peft_model(llama(64), config).save_pretrained(tmp_path / name)
        expected = expected_lora_count(None, "tiny", RunOptions(adapter=tmp_path / name), llama(64))  # type: ignore
        assert expected == lora_parameters(get_peft_model(llama(64), config)) > 0, name
