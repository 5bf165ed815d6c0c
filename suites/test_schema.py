"""Every tuned output must parse into the task's output schema."""

from __future__ import annotations


def test_tuned_outputs_parse(task_run) -> None:
    required = task_run.task.card.gates.min_validity
    metrics, invalid = task_run.tuned_metrics, task_run.tuned_predictions.invalid()
    listing = "\n".join(f"  {example_id}: {output!r} -> {reason}" for example_id, output, reason in invalid)
    assert metrics.validity_rate >= required, (
        f"{task_run.name}: {len(invalid)} of {metrics.n} tuned outputs do not parse "
        f"(validity {metrics.validity_rate:.3f} < required {required:.3f}):\n{listing}"
    )
