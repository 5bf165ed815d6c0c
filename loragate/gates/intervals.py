"""The one interval a gate judges tuned - base on, and reports: where each example is right or wrong (accuracy, exact
match, a class's or a field's rightness), Tango's score interval, because the percentile bootstrap passes small splits
of such scores by chance (a sample with no example base got right and tuned got wrong has no resample that drops;
docs/statistics.md); for any other score (F1, ROUGE, BLEU, perplexity), the metrics' own paired bootstrap. Rows of one
input (an example's k samples, a repeated input) count as one cluster either way."""

from __future__ import annotations

import numpy as np

from loragate.card.gate_settings import GateSettings
from loragate.metrics.registry import METRICS
from loragate.metrics.scores import Metrics, clusters
from loragate.metrics.stats import DeltaInterval, paired_bootstrap_means, paired_score_interval


def gate_interval(tuned: Metrics, base: Metrics, metric: str, settings: GateSettings) -> DeltaInterval:
    """The interval of tuned - base on `metric` (unsigned) over the split's examples, as the gate judges it."""
    if not METRICS.get(metric).right_or_wrong:
        return tuned.paired_interval(base, metric, settings.bootstrap_resamples, settings.confidence,
                                     settings.bootstrap_seed)
    tuned.value(metric), base.value(metric)  # an unavailable metric says why (MetricUnavailable), as the bootstrap does
    for pairing in ("ids", "gold"):
        if getattr(tuned, pairing, None) != getattr(base, pairing, None):
            raise ValueError(f"{metric}: base and tuned were scored on different examples; cannot pair them")
    return paired_score_interval(base.correct(metric), tuned.correct(metric), settings.confidence,
                                 clusters(tuple(getattr(tuned, "input_groups", ()))))


def scores_interval(base_scores: np.ndarray, tuned_scores: np.ndarray, settings: GateSettings,
                    groups: np.ndarray | None) -> DeltaInterval:
    """The interval of the mean per-example score's tuned - base (one key's examples): the score interval where every
    score is 0 or 1 (a class's or a field's rightness), else the paired bootstrap of the means."""
    if np.all(np.isin(base_scores, (0, 1)) & np.isin(tuned_scores, (0, 1))):
        return paired_score_interval(base_scores, tuned_scores, settings.confidence, groups)
    return paired_bootstrap_means(base_scores, tuned_scores, settings.bootstrap_resamples, settings.confidence,
                                  settings.bootstrap_seed, clusters=groups)
