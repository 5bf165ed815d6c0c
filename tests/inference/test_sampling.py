"""Seeded sampling: the same seed gives the same samples at any batch size, another seed others; the nucleus and the
grammar bound what is drawn; prompts that are not k copies of each example are refused."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from loragate.card.sampling import SamplingSettings
from loragate.inference.engine import generate
from loragate.inference.grammar import one_of
from loragate.inference.sampling import pick, repeat_samples, row_seed, sample_positions

HOT = SamplingSettings(temperature=1.5, top_p=1.0, samples=4, seed=0)


def sampled_prompts(iris_splits, samples: int) -> list[str]:
    """Test prompts of several lengths (batches carry left padding), each `samples` times in a row."""
    prompts = [ex.prompt for ex in iris_splits.test[:6]] + ["Species:", "Petal width: high. Species:"]
    return [prompt for prompt in prompts for _ in range(samples)]


def test_same_seed_same_samples_at_any_batch_size(tuned, iris_splits) -> None:
    base, model = tuned
    prompts = sampled_prompts(iris_splits, HOT.samples)
    one = generate(model, base.tokenizer, prompts, max_new_tokens=4, batch_size=1, sampling=HOT)
    assert len(set(one.texts)) > 3, f"T=1.5 should draw several answers, drew {Counter(one.texts)}"
    for batch_size in (5, 32):
        again = generate(model, base.tokenizer, prompts, max_new_tokens=4, batch_size=batch_size, sampling=HOT)
        changed = [(row, a, b) for row, (a, b) in enumerate(zip(one.texts, again.texts)) if a != b]
        assert not changed, f"batch size {batch_size} changed {len(changed)} samples: (row, at 1, at it) {changed[:3]}"


def test_another_seed_draws_other_samples(tuned, iris_splits) -> None:
    base, model = tuned
    prompts = sampled_prompts(iris_splits, HOT.samples)
    first = generate(model, base.tokenizer, prompts, max_new_tokens=4, batch_size=8, sampling=HOT)
    other = generate(model, base.tokenizer, prompts, max_new_tokens=4, batch_size=8,
                     sampling=HOT.model_copy(update={"seed": 1}))
    assert first.texts != other.texts, "seed 1 drew exactly seed 0's samples"


def test_greedy_stays_the_default_and_a_cold_sample_is_greedy(tuned, iris_splits) -> None:
    """Sampling is only where asked; at a temperature near 0 every sample is the greedy answer."""
    base, model = tuned
    prompts = sampled_prompts(iris_splits, 2)
    greedy = generate(model, base.tokenizer, prompts, max_new_tokens=4, batch_size=8)
    cold = generate(model, base.tokenizer, prompts, max_new_tokens=4, batch_size=8,
                    sampling=SamplingSettings(temperature=1e-4, samples=2))
    assert cold.texts == greedy.texts


def test_sampling_composes_with_a_grammar(tuned, iris_splits) -> None:
    """Under the labels' grammar a hot sample is still exactly one label: the sampler draws among what it allows."""
    base, model = tuned
    prompts = sampled_prompts(iris_splits, HOT.samples)
    labels = [f" {label}" for label in ("setosa", "versicolor", "virginica")]
    drawn = generate(model, base.tokenizer, prompts, max_new_tokens=8, batch_size=8, constraint=one_of(labels),
                     sampling=HOT.model_copy(update={"temperature": 5.0}))
    said = Counter(text.strip() for text in drawn.texts)  # the grammar allows one leading space
    assert set(said) <= {label.strip() for label in labels} and len(said) > 1, Counter(drawn.texts)
    assert all(drawn.terminated), "a sampled row under the grammar did not end with EOS"


def test_the_nucleus_keeps_the_likeliest_tokens_and_never_a_ruled_out_one() -> None:
    scores = torch.tensor([[2.0, 1.0, 0.0, float("-inf")]] * 3)
    uniforms = torch.tensor([0.0, 0.5, 0.999999], dtype=torch.float64)
    assert pick(scores, 1.0, 1.0, uniforms).tolist() == [0, 0, 2]  # 0.999999 falls on the last possible token
    assert pick(scores, 1.0, 0.5, uniforms).tolist() == [0, 0, 0]  # token 0 alone holds 0.67 >= top_p
    assert pick(scores, 1.0, 0.8, uniforms).tolist() == [0, 0, 1]  # 0.67 < 0.8: token 1 joins, 2 stays out


def test_sample_seeds_depend_on_example_and_sample_not_k() -> None:
    assert row_seed(0, 3, 1) == row_seed(0, 3, 1)
    assert len({row_seed(0, e, s) for e in range(10) for s in range(10)} | {row_seed(1, 0, 0)}) == 101
    assert sample_positions(["a", "a", "b", "b"], 2) == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_prompts_that_are_not_k_copies_are_refused(iris_splits) -> None:
    copies = repeat_samples(iris_splits.test[:2], 3)
    assert [ex.id for ex in copies] == [iris_splits.test[0].id] * 3 + [iris_splits.test[1].id] * 3
    with pytest.raises(ValueError, match="not k copies"):
        sample_positions(["a", "a", "b"], 2)
    with pytest.raises(ValueError, match="consecutive copies"):
        sample_positions(["a", "b", "a", "b"], 2)
