"""The adapter took effect, left the base untouched, and merges without changing size or outputs."""

from __future__ import annotations

import torch

from loragate.models.bases import count_parameters
from loragate.models.parameters import (
    base_fingerprint_inside,
    dequantized_copy,
    is_quantized_model,
    lora_parameters,
    merge_mismatch,
)
from loragate.run.task_run import PROBE


def test_merge_keeps_total_parameter_count(task_run, merged_model) -> None:
    merged = count_parameters(merged_model)
    assert merged == task_run.base.parameters, (
        f"{task_run.name}: merged model has {merged} parameters, base has {task_run.base.parameters}"
    )


def test_base_weights_bit_identical_under_the_adapter(task_run) -> None:
    """Trained, loaded from the store or given with --adapter: wrapping the base left every base weight as it was."""
    inside = base_fingerprint_inside(task_run.model)
    assert inside == task_run.base.fingerprint, (
        f"{task_run.name}: base weights changed under the adapter: fingerprint {inside[:12]} != "
        f"{task_run.base.fingerprint[:12]}"
    )


def test_trainable_count_matches_rank_and_targets(task_run) -> None:
    actual = lora_parameters(task_run.model)
    assert actual == task_run.expected_lora_parameters, (
        f"{task_run.name}: adapter holds {actual} LoRA parameters, r x (in + out) over the target modules "
        f"gives {task_run.expected_lora_parameters}"
    )


def test_adapter_changes_outputs(task_run) -> None:
    change = (task_run.tuned_logits - task_run.base_logits).abs().max().item()
    differing = sum(b != t for b, t in zip(task_run.base_predictions.outputs, task_run.tuned_predictions.outputs))
    assert change > 0 and differing > 0, (
        f"{task_run.name}: adapter has no effect: max logit change {change:.2e}, "
        f"{differing} of {len(task_run.splits.test)} outputs differ from base"
    )


def test_disable_adapter_reproduces_base_exactly(task_run) -> None:
    with task_run.model.disable_adapter():
        disabled = task_run.probe(task_run.model)
    diff = (disabled - task_run.base_probe_logits).abs().max().item()
    assert torch.equal(disabled, task_run.base_probe_logits), (
        f"{task_run.name}: with the adapter disabled, logits on the first {PROBE} test examples differ from base by "
        f"up to {diff:.2e}"
    )


def test_merged_logits_match_adapter_logits(task_run, merged_logits) -> None:
    reference, against = task_run.tuned_logits, "adapter"
    if is_quantized_model(task_run.model):  # merged in full precision: compare with the adapter on the same weights
        reference, against = task_run.test_logits(dequantized_copy(task_run.model)), "adapter on the dequantized base"
    mismatch = merge_mismatch(merged_logits, reference, task_run.model.dtype)
    assert mismatch is None, f"{task_run.name}: merged vs {against}: {mismatch}"
