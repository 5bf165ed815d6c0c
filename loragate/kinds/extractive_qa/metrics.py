"""Extractive QA's scores: SQuAD v2 exact match and F1 over every question, split into has-answer and no-answer,
and the shared overlap metrics over the answerable questions."""

from __future__ import annotations

from loragate.metrics.overlap import overlap_scores
from loragate.metrics.scores import TextMetrics
from loragate.metrics.text import squad_v2_scores


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
