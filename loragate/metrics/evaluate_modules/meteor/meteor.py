"""METEOR (nltk, with real WordNet synonyms) as an evaluate metric, loaded with evaluate.load(<this directory>).

The scoring is loragate.metrics.text.meteor_summary; this module only declares the inputs for evaluate. It
raises loragate.metrics.text.MetricUnavailable where WordNet is not installed.
"""

import datasets
import evaluate

from loragate.metrics.text import meteor_summary

_DESCRIPTION = """METEOR (0..1) per example and its mean, by nltk's meteor_score: exact, stem and WordNet
synonym matches, with a fragmentation penalty. Needs WordNet (Debian: apt-get install wordnet-base)."""

_CITATION = """@inproceedings{banerjee-lavie-2005-meteor,
  title = {{METEOR}: An Automatic Metric for {MT} Evaluation with Improved Correlation with Human Judgments},
  author = {Banerjee, Satanjeev and Lavie, Alon},
  booktitle = {Proceedings of the ACL Workshop on Intrinsic and Extrinsic Evaluation Measures},
  year = {2005},
}"""

_INPUTS = """
Args:
    predictions: list of generated strings.
    references: one reference string per prediction, or a list of them per prediction (the best is taken).
Returns:
    meteor (mean) and meteor_per_example.
"""


class Meteor(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_INPUTS,
            # evaluate takes the first feature set the inputs fit
            features=[
                datasets.Features({
                    "predictions": datasets.Value("string"),
                    "references": datasets.Sequence(datasets.Value("string")),
                }),
                datasets.Features({
                    "predictions": datasets.Value("string"),
                    "references": datasets.Value("string"),
                }),
            ],
            reference_urls=["https://www.nltk.org/api/nltk.translate.meteor_score.html"],
        )

    def _compute(self, predictions: list[str], references: list) -> dict:
        return meteor_summary(list(predictions),
                              [ref if isinstance(ref, str) else list(ref) for ref in references])
