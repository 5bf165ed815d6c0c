"""The Retention section every renderer shows (terminal table, report.md, report.html, report.json): the target's
deltas against base beside each retention probe's (loragate.run.retention), so what the adapter gained on its task
reads next to what it cost outside it. Read from the gates as the run's family judged them; nothing is judged again
here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from loragate.gates.result import DeltaNumbers

if TYPE_CHECKING:  # loragate.run.task_run loads torch and transformers
    from loragate.run.task_run import TaskRun

HEADER = ["", "metric", "n", "base", "tuned", "delta", "CI", "required", "result"]


def target_rows(run: TaskRun) -> list[list[str]]:
    """The card's deltas against base (min_delta), one row a metric."""
    n = str(run.tuned_metrics.n)
    return [[f"target: {run.task.card.name}", r.numbers.metric, n, *delta_cells(r.numbers), r.word]
            for r in run.gates if r.numbers is not None and r.check == f"{r.numbers.metric} delta"]


def delta_cells(numbers: DeltaNumbers) -> list[str]:
    """base, tuned, delta, CI, required: a metric's in its own units; the requirement on what the gate judged (the
    card's judge_on for a target's delta: the point delta by default)."""
    judged = "lower bound" if numbers.judged_on == "lower_bound" else "delta"
    return [f"{numbers.reference:.3f}", f"{numbers.tuned:.3f}", f"{numbers.delta:+.3f}",
            f"[{numbers.low:+.3f}, {numbers.high:+.3f}]", f"{judged} >= {numbers.required + 0.0:+.3f}"]


def rise_cells(numbers: DeltaNumbers) -> list[str]:
    """A text probe's perplexity and its relative rise (the gate's signed delta is -rise)."""
    return [f"{numbers.reference:.3f}", f"{numbers.tuned:.3f}", f"rise {-numbers.delta:+.1%}",
            f"[{-numbers.high:+.1%}, {-numbers.low:+.1%}]", f"rise upper bound <= {-numbers.required:+.1%}"]


def retention_rows(run: TaskRun) -> list[list[str]]:
    """One row a probe; a probe whose gate has no numbers (its metric unavailable) shows its finding's verdict."""
    rows = []
    for probe in run.retention:
        result = probe.gate
        n = f"{probe.n} rows" if probe.source == "text" else str(probe.n)
        numbers = result.numbers
        if numbers is None:
            cells = ["n/a"] * 5
        else:
            cells = rise_cells(numbers) if probe.source == "text" else delta_cells(numbers)
        metric = numbers.metric if numbers else result.check.rpartition(": ")[2]
        rows.append([f"retention: {probe.probe}", metric, n, *cells, result.word])
    return rows


def retention_section(run: TaskRun) -> tuple[str, list[str], list[list[str]]] | None:
    """(title, header, rows) of the target-beside-retention table; None where the card lists no probes."""
    if not run.retention:
        return None
    return ("Retention: what the adapter keeps outside its task (tuned vs base, the same base; judged on the "
            "interval's bound)", HEADER, [*target_rows(run), *retention_rows(run)])


def retention_json(run: TaskRun) -> list[dict]:
    """Each probe with its numbers, its verdict (PASS, FAIL, INCONCLUSIVE) and its finding."""
    return [{**probe.to_json(), "status": probe.gate.word} for probe in run.retention]
