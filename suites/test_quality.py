"""Tuned must beat base by the card's margins, and no class may pay for it."""

from __future__ import annotations

import pytest

from loragate.gates import ClassDrop, ClassFloor, MetricDelta, checks_from, run_gates
from loragate.metrics import metrics_from_confusion
from loragate.tasks import get_task


def findings(task_run, kind: type) -> list[str]:
    names = {check.name for check in checks_from(task_run.task.card.gates) if isinstance(check, kind)}
    return [f"{task_run.name}: {r.finding}" for r in task_run.gates if r.check in names and not r.passed]


def test_metric_deltas_meet_card_minimums(task_run) -> None:
    failed = findings(task_run, MetricDelta)
    assert not failed, "\n".join(failed)


def test_no_class_regresses_against_base(task_run) -> None:
    failed = findings(task_run, ClassDrop)
    assert not failed, "\n".join(failed)


def test_every_class_reaches_its_floor(task_run) -> None:
    failed = findings(task_run, ClassFloor)
    assert not failed, "\n".join(failed)


@pytest.mark.smoke
def test_gate_fails_the_seed_iris_result() -> None:
    """The seed reported 33.3% -> 63.3% and called it a success; the gate must refuse it."""
    card = get_task("iris").card
    base = metrics_from_confusion([[10, 0, 0], [10, 0, 0], [10, 0, 0]], card.labels)  # all setosa
    tuned = metrics_from_confusion([[9, 1, 0], [0, 10, 0], [2, 8, 0]], card.labels)
    assert round(base.accuracy, 3) == 0.333 and round(tuned.accuracy, 3) == 0.633
    failed = [r.finding for r in run_gates(checks_from(card.gates), tuned, base) if not r.passed]
    report = "\n".join(f or "" for f in failed)
    assert failed, "the seed's iris result passed the gate"
    assert "'setosa' accuracy fell 1.000 -> 0.900" in report, report
    assert "'virginica' accuracy 0.000 < floor" in report, report
