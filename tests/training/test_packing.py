"""Packing (`train.batching: packed`): examples end to end in rows of up to max_length tokens, position ids restarting
per example, as many rows a micro-batch as the token budget holds; the same loss and gradients as padded batches, and
no adapter key changes."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
import torch
from pydantic import ValidationError

from loragate.card.settings import LoraSettings, TrainSettings
from loragate.store import adapters as store
from loragate.store.adapters import adapter_key
from loragate.training.distributed import Ranks
from loragate.training.lora import (
    IGNORE,
    TrainResult,
    attach_lora,
    collate,
    collate_packed,
    encode_all,
    packed_batches,
    packed_rows,
    recut_rows,
    require_packable,
    row_width,
    summed_loss,
    token_budget,
    train_features,
    train_lora,
    train_step,
)

LORA = LoraSettings(r=4, alpha=8, target_modules=["q_proj", "v_proj"])


def varied(examples):
    """Iris examples made 1 to 3 prompts long, so rows differ in length and padding would matter."""
    return [replace(ex, prompt=" ".join([ex.prompt] * (1 + i % 3))) for i, ex in enumerate(examples)]


def lora_with_effect(base):
    """A LoRA whose B is not zero, so its weights reach the loss and have gradients worth comparing."""
    model = attach_lora(base.model, LORA, seed=0)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.1)
    return model


def loss_and_grads(model, batch):
    model.zero_grad(set_to_none=True)
    loss, count = summed_loss(model, batch)
    (loss / count).backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
    return float(loss.detach()) / count, count, grads


@pytest.mark.parametrize("row_width", [10_000, 64], ids=["one row", "rows of 64"])
def test_packed_loss_and_gradients_equal_padded(fresh_base, iris_splits, row_width: int) -> None:
    encoded = encode_all(fresh_base.tokenizer, varied(iris_splits.train[:12]), 64)
    assert len({len(ids) for ids, _ in encoded}) > 2, "the check needs rows of different lengths"
    model = lora_with_effect(fresh_base)
    padded = loss_and_grads(model, collate(encoded, fresh_base.tokenizer.pad_token_id))
    packed_batch = collate_packed(encoded, row_width, fresh_base.tokenizer.pad_token_id)
    tokens = sum(len(ids) for ids, _ in encoded)
    if row_width > tokens:
        assert packed_batch["input_ids"].shape == (1, tokens), "one row, no padding"
    else:
        rows, width = packed_batch["input_ids"].shape
        assert rows > 1 and width <= row_width and int(packed_batch["real_tokens"].sum()) == tokens
        assert (packed_batch["real_tokens"] == 0).any(), "rows of different lengths got no filler"
        assert (packed_batch["labels"][packed_batch["real_tokens"] == 0] == IGNORE).all(), "the filler carries loss"
    packed = loss_and_grads(model, packed_batch)
    assert packed[1] == padded[1], "packing changed which tokens carry loss"
    assert abs(packed[0] - padded[0]) < 1e-5, f"packed loss {packed[0]} != padded {padded[0]}"
    for name, grad in padded[2].items():
        assert torch.allclose(packed[2][name], grad, atol=1e-5, rtol=1e-4), f"{name}: gradient differs when packed"
    # the same rows with an attention mask are long sequences: examples attend to each other and the loss moves
    leaky = dict(packed_batch, attention_mask=torch.ones_like(packed_batch["input_ids"]))
    assert abs(loss_and_grads(model, leaky)[0] - padded[0]) > 1e-3, "the check cannot tell packed from leaked"


def test_packed_batches_hold_every_example_once_in_rows_within_the_budget() -> None:
    lengths = [5, 30, 12, 7, 40, 3, 22, 18, 9, 16] * 4
    batches = packed_batches(lengths, 128, 64, torch.Generator().manual_seed(0))
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        rows = recut_rows([lengths[i] for i in batch], 64)  # as collate_packed cuts the micro-batch
        assert len(rows) <= 2, f"{len(rows)} rows of 64 in a budget of 128"
        assert all(sum(lengths[batch[i]] for i in row) <= 64 for row in rows)
    assert sum(lengths) / (128 * len(batches)) > 0.7, "greedy packing left most of each micro-batch empty"
    assert batches == packed_batches(lengths, 128, 64, torch.Generator().manual_seed(0)), "same seed, other rows"
    assert batches != packed_batches(lengths, 128, 64, torch.Generator().manual_seed(1)), "the seed has no effect"
    one_row = packed_batches(lengths, 64, 64, torch.Generator().manual_seed(0))
    assert all(sum(lengths[i] for i in batch) <= 64 for batch in one_row), "a budget of one row overflowed"


def test_packed_rows_are_fuller_than_closing_a_row_at_the_first_misfit_and_cut_again_the_same() -> None:
    rng = random.Random(0)
    lengths = [rng.randint(10, 100) for _ in range(500)]
    rows = packed_rows(lengths, 128)
    assert sorted(i for row in rows for i in row) == list(range(500))
    assert all(sum(lengths[i] for i in row) <= 128 for row in rows)
    fill, closing = (sum(lengths) / (128 * len(cut)) for cut in (rows, recut_rows(lengths, 128)))
    assert fill > 0.9 and fill > closing + 0.1, \
        f"first fit fills {fill:.0%} of each row, closing at a misfit {closing:.0%}"
    flat = [i for row in rows for i in row]  # what a micro-batch holds, and collate_packed cuts again
    assert [[flat[j] for j in row] for row in recut_rows([lengths[i] for i in flat], 128)] == rows


@pytest.mark.slow
def test_packed_training_pads_only_row_ends_and_learns(fresh_base, iris_splits) -> None:
    train = varied(iris_splits.train)
    settings = TrainSettings(epochs=3, batch_size=8, lr=3e-3, max_length=64, batching="packed", tokens_per_batch=256)
    model = attach_lora(fresh_base.model, LORA, seed=0)
    result = train_lora(model, fresh_base.tokenizer, train, iris_splits.eval, settings, progress=False)
    lengths = [len(ids) for ids, _ in encode_all(fresh_base.tokenizer, train, 64)]
    assert result.tokens == 3 * sum(lengths), "the count of trained tokens counts the filler"
    assert result.tokens / result.positions > 0.85, f"rows of 64 left {1 - result.tokens / result.positions:.0%} empty"
    order = torch.Generator().manual_seed(settings.seed)  # as the optimizer loop plans its three epochs
    assert result.steps == sum(len(packed_batches(lengths, 256, 64, order)) for _ in range(3)), "steps are not batches"
    assert result.steps < 3 * len(train) / 5, "four 64-token rows should hold more than 5 examples of 16-42 tokens"
    assert sum(result.loss_curve[-5:]) < sum(result.loss_curve[:5]) / 2, f"loss did not fall: {result.loss_curve}"


def test_a_budget_below_the_longest_example_is_refused() -> None:
    settings = TrainSettings(epochs=1, batch_size=8, lr=1e-3, max_length=64, batching="packed", tokens_per_batch=32)
    with pytest.raises(ValueError, match=r"train.tokens_per_batch 32 is less than the longest .* \(40 tokens\)"):
        require_packable([10, 40], settings, Ranks(), "sdpa")
    with pytest.raises(ValueError, match="packed runs in one process"):
        require_packable([10, 20], settings, Ranks(rank=0, world=2), "sdpa")


def test_several_packed_rows_are_refused_under_flash_attention_which_would_join_their_examples() -> None:
    rows = TrainSettings(epochs=1, batch_size=8, lr=1e-3, max_length=64, batching="packed")  # 8 rows of 64
    require_packable([10, 40], rows, Ranks(), "sdpa")
    with pytest.raises(ValueError, match=r"puts 8 rows in a micro-batch, and flash_attention_2 .* at most 64"):
        require_packable([10, 40], rows, Ranks(), "flash_attention_2")
    one_row = rows.model_copy(update={"tokens_per_batch": 64})
    require_packable([10, 40], one_row, Ranks(), "flash_attention_2")  # one row: flash attention reads it packed


def test_a_budget_below_max_length_is_one_row_of_the_budget() -> None:
    settings = TrainSettings(epochs=1, batch_size=8, lr=1e-3, max_length=128, batching="packed", tokens_per_batch=100)
    assert (token_budget(settings), row_width(settings)) == (100, 100)
    wide = settings.model_copy(update={"tokens_per_batch": 1000})
    assert (token_budget(wide), row_width(wide)) == (1000, 128)
    lengths = [30, 50, 20, 90, 10]
    assert all(sum(lengths[i] for i in batch) <= 100 for batch in packed_batches(lengths, 100, 100, torch.Generator()))


def test_tokens_per_batch_needs_packing_and_enters_the_key_when_set() -> None:
    """Unset, it keeps every stored key (tests/store/test_adapters.py); set, it decides the rows, so the key."""
    with pytest.raises(ValidationError, match="tokens_per_batch 512 applies only to batching: packed"):
        TrainSettings(epochs=1, batch_size=8, lr=1e-3, tokens_per_batch=512)
    packed = TrainSettings(epochs=1, batch_size=8, lr=1e-3, max_length=64, batching="packed")
    lora = LoraSettings(r=4, alpha=8, target_modules=["q_proj"])
    assert adapter_key("b", "d", lora, packed) != adapter_key(
        "b", "d", lora, packed.model_copy(update={"tokens_per_batch": 256})), "the budget does not enter the key"


def test_a_packed_key_names_how_rows_are_packed_and_no_other_key_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """Packing that composes its rows differently trains other weights: a stored packed adapter is not reused."""
    lora = LoraSettings(r=4, alpha=8, target_modules=["q_proj"])
    packed = TrainSettings(epochs=1, batch_size=8, lr=1e-3, max_length=64, batching="packed")
    dynamic = packed.model_copy(update={"batching": "dynamic"})
    before = adapter_key("b", "d", lora, packed), adapter_key("b", "d", lora, dynamic)
    monkeypatch.setattr(store, "PACKING", "some other packing")
    assert adapter_key("b", "d", lora, packed) != before[0], "the packing does not enter a packed adapter's key"
    assert adapter_key("b", "d", lora, dynamic) == before[1], "the packing entered an unpacked adapter's key"


def test_trained_tokens_are_counted_by_the_mask_the_filler_marks_or_else_every_token() -> None:
    """A padded batch counts its mask, a packed one leaves its filler out, and a batch with neither (a head model's
    tokenizer that returns no mask) counts every token rather than failing."""
    weight = torch.nn.Parameter(torch.ones(1))

    def loss_fn(model, batch):  # one answer token a row, a loss that reaches the weight
        return weight.sum() * batch["input_ids"].shape[0], batch["input_ids"].shape[0]

    ids = torch.ones((2, 5), dtype=torch.long)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    for batch, tokens in (({"input_ids": ids, "attention_mask": mask}, 8), ({"input_ids": ids, "real_tokens": mask}, 8),
                          ({"input_ids": ids}, 10)):
        result = TrainResult()
        train_step(None, [weight], [batch], loss_fn, torch.device("cpu"), Ranks(), result)  # type: ignore[arg-type]
        assert (result.tokens, result.positions) == (tokens, 10), f"{sorted(batch)}: {result}"


def test_packing_is_refused_for_a_model_with_its_own_head() -> None:
    settings = TrainSettings(epochs=1, batch_size=8, lr=1e-3, max_length=64, batching="packed")
    with pytest.raises(ValueError, match="packed is for causal LMs"):
        train_features(None, [], settings, pad_id=0, desc="train topics/tiny")  # type: ignore[arg-type]
