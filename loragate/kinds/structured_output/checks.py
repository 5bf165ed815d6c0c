"""Structured output's per-field gates, as the label kinds have per-class ones (loragate.gates.per_key): no field
may lose more exact matches against base than the card allows, and every field must reach the card's floor. A tuned
model whose JSON is valid but always gets one field wrong fails here, naming the field."""

from __future__ import annotations

import numpy as np

from loragate.card.settings import GateSettings
from loragate.gates.per_key import KeyDrop, KeyFloor, KeyScore, key_score
from loragate.gates.result import Check
from loragate.kinds.structured_output.scoring import StructuredMetrics


def field_scores(tuned: StructuredMetrics, base: StructuredMetrics) -> list[KeyScore]:
    """Each top-level field's exact match for base and tuned, over every test example, with each example's for the
    per-field drop's paired interval."""
    every = np.ones(tuned.n, dtype=bool)
    return [key_score(name, base.field_exact[name], tuned.field_exact[name], every, base.per_example[f"field:{name}"],
                      tuned.per_example[f"field:{name}"], tuned.input_groups) for name in tuned.fields]


def field_checks(gates: GateSettings) -> list[Check]:
    return [KeyDrop("field", "exact match", gates.max_field_drop, field_scores, settings=gates),
            KeyFloor("field", "exact match", gates.min_field_score, field_scores)]
