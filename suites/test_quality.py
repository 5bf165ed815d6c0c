"""Tuned must beat base by the card's margins, and no class may pay for it. A test whose gates the test split cannot
decide (a drop whose interval straddles its margin) fails as INCONCLUSIVE, which the run's verdict reads."""

from __future__ import annotations

import pytest

from loragate.gates.checks import Floor, MetricDelta, against_the_last_release
from loragate.gates.per_key import KeyDrop, KeyFloor
from loragate.gates.result import GateResult
from loragate.gates.training_health import CHECK as HEALTH
from loragate.gates.verdict import INCONCLUSIVE_TEST
from loragate.kinds import card_checks


def findings(task_run, check_type: type) -> list[str]:
    names = {check.name for check in card_checks(task_run.task.card) if isinstance(check, check_type)}
    return [f"{task_run.name}: {r.finding}" for r in task_run.gates if r.check in names and not r.passed]


def hold(task_run, results: list[GateResult], record_property) -> None:
    """Fail with the findings of `results` that did not pass; where each is INCONCLUSIVE (not decided, under
    gates.inconclusive: fail), the test records so, and the run's verdict is INCONCLUSIVE rather than FAIL."""
    missed = [r for r in results if not r.passed]
    if missed and all(r.inconclusive for r in missed):
        record_property(*INCONCLUSIVE_TEST)
    assert not missed, "\n".join(f"{task_run.name}: {r.finding}" for r in missed)


def test_metric_deltas_meet_card_minimums(task_run) -> None:
    failed = findings(task_run, MetricDelta)
    assert not failed, "\n".join(failed)


def test_tuned_beats_the_trivial_predictor(task_run) -> None:
    """An adapter that learned the split's base rate (one label, always abstain) beats a weak base, not this."""
    failed = [f"{task_run.name}: {r.finding}" for r in task_run.gates
              if r.check.endswith(f" vs {task_run.constant.name}") and not r.passed]
    assert not failed, "\n".join(failed)


def test_every_subgroup_holds(task_run, record_property) -> None:
    gates = task_run.task.card.gates
    if not (gates.max_subgroup_drop or gates.min_subgroup_score):
        pytest.skip(f"{task_run.name}: the card gates no subgroups")
    hold(task_run, [r for r in task_run.gates if r.check.startswith("subgroup ")], record_property)


def per_key(task_run, check: type, what: str) -> list[GateResult]:
    """The results of the card's per-key `check` (KeyDrop, KeyFloor) over the kind's `what` keys (class, field); the
    test does not apply where the kind has no such keys."""
    names = {c.name for c in card_checks(task_run.task.card) if isinstance(c, check) and c.what == what}
    if not names:
        pytest.skip(f"{task_run.name}: {task_run.task.card.kind} has no {what} scores to gate")
    return [r for r in task_run.gates if r.check in names]


def test_no_class_regresses_against_base(task_run, record_property) -> None:
    hold(task_run, per_key(task_run, KeyDrop, "class"), record_property)


def test_every_class_reaches_its_floor(task_run, record_property) -> None:
    hold(task_run, per_key(task_run, KeyFloor, "class"), record_property)


def test_no_field_regresses_against_base(task_run, record_property) -> None:
    hold(task_run, per_key(task_run, KeyDrop, "field"), record_property)


def test_every_field_reaches_its_floor(task_run, record_property) -> None:
    hold(task_run, per_key(task_run, KeyFloor, "field"), record_property)


def test_every_other_per_key_gate_holds(task_run, record_property) -> None:
    """A kind's own key sets beyond classes and fields (loragate.gates.per_key), gated by the same rule."""
    names = {c.name for c in card_checks(task_run.task.card)
             if isinstance(c, (KeyDrop, KeyFloor)) and c.what not in ("class", "field")}
    if not names:
        pytest.skip(f"{task_run.name}: {task_run.task.card.kind} gates no other per-key scores")
    hold(task_run, [r for r in task_run.gates if r.check in names], record_property)


def test_metric_floors_hold(task_run) -> None:
    if not task_run.task.card.gates.floors:
        pytest.skip(f"{task_run.name}: the card sets no metric floors")
    failed = findings(task_run, Floor)
    assert not failed, "\n".join(failed)


def test_no_test_input_leaks_from_train(task_run) -> None:
    (result,) = [r for r in task_run.gates if r.check == "train/test leakage"]
    assert result.passed, f"{task_run.name}: {result.finding}"


def test_training_is_healthy(task_run) -> None:
    """With gates.training_health: gate, the adapter's loss curves show no divergence, over-fitting or flat loss
    (loragate.gates.training_health); by default these are report notes, and this test does not apply."""
    if task_run.task.card.gates.training_health != "gate":
        pytest.skip(f"{task_run.name}: training health is reported, not gated (gates.training_health: report)")
    results = [r for r in task_run.gates if r.check.startswith(HEALTH)]
    if all(r.skipped for r in results):
        pytest.skip(f"{task_run.name}: {HEALTH} {results[0].evidence}")
    failed = [f"{task_run.name}: {r.check}: {r.finding}" for r in results if not r.passed]
    assert not failed, "\n".join(failed)


def test_no_regression_against_the_last_release(task_run, record_property) -> None:
    """With --baseline-adapter or --baseline-report: no gated metric may be worse than the last release's by more
    than gates.max_regression on the paired interval's lower bound, and its training curves may not stray."""
    if task_run.baseline_metrics is None:
        pytest.skip(f"{task_run.name}: no last release to compare with (--baseline-adapter or --baseline-report)")
    hold(task_run, [r for r in task_run.gates if against_the_last_release(r)], record_property)


def test_retention_holds(task_run, record_property) -> None:
    """The card's retention probes (another task's test split, a general-text file): tuned may not fall below base by
    more than each probe's margin, on the paired interval's bound (loragate.gates.retention)."""
    if not task_run.retention:
        pytest.skip(f"{task_run.name}: the card lists no retention probes (`retention:`)")
    hold(task_run, [probe.gate for probe in task_run.retention], record_property)
