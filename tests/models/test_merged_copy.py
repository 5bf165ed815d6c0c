"""merged_copy of one of several adapters on one base (candidates, issue 34): the active adapter merged, as if it were
loaded alone, without copying the others' layers; the shared model left as it was."""

from __future__ import annotations

import copy

import pytest
import torch
from peft import PeftModel

from loragate.card.settings import LoraSettings
from loragate.kinds.sequence_classification.heads import classifier_head
from loragate.models.bases import load_encoder
from loragate.models.parameters import merged_copy
from loragate.training.lora import attach_lora

LABELS = ["negative", "positive"]
LORA = LoraSettings(r=4, alpha=8, target_modules=["query", "value"], modules_to_save=["classifier"])
SEEDS = {"first": 1, "second": 2}


def adapted(names: list[str]) -> PeftModel:
    """MiniLM with a saved head and one LoRA per name, its weights and head drawn from the name's own seed (the same
    loaded alone or beside others), so each merge differs; the first name active."""
    base = load_encoder("minilm", *classifier_head(LABELS, "cls"), "cpu", torch.float32, head_seed=0)
    model = attach_lora(base.model, LORA, seed=0, task_type="SEQ_CLS", modules_to_save=["classifier"])
    config = model.peft_config["default"]
    for name in names:
        model.add_adapter(name, copy.deepcopy(config))
    model.delete_adapter("default")
    for name in names:
        torch.manual_seed(SEEDS[name])
        for key, parameter in model.named_parameters():
            if f".{name}." in key:
                parameter.data.normal_(std=0.5)
    model.set_adapter(names[0])
    return model.eval()


class NotToCopy(torch.nn.Module):
    """A module that refuses to be deep-copied: put in another adapter's place, it shows a merge copied it."""

    def __deepcopy__(self, memo: dict) -> NotToCopy:
        raise AssertionError("merged_copy deep-copied a layer of an adapter that is not active")


@pytest.mark.parametrize("container", ["lora_A", "modules_to_save"])
def test_a_merge_copies_no_layer_of_the_inactive_adapters(container: str) -> None:
    """Each of 8 MiniLM candidates' merges copied all 8 candidates' LoRA layers and heads, then dropped 7: 0.27 s of
    CPU a merge against 0.15 s for one candidate alone."""
    model = adapted(["first", "second"])
    holder = next(module for module in model.modules()
                  if isinstance(getattr(module, container, None), torch.nn.ModuleDict))
    getattr(holder, container)["second"] = NotToCopy()
    merged = merged_copy(model)
    assert not any(isinstance(module, NotToCopy) for module in merged.modules())


def test_each_merge_equals_its_adapter_merged_alone_and_leaves_the_shared_model_as_it_was() -> None:
    model = adapted(["first", "second"])
    before = {key: tensor.clone() for key, tensor in model.state_dict().items()}
    storages = {tensor.untyped_storage().data_ptr() for tensor in model.state_dict().values() if tensor.numel()}
    merges = {}
    for name in ("first", "second"):
        model.set_adapter(name)
        merges[name] = merged_copy(model)
        alone = adapted([name])
        expected, actual = alone.merge_and_unload(safe_merge=True).state_dict(), merges[name].state_dict()
        assert expected.keys() == actual.keys()
        assert all(torch.equal(expected[key], actual[key]) for key in expected), name
        shared = storages & {tensor.untyped_storage().data_ptr() for tensor in actual.values() if tensor.numel()}
        assert not shared, f"{name}: shares {len(shared)} tensors' memory with the model"
        assert model.active_adapters == [name]
    assert not torch.equal(merges["first"].classifier.weight, merges["second"].classifier.weight)
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[key], before[key]) for key in before)
