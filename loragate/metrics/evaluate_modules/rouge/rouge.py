"""ROUGE-1/2/L F-measure as an evaluate metric, loaded with evaluate.load(<this directory>).

The scoring is loragate.metrics.text.rouge_scores (rouge-score, stemming on); this module only declares the
inputs for evaluate.
"""

import datasets
import evaluate

from loragate.metrics.text import rouge_scores

_DESCRIPTION = """ROUGE-1, ROUGE-2 and ROUGE-L F-measure (0..1) per example and their means, computed by the
rouge-score package with its Porter stemmer. One reference per prediction."""

_CITATION = """@inproceedings{lin-2004-rouge,
  title = {{ROUGE}: A Package for Automatic Evaluation of Summaries},
  author = {Lin, Chin-Yew},
  booktitle = {Text Summarization Branches Out},
  year = {2004},
}"""

_INPUTS = """
Args:
    predictions: list of generated strings.
    references: list of reference strings, one per prediction.
Returns:
    rouge1, rouge2, rougeL (means) and rouge1_per_example, rouge2_per_example, rougeL_per_example.
"""


class Rouge(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features({
                "predictions": datasets.Value("string"),
                "references": datasets.Value("string"),
            }),
            codebase_urls=["https://github.com/google-research/google-research/tree/master/rouge"],
        )

    def _compute(self, predictions: list[str], references: list[str]) -> dict:
        return rouge_scores(list(predictions), list(references))
