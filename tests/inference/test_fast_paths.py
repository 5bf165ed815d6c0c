"""The fast paths compute what the slow ones do: the greedy engine vs `model.generate`, length-grouped and
padded training, batched vs one-at-a-time validation loss; and the generation budget and early stop."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from loragate.card.settings import LoraSettings, TrainSettings
from loragate.data.examples import Example
from loragate.inference.engine import answer_budget, cannot_parse, generate, greedy, stops
from loragate.inference.label_scoring import label_log_likelihoods, likeliest
from loragate.kinds import causal
from loragate.kinds.generative_classification.pipeline import targets
from loragate.models.bases import load_causal
from loragate.run import steps as run
from loragate.training.lora import (
    IGNORE,
    TrainResult,
    attach_lora,
    collate,
    encode,
    epoch_batches,
    eval_loss,
    train_lora,
)

LABELS = ["setosa", "versicolor", "virginica"]
LORA = LoraSettings(r=4, alpha=8, target_modules=["q_proj", "v_proj"])


def prompts_of_several_lengths(iris_splits) -> list[str]:
    return [ex.prompt for ex in iris_splits.test] + [
        "Species:", "Petal width: high. Species:", "Sepal width: low. Petal length: medium. Species:"]


@torch.no_grad()
def hf_generate(model, tokenizer, prompts: list[str], max_new_tokens: int) -> list[str]:
    """The seeds' way: `model.generate` one prompt at a time."""
    texts = []
    for prompt in prompts:
        enc = tokenizer(prompt, return_tensors="pt")
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        texts.append(tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True))
    return texts


def test_engine_equals_model_generate_token_for_token(fresh_base, iris_splits) -> None:
    """Without labels the engine stops only at EOS or the budget, like `model.generate`: the same text."""
    prompts = prompts_of_several_lengths(iris_splits)
    ours = generate(fresh_base.model, fresh_base.tokenizer, prompts, max_new_tokens=5, batch_size=8)
    theirs = hf_generate(fresh_base.model, fresh_base.tokenizer, prompts, 5)
    differ = [(i, a, b) for i, (a, b) in enumerate(zip(ours.texts, theirs)) if a != b]
    assert not differ, f"{len(differ)} of {len(prompts)} outputs differ from model.generate: {differ[:3]}"
    assert len(set(theirs)) > 1 and ours.new_tokens > len(prompts), "the check needs several multi-token outputs"


def test_engine_with_labels_keeps_every_verdict_of_model_generate(tuned, iris_splits, iris) -> None:
    base, model = tuned
    prompts = prompts_of_several_lengths(iris_splits)
    budget = answer_budget(base.tokenizer, [f" {label}" for label in LABELS]) + 2  # room for junk after a label
    ours = generate(model, base.tokenizer, prompts, budget, batch_size=32, labels=LABELS).texts
    theirs = hf_generate(model, base.tokenizer, prompts, budget)
    verdicts = [(iris.parse(a).value, iris.parse(b).value) for a, b in zip(ours, theirs)]
    assert all(a == b for a, b in verdicts), [(i, o, t) for i, (o, t) in enumerate(zip(ours, theirs)) if o != t][:3]
    assert all(t.startswith(o) for o, t in zip(ours, theirs)), "the engine's text must be a prefix of generate's"
    assert sum(v[0] is not None for v in verdicts) >= len(prompts) // 2, "the check needs valid outputs"


def test_each_row_stops_at_the_first_token_that_ends_it(fresh_base, iris_splits) -> None:
    """`model.generate` runs a batch until its last row has stopped: each row's tokens are cut at its own stop."""
    tok = fresh_base.tokenizer
    rows = [tok(prompt).input_ids for prompt in prompts_of_several_lengths(iris_splits)]
    free = greedy(fresh_base.model, tok, rows, 6, labels=None)
    forwards = []
    hook = fresh_base.model.register_forward_hook(lambda *_: forwards.append(1))
    try:
        stopped = greedy(fresh_base.model, tok, rows, 6, labels=LABELS)
    finally:
        hook.remove()
    expected = [next((ids[:k] for k in range(1, len(ids) + 1) if stops(tok, ids[:k], LABELS)), ids) for ids in free]
    assert stopped == expected
    assert len(forwards) == max(len(ids) for ids in stopped), "the batch ran on after its last row had stopped"
    assert len({len(ids) for ids in stopped}) > 1 and stopped != free, "the check needs rows stopped at several steps"


@pytest.mark.parametrize(("text", "expected"), [
    ("", False), ("  ", False), ("set", False), (" setosa", False), ("setosa\n", False), ("setosa \n ", False),
    ("setosa\nm", True), ("Species:", True), ("setosa.", True), ("Setosa", True), ("versi\ufffd", False),
])
def test_cannot_parse_only_when_no_continuation_can_parse(text: str, expected: bool, iris) -> None:
    assert cannot_parse(text, LABELS) is expected
    if expected:  # whatever follows, the parser rejects it
        assert all(not iris.parse(text + tail).valid for tail in ("", "\n", " ", "osa", "setosa"))


def test_budget_is_the_longest_target_plus_eos(fresh_base) -> None:
    tok = fresh_base.tokenizer
    targets = [" setosa", " versicolor purple and long", " qz"]
    longest = max(len(tok(t, add_special_tokens=False).input_ids) for t in targets)
    assert longest >= 3 and answer_budget(tok, targets) == longest + 1


def test_generation_budget_comes_from_the_card_else_from_the_labels(monkeypatch, iris, fresh_base) -> None:
    budgets: list[int] = []
    monkeypatch.setattr(causal, "generate",
                        lambda model, tok, prompts, budget, batch_size, **kw: budgets.append(budget))
    assert iris.card.tier("tiny").eval.max_new_tokens is None and iris.card.tier("full").eval.max_new_tokens == 8
    for tier in ("tiny", "full"):
        run.kind(iris).generations(iris, tier, fresh_base.model, fresh_base, ["Species:"])
    targets = [iris.card.target_template.format(label=label) for label in iris.card.labels]
    assert budgets == [answer_budget(fresh_base.tokenizer, targets), 8]


def test_predictions_carry_scored_labels_where_the_card_says_score(tuned, iris_splits, iris) -> None:
    base, model = tuned
    examples = iris_splits.test[:6]
    assert iris.card.tier("tiny").eval.decode == "score" and iris.card.tier("full").eval.decode == "generate"
    scored = run.predict(iris, model, base, examples, "tiny", False, "tiny")
    expected = likeliest(label_log_likelihoods(model, base.tokenizer, [ex.prompt for ex in examples],
                                               targets(iris), 32), iris.card.labels)
    assert scored.scored == expected
    assert run.predict(iris, model, base, examples, "full", False, "full").scored is None


@pytest.mark.parametrize("grouped", [True, False], ids=["grouped", "shuffled"])
def test_every_example_once_per_epoch_and_seeded(grouped: bool) -> None:
    lengths = [(i * 37) % 101 + 1 for i in range(203)]  # not a multiple of the batch size
    first = epoch_batches(lengths, 8, grouped, torch.Generator().manual_seed(0))
    assert sorted(i for batch in first for i in batch) == list(range(len(lengths)))
    assert len(first) == math.ceil(len(lengths) / 8) and all(1 <= len(batch) <= 8 for batch in first)
    assert first == epoch_batches(lengths, 8, grouped, torch.Generator().manual_seed(0)), "same seed, other batches"
    assert first != epoch_batches(lengths, 8, grouped, torch.Generator().manual_seed(1)), "seed has no effect"
    generator = torch.Generator().manual_seed(0)
    assert epoch_batches(lengths, 8, grouped, generator) != epoch_batches(lengths, 8, grouped, generator), \
        "every epoch must be shuffled anew"


def test_grouping_cuts_padding_and_puts_the_longest_batch_first() -> None:
    lengths = [(i * 37) % 101 + 1 for i in range(512)]

    def padding(batches: list[list[int]]) -> int:
        return sum(len(batch) * max(lengths[i] for i in batch) - sum(lengths[i] for i in batch) for batch in batches)

    grouped = epoch_batches(lengths, 8, True, torch.Generator().manual_seed(0))
    shuffled = epoch_batches(lengths, 8, False, torch.Generator().manual_seed(0))
    assert padding(grouped) * 5 < padding(shuffled), (padding(grouped), padding(shuffled))
    assert max(lengths[i] for i in grouped[0]) == max(lengths)


def test_collate_pads_to_a_given_width() -> None:
    batch = collate([([1, 2, 3], [IGNORE, 2, 3])], pad_id=0, width=5)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE, 2, 3, IGNORE, IGNORE]]


def train(tiny_dir, examples: list[Example], batching: str, checkpointing: bool = False) -> TrainResult:
    base = load_causal(str(tiny_dir), "cpu", torch.float32)
    model = attach_lora(base.model, LORA, seed=0)
    settings = TrainSettings(epochs=2, batch_size=8, lr=3e-3, max_length=64, seed=0, batching=batching,
                             gradient_checkpointing=checkpointing)
    return train_lora(model, base.tokenizer, examples, examples[:8], settings, progress=False)


def varied(iris_splits) -> list[Example]:
    """Train examples with prompts cut to different lengths, so batches carry padding."""
    return [replace(ex, prompt=ex.prompt[: 20 + (i * 13) % 60]) for i, ex in enumerate(iris_splits.train[:32])]


@pytest.mark.slow
def test_padding_to_max_length_trains_exactly_like_dynamic_padding(tiny_dir, fresh_base, iris_splits) -> None:
    examples = varied(iris_splits)
    dynamic, padded = train(tiny_dir, examples, "dynamic"), train(tiny_dir, examples, "max")
    gap = max(abs(a - b) / b for a, b in zip(dynamic.loss_curve, padded.loss_curve))
    assert len(dynamic.loss_curve) == len(padded.loss_curve) == 8 and gap <= 1e-5, f"loss curves differ by {gap:.2e}"
    real = sum(len(encode(fresh_base.tokenizer, ex, 64)[0]) for ex in examples)
    assert dynamic.tokens == padded.tokens == 2 * real, (dynamic.tokens, padded.tokens, real)
    assert padded.positions == 2 * len(examples) * 64 > dynamic.positions


@pytest.mark.slow
def test_grouped_training_computes_less_padding_and_learns(tiny_dir, iris_splits) -> None:
    examples = varied(iris_splits)
    grouped, dynamic = train(tiny_dir, examples, "grouped"), train(tiny_dir, examples, "dynamic")
    assert grouped.tokens == dynamic.tokens and grouped.positions < dynamic.positions
    assert grouped.loss_curve[-1] < grouped.loss_curve[0], grouped.loss_curve


@pytest.mark.slow
def test_gradient_checkpointing_changes_memory_not_the_result(tiny_dir, iris_splits) -> None:
    examples = iris_splits.train[:16]
    plain, checkpointed = train(tiny_dir, examples, "grouped"), train(tiny_dir, examples, "grouped", checkpointing=True)
    gap = max(abs(a - b) / b for a, b in zip(plain.loss_curve, checkpointed.loss_curve))
    assert gap <= 1e-5, f"gradient checkpointing changed the loss curve by {gap:.2e}"


@torch.no_grad()
def full_logits_loss(model, tokenizer, examples) -> float:
    """Token-weighted answer loss from every position's logits, one example at a time: the definition."""
    total, count = 0.0, 0
    for ex in examples:
        ids, labels = encode(tokenizer, ex, 128)
        logits = model(input_ids=torch.tensor([ids])).logits[0, :-1].float()
        targets = torch.tensor(labels[1:])
        total += float(torch.nn.functional.cross_entropy(logits, targets, ignore_index=IGNORE, reduction="sum"))
        count += int((targets != IGNORE).sum())
    return total / count


@pytest.mark.slow
def test_batched_validation_loss_equals_one_example_at_a_time(tuned, iris_splits) -> None:
    base, model = tuned
    examples = varied(iris_splits) + iris_splits.eval
    one = eval_loss(model, base.tokenizer, examples, 128, batch_size=1)
    expected = full_logits_loss(model, base.tokenizer, examples)
    for batch_size in (7, 32):
        batched = eval_loss(model, base.tokenizer, examples, 128, batch_size=batch_size)
        assert abs(batched - one) <= 1e-5 and abs(batched - expected) <= 1e-5, (batch_size, batched, one, expected)
    assert 0 < one < 5
