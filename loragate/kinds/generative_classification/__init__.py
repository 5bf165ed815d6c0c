"""Generative classification: a causal LM writes a label after the prompt (or, with `eval.decode: score`, the
label it finds likeliest counts where its free output parses)."""

from loragate.kinds.registry import KINDS, KindSpec
from loragate.metrics.registry import LABEL_METRICS

KINDS.register("generative_classification", KindSpec("generative_classification", "CAUSAL_LM", encoder=False,
                                                     labels=True, metrics=LABEL_METRICS, constrains=True))
