"""Structured output's own gates, as the label kinds have per-class ones: no field may lose more exact matches
against base than the card allows, and every field must reach the card's floor. A tuned model whose JSON is valid
but always gets one field wrong fails here, naming the field."""

from __future__ import annotations

from dataclasses import dataclass

from loragate.gates.checks import GateResult
from loragate.kinds.structured_output.scoring import StructuredMetrics


@dataclass(frozen=True)
class FieldDrop:
    max_drop: float
    name: str = "per-field regression"

    def judge(self, tuned: StructuredMetrics, base: StructuredMetrics) -> GateResult:
        return GateResult(self.name, self.fails(tuned, base))

    def fails(self, tuned: StructuredMetrics, base: StructuredMetrics) -> str | None:
        findings = []
        for name in tuned.fields:
            before, after = base.field_exact[name], tuned.field_exact[name]
            if before - after > self.max_drop + 1e-12:
                findings.append(f"field {name!r} exact match fell {before:.3f} -> {after:.3f} ({after - before:+.3f}, "
                                f"tolerance {self.max_drop:.3f}, n={tuned.n})")
        return "; ".join(findings) or None


@dataclass(frozen=True)
class FieldFloor:
    min_score: float
    name: str = "per-field floor"

    def judge(self, tuned: StructuredMetrics, base: StructuredMetrics) -> GateResult:
        return GateResult(self.name, self.fails(tuned, base))

    def fails(self, tuned: StructuredMetrics, base: StructuredMetrics) -> str | None:
        findings = []
        for name in tuned.fields:
            score = tuned.field_exact[name]
            if score < self.min_score - 1e-12:
                findings.append(f"field {name!r} exact match {score:.3f} < floor {self.min_score:.3f} "
                                f"({round(score * tuned.n)}/{tuned.n} right)")
        return "; ".join(findings) or None
