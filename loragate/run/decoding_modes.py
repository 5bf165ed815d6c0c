"""Free and constrained decoding side by side (issue #19). The card's `eval.constrain` is the deployment's decoding,
the one the gates read; `--constrain`, or a card that declares `schema`, computes the other mode too, reported with
the tuned model's paired deltas free -> constrained, never gated. A tuned model that meets the validity floor only
under the grammar fails a card that declares free decoding: the validity gate reads the free outputs, and its finding
names the gap with both rates and the floor."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from loragate.card.options import OptionError
from loragate.card.settings import GateSettings, TaskCard, Tier
from loragate.kinds import KINDS, kind_of

if TYPE_CHECKING:  # the plugin reads the card's mode at start-up: nothing here loads torch, llguidance or scipy
    from loragate.gates.checks import GateResult
    from loragate.inference.grammar import Constraint
    from loragate.inference.predictions import Predictions
    from loragate.metrics.scores import Metrics

FREE, CONSTRAINED = "free", "constrained"


def declared_mode(card: TaskCard, tier: Tier) -> str:
    """The deployment's decoding as the card declares it for `tier`: what the gates read."""
    return CONSTRAINED if card.tier(tier).eval.constrain == "schema" else FREE


def constrains(card: TaskCard, tiers: list[Tier], flag: bool) -> bool:
    """Whether a run of `card` at any of `tiers` decodes under the grammar too: --constrain, or a declared schema."""
    return flag or any(declared_mode(card, tier) == CONSTRAINED for tier in tiers)


def task_constraint(card: TaskCard) -> Constraint:
    """The grammar of a task's outputs, built by its kind (one of the label targets, or JSON of the output schema)
    and checked by llguidance now, before any model loads: a kind that does not generate a label or JSON is an
    OptionError naming the task and kind; a grammar llguidance cannot enforce raises UnenforceableConstraint with
    the library's reason, never decoded free in its place."""
    if not KINDS.get(card.kind).constrains:
        supported = ", ".join(name for name in KINDS.names() if KINDS.get(name).constrains)
        raise OptionError(f"task {card.name}: constrained decoding (--constrain, eval.constrain: schema) applies to "
                          f"the kinds that generate a label or JSON ({supported}); {card.name} is a {card.kind} task. "
                          f"Drop --constrain or choose other tasks with --task, and keep eval.constrain: none in "
                          f"its card")
    return kind_of(card.kind).constraint(card)


@dataclass(frozen=True)
class Decoded:
    """Base and tuned predictions of one decoding mode, scored."""

    mode: str  # FREE or CONSTRAINED
    base_predictions: Predictions
    tuned_predictions: Predictions
    base_metrics: Metrics
    tuned_metrics: Metrics


@dataclass(frozen=True)
class ModeDelta:
    """The tuned model's `metric` free and constrained on the same test examples; the interval is the paired
    bootstrap's (None for validity, which has no per-example scores in every kind)."""

    metric: str
    free: float
    constrained: float
    delta: float  # constrained - free
    low: float | None
    high: float | None
    confidence: float


def mode_deltas(free: Metrics, constrained: Metrics, metrics: list[str], settings: GateSettings) -> list[ModeDelta]:
    """Validity, then each of `metrics` (the card's gated ones): the tuned model constrained minus free."""
    rows = [ModeDelta("validity_rate", free.validity_rate, constrained.validity_rate,
                      constrained.validity_rate - free.validity_rate, None, None, settings.confidence)]
    for metric in metrics:
        if metric in constrained.unavailable or not constrained.has(metric):
            continue
        interval = constrained.paired_interval(free, metric, settings.bootstrap_resamples, settings.confidence,
                                               settings.bootstrap_seed)
        before, after = free.value(metric), constrained.value(metric)
        rows.append(ModeDelta(metric, before, after, after - before, interval.low, interval.high, interval.confidence))
    return rows


def name_the_gap(gates: list[GateResult], free: Metrics, constrained: Metrics, min_validity: float) -> list[GateResult]:
    """A failed validity gate on free outputs with the constrained outputs' validity and the floor beside it, to the
    printed precision of the gate's own finding (0.998 is not 1.00). Only where the free rate is under the floor and
    the constrained one reaches it does the finding say the grammar is what meets it, and the two ways to ship it;
    it never claims that the free outputs do not parse (0.930 of them may)."""
    gap = (f"validity {free.validity_rate:.3f} free vs {constrained.validity_rate:.3f} constrained, "
           f"floor {min_validity:.3f}")
    if free.validity_rate < min_validity <= constrained.validity_rate:
        gap += (": only the constrained outputs reach the floor; deploy the adapter with constrained decoding and "
                "declare eval.constrain: schema in the card, or train it until its free outputs reach the floor")
    elif constrained.validity_rate < min_validity:
        gap += ": the constrained outputs miss the floor too"
    return [replace(result, finding=f"{result.finding}; {gap}") if result.check == "validity" and not result.passed
            else result for result in gates]
