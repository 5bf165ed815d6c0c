"""A run's gated comparisons as one family: every claim a statistical gate makes of one task at one tier (each
delta judged on its interval's bound, each per-class, per-field and per-subgroup drop, each gate against the last
release or a retention probe) is judged at once, with Holm's step-down correction at 1 - the card's confidence
(`gates.correction: holm`, the default) or each alone (`none`). Dozens of comparisons at 95% each would otherwise
let one pass by luck; Holm keeps the chance of any false pass in the family at or under alpha.

A drop gate (non-inferiority) can also claim the opposite, a FAIL: "it drops by more than its margin". Those claims
form a second family, the run's non-inferiority comparisons, each with the p-value of that claim from the same
interval (its score test or its resamples), Holm-adjusted among themselves at the same alpha: otherwise twenty good
classes at 95% each would block a good adapter about two times in five. Why two families rather than one:
docs/statistics.md.

Deterministic checks (validity, leakage, floors, parameters) make no statistical claim and are not in the family;
nor are deltas the card judges on the point (`judge_on: point`), which claim no confidence to correct."""

from __future__ import annotations

from loragate.card.gate_settings import GateSettings
from loragate.gates.result import GateResult, judged_on
from loragate.metrics.stats import holm


def controlled(results: list[GateResult], settings: GateSettings) -> list[GateResult]:
    """`results` with each comparison's p-value adjusted over all of theirs, and each statistical gate judged again
    on the adjusted values. Idempotent: adjusting reads the raw p-values, so a larger family (the gates against the
    last release added to the test split's) is judged afresh."""
    every = [c for result in results for c in result.comparisons]
    fails = [c.fail_p_value for c in every if c.fail_p_value is not None]
    adjusted = iter(corrected([c.p_value for c in every], settings))
    fail_adjusted = iter(corrected(fails, settings))
    judged = []
    for result in results:
        if not result.comparisons:
            judged.append(result)
            continue
        comparisons = [c.in_family(next(adjusted), len(every), settings.correction,
                                   None if c.fail_p_value is None else next(fail_adjusted), len(fails))
                       for c in result.comparisons]
        judged.append(judged_on(result.check, comparisons, result.evidence, settings.inconclusive == "warn",
                                result.numbers))
    return judged


def corrected(p_values: list[float], settings: GateSettings) -> list[float]:
    """Holm-adjusted p-values, or the raw ones under `gates.correction: none`."""
    return holm(p_values) if settings.correction == "holm" else p_values
