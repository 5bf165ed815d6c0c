"""Agreement of an example's k samples: majority share, pairwise disagreement, the least stable examples."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from loragate.data.parsing import ParsedOutput
from loragate.inference.predictions import Predictions
from loragate.metrics.agreement import agreement


class Label(BaseModel):
    label: str


def sampled(outputs: list[list[str]]) -> Predictions:
    """Predictions of len(outputs) examples, each with its samples' outputs; "?" does not parse."""
    ids = [f"ex{e}" for e, samples in enumerate(outputs) for _ in samples]
    flat = [text for samples in outputs for text in samples]
    parsed = [ParsedOutput(None, "not a label") if text.strip() == "?"
              else ParsedOutput(Label(label=text.strip()), None) for text in flat]
    return Predictions(ids=ids, gold=["a"] * len(flat), outputs=flat, parsed=parsed, seconds=0.0)


def test_majority_and_pairwise_disagreement_per_example() -> None:
    result = agreement(sampled([[" a", "a ", "a", "a"], ["a", "b", "a", "c"], ["a", "b", "b", "a"]]), 4)
    stable, mixed, split = result.examples
    assert (stable.majority, stable.disagreement) == (1.0, 0.0), "whitespace around an answer is no disagreement"
    assert mixed.answers == (("a", 2), ("b", 1), ("c", 1))
    assert (mixed.majority, mixed.disagreement) == (0.5, pytest.approx(1 - 2 / 12))  # one pair of 6 agrees
    assert split.answers == (("a", 2), ("b", 2)), "ties keep the order the samples were drawn in"
    assert split.disagreement == pytest.approx(1 - 4 / 12)
    assert result.unanimous == 1
    assert result.majority == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert result.disagreement == pytest.approx((0 + 10 / 12 + 8 / 12) / 3)


def test_least_stable_first_and_stable_examples_never_listed() -> None:
    result = agreement(sampled([["a", "a", "a"], ["a", "a", "b"], ["a", "b", "c"]]), 3)
    assert [ex.id for ex in result.least_stable(5)] == ["ex2", "ex1"]
    assert [ex.id for ex in result.least_stable(1)] == ["ex2"]
    assert result.least_stable(1)[0].answers_text() == "a x1, b x1, c x1"


def test_an_output_that_does_not_parse_never_agrees_with_a_valid_one() -> None:
    result = agreement(sampled([["?", "?", "?"]]), 3)
    assert result.examples[0].answers == (("? (did not parse)", 3),)


def test_rows_that_are_not_k_samples_per_example_are_refused() -> None:
    with pytest.raises(ValueError, match="not 3 samples"):
        agreement(sampled([["a", "a"]]), 3)
    interleaved = sampled([["a", "b"], ["a", "b"]])
    interleaved = Predictions(ids=["ex0", "ex1", "ex0", "ex1"], gold=interleaved.gold, outputs=interleaved.outputs,
                              parsed=interleaved.parsed, seconds=0.0)
    with pytest.raises(ValueError, match="several examples"):
        agreement(interleaved, 2)
