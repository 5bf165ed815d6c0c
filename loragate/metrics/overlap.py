"""Overlap of free-text answers with their references (ROUGE-1/2/L, METEOR, BLEU), which the text kinds share. BLEU
is corpus-level: its per-example n-gram counts are kept so a paired bootstrap can resample the corpus. METEOR without
WordNet is reported as unavailable, with the reason, not computed without synonyms."""

from __future__ import annotations

from loragate.metrics.text import (
    MetricUnavailable,
    bleu_from_statistics,
    bleu_statistics,
    meteor_available,
    meteor_scores,
    rouge_scores,
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
