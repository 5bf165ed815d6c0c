"""Structured output: a causal LM writes JSON that must validate against the card's pydantic model; scored as whole
objects, per field and over fields, with the schema errors of the outputs that do not validate."""

from loragate.kinds.registry import KINDS, KindSpec

KINDS.register("structured_output", KindSpec("structured_output", "CAUSAL_LM", encoder=False, labels=False,
                                             block="structured", constrains=True))
