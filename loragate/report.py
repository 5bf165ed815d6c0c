"""The base-vs-tuned table people read, and reports/<run>/report.json + report.md written atomically."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from loragate.gates import GateResult
from loragate.run import TaskRun

ROWS = [("accuracy", "accuracy"), ("macro precision", "macro_precision"), ("macro recall", "macro_recall"),
        ("macro F1", "macro_f1"), ("weighted F1", "weighted_f1"), ("validity", "validity_rate")]


def table_rows(run: TaskRun) -> list[tuple[str, str, str, str]]:
    """(metric, base, tuned, delta) rows: overall, per class, macro P/R/F1, validity, empty outputs."""
    base, tuned = run.base_metrics, run.tuned_metrics
    rows = []
    for title, field in ROWS[:1]:
        rows.append((title, f"{base.value(field):.3f}", f"{tuned.value(field):.3f}",
                     f"{tuned.value(field) - base.value(field):+.3f}"))
    for label in tuned.labels:
        before, after = base.per_class_accuracy[label], tuned.per_class_accuracy[label]
        rows.append((f"  {label} (n={tuned.per_class_support[label]})", f"{before:.3f}", f"{after:.3f}",
                     f"{after - before:+.3f}"))
    for title, field in ROWS[1:]:
        rows.append((title, f"{base.value(field):.3f}", f"{tuned.value(field):.3f}",
                     f"{tuned.value(field) - base.value(field):+.3f}"))
    rows.append(("empty outputs", str(base.empty_outputs), str(tuned.empty_outputs),
                 f"{tuned.empty_outputs - base.empty_outputs:+d}"))
    return rows


def shown(path: Path | None) -> str:
    """A path as the user would type it: relative to the working directory when it is below it."""
    if path is None:
        return "(none)"
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def headline(run: TaskRun) -> str:
    adapter = shown(run.adapter_dir)
    ceiling = f", ceiling {run.ceiling:.3f}" if run.ceiling is not None else ""
    verdict = "PASS" if run.passed else "FAIL"
    return f"{run.name}: {verdict}  base {run.base.name}, adapter {adapter}, n={run.tuned_metrics.n}{ceiling}"


def gate_text(result: GateResult) -> str | None:
    """A failure's finding (which carries its evidence), else the evidence of the pass."""
    return result.finding or result.evidence


def text_table(run: TaskRun) -> str:
    header = ("metric", "base", "tuned", "delta")
    rows = [header, *table_rows(run)]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [headline(run)]
    for row in rows:
        lines.append("  " + row[0].ljust(widths[0]) + "".join("  " + cell.rjust(w) for cell, w in zip(row[1:], widths[1:])))
    lines += [f"  gate {'ok  ' if r.passed else 'FAIL'} {r.check}" + (f": {gate_text(r)}" if gate_text(r) else "")
              for r in run.gates]
    return "\n".join(lines)


def markdown(runs: list[TaskRun]) -> str:
    parts = ["# loragate report", ""]
    for run in runs:
        parts += [f"## {headline(run)}", "", "| metric | base | tuned | delta |", "|---|---:|---:|---:|"]
        parts += [f"| {m.strip()} | {b} | {t} | {d} |" for m, b, t, d in table_rows(run)]
        parts += ["", *[f"- {'PASS' if r.passed else 'FAIL'} {r.check}" + (f": {gate_text(r)}" if gate_text(r) else "")
                        for r in run.gates]]
        invalid = run.tuned_predictions.invalid()
        if invalid:
            parts += ["", "Tuned outputs that did not parse:", ""]
            parts += [f"- `{example_id}`: {output!r} ({reason})" for example_id, output, reason in invalid]
        parts.append("")
    return "\n".join(parts)


def run_json(run: TaskRun) -> dict:
    return {
        "task": run.task.card.name,
        "tier": run.tier,
        "passed": run.passed,
        "base": {"name": run.base.name, "fingerprint": run.base.fingerprint, "parameters": run.base.parameters,
                 "pad_policy": run.base.pad_policy},
        "adapter": {"dir": str(run.adapter_dir) if run.adapter_dir else None,
                    "key": (run.manifest or {}).get("key"), "trained_this_run": run.trained is not None},
        "data_hash": run.splits.data_hash(),
        "ceiling": run.ceiling,
        "metrics": {"base": run.base_metrics.to_json(), "tuned": run.tuned_metrics.to_json()},
        "gates": [{"check": r.check, "passed": r.passed, "finding": r.finding, "evidence": r.evidence}
                  for r in run.gates],
        "invalid_tuned_outputs": [{"id": i, "output": o, "reason": r} for i, o, r in run.tuned_predictions.invalid()],
        "throughput": {"tuned_examples_per_s": len(run.tuned_predictions.ids) / run.tuned_predictions.generations.seconds},
        "seconds": run.seconds,
    }


def write_report(runs: list[TaskRun], report_dir: Path) -> Path:
    """reports/<UTC time>/report.json and report.md, renamed into place together."""
    report_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{stamp}-", dir=report_dir))
    try:
        (tmp / "report.json").write_text(json.dumps({"runs": [run_json(r) for r in runs]}, indent=2) + "\n")
        (tmp / "report.md").write_text(markdown(runs))
        os.replace(tmp, report_dir / stamp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report_dir / stamp
