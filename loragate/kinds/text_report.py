"""What the kinds that answer in free text (extractive QA, instruct) add to the report: each example's
references and per-example scores, and the tuned answers worst first beside base's."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from loragate.kinds.protocol import ExampleTable
from loragate.metrics.plots import Plot
from loragate.metrics.registry import METRICS

if TYPE_CHECKING:
    from loragate.kinds.protocol import ScoredRun


class TextReport:
    def example_records(self, run: ScoredRun) -> list[dict]:
        """The references and every per-example score of base and tuned."""
        scores = {f"{who}_{name}": values for who, metrics in (("base", run.base_metrics), ("tuned", run.tuned_metrics))
                  for name, values in metrics.per_example.items()}
        return [{"references": refs, **{name: round(values[row], 6) for name, values in scores.items()}}
                for row, refs in enumerate(run.tuned_metrics.references)]

    def figures(self, run: ScoredRun, prefix: str) -> list[Plot]:
        return []

    def examples_table(self, run: ScoredRun) -> ExampleTable:
        """Tuned answers worst first by the first gated metric that has per-example scores."""
        tuned = run.tuned_metrics
        gated = [m for m in run.task.card.gates.min_delta if m in tuned.per_example]
        metric = gated[0] if gated else next(iter(tuned.per_example))
        spec, scores = METRICS.get(metric), tuned.per_example[metric]
        order = sorted(range(tuned.n), key=lambda row: scores[row] if spec.higher_is_better else -scores[row])
        shown = math.exp if spec.statistic == "token_weighted_nll" else float  # per-example perplexity is mean NLL
        rows = [[tuned.ids[row], f"{shown(scores[row]):.3f}", run.base_predictions.outputs[row], tuned.outputs[row],
                 " | ".join(tuned.references[row]) or "(no answer)"] for row in order]
        return ExampleTable(f"Tuned answers, worst {metric} first ({tuned.n})",
                            ["id", metric, "base output", "tuned output", "references"], rows,
                            numeric_columns=frozenset({1}), text_columns=frozenset({2, 3, 4}))
