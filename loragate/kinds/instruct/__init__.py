"""Instruction tuning: a causal LM answers chat-formatted prompts; scored against reference responses."""

from loragate.kinds.registry import KINDS, KindSpec

KINDS.register("instruct", KindSpec("instruct", "CAUSAL_LM", encoder=False, labels=False, block="instruct"))
