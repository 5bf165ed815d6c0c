"""Instruction tuning's scores: overlap with the reference response, the share of responses that ended, and
perplexity of the reference."""

from __future__ import annotations

import math

from loragate.metrics.overlap import overlap_scores
from loragate.metrics.scores import TextMetrics


def instruct_metrics(ids: list[str], outputs: list[str], references: list[str], valid: list[bool],
                     terminated: list[bool], nll: list[float] | None, tokens: list[int] | None) -> TextMetrics:
    """Overlap of each greedy response with its reference, the share that ended with EOS inside the budget, and
    perplexity: exp of the reference tokens' mean NLL given the prompt (teacher-forced, so base and tuned are
    scored on the same tokens). Without NLLs (a constant response, which has no model) perplexity is unavailable."""
    values, per_example, unavailable, bleu_counts = overlap_scores(outputs, references)
    values["terminated_rate"] = sum(terminated) / len(terminated)
    if nll is None or tokens is None:
        unavailable["perplexity"] = "a constant response has no likelihood, so no perplexity"
        tokens = []
    else:
        values["perplexity"] = math.exp(sum(nll) / sum(tokens))
        per_example["perplexity"] = [total / count for total, count in zip(nll, tokens)]
    return TextMetrics(
        n=len(ids), values=values, per_example=per_example, validity_rate=sum(valid) / len(valid),
        empty_outputs=sum(not out.strip() for out in outputs), ids=list(ids), outputs=list(outputs),
        references=[[ref] for ref in references], tokens=list(tokens), unavailable=unavailable,
        bleu_statistics=bleu_counts,
    )
