"""The encoder path (MiniLM from its PyPI wheel): a seeded head, a trained head saved with the adapter and
placed back on load, the base left untouched, and batched logits equal to one-at-a-time ones."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from loragate.card import LoraSettings, TrainSettings
from loragate.encoder import classification_features, classifier_head, classify_logits
from loragate.models import load_encoder
from loragate.parameters import base_fingerprint_inside
from loragate.store import AdapterStore, load_adapter
from manifests import stub_manifest
from loragate.tasks import get_task
from loragate.training import attach_lora, train_features

LABELS = ["World", "Sports", "Business", "Sci/Tech"]
LORA = LoraSettings(r=4, alpha=8, target_modules=["query", "value"], modules_to_save=["classifier"])
TRAIN = TrainSettings(epochs=1, batch_size=8, lr=1e-3, max_length=64)


def minilm(seed: int = 0):
    return load_encoder("minilm", *classifier_head(LABELS), "cpu", torch.float32, head_seed=seed)


@pytest.fixture(scope="module")
def examples():
    return get_task("topics").load_splits().train[:16]


def test_the_new_head_is_seeded_so_the_base_has_one_fingerprint() -> None:
    assert minilm(0).fingerprint == minilm(0).fingerprint, "same head seed, other weights"
    assert minilm(0).fingerprint != minilm(1).fingerprint, "the head seed is not used"


def test_trained_head_round_trips_and_the_base_stays_bit_identical(tmp_path: Path, examples) -> None:
    base = minilm()
    model = attach_lora(base.model, LORA, seed=0, task_type="SEQ_CLS", modules_to_save=["classifier"])
    features = classification_features(base.tokenizer, examples, LABELS, TRAIN.max_length)
    train_features(model, features, TRAIN, base.tokenizer.pad_token_id, progress=False)
    assert base_fingerprint_inside(model) == base.fingerprint, "the original head or a base weight changed"
    tuned = classify_logits(model, base.tokenizer, examples, batch_size=8)
    entry = AdapterStore(tmp_path).save(model, stub_manifest(task="topics"), "topics", "tiny", "k")
    reloaded = load_adapter(minilm().model, entry)  # refuses tensors it cannot place: the head must land
    assert torch.allclose(classify_logits(reloaded, base.tokenizer, examples, 8), tuned, atol=1e-5), \
        "the reloaded adapter does not reproduce the trained head's logits"


def test_batched_logits_equal_one_at_a_time(examples) -> None:
    base = minilm()
    batched = classify_logits(base.model, base.tokenizer, examples, batch_size=8)
    single = torch.cat([classify_logits(base.model, base.tokenizer, [ex], 1) for ex in examples])
    assert torch.allclose(batched, single, atol=1e-5), f"padding changed logits by {(batched - single).abs().max():.2e}"


def test_a_text_longer_than_max_length_is_an_error(examples) -> None:
    with pytest.raises(ValueError, match=rf"example {examples[0].id}: \d+ tokens > train.max_length 4"):
        classification_features(minilm().tokenizer, examples[:1], LABELS, max_length=4)
