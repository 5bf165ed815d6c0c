"""Tuned must beat base by the card's margins, and no class may pay for it."""

from __future__ import annotations

import pytest

from loragate.gates.checks import ClassDrop, ClassFloor, Floor, MetricDelta, run_gates
from loragate.kinds import KINDS, card_checks
from loragate.kinds.structured_output.checks import FieldDrop, FieldFloor
from loragate.metrics.scores import metrics_from_confusion
from loragate.tasks import get_task


def findings(task_run, kind: type) -> list[str]:
    names = {check.name for check in card_checks(task_run.task.card) if isinstance(check, kind)}
    return [f"{task_run.name}: {r.finding}" for r in task_run.gates if r.check in names and not r.passed]


def test_metric_deltas_meet_card_minimums(task_run) -> None:
    failed = findings(task_run, MetricDelta)
    assert not failed, "\n".join(failed)


def test_tuned_beats_the_trivial_predictor(task_run) -> None:
    """An adapter that learned the split's base rate (one label, always abstain) beats a weak base, not this."""
    failed = [f"{task_run.name}: {r.finding}" for r in task_run.gates
              if r.check.endswith(f" vs {task_run.constant.name}") and not r.passed]
    assert not failed, "\n".join(failed)


def test_every_subgroup_holds(task_run) -> None:
    gates = task_run.task.card.gates
    if not (gates.max_subgroup_drop or gates.min_subgroup_score):
        pytest.skip(f"{task_run.name}: the card gates no subgroups")
    failed = [f"{task_run.name}: {r.finding}" for r in task_run.gates if r.check.startswith("subgroup ") and not r.passed]
    assert not failed, "\n".join(failed)


def per_class(task_run) -> None:
    if not KINDS.get(task_run.task.card.kind).labels:
        pytest.skip(f"{task_run.name}: {task_run.task.card.kind} has no classes")


def test_no_class_regresses_against_base(task_run) -> None:
    per_class(task_run)
    failed = findings(task_run, ClassDrop)
    assert not failed, "\n".join(failed)


def test_every_class_reaches_its_floor(task_run) -> None:
    per_class(task_run)
    failed = findings(task_run, ClassFloor)
    assert not failed, "\n".join(failed)


def per_field(task_run, check: type) -> None:
    """The kind gates each field of its output (structured output), or the test does not apply."""
    if not any(isinstance(c, check) for c in card_checks(task_run.task.card)):
        pytest.skip(f"{task_run.name}: {task_run.task.card.kind} writes no structured fields")


def test_no_field_regresses_against_base(task_run) -> None:
    per_field(task_run, FieldDrop)
    failed = findings(task_run, FieldDrop)
    assert not failed, "\n".join(failed)


def test_every_field_reaches_its_floor(task_run) -> None:
    per_field(task_run, FieldFloor)
    failed = findings(task_run, FieldFloor)
    assert not failed, "\n".join(failed)


def test_metric_floors_hold(task_run) -> None:
    if not task_run.task.card.gates.floors:
        pytest.skip(f"{task_run.name}: the card sets no metric floors")
    failed = findings(task_run, Floor)
    assert not failed, "\n".join(failed)


@pytest.mark.smoke
def test_gate_fails_the_seed_iris_result() -> None:
    """The seed reported 33.3% -> 63.3% and called it a success; the gate must refuse it."""
    card = get_task("iris").card
    base = metrics_from_confusion([[10, 0, 0], [10, 0, 0], [10, 0, 0]], card.labels)  # all setosa
    tuned = metrics_from_confusion([[9, 1, 0], [0, 10, 0], [2, 8, 0]], card.labels)
    assert round(base.accuracy, 3) == 0.333 and round(tuned.accuracy, 3) == 0.633
    failed = [r.finding for r in run_gates(card_checks(card), tuned, base) if not r.passed]
    report = "\n".join(f or "" for f in failed)
    assert failed, "the seed's iris result passed the gate"
    assert "'setosa' accuracy fell 1.000 -> 0.900" in report, report
    assert "'virginica' accuracy 0.000 < floor" in report, report


def test_no_test_input_leaks_from_train(task_run) -> None:
    (result,) = [r for r in task_run.gates if r.check == "train/test leakage"]
    assert result.passed, f"{task_run.name}: {result.finding}"
