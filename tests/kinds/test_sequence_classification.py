"""The encoder path (MiniLM from its PyPI wheel), for both heads a card's `pooling` chooses ([CLS], mean): a
seeded head, a trained head saved with the adapter and placed back on load, the base left untouched, and batched
logits equal to one-at-a-time ones."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from loragate.card.settings import LoraSettings, TaskCard, TrainSettings
from loragate.kinds.sequence_classification.heads import classification_features, classifier_head, classify_logits
from loragate.models.bases import load_encoder
from loragate.models.mean_pooling import MeanPooledClassifier
from loragate.models.parameters import base_fingerprint_inside, merged_copy, targeted_linears
from loragate.store.adapters import AdapterStore, load_adapter
from loragate.tasks import get_task
from loragate.training.lora import attach_lora, train_features
from tests.manifests import stub_manifest

LABELS = ["World", "Sports", "Business", "Sci/Tech"]
LORA = LoraSettings(r=4, alpha=8, target_modules=["query", "value"], modules_to_save=["classifier"])
TRAIN = TrainSettings(epochs=1, batch_size=8, lr=1e-3, max_length=64)


POOLINGS = ["cls", "mean"]


def minilm(seed: int = 0, pooling: str = "cls"):
    return load_encoder("minilm", *classifier_head(LABELS, pooling), "cpu", torch.float32, head_seed=seed)


@pytest.fixture(scope="module")
def examples():
    return get_task("topics").load_splits().train[:16]


@pytest.mark.slow
@pytest.mark.parametrize("pooling", POOLINGS)
def test_the_new_head_is_seeded_so_the_base_has_one_fingerprint(pooling: str) -> None:
    assert minilm(0, pooling).fingerprint == minilm(0, pooling).fingerprint, "same head seed, other weights"
    assert minilm(0, pooling).fingerprint != minilm(1, pooling).fingerprint, "the head seed is not used"


@pytest.mark.slow
def test_the_two_poolings_are_two_bases() -> None:
    assert minilm(0, "cls").fingerprint != minilm(0, "mean").fingerprint, "an adapter key would not tell them apart"


@pytest.mark.slow
@pytest.mark.parametrize("pooling", POOLINGS)
def test_trained_head_round_trips_and_the_base_stays_bit_identical(tmp_path: Path, examples, pooling: str) -> None:
    base = minilm(0, pooling)
    model = attach_lora(base.model, LORA, seed=0, task_type="SEQ_CLS", modules_to_save=["classifier"])
    features = classification_features(base.tokenizer, examples, LABELS, TRAIN.max_length)
    train_features(model, features, TRAIN, base.tokenizer.pad_token_id, progress=False)
    assert base_fingerprint_inside(model) == base.fingerprint, "the original head or a base weight changed"
    tuned = classify_logits(model, base.tokenizer, examples, batch_size=8)
    entry = AdapterStore(tmp_path).save(model, stub_manifest(task="topics"), "topics", "tiny", "k")
    reloaded = load_adapter(minilm(0, pooling).model, entry)  # refuses tensors it cannot place: the head must land
    assert torch.allclose(classify_logits(reloaded, base.tokenizer, examples, 8), tuned, atol=1e-5), \
        "the reloaded adapter does not reproduce the trained head's logits"


def test_attaching_a_head_leaves_the_cards_list_as_it_was() -> None:
    """peft extends the modules_to_save list it is given (SEQ_CLS adds classifier and score): the manifest recorded
    [classifier, classifier, score], and a second run in one process would have computed another adapter key."""
    card_list = ["classifier"]
    attach_lora(minilm(0, "cls").model, LORA, seed=0, task_type="SEQ_CLS", modules_to_save=card_list)
    assert card_list == ["classifier"]


@pytest.mark.parametrize("pooling", POOLINGS)
def test_batched_logits_equal_one_at_a_time(examples, pooling: str) -> None:
    base = minilm(0, pooling)
    batched = classify_logits(base.model, base.tokenizer, examples, batch_size=8)
    single = torch.cat([classify_logits(base.model, base.tokenizer, [ex], 1) for ex in examples])
    assert torch.allclose(batched, single, atol=1e-5), f"padding changed logits by {(batched - single).abs().max():.2e}"


def test_a_text_longer_than_max_length_is_an_error(examples) -> None:
    with pytest.raises(ValueError, match=rf"example {examples[0].id}: \d+ tokens > train.max_length 4"):
        classification_features(minilm().tokenizer, examples[:1], LABELS, max_length=4)


def test_the_mean_head_reads_the_mean_of_the_token_states_over_the_mask(examples) -> None:
    base = minilm(0, "mean")
    model: MeanPooledClassifier = base.model
    encoded = base.tokenizer(examples[0].prompt, return_tensors="pt")
    with torch.no_grad():
        states = model.sentence_encoder(**encoded).last_hidden_state[0]
        expected = model.classifier(states.mean(0))
    actual = classify_logits(model, base.tokenizer, examples[:1], batch_size=1)[0]
    assert torch.allclose(actual, expected, atol=1e-5), f"off by {(actual - expected).abs().max():.2e}"


def test_a_merged_mean_head_reloads_from_save_pretrained(tmp_path: Path, examples) -> None:
    """What the export suite does with the merged model: its own class reads back what it wrote."""
    base = minilm(0, "mean")
    merged = merged_copy(attach_lora(base.model, LORA, seed=0, task_type="SEQ_CLS", modules_to_save=["classifier"]))
    merged.save_pretrained(tmp_path / "merged")
    reloaded = MeanPooledClassifier.from_pretrained(tmp_path / "merged", dtype=torch.float32, use_safetensors=True)
    assert torch.equal(classify_logits(reloaded, base.tokenizer, examples, 8),
                       classify_logits(merged, base.tokenizer, examples, 8))


def test_the_mean_head_refuses_inputs_it_would_ignore(examples) -> None:
    base = minilm(0, "mean")
    encoded = base.tokenizer(examples[0].prompt, return_tensors="pt")
    with pytest.raises(TypeError, match=r"\['output_hidden_states'\] are not supported"):
        base.model(**encoded, output_hidden_states=True)


def test_pooling_is_refused_on_a_card_of_another_kind() -> None:
    raw = get_task("squad_v2").card.model_dump()
    raw["tiers"]["tiny"]["pooling"] = "mean"
    with pytest.raises(ValueError, match=r"tiers \['tiny'\]: pooling is read only by the kinds "
                                         r"sequence_classification, .*remove 'pooling'"):
        TaskCard.model_validate(raw)


def test_sst2_encoder_adapts_every_linear_of_the_encoder_layers_and_not_the_unread_pooler() -> None:
    """The card's recipe: LoRA on each layer's attention and feed-forward linears (q/k/v alone gave 0.792 on real
    SST-2, these 0.817; docs/real-data.md), not on the pooler, which the mean head never reads."""
    tier = get_task("sst2_encoder").card.tier("tiny")
    model = minilm(0, tier.pooling).model
    layer_linears = {name for name, module in model.named_modules()
                     if isinstance(module, torch.nn.Linear) and name.startswith("sentence_encoder.encoder.layer.")}
    targeted = set(targeted_linears(model, tier.lora.target_modules))
    assert targeted == layer_linears, (f"not adapted: {sorted(layer_linears - targeted)[:3]}; "
                                       f"adapted outside the layers: {sorted(targeted - layer_linears)}")
