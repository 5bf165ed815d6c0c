"""A model's answers to one split, as a kind makes them: what metrics, gates and reports read."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from loragate.engine import Generations
from loragate.parsing import ParsedOutput


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
    threshold: float | None = None  # extractive QA: the no-answer threshold chosen on the eval split
    logits: torch.Tensor | None = None  # sequence classification: the head's logits, which are also its probe
    batch_size: int | None = None  # the eval batch size that ran: below the card's after an out-of-memory retry
    card_batch_size: int | None = None

    def invalid(self) -> list[tuple[str, str, str]]:
        """(example id, raw output, reason) of every output that did not parse."""
        return [(i, out, p.reason or "") for i, out, p in zip(self.ids, self.outputs, self.parsed) if not p.valid]


def label_of(parsed: ParsedOutput) -> str | None:
    """The label a valid output names: the schema's one field."""
    if parsed.value is None:
        return None
    (value,) = parsed.value.model_dump().values()
    return str(value)
