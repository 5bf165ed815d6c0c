"""Parameter invariants of a LoRA model: what the adapter adds, what merging keeps, what stays frozen."""

from __future__ import annotations

import copy
import re

import torch
from peft import PeftModel
from peft.tuners.lora import LoraLayer
from peft.tuners.tuners_utils import BaseTunerLayer
from peft.utils.integrations import dequantize_module_weight
from peft.utils.other import AuxiliaryTrainingWrapper

from loragate.models.bases import state_fingerprint

# Merged vs unmerged logits may differ by |diff| <= atol + rtol * (largest |logit| of that prompt), by compute
# dtype: merging rounds W + BA to the dtype and reorders sums, so the error scales with the output's size,
# not with each logit's. fp32: peft's own atol. bf16/fp16: 4 units in the last place at the row's scale
# (measured on an H100, bf16 tiny Iris: max diff 0.0625 at a row scale of 10.9, i.e. 1.5 units).
# Whatever the dtype, the top-1 token must not change: that is what greedy decoding sees.
MERGE_TOLERANCE: dict[torch.dtype, tuple[float, float]] = {
    torch.float32: (1e-4, 0.0),
    torch.bfloat16: (1e-2, 2**-6),
    torch.float16: (1e-3, 2**-9),
}


def merge_mismatch(merged: torch.Tensor, unmerged: torch.Tensor, dtype: torch.dtype) -> str | None:
    """None when merged logits (prompts x vocab) match unmerged ones within the dtype's tolerance and
    pick the same top-1 token; else what differs, and where."""
    atol, rtol = MERGE_TOLERANCE[dtype]
    diff = (merged - unmerged).abs()
    bound = atol + rtol * unmerged.abs().amax(dim=-1, keepdim=True)
    flipped = (merged.argmax(-1) != unmerged.argmax(-1)).nonzero().flatten().tolist()
    if (diff <= bound).all() and not flipped:
        return None
    row = int((diff - bound).amax(dim=-1).argmax())
    return (f"max |diff| {diff.max().item():.2e}; prompt {row}: {diff[row].max().item():.2e} vs tolerance "
            f"{bound[row].item():.2e} (atol {atol:.0e} + rtol {rtol:.1e} x max|logit|, {dtype}); "
            f"top-1 token changed on prompts {flipped[:10]}")


def targeted_linears(model: torch.nn.Module, target_modules: list[str]) -> dict[str, torch.nn.Linear]:
    """Linear layers a LoRA config with `target_modules` adapts: peft's rule, name == t or ends with '.t'."""
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and any(name == t or name.endswith(f".{t}") for t in target_modules)
    }


def expected_lora_parameters(model: torch.nn.Module, r: int, target_modules: list[str]) -> int:
    """r * (in + out) for each targeted linear: lora_A is r x in, lora_B is out x r."""
    return sum(r * (m.in_features + m.out_features) for m in targeted_linears(model, target_modules).values())


def lora_parameters(model: PeftModel) -> int:
    """The LoRA parameters of the active adapter: candidates loaded beside it on the same base are not its own."""
    adapter = model.active_adapter
    return sum(p.numel() for name, p in model.named_parameters() if lora_of(name, adapter))


def lora_of(key: str, adapter: str) -> bool:
    """Whether parameter `key` is a LoRA weight of `adapter`: peft names it `<module>.lora_A.<adapter>[.weight]`.
    Matched there, not anywhere in the key: an adapter named like a module of the base (`model`, `q_proj`) would
    otherwise claim every adapter's LoRA weights."""
    return re.search(rf"\.lora_[A-Za-z_]+\.{re.escape(adapter)}(\.|$)", key) is not None


def saved_key(key: str, adapter: str) -> str | None:
    """Parameter `key`'s name in `adapter`'s saved file, which drops the adapter's name (`.lora_A.<adapter>.weight`
    is `.lora_A.weight`; a saved head's `.modules_to_save.<adapter>.` its module's own path); None where `key` is no
    weight of `adapter`."""
    head = f".modules_to_save.{adapter}."
    if head in key:
        return key.replace(head, ".")
    if not lora_of(key, adapter):
        return None
    return re.sub(rf"(\.lora_[A-Za-z_]+)\.{re.escape(adapter)}(\.|$)", r"\1\2", key)


def trainable_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def base_fingerprint_inside(model: PeftModel) -> str:
    """The base fingerprint read back through the LoRA wrapping: same names and tensors as before wrapping.

    LoRA tensors and the trained copies of modules_to_save are dropped, and peft's `.base_layer.` and
    `.original_module.` renaming undone, so this equals the base's fingerprint iff no base weight changed."""
    return state_fingerprint({
        name.replace(".base_layer.", ".").replace(".original_module.", "."): tensor
        for name, tensor in model.get_base_model().state_dict().items()
        if "lora_" not in name and ".modules_to_save." not in name
    })


def is_quantized(module: torch.nn.Module) -> bool:
    """A bitsandbytes linear layer: its weight is packed 4-bit (Params4bit) or int8 (Int8Params)."""
    return isinstance(module, torch.nn.Linear) and type(module.weight).__name__ in ("Params4bit", "Int8Params")


def dequantized_linear(layer: torch.nn.Linear, weight: torch.Tensor, dtype: torch.dtype) -> torch.nn.Linear:
    """A plain linear layer holding `weight` and `layer`'s bias in `dtype`."""
    plain = torch.nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None,
                            device=weight.device, dtype=dtype)
    plain.weight.data.copy_(weight)
    if layer.bias is not None:
        plain.bias.data.copy_(layer.bias.data)
    return plain.requires_grad_(False)  # a base weight: frozen, as the quantized one was


def dequantize(model: PeftModel, merge: bool) -> None:
    """Replace every quantized layer of `model` by a plain one in the dtype of the weights around it (fp32 once
    prepared for k-bit training: the dtype its inputs arrive in). With `merge`, a LoRA-adapted layer becomes
    one plain layer holding W + BA; without, it keeps its LoRA beside the dequantized W.

    Merging onto the dequantized base is the merge check for a quantized base: re-quantizing W + BA (what
    peft's merge does on a 4-bit base) rounds the update away, and LLM.int8() also rounds the activations,
    so comparing with the quantized model would measure the rounding, not the merge. The model's quantization
    config goes with the quantized layers."""
    dtype = model.get_input_embeddings().weight.dtype
    for name, module in list(model.named_modules()):
        if name.endswith(".base_layer"):
            continue  # replaced together with its LoRA wrapper
        adapted = isinstance(module, LoraLayer)
        layer = module.base_layer if adapted else module
        if not is_quantized(layer):
            continue
        weight = dequantize_module_weight(layer).detach().float()
        if adapted and not merge:
            module.base_layer = dequantized_linear(layer, weight, dtype)
            continue
        if adapted:
            for adapter in module.active_adapters:
                weight = weight + module.get_delta_weight(adapter).float()
            if not torch.isfinite(weight).all():
                raise ValueError(f"{name}: merging the adapter gives non-finite weights; the adapter is broken")
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, dequantized_linear(layer, weight, dtype))
    base = model.get_base_model()
    quantizer = getattr(base, "hf_quantizer", None)
    if quantizer is not None:  # the config says so too: saved, a merged copy would reload quantized again
        quantizer.remove_quantization_config(base)


def is_quantized_model(model: torch.nn.Module) -> bool:
    return any(is_quantized(module) for module in model.modules())


def dequantized_copy(model: PeftModel) -> PeftModel:
    """The adapter model with its quantized base layers dequantized and the LoRA layers kept apart: what a
    merge of this adapter must reproduce."""
    plain = copy.deepcopy(model)
    dequantize(plain, merge=False)
    return plain


def merged_copy(model: PeftModel) -> torch.nn.Module:
    """A merged, unwrapped copy of the active adapter; the adapter model itself stays unmerged. safe_merge refuses
    NaN. A quantized base is dequantized and merged in full precision (`dequantize`). Other adapters loaded beside
    it (candidates on one base) are left out of the copy: copying each one's layers for every candidate's merge, then
    walking and dropping them, made a merge of one of 8 MiniLM candidates twice the time of one alone."""
    others = inactive_adapter_entries(model)
    merged = copy.deepcopy(model, memo={id(entry): entry for _, _, entry in others})  # not copied: shared, then dropped
    for container, key, _ in inactive_adapter_entries(merged):
        del container[key]
    dequantize(merged, merge=True)
    return merged.merge_and_unload(safe_merge=True)


def inactive_adapter_entries(model: PeftModel) -> list[tuple[torch.nn.Module, str, torch.nn.Module | torch.Tensor]]:
    """(container, adapter name, entry) for every adapter but the active one(s) in peft's per-adapter ModuleDicts and
    ParameterDicts (lora_A, lora_B, a saved head's modules_to_save, ...) of each LoRA layer and auxiliary wrapper;
    only those, so a module of the base that happens to be keyed by an adapter's name is never one of them."""
    active = set(model.active_adapters)
    inactive = [name for name in model.peft_config if name not in active]
    return [(container, name, container[name])
            for module in model.modules() if isinstance(module, (BaseTunerLayer, AuxiliaryTrainingWrapper))
            for container in module.children() if isinstance(container, (torch.nn.ModuleDict, torch.nn.ParameterDict))
            for name in inactive if name in container]
