"""Free-text answers scored against their references: QA spans (SQuAD v2 EM/F1) and instruction responses
(ROUGE, METEOR, perplexity, BLEU). BLEU is corpus-level: its per-example n-gram counts are kept so a paired
bootstrap can resample the corpus. METEOR without WordNet is reported as unavailable, with the reason, not
computed without synonyms."""

from __future__ import annotations

import math

from loragate.metrics.scores import TextMetrics
from loragate.metrics.text import (
    MetricUnavailable,
    bleu_from_statistics,
    bleu_statistics,
    meteor_available,
    meteor_scores,
    rouge_scores,
    squad_v2_scores,
)


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def overlap_scores(outputs: list[str], references: list[str]) -> tuple[dict[str, float], dict[str, list[float]],
                                                                       dict[str, str], list[list[float]]]:
    """BLEU, ROUGE-1/2/L and METEOR of `outputs` against one reference each: (aggregates, per-example scores,
    unavailable metrics with the reason, per-example BLEU counts)."""
    if not outputs:
        return {}, {}, {}, []
    rouge = rouge_scores(outputs, references)
    bleu_counts = bleu_statistics(outputs, [[ref] for ref in references])
    values = {"bleu": float(bleu_from_statistics(bleu_counts.sum(axis=0)))}
    per_example: dict[str, list[float]] = {}
    for name in ("rouge1", "rouge2", "rougeL"):
        per_example[name] = list(rouge[f"{name}_per_example"])
        values[name] = mean(per_example[name])
    unavailable = {}
    reason = meteor_available()
    if reason is None:
        try:
            per_example["meteor"] = meteor_scores(outputs, references)
            values["meteor"] = mean(per_example["meteor"])
        except MetricUnavailable as exc:
            unavailable["meteor"] = str(exc)
    else:
        unavailable["meteor"] = reason
    return values, per_example, unavailable, bleu_counts.tolist()


def qa_metrics(ids: list[str], outputs: list[str], references: list[list[str]], valid: list[bool]) -> TextMetrics:
    """SQuAD v2 EM and F1 over every question (an empty answer is right exactly when there is no gold answer),
    HasAns_/NoAns_ splits, and the overlap metrics over the answerable questions (first gold answer)."""
    squad = squad_v2_scores(outputs, references)
    values = {name: float(squad[name]) for name in ("exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact",
                                                   "NoAns_f1") if squad.get(name) is not None}
    answerable = [i for i, refs in enumerate(references) if any(ref.strip() for ref in refs)]
    overlap, _, unavailable, bleu_counts = overlap_scores([outputs[i] for i in answerable],
                                                          [references[i][0] for i in answerable])
    return TextMetrics(
        n=len(ids), values={**values, **overlap},
        per_example={"exact": list(squad["exact_per_example"]), "f1": list(squad["f1_per_example"])},
        validity_rate=sum(valid) / len(valid), empty_outputs=sum(not out.strip() for out in outputs),
        ids=list(ids), outputs=list(outputs), references=[list(refs) for refs in references], unavailable=unavailable,
        bleu_statistics=bleu_counts,  # of the answerable questions, the same ones for base and tuned
    )


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
