"""Completion-only labels, the NaN stop and seeded reproducibility of LoRA training."""

from __future__ import annotations

import pytest
import torch

from loragate.card.settings import LoraSettings, TrainSettings
from loragate.training.lora import IGNORE, TrainingDiverged, attach_lora, collate, encode, train_lora

LORA = LoraSettings(r=4, alpha=8, target_modules=["q_proj", "v_proj"])


SHORT = TrainSettings(epochs=1, batch_size=8, lr=3e-3, max_length=64, seed=0)  # 3 steps on 24 examples


def test_encode_masks_the_prompt_and_ends_with_eos(fresh_base, iris_splits) -> None:
    tok, example = fresh_base.tokenizer, iris_splits.train[0]
    ids, labels = encode(tok, example, max_length=64)
    prompt = tok(example.prompt).input_ids
    answer = tok(example.target, add_special_tokens=False).input_ids
    assert ids == prompt + answer + [tok.eos_token_id], "ids must be prompt + answer + EOS"
    assert labels == [IGNORE] * len(prompt) + answer + [tok.eos_token_id], f"labels {labels} for ids {ids}"
    assert tok.decode(answer).strip() == example.label, f"answer tokens decode to {tok.decode(answer)!r}"


def test_encode_refuses_an_example_over_max_length(fresh_base, iris_splits) -> None:
    example = iris_splits.train[3]
    n = len(encode(fresh_base.tokenizer, example, max_length=64)[0])
    assert encode(fresh_base.tokenizer, example, max_length=n)[0], "an example of exactly max_length must fit"
    with pytest.raises(ValueError, match=f"example {example.id}: {n} tokens > train.max_length {n - 1}"):
        encode(fresh_base.tokenizer, example, max_length=n - 1)


def test_collate_pads_right_and_ignores_padding() -> None:
    batch = collate([([1, 2, 3], [IGNORE, 2, 3]), ([4], [4])], pad_id=0)
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE, 2, 3], [4, IGNORE, IGNORE]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def lora_state(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters() if "lora_" in name}


@pytest.mark.slow
def test_nan_lora_weight_stops_training_at_step_1(fresh_base, iris_splits) -> None:
    model = attach_lora(fresh_base.model, LORA, seed=0)
    with torch.no_grad():
        next(p for n, p in model.named_parameters() if "lora_B" in n).fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="loss became nan at optimizer step 1"):
        train_lora(model, fresh_base.tokenizer, iris_splits.train[:24], iris_splits.eval[:4], SHORT, progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("examples", [8, 24], ids=["single-step", "three-steps"])
def test_infinite_lr_stops_training_at_the_step_that_broke_the_weights(fresh_base, iris_splits, examples) -> None:
    # the first loss is finite; the update it drives (lr=inf) is not. A one-step run must not end "trained".
    model = attach_lora(fresh_base.model, LORA, seed=0)
    settings = SHORT.model_copy(update={"lr": float("inf")})
    with pytest.raises(TrainingDiverged, match="non-finite at optimizer step 1"):
        train_lora(model, fresh_base.tokenizer, iris_splits.train[:examples], iris_splits.eval[:4], settings,
                   progress=False)


@pytest.mark.slow
def test_same_seed_gives_bit_identical_lora_weights(tiny_dir, iris_splits) -> None:
    from loragate.models.bases import load_causal

    def train(seed: int) -> dict[str, torch.Tensor]:
        base = load_causal(str(tiny_dir), "cpu", torch.float32)
        model = attach_lora(base.model, LORA, seed)
        train_lora(model, base.tokenizer, iris_splits.train[:24], iris_splits.eval[:4],
                   SHORT.model_copy(update={"seed": seed}), progress=False)
        return lora_state(model)

    first, again, other = train(0), train(0), train(1)
    differing = [name for name in first if not torch.equal(first[name], again[name])]
    assert not differing, f"{len(differing)} LoRA tensors differ between two seed-0 runs, e.g. {differing[:2]}"
    assert any(not torch.equal(first[n], other[n]) for n in first), "seed 1 gave the same weights as seed 0"
