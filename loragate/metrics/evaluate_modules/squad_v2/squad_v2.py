"""SQuAD v2 exact match and token F1 as an evaluate metric, loaded with evaluate.load(<this directory>).

The scoring is loragate.metrics.text.squad_v2_scores; this module only declares the inputs for evaluate.
"""

import datasets
import evaluate

from loragate.metrics.text import squad_v2_scores

_DESCRIPTION = """SQuAD v2 exact match and token F1 (0..1), max over the gold answers, with the official
normalization (lower case, no punctuation, no articles, collapsed whitespace). An empty gold list marks an
unanswerable question, answered correctly only by an empty prediction. Also split into HasAns and NoAns."""

_CITATION = """@inproceedings{rajpurkar-etal-2018-know,
  title = {Know What You Don't Know: Unanswerable Questions for {SQ}u{AD}},
  author = {Rajpurkar, Pranav and Jia, Robin and Liang, Percy},
  booktitle = {Proceedings of ACL},
  year = {2018},
}"""

_INPUTS = """
Args:
    predictions: list of answer strings, "" for "no answer".
    references: list of lists of gold answer strings; [] for an unanswerable question.
Returns:
    exact, f1, HasAns_exact, HasAns_f1, NoAns_exact, NoAns_f1 (means, 0..1; None for an empty split),
    HasAns_total, NoAns_total, exact_per_example, f1_per_example.
"""


class SquadV2(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features({
                "predictions": datasets.Value("string"),
                "references": datasets.Sequence(datasets.Value("string")),
            }),
            reference_urls=["https://rajpurkar.github.io/SQuAD-explorer/"],
        )

    def _compute(self, predictions: list[str], references: list[list[str]]) -> dict:
        return squad_v2_scores(list(predictions), [list(golds) for golds in references])
