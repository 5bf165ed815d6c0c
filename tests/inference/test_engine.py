"""The engine: right padding refused, and batching that does not change answers or logits."""

from __future__ import annotations

import copy

import pytest

from loragate.inference.engine import generate, next_token_logits


def test_right_padding_is_refused(tuned, iris_splits) -> None:
    base, model = tuned
    right = copy.deepcopy(base.tokenizer)
    right.padding_side = "right"
    prompts = [ex.prompt for ex in iris_splits.test[:2]]
    with pytest.raises(ValueError, match="padding_side is 'right'"):
        generate(model, right, prompts, max_new_tokens=2, batch_size=2)
    with pytest.raises(ValueError, match="padding_side is 'right'"):
        next_token_logits(model, right, prompts, batch_size=2)


def prompts_of_several_lengths(iris_splits) -> list[str]:
    """The test prompts (all one length in tokens) and shorter ones, so batches carry left padding."""
    return [ex.prompt for ex in iris_splits.test] + [
        "Species:", "Petal width: high. Species:", "Sepal width: low. Petal length: medium. Species:"]


def test_batched_generation_equals_one_at_a_time(tuned, iris_splits) -> None:
    base, model = tuned
    prompts = prompts_of_several_lengths(iris_splits)
    lengths = {len(base.tokenizer(p).input_ids) for p in prompts}
    batched = generate(model, base.tokenizer, prompts, max_new_tokens=4, batch_size=32)
    single = generate(model, base.tokenizer, prompts, max_new_tokens=4, batch_size=1)
    assert len(lengths) > 1 and len(set(batched.texts)) > 1, "the check needs padding and more than one answer"
    diffs = [(i, b, s) for i, (b, s) in enumerate(zip(batched.texts, single.texts)) if b != s]
    assert not diffs, \
        f"{len(diffs)} of {len(prompts)} answers change with batching: (index, batched, single) {diffs[:3]}"
    assert batched.prompt_tokens == sum(len(base.tokenizer(p).input_ids) for p in prompts), "padding was counted"
    reverse = generate(model, base.tokenizer, prompts[::-1], max_new_tokens=4, batch_size=7)
    assert reverse.texts == batched.texts[::-1], "answers are not returned in prompt order"


def test_next_token_logits_do_not_depend_on_batch_size(tuned, iris_splits) -> None:
    base, model = tuned
    prompts = prompts_of_several_lengths(iris_splits)
    one = next_token_logits(model, base.tokenizer, prompts, batch_size=1)
    for batch_size in (7, 32):
        many = next_token_logits(model, base.tokenizer, prompts, batch_size=batch_size)
        assert many.shape == one.shape == (len(prompts), len(base.tokenizer)), (many.shape, one.shape)
        worst = (many - one).abs().max().item()
        assert worst <= 1e-5, f"batch_size {batch_size}: logits differ from batch_size 1 by {worst:.2e} > 1e-5"
