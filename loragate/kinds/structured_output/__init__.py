"""Structured output: a causal LM writes JSON that must validate against the card's pydantic model; scored as whole
objects, per field and over fields, with the schema errors of the outputs that do not validate."""

from loragate.kinds.registry import KINDS, KindSpec
from loragate.kinds.structured_output.schema import declared_schema
from loragate.kinds.structured_output.settings import StructuredSettings
from loragate.metrics.registry import METRICS, MetricSpec

for _spec in (
    MetricSpec("object_exact", "whole-object exact match", True, "mean", right_or_wrong=True),
    MetricSpec("field_micro_f1", "field micro F1", True, "pooled_counts"),
    MetricSpec("field_macro_f1", "field macro F1", True, "pooled_counts"),
    MetricSpec("lenient_validity_rate", "valid only once a fence or prose is stripped (not valid)", False, "mean"),
):
    METRICS.register(_spec.name, _spec)

KINDS.register("structured_output", KindSpec("structured_output", "CAUSAL_LM", encoder=False, labels=False,
                                             block="structured", block_model=StructuredSettings,
                                             metrics=("object_exact", "field_micro_f1", "field_macro_f1"),
                                             after_validity=("lenient_validity_rate",),
                                             constrains=True, check_card=declared_schema))
