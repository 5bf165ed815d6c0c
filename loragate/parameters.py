"""Parameter invariants of a LoRA model: what the adapter adds, what merging keeps, what stays frozen."""

from __future__ import annotations

import copy

import torch
from peft import PeftModel

from loragate.models import state_fingerprint

# atol for merged vs unmerged logits, by compute dtype: merging reorders float sums.
MERGE_ATOL = {torch.float32: 1e-4, torch.bfloat16: 5e-2, torch.float16: 1e-2}


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
    return sum(p.numel() for name, p in model.named_parameters() if "lora_" in name)


def trainable_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def base_fingerprint_inside(model: PeftModel) -> str:
    """The base fingerprint read back through the LoRA wrapping: same names and tensors as before wrapping.

    LoRA tensors are dropped and peft's `.base_layer.` renaming undone, so this equals the base's
    fingerprint iff no base weight changed."""
    return state_fingerprint({
        name.replace(".base_layer.", "."): tensor
        for name, tensor in model.get_base_model().state_dict().items()
        if "lora_" not in name
    })


def merged_copy(model: PeftModel) -> torch.nn.Module:
    """A merged, unwrapped copy; the adapter model itself stays unmerged. safe_merge refuses NaN."""
    return copy.deepcopy(model).merge_and_unload(safe_merge=True)
