"""The last release as a baseline, read from its stored report.json: per-example predictions, so the
comparison stays paired. Only a report made on the very same test examples can serve."""

from __future__ import annotations

import json
from pathlib import Path

from loragate.data.examples import Splits
from loragate.metrics.scores import ClassificationMetrics, classification_metrics


def check_report_base(path: Path, task: str, tier: str, base_name: str, base_fingerprint: str) -> None:
    """A report made on another base is no baseline for this one, as an adapter trained on another base is none:
    refused, naming both, before any prediction (its other checks need the scored splits)."""
    try:
        runs = [run for run in json.loads(path.read_text(encoding="utf-8"))["runs"] if isinstance(run, dict)]
    except (OSError, ValueError, KeyError, TypeError):
        return  # baseline_from_report names what is wrong with the file
    for run in runs:
        recorded = run.get("base") if isinstance(run.get("base"), dict) else {}
        if run.get("task") == task and run.get("tier") == tier and recorded.get("fingerprint") not in (
                None, base_fingerprint):
            raise ValueError(f"{path}: its {task}/{tier} run was made on base {recorded.get('name')!r} (fingerprint "
                             f"{str(recorded['fingerprint'])[:12]}), not on this run's base {base_name!r} (fingerprint "
                             f"{base_fingerprint[:12]}): pass the last release's report made on this base, or "
                             f"--allow-foreign-adapter to compare anyway")


def baseline_from_report(path: Path, task: str, tier: str, splits: Splits, labels: list[str]) -> ClassificationMetrics:
    """The tuned predictions that `path` recorded for `task`/`tier`, scored on this run's test split."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        runs = report["runs"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a loragate report.json ({exc}); pass reports/<run>/report.json") from exc
    source = report.get("source") or {}
    if source.get("dirty"):
        raise ValueError(f"{path}: made from commit {str(source.get('commit'))[:12]} with uncommitted changes to "
                         f"tracked files: a baseline must be a committed release. Run the gate on a clean checkout of "
                         f"the release and pass that report")
    matching = [run for run in runs if run.get("task") == task and run.get("tier") == tier]
    if not matching:
        held = ", ".join(f"{run.get('task')}/{run.get('tier')}" for run in runs) or "none"
        raise ValueError(f"{path}: no run of {task}/{tier} (it holds {held})")
    run = released(path, report, matching, task, tier)
    if run.get("data_hash") != splits.data_hash():
        raise ValueError(f"{path}: made on other data (data hash {str(run.get('data_hash'))[:12]}, this run "
                         f"{splits.data_hash()[:12]}): its predictions cannot be paired with this run's examples")
    by_id = {row["id"]: row for row in run.get("predictions", [])}
    missing = [ex.id for ex in splits.test if ex.id not in by_id]
    if missing:
        raise ValueError(f"{path}: no prediction for test examples {missing[:5]} ({len(missing)} in all); "
                         f"the report predates per-example predictions or was cut")
    rows = [by_id[ex.id] for ex in splits.test]
    wrong_gold = [ex.id for ex, row in zip(splits.test, rows) if row["gold"] != ex.label]
    if wrong_gold:
        raise ValueError(f"{path}: gold labels differ for {wrong_gold[:5]}: not the same test split")
    return classification_metrics([ex.label for ex in splits.test], [row["tuned"] for row in rows], labels,
                                  [row["tuned_output"] for row in rows])


def released(path: Path, report: dict, matching: list[dict], task: str, tier: str) -> dict:
    """The run of `task`/`tier` that `report` released: its one run; of several candidates, the one its pick shipped
    (report.json's `candidates`). The first candidate was taken, whichever shipped."""
    if len(matching) == 1:
        return matching[0]
    ship = next((group.get("ship") for group in report.get("candidates") or []
                 if group.get("task") == task and group.get("tier") == tier), None)
    shipped = [run for run in matching if ship is not None and run.get("candidate") == ship]
    if shipped:
        return shipped[0]
    names = ", ".join(str(run.get("candidate")) for run in matching)
    raise ValueError(f"{path}: holds {len(matching)} candidates of {task}/{tier} ({names}) and shipped none (gated "
                     f"without --pick-best, or none passed): pass the report of the run that shipped the release "
                     f"(--pick-best), or its adapter with --baseline-adapter")
