"""A model's answers to one split, as a kind makes them: what metrics, gates and reports read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from loragate.data.examples import Example
from loragate.data.parsing import ParsedOutput
from loragate.inference.engine import Generations


@dataclass(frozen=True)
class Predictions:
    ids: list[str]
    gold: list[str]
    outputs: list[str]
    parsed: list[ParsedOutput]
    seconds: float
    generations: Generations | None = None  # causal kinds: the free greedy outputs with token counts
    scored: list[str] | None = None  # decode: score: the likeliest label of each example
    references: list[list[str]] | None = None  # text kinds: every acceptable answer of each example
    nll: list[float] | None = None  # instruct: summed NLL of each reference response given its prompt
    tokens: list[int] | None = None  # instruct: tokens of each reference response (+ EOS)
    # extractive QA: the no-answer threshold chosen on the eval split; a mixed model's
    # (loragate.inference.mixed_batches): each candidate's, in its order, until loragate.run.mixed splits them
    threshold: float | tuple[float, ...] | None = None
    logits: torch.Tensor | None = None  # the probe logits where predicting computed them (classifier, one-window QA)
    batch_size: int | None = None  # the eval batch size that ran: below the card's after an out-of-memory retry
    card_batch_size: int | None = None

    def subset(self, rows: list[int]) -> Predictions:
        """The predictions of the examples at `rows`, for scoring a subgroup with the kind's own `score`; the
        generations' token totals and the seconds stay those of the whole split."""
        def pick(values: list | None) -> list | None:
            return None if values is None else [values[row] for row in rows]

        generations = self.generations and replace(self.generations, texts=pick(self.generations.texts),
                                                   terminated=pick(self.generations.terminated))
        return replace(self, ids=pick(self.ids), gold=pick(self.gold), outputs=pick(self.outputs),
                       parsed=pick(self.parsed), generations=generations, scored=pick(self.scored),
                       references=pick(self.references), nll=pick(self.nll), tokens=pick(self.tokens),
                       logits=None if self.logits is None else self.logits[rows])

    def invalid(self) -> list[tuple[str, str, str]]:
        """(example id, raw output, reason) of every output that did not parse."""
        return [(i, out, p.reason or "") for i, out, p in zip(self.ids, self.outputs, self.parsed) if not p.valid]


def label_of(parsed: ParsedOutput) -> str | None:
    """The label a valid output names: the schema's one field."""
    if parsed.value is None:
        return None
    (value,) = parsed.value.model_dump().values()
    return str(value)


@dataclass(frozen=True)
class Constant:
    """The best constant predictor of a test split, as its kind builds it: what a tuned model must beat."""

    name: str  # as findings say it: "always abstain", "majority class 'positive'"
    predictions: Predictions


def constant_predictions(examples: list[Example], outputs: list[str],
                         parse: Callable[[str], ParsedOutput]) -> Predictions:
    """Predictions of `outputs` (one per example) as a model would have made them, references included."""
    return Predictions(ids=[ex.id for ex in examples], gold=[ex.label for ex in examples], outputs=list(outputs),
                       parsed=[parse(text) for text in outputs], seconds=0.0,
                       references=[list(ex.references) for ex in examples])
