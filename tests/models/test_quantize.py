"""--quantize 4bit|8bit on bitsandbytes' CPU backend: parameter counts, the merge check, the CPU repacking, errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoTokenizer

from loragate.card.options import RunOptions
from loragate.card.settings import CardError
from loragate.models.bases import ModelLoadError, count_parameters, fingerprint, load_causal
from loragate.models.parameters import (
    dequantized_copy,
    expected_lora_parameters,
    is_quantized_model,
    lora_parameters,
    merge_mismatch,
    merged_copy,
)
from loragate.run.steps import prepare_base
from loragate.store.export import reload_mismatch, save_merged
from loragate.tasks import get_task
from loragate.training.lora import attach_lora

pytest.importorskip("bitsandbytes")
PROMPTS = torch.tensor([[1, 40, 41, 42, 43, 44], [1, 50, 51, 52, 53, 54]])


def adapted(tiny_dir: Path, quantize: str | None, iris) -> PeftModel:
    """The iris base (quantized or not) with a LoRA whose B is random, so the adapter visibly changes outputs."""
    base = load_causal(str(tiny_dir), "cpu", torch.float32, quantize=quantize)
    model = attach_lora(base.model, iris.card.tier("tiny").lora, seed=0)
    torch.manual_seed(1)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            parameter.data.normal_(std=0.5)
    return model.eval()


def logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=PROMPTS).logits[:, -1, :].float()


@pytest.mark.parametrize("quantize", ["4bit", "8bit"])
def test_quantized_base_counts_every_weight_once(tiny_dir: Path, quantize: str) -> None:
    full = load_causal(str(tiny_dir), "cpu", torch.float32)
    quantized = load_causal(str(tiny_dir), "cpu", torch.float32, quantize=quantize)
    stored = sum(p.numel() for p in quantized.model.parameters())
    assert quantized.parameters == count_parameters(full.model) == full.parameters
    if quantize == "4bit":  # two weights per byte: numel() alone would count half of each packed matrix
        assert stored < full.parameters, (stored, full.parameters)
    assert quantized.quantization and quantize[0] in quantized.quantization


@pytest.mark.parametrize("quantize", ["4bit", "8bit"])
def test_merge_onto_the_dequantized_base_keeps_outputs_and_size(tiny_dir: Path, iris, quantize: str) -> None:
    lora = iris.card.tier("tiny").lora
    expected = expected_lora_parameters(load_causal(str(tiny_dir), "cpu", torch.float32, quantize=quantize).model,
                                        lora.r, lora.target_modules)
    model = adapted(tiny_dir, quantize, iris)
    assert is_quantized_model(model)
    assert lora_parameters(model) == expected > 0  # bitsandbytes' layers are torch Linear layers with their shapes
    merged = merged_copy(model)
    assert not is_quantized_model(merged) and is_quantized_model(model), "the copy, not the model, is merged"
    assert count_parameters(merged) == count_parameters(model.get_base_model()) - lora_parameters(model)
    assert merge_mismatch(logits(merged), logits(dequantized_copy(model)), torch.float32) is None
    # what the check would compare without dequantizing: peft re-quantizes W + BA to 4 bits
    if quantize == "4bit":
        requantized = logits(merged_copy_requantized(model))
        assert merge_mismatch(requantized, logits(dequantized_copy(model)), torch.float32) is not None


@pytest.mark.parametrize("quantize", ["4bit", "8bit"])
def test_a_merged_copy_of_a_quantized_base_saves_and_reloads_in_full_precision(tiny_dir: Path, iris, quantize: str,
                                                                               tmp_path: Path) -> None:
    """The merged copy kept the base's quantization_config: its merged safetensors reloaded as a 4-bit model, whose
    forward on CPU failed (and which would not have been the merged model anyway)."""
    merged = merged_copy(adapted(tiny_dir, quantize, iris))
    out = save_merged(merged, AutoTokenizer.from_pretrained(tiny_dir), tmp_path / "merged")
    reloaded = type(merged).from_pretrained(out, dtype=torch.float32, use_safetensors=True)
    assert not is_quantized_model(reloaded) and reload_mismatch(reloaded, merged) is None
    assert torch.equal(logits(reloaded), logits(merged))


def merged_copy_requantized(model: PeftModel) -> torch.nn.Module:
    import copy

    with pytest.warns(UserWarning, match="rounding errors"):  # peft says so too
        return copy.deepcopy(model).merge_and_unload()


def test_a_broken_adapter_fails_the_quantized_merge_check(tiny_dir: Path, iris) -> None:
    model = adapted(tiny_dir, "4bit", iris)
    merged_logits = logits(merged_copy(model))
    layer = model.base_model.model.model.layers[0].self_attn.q_proj
    layer.lora_B["default"].weight.data.mul_(2)  # the adapter under test no longer matches what was merged
    assert merge_mismatch(merged_logits, logits(dequantized_copy(model)), torch.float32) is not None


def test_a_4bit_base_keeps_its_weights_through_inference_and_trains_with_true_gradients(tiny_dir: Path, iris) -> None:
    """bitsandbytes repacks 4-bit weights in place at a CPU's first inference call (on AVX512-BF16 machines),
    rounding their scales to bf16 and switching to a kernel without a backward pass. The gate turns it off:
    the base's fingerprint holds after inference, and LoRA gradients equal those on the dequantized base."""
    model = adapted(tiny_dir, "4bit", iris)
    before = fingerprint(model.get_base_model())
    first = logits(model)
    assert torch.equal(logits(model), first)
    assert fingerprint(model.get_base_model()) == before
    reference = dequantized_copy(model)
    gradients = []
    for candidate in (model, reference):
        candidate.train()
        candidate.zero_grad()
        candidate(input_ids=PROMPTS, labels=PROMPTS).loss.backward()
        gradients.append({n: p.grad.clone() for n, p in candidate.named_parameters() if p.requires_grad})
    assert gradients[0].keys() == gradients[1].keys() and gradients[0]
    for name, grad in gradients[0].items():
        torch.testing.assert_close(grad, gradients[1][name], rtol=1e-4, atol=1e-6, msg=name)


def test_quantize_without_bitsandbytes_names_the_install(tiny_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import bitsandbytes now raises ImportError
    with pytest.raises(ModelLoadError, match=r"--quantize 4bit needs bitsandbytes.*pip install 'loragate\[quantize\]'"):
        load_causal(str(tiny_dir), "cpu", torch.float32, quantize="4bit")


def test_quantize_refuses_encoder_tasks(tmp_path: Path) -> None:
    task = get_task("topics")
    with pytest.raises(CardError, match="topics is a sequence_classification task on an encoder.*Drop --quantize"):
        prepare_base(task, "tiny", task.load_splits(), RunOptions(quantize="4bit", cache=tmp_path))
