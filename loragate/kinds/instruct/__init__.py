"""Instruction tuning: a causal LM answers chat-formatted prompts; scored against reference responses."""

from loragate.kinds.instruct.settings import InstructSettings
from loragate.kinds.registry import KINDS, KindSpec
from loragate.metrics.registry import METRICS, TEXT_METRICS, MetricSpec

METRICS.register("perplexity", MetricSpec("perplexity", "perplexity", False, "token_weighted_nll", scale=">= 1"))
METRICS.register("terminated_rate", MetricSpec("terminated_rate", "terminated", True, "mean"))

KINDS.register("instruct", KindSpec("instruct", "CAUSAL_LM", encoder=False, labels=False, block="instruct",
                                    block_model=InstructSettings,
                                    metrics=("perplexity", *TEXT_METRICS, "terminated_rate")))
