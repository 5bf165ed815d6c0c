"""Parameter invariants of a LoRA model: what the adapter adds, what merging keeps, what stays frozen."""

from __future__ import annotations

import copy

import torch
from peft import PeftModel

from loragate.models import state_fingerprint

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
    return sum(p.numel() for name, p in model.named_parameters() if "lora_" in name)


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


def merged_copy(model: PeftModel) -> torch.nn.Module:
    """A merged, unwrapped copy; the adapter model itself stays unmerged. safe_merge refuses NaN."""
    return copy.deepcopy(model).merge_and_unload(safe_merge=True)
