"""Training-curve regression: a curve (loss or perplexity per logged step) against a stored reference.

Two ways a curve can regress: it moves away from the reference by more than a tolerance at some step, or it
stays within the tolerance but sits on one side of the reference at nearly every step (a small, systematic
shift that a per-point tolerance hides). The sign test catches the second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from loragate.metrics.stats import sign_test


@dataclass(frozen=True)
class CurveCheck:
    """`rtol`: largest |current - reference| / |reference| at any step; `alpha`: sign test level for bias."""

    rtol: float = 0.05
    alpha: float = 0.01
    name: str = "training curve"

    def fails(self, current: list[float], reference: list[float]) -> str | None:
        if len(current) != len(reference):
            return (f"{self.name}: {len(current)} points vs {len(reference)} in the reference; the curves were "
                    f"logged at different steps, so they cannot be compared (retrain with the same settings)")
        now, then = np.asarray(current, dtype=float), np.asarray(reference, dtype=float)
        if not np.isfinite(now).all():
            return f"{self.name}: non-finite value at step {int(np.argmax(~np.isfinite(now))) + 1}"
        relative = np.abs(now - then) / np.maximum(np.abs(then), 1e-12)
        findings = []
        if relative.max() > self.rtol:
            step = int(relative.argmax())
            findings.append(f"step {step + 1}: {now[step]:.4f} vs reference {then[step]:.4f} "
                            f"({relative[step]:.1%} > tolerance {self.rtol:.1%})")
        p_value = sign_test(now - then)
        if p_value < self.alpha:
            above, below = int(np.sum(now > then)), int(np.sum(now < then))
            side, count = ("above", above) if above > below else ("below", below)
            findings.append(f"{side} the reference at {count} of {len(now)} steps (sign test p={p_value:.2g} < "
                            f"{self.alpha}): a systematic shift; something in training changed")
        return f"{self.name}: " + "; ".join(findings) if findings else None
