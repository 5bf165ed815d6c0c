"""The candidates of one task and tier, side by side (issue 34): ranked on the card's primary metric, the best one
that passes named, and compared with the runner-up on the same test examples (paired), so the choice between two
adapters rests on evidence, not on two numbers.

Computed where the candidates' runs are (the process that gated them, once their tests ran), kept as builtins: an
xdist worker hands them to the controller with its runs. `pick` decides the task's verdict: `all` (the default, a
fleet: every candidate must pass) or `best` (--pick-best, or the card's `candidates.pick: best`: one passing is
enough, and the report names the one to ship)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from loragate.card.candidates import pick_of
from loragate.metrics.registry import METRICS
from loragate.metrics.text import MetricUnavailable

if TYPE_CHECKING:
    from loragate.run.task_run import TaskRun


def primary_metric(run: TaskRun) -> str:
    """The metric candidates are ranked on: the card's first `min_delta` metric, else the kind's first headline one."""
    return next(iter(run.task.card.gates.min_delta), None) or next(iter(run.tuned_metrics.headline()))


def candidate_groups(runs: list[TaskRun], pick_best: bool) -> list[dict[str, Any]]:
    """One entry per task and tier gated with candidates, in the order of `runs`, as report.json's `candidates`."""
    groups: dict[tuple[str, str], list[TaskRun]] = {}
    for run in runs:
        if run.candidate:
            groups.setdefault((run.task.card.name, run.tier), []).append(run)
    return [group_json(group, pick_best) for group in groups.values()]


def group_json(runs: list[TaskRun], pick_best: bool) -> dict[str, Any]:
    """The group's ranking, the best candidate that passes, its paired comparison with the runner-up, and the task's
    verdict under the pick."""
    metric, pick = primary_metric(runs[0]), pick_of(runs[0].task.card, pick_best)
    values = {run.candidate: ranked_value(run, metric) for run in runs}
    sign = -1 if METRICS.get(metric).higher_is_better else 1
    ranked = sorted(runs, key=lambda run: (values[run.candidate] is None, sign * (values[run.candidate] or 0.0)))
    passing = [run for run in ranked if run.verdict.passed]
    best = passing[0] if passing else None
    others = [run for run in ranked if run is not best]
    runner_up = next((run for run in others if run.verdict.passed), others[0] if others else None)
    passed = best is not None if pick == "best" else len(passing) == len(runs)
    comparable = best is not None and runner_up is not None and None not in (values[best.candidate],
                                                                             values[runner_up.candidate])
    comparison = paired(best, runner_up, metric) if comparable else None
    return {
        "task": runs[0].task.card.name, "tier": runs[0].tier, "metric": metric, "pick": pick,
        "ranking": [{"candidate": run.candidate, "value": values[run.candidate],
                     "verdict": run.verdict.status, "adapter": str(run.adapter_dir) if run.adapter_dir else None}
                    for run in ranked],
        "best": best.candidate if best is not None else None,
        "runner_up": runner_up.candidate if runner_up is not None and best is not None else None,
        "best_vs_runner_up": comparison,
        "passed": passed,
        "verdict": "PASS" if passed else "FAIL",
        "ship": best.candidate if pick == "best" and best is not None else None,
        "failed": [run.candidate for run in ranked if not run.verdict.passed],
    }


def ranked_value(run: TaskRun, metric: str) -> float | None:
    """The run's value of `metric`; None where the metric is unavailable for it or not a number (NaN): ranked last,
    shown as n/a, rather than stopping the report of every run."""
    try:
        value = run.tuned_metrics.value(metric)
    except MetricUnavailable:
        return None
    return None if math.isnan(value) else value


def shown_value(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def paired(best: TaskRun, runner_up: TaskRun, metric: str) -> dict[str, Any]:
    """best - runner-up on `metric`, on the same test examples, by the statistics a gate uses (its paired interval, the
    card's confidence): reported, not gated."""
    from loragate.gates.checks import MetricDelta  # loads peft: not where `python -m loragate merge` renders groups

    result = MetricDelta(metric, 0.0, best.task.card.gates, reference=runner_up.candidate).judge(
        best.tuned_metrics, runner_up.tuned_metrics)
    numbers = result.numbers
    return {"metric": metric, "delta": numbers.delta, "low": numbers.low, "high": numbers.high,
            "confidence": numbers.confidence, "p_value": result.comparisons[0].p_value if result.comparisons else None,
            "evidence": result.evidence}


def excused(groups: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """The (task, tier, candidate) runs whose failure does not fail the session or a merge: the candidates that did
    not pass, of a task whose pick is `best` and that has a candidate that passed."""
    return {(group["task"], group["tier"], name) for group in groups
            if group["pick"] == "best" and group["passed"] for name in group["failed"]}


def group_lines(group: dict[str, Any]) -> list[str]:
    """The group as the terminal shows it under the tables."""
    lines = [f"candidates {group['task']}/{group['tier']}, ranked on {group['metric']} (pick: {group['pick']}): "
             f"{group['verdict']}"]
    width = max(len(entry["candidate"]) for entry in group["ranking"])
    lines += [f"  {rank}. {entry['candidate']:<{width}}  {shown_value(entry['value'])}  {entry['verdict']}"
              for rank, entry in enumerate(group["ranking"], 1)]
    lines.append(f"  {decision(group)}")
    return lines


def decision(group: dict[str, Any]) -> str:
    """One sentence: the best candidate that passes and its paired comparison, and what the pick makes of it."""
    if group["best"] is None:
        return "no candidate passes"
    text = f"best that passes: {group['best']}"
    comparison = group["best_vs_runner_up"]
    if comparison is not None:
        text += (f"; vs {group['runner_up']} on the same examples: {comparison['metric']} {comparison['delta']:+.3f}, "
                 f"{comparison['confidence']:.0%} CI [{comparison['low']:+.3f}, {comparison['high']:+.3f}]")
    if group["pick"] == "best":
        return f"{text}; ship {group['ship']}"
    failed = ", ".join(group["failed"])
    return f"{text}; every candidate must pass" + (f" ({failed} did not)" if failed else "")


def group_markdown(group: dict[str, Any]) -> str:
    """The group's section of report.md and summary.md: a ranking table and the decision."""
    rows = [f"| {rank} | {entry['candidate']} | {shown_value(entry['value'])} | {entry['verdict']} |"
            for rank, entry in enumerate(group["ranking"], 1)]
    return "\n".join([f"### Candidates {group['task']}/{group['tier']}: {group['verdict']} (pick: {group['pick']})",
                      "", f"| rank | candidate | {group['metric']} | verdict |", "|---|---|---|---|", *rows, "",
                      decision(group), ""])
