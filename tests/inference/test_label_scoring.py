"""Label scoring: one cached prompt pass per batch gives what a separate forward per (prompt, label) gives."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from loragate.inference.label_scoring import answer_ids, label_log_likelihoods, likeliest
from loragate.inference.predictions import Predictions
from loragate.run.steps import score

# labels of 1 to 11 tokens (plus EOS) under the tiny Iris tokenizer, one a prefix of another
LABELS = ["setosa", "setosa blue flag", "versicolor purple", "virginica with a long name here", "qz"]


def prompts_of_several_lengths(iris_splits) -> list[str]:
    return [ex.prompt for ex in iris_splits.test[:6]] + [
        "Species:", "Petal width: high. Species:", "Sepal width: low. Petal length: medium. Species:"]


@torch.no_grad()
def brute_force(model, tokenizer, prompts: list[str], targets: list[str]) -> torch.Tensor:
    """One forward per (prompt, label) over prompt + answer, no padding, no cache."""
    scores = torch.empty((len(prompts), len(targets)))
    for i, prompt in enumerate(prompts):
        prompt_ids = tokenizer(prompt).input_ids
        for j, target in enumerate(targets):
            answer = answer_ids(tokenizer, target)
            logp = model(input_ids=torch.tensor([prompt_ids + answer])).logits[0].float().log_softmax(-1)
            scores[i, j] = sum(logp[len(prompt_ids) - 1 + k, token] for k, token in enumerate(answer))
    return scores


def test_answer_ids_are_the_target_without_special_tokens_then_eos(fresh_base) -> None:
    tok = fresh_base.tokenizer
    lengths = [len(answer_ids(tok, f" {label}")) for label in LABELS]
    assert answer_ids(tok, " qz") == tok(" qz", add_special_tokens=False).input_ids + [tok.eos_token_id]
    assert min(lengths) >= 2 and max(lengths) >= 6 and len(set(lengths)) >= 3, f"want varied lengths, got {lengths}"


@pytest.mark.parametrize("batch_size", [1, 4, 32])
def test_scores_equal_one_forward_per_prompt_and_label(tuned, iris_splits, batch_size: int) -> None:
    base, model = tuned
    prompts, targets = prompts_of_several_lengths(iris_splits), [f" {label}" for label in LABELS]
    scored = label_log_likelihoods(model, base.tokenizer, prompts, targets, batch_size)
    expected = brute_force(model, base.tokenizer, prompts, targets)
    assert scored.shape == (len(prompts), len(LABELS)) and scored.dtype == torch.float32
    # fp32: 1e-5, relative where a log-likelihood is far from 0 (sums of ~10 log-probs of -10 each)
    gap = ((scored - expected).abs() / expected.abs().clamp(min=1.0)).max().item()
    assert gap <= 1e-5, f"batch_size {batch_size}: scores differ from brute force by {gap:.2e} (relative) > 1e-5"


def test_scoring_picks_the_trained_label_and_counts_eos(tuned, iris_splits) -> None:
    """A label that is a prefix of another is not favoured for being short, and vice versa: EOS is scored."""
    base, model = tuned
    card_labels = ["setosa", "versicolor", "virginica"]
    prompts = [ex.prompt for ex in iris_splits.test]
    scores = label_log_likelihoods(model, base.tokenizer, prompts, [f" {label}" for label in card_labels], 32)
    picked = likeliest(scores, card_labels)
    accuracy = sum(p == ex.label for p, ex in zip(picked, iris_splits.test)) / len(prompts)
    assert accuracy >= 0.8, f"the tuned model's likeliest labels are right on only {accuracy:.2f} of the test split"
    setosa = [i for i, ex in enumerate(iris_splits.test) if picked[i] == "setosa"]
    extended = label_log_likelihoods(model, base.tokenizer, [prompts[i] for i in setosa],
                                     [" setosa", " setosa blue flag"], 32)
    assert (extended[:, 0] > extended[:, 1]).all(), "the label the model ends with EOS must beat its extension"


def test_likeliest_takes_the_row_maximum_and_the_first_of_a_tie() -> None:
    scores = torch.tensor([[-1.0, -0.5, -3.0], [-2.0, -2.0, -9.0]])
    assert likeliest(scores, ["a", "b", "c"]) == ["b", "a"]


def test_scored_metrics_keep_unparsed_outputs_invalid(iris) -> None:
    """decode: score counts a parsed output as its likeliest label; an output that did not parse stays wrong."""
    texts = ["setosa", "Setosa", "virginica"]
    predictions = Predictions(ids=["a", "b", "c"], gold=["setosa", "setosa", "versicolor"], outputs=texts,
                              parsed=[iris.parse(text) for text in texts], seconds=0.0,
                              scored=["setosa", "setosa", "versicolor"])
    metrics = score(iris, predictions)
    assert metrics.predicted == ["setosa", None, "versicolor"]
    assert metrics.accuracy == pytest.approx(2 / 3) and metrics.validity_rate == pytest.approx(2 / 3)
    generated = score(iris, replace(predictions, scored=None))
    assert generated.predicted == ["setosa", None, "virginica"]


def test_empty_prompt_list_scores_nothing(tuned) -> None:
    base, model = tuned
    assert label_log_likelihoods(model, base.tokenizer, [], [" setosa"], 4).shape == (0, 1)

