"""sacrebleu BLEU as an evaluate metric, loaded with evaluate.load(<this directory>).

The scoring is loragate.metrics.text.bleu_scores; this module only declares the inputs for evaluate.
"""

import datasets
import evaluate

from loragate.metrics.text import bleu_scores

_DESCRIPTION = """Corpus BLEU (0..100) by sacrebleu with its default settings, and per-example smoothed
sentence BLEU. Each prediction has one or more references."""

_CITATION = """@inproceedings{post-2018-call,
  title = {A Call for Clarity in Reporting {BLEU} Scores},
  author = {Post, Matt},
  booktitle = {Proceedings of the Third Conference on Machine Translation},
  year = {2018},
}"""

_INPUTS = """
Args:
    predictions: list of generated strings.
    references: list of lists of reference strings (at least one per prediction).
Returns:
    bleu (corpus BLEU, 0..100) and bleu_per_example (sentence BLEU, 0..100).
"""


class Bleu(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features({
                "predictions": datasets.Value("string"),
                "references": datasets.Sequence(datasets.Value("string")),
            }),
            codebase_urls=["https://github.com/mjpost/sacrebleu"],
        )

    def _compute(self, predictions: list[str], references: list[list[str]]) -> dict:
        return bleu_scores(list(predictions), [list(refs) for refs in references])
