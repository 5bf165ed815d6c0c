"""The base-vs-tuned table people read, and reports/<run>/ written atomically: report.json (numbers and
per-example predictions, reusable as a baseline), report.md, report.html (self-contained), summary.md (for a
GitHub job summary) and the figures as PNG files.

Each run is first rendered into plain data (RenderedRun), then the files are assembled from the renderings: under
pytest-xdist the workers render their runs and the controller writes one report of all of them."""

from __future__ import annotations

import base64
import html
import json
import subprocess
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loragate import plots
from loragate.plots import Plot
from loragate.atomic import atomic_dir
from loragate.gates import DeltaNumbers, GateResult
from loragate.kinds import kind_of
from loragate.metrics import METRICS, Metrics
from loragate.redact import redact

if TYPE_CHECKING:  # loragate.run loads torch and transformers: an xdist controller only assembles renderings
    from loragate.run import TaskRun

def table_rows(run: TaskRun) -> list[tuple[str, str, str, str]]:
    """(metric, base, tuned, delta) rows: each registered metric the run computed, in the registry's order, with
    the rows the metrics add under it (per class under accuracy); an unavailable metric as n/a (its reason is a
    note); then the empty outputs. A sub-row's title starts with two spaces."""
    base, tuned = run.base_metrics, run.tuned_metrics
    rows = []
    for spec in METRICS.entries():
        if not spec.shown:
            continue
        title = ("  " if spec.sub else "") + spec.title
        if spec.name in tuned.unavailable:
            rows.append((title, "n/a", "n/a", "n/a"))
        elif tuned.has(spec.name):
            before, after = base.value(spec.name), tuned.value(spec.name)
            rows.append((title, spec.cell(before), spec.cell(after), f"{after - before:+.3f}"))
            rows += [(f"  {sub}", *cells) for sub, *cells in tuned.sub_rows(spec.name, base)]
    rows.append(("empty outputs", str(base.empty_outputs), str(tuned.empty_outputs),
                 f"{tuned.empty_outputs - base.empty_outputs:+d}"))
    return rows + subgroup_rows(run)


def subgroup_metrics(run: TaskRun) -> list[str]:
    """The metrics shown per subgroup: those the card's subgroup gates name, else its gated metrics."""
    gates = run.task.card.gates
    return list(dict.fromkeys([*gates.max_subgroup_drop, *gates.min_subgroup_score])) or list(gates.min_delta)


def subgroup_rows(run: TaskRun) -> list[tuple[str, str, str, str]]:
    """One row per subgroup and shown metric: "has answer (n=40): F1"."""
    rows = []
    for group in run.subgroups:
        for metric in subgroup_metrics(run):
            if metric in group.tuned.unavailable or not group.tuned.has(metric):
                continue
            spec, before, after = METRICS.get(metric), group.base.value(metric), group.tuned.value(metric)
            rows.append((f"{group.name} (n={group.n}): {spec.title}", spec.cell(before), spec.cell(after),
                         f"{after - before:+.3f}"))
    return rows


def constant_line(run: TaskRun) -> str:
    """The trivial predictor's numbers on the metrics tuned must beat it on, shown under base and tuned."""
    values = [f"{METRICS.get(metric).title} {run.constant_metrics.value(metric):.3f}"
              for metric in run.task.card.gates.over_trivial() if metric not in run.constant_metrics.unavailable]
    return f"trivial predictor, {run.constant.name}: {', '.join(values) or 'no comparable metric'}"


def metric_values(metrics: Metrics) -> dict[str, float]:
    """Every registered metric `metrics` computed, by name."""
    return {spec.name: metrics.value(spec.name) for spec in METRICS.entries()
            if metrics.has(spec.name) and spec.name not in metrics.unavailable}


def shown(path: Path | None) -> str:
    """A path as the user would type it: relative to the working directory when it is below it."""
    if path is None:
        return "(none)"
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def base_label(run: TaskRun) -> str:
    """The base's name, and its quantization when --quantize loaded it: the gate judged that model."""
    return run.base.name + (f" ({run.base.quantization})" if run.base.quantization else "")


def headline(run: TaskRun) -> str:
    adapter = shown(run.adapter_dir)
    ceiling = f", ceiling {run.ceiling:.3f}" if run.ceiling is not None else ""
    return f"{run.name}: {run.verdict.status}  base {base_label(run)}, adapter {adapter}, n={run.tuned_metrics.n}{ceiling}"


def gate_text(result: GateResult) -> str | None:
    """A failure's finding (which carries its evidence), else the evidence of the pass."""
    return result.finding or result.evidence


def unavailable_notes(run: TaskRun) -> list[str]:
    """Each metric this machine could not compute, with the reason (METEOR without WordNet): shown as n/a in
    every table, and why, never computed some other way."""
    missing = {**run.base_metrics.unavailable, **run.tuned_metrics.unavailable}
    return [f"{METRICS.get(metric).title} unavailable: {reason}" for metric, reason in missing.items()]


def notes(run: TaskRun) -> list[str]:
    return [*unavailable_notes(run), *batch_notes(run)]


def batch_notes(run: TaskRun) -> list[str]:
    """What ran at a smaller eval batch than the card's after the GPU ran out of memory."""
    notes = []
    for who, predictions in (("base", run.base_predictions), ("tuned", run.tuned_predictions)):
        if predictions.batch_size is not None and predictions.batch_size < (predictions.card_batch_size or 0):
            notes.append(f"{who} predictions ran at eval batch {predictions.batch_size}, halved from the card's "
                         f"{predictions.card_batch_size} after running out of GPU memory")
    return notes


def text_table(run: TaskRun) -> str:
    header = ("metric", "base", "tuned", "delta")
    rows = [header, *table_rows(run)]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [headline(run)]
    for row in rows:
        lines.append("  " + row[0].ljust(widths[0]) + "".join("  " + cell.rjust(w) for cell, w in zip(row[1:], widths[1:])))
    lines.append(f"  {constant_line(run)}")
    lines += [f"  gate {'ok  ' if r.passed else 'FAIL'} {r.check}" + (f": {gate_text(r)}" if gate_text(r) else "")
              for r in run.gates]
    lines += [f"  note: {note}" for note in notes(run)]
    lines += [f"  {run.verdict.status}: {reason}" for reason in partial_reasons(run)]
    return "\n".join(lines)


def partial_reasons(run: TaskRun) -> list[str]:
    """Why a run is PARTIAL: which gate tests did not run (a FAIL's reasons are its failed gates, shown already)."""
    return list(run.verdict.reasons) if run.verdict.status == "PARTIAL" else []


@dataclass(frozen=True)
class GatedMetric(DeltaNumbers):
    """A gated metric's numbers with its gate's name and verdict, for tables and JSON."""

    check: str = ""  # the gate's name: "accuracy delta", or "accuracy vs baseline"
    passed: bool = False


def gated_metrics(run: TaskRun) -> list[GatedMetric]:
    """The metric gates' numbers as the gates computed them (nothing is judged again here); a gate on an
    unavailable metric has none and shows as a failed gate with its reason."""
    return [GatedMetric(**asdict(r.numbers), check=r.check, passed=r.passed) for r in run.gates if r.numbers]


def requirement(row: GatedMetric) -> str:
    what = "CI lower bound" if row.judged_on == "lower_bound" else "delta"
    return f"{what} >= {row.required + 0.0:+.3f}"  # + 0.0: a max_regression of 0 reads +0.000, not -0.000


def markdown_section(run: TaskRun, figure_files: list[str]) -> str:
    """The run's part of report.md, with its figures (PNG file names beside it) as images."""
    parts = [f"## {headline(run)}", "", "| metric | base | tuned | delta |", "|---|---:|---:|---:|"]
    parts += [f"| {m.strip()} | {b} | {t} | {d} |" for m, b, t, d in table_rows(run)]
    parts += ["", constant_line(run)]
    parts += ["", *[f"- {'PASS' if r.passed else 'FAIL'} {r.check}" + (f": {gate_text(r)}" if gate_text(r) else "")
                    for r in run.gates]]
    parts += [f"- note: {note}" for note in notes(run)]
    parts += [f"- **PARTIAL**: {reason}" for reason in partial_reasons(run)]
    invalid = run.tuned_predictions.invalid()
    if invalid:
        parts += ["", "Tuned outputs that did not parse:", ""]
        parts += [f"- `{example_id}`: {output!r} ({reason})" for example_id, output, reason in invalid]
    parts += ["", *[f"![{name}]({name})" for name in figure_files]]
    parts.append("")
    return "\n".join(parts)


def summary_section(run: TaskRun, intervals: list[GatedMetric]) -> str:
    """The run's compact table in summary.md (for $GITHUB_STEP_SUMMARY): verdict, gated metrics with CIs,
    failed gates."""
    failed = [r for r in run.gates if not r.passed]
    parts = [f"### {run.name}: {run.verdict.status}", "",
             f"base `{base_label(run)}`, adapter `{shown(run.adapter_dir)}`, n={run.tuned_metrics.n}", "",
             constant_line(run), "",
             "| gate | reference | tuned | delta | CI | required | result |", "|---|---:|---:|---:|---|---|---|"]
    parts += [f"| {g.check} | {g.reference:.3f} | {g.tuned:.3f} | {g.delta:+.3f} | "
              f"{g.confidence:.0%} [{g.low:+.3f}, {g.high:+.3f}] | {requirement(g)} | "
              f"{'PASS' if g.passed else '**FAIL**'} |" for g in intervals]
    parts.append("")
    if failed:
        parts += [f"- **FAIL** {r.check}: {r.finding}" for r in failed]
    else:
        parts.append(f"All {len(run.gates)} gates passed.")
    parts += [f"- **{run.verdict.status}**: {reason}" for reason in run.verdict.reasons
              if reason.startswith("gate test failed") or run.verdict.status == "PARTIAL"]
    parts += [f"- note: {note}" for note in notes(run)]
    parts.append("")
    return "\n".join(parts)


def predictions_json(run: TaskRun) -> list[dict]:
    """Per example: what the kind records (gold, base and tuned label, None where the output did not parse; or the
    references and each per-example score) and both raw outputs, so a later run can compare against this report."""
    base, tuned = run.base_predictions, run.tuned_predictions
    if base.ids != tuned.ids:
        raise ValueError(f"{run.name}: base and tuned predictions cover different examples; cannot pair them")
    return [{"id": i, **record, "base_output": base_out, "tuned_output": tuned_out}
            for i, record, base_out, tuned_out in zip(tuned.ids, kind_of(run.task.card.kind).example_records(run),
                                                      base.outputs, tuned.outputs)]


def run_json(run: TaskRun, intervals: list[GatedMetric]) -> dict:
    return {
        "task": run.task.card.name,
        "tier": run.tier,
        "passed": run.verdict.passed,
        "verdict": run.verdict.status,
        "verdict_reasons": list(run.verdict.reasons),
        "base": {"name": run.base.name, "quantization": run.base.quantization, "fingerprint": run.base.fingerprint,
                 "parameters": run.base.parameters,
                 "pad_policy": run.base.pad_policy},
        "adapter": {"dir": str(run.adapter_dir) if run.adapter_dir else None,
                    "key": run.manifest.key if run.manifest else None, "trained_this_run": run.trained is not None,
                    "sha256": run.manifest.adapter_sha256 if run.manifest else None},
        "data_hash": run.splits.data_hash(),
        "ceiling": run.ceiling,
        "metrics": {"base": run.base_metrics.to_json(), "tuned": run.tuned_metrics.to_json()},
        "trivial_predictor": {"name": run.constant.name, "metrics": metric_values(run.constant_metrics)},
        "subgroups": [{"name": group.name, "n": group.n, "base": metric_values(group.base),
                       "tuned": metric_values(group.tuned)} for group in run.subgroups],
        "gated": [asdict(row) for row in intervals],
        "gates": [{"check": r.check, "passed": r.passed, "finding": r.finding, "evidence": r.evidence}
                  for r in run.gates],
        "invalid_tuned_outputs": [{"id": i, "output": o, "reason": r} for i, o, r in run.tuned_predictions.invalid()],
        "predictions": predictions_json(run),
        "throughput": {"tuned_examples_per_s": len(run.tuned_predictions.ids) / run.tuned_predictions.seconds},
        "eval_batch_size": {"card": run.tuned_predictions.card_batch_size, "base": run.base_predictions.batch_size,
                            "tuned": run.tuned_predictions.batch_size},
        "notes": notes(run),
        "seconds": run.seconds,
    }


def run_plots(run: TaskRun) -> list[Plot]:
    """The kind's figures (confusion matrices and per-class bars for labels) and, when the adapter has a loragate
    manifest, the loss curve."""
    prefix = f"{run.task.card.name}-{run.tier}"
    result = kind_of(run.task.card.kind).figures(run, prefix)
    curve = run.manifest.loss_curve if run.manifest else None
    if curve:
        eval_loss = run.manifest.metrics_at_train.get("eval_loss")
        result.append(Plot(f"{prefix}-loss.png", "Training loss per optimizer step (from the adapter's manifest), "
                           "perplexity on the right axis; the dots are the eval split's loss while and after training.",
                           plots.loss_png(curve, eval_loss, run.manifest.eval_curve)))
    return result


MAX_EXAMPLES = 200  # rows per example table in report.html; report.json holds every example
# Inline CSS only, and a policy that forbids scripts and any request: the page is one file that works offline,
# and model output, even if it were not escaped, could not run or fetch anything.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1a202c; max-width: 1100px;
       margin: 24px auto; padding: 0 16px; }
h1 { font-size: 22px; } h3 { font-size: 15px; margin: 22px 0 6px; }
h2 { font-size: 18px; border-bottom: 1px solid #cbd5e0; padding-bottom: 4px; margin-top: 36px; }
table { border-collapse: collapse; margin: 6px 0; }
th, td { border: 1px solid #e2e8f0; padding: 3px 10px; text-align: left; vertical-align: top; }
th { background: #f7fafc; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.sub td:first-child { padding-left: 28px; color: #4a5568; }
.badge { display: inline-block; padding: 0 8px; border-radius: 4px; color: #fff; font-weight: 600; font-size: 13px; }
.pass { background: #2f855a; } .fail { background: #c53030; } .partial { background: #b7791f; }
.up { color: #2f855a; } .down { color: #c53030; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; margin: 8px 0; }
dt { color: #4a5568; } dd { margin: 0; }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, monospace; white-space: pre-wrap; word-break: break-all; }
figure { margin: 10px 0 22px; } figure img { max-width: 100%; height: auto; border: 1px solid #e2e8f0; }
figcaption { color: #4a5568; font-size: 13px; }
"""


NUMERIC = ' class="num"'


def badge(verdict: bool | str) -> str:
    """PASS, FAIL or PARTIAL (a verdict), or a gate's pass/fail (a bool)."""
    status = verdict if isinstance(verdict, str) else "PASS" if verdict else "FAIL"
    return f'<span class="badge {status.lower()}">{status}</span>'


def code(text: str) -> str:
    """Model output as its Python repr, so whitespace and newlines show; escaped, never interpreted."""
    return f"<code>{html.escape(repr(text))}</code>"


def html_table(header: list[str], rows: list[list[str]], numeric: frozenset[int] = frozenset(),
               trusted: frozenset[int] = frozenset(), row_classes: list[str] | None = None) -> str:
    """Every cell is escaped except the `trusted` columns, which hold markup this module built (badge, code)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for index, row in enumerate(rows):
        cells = "".join(f"<td{NUMERIC if col in numeric else ''}>{cell if col in trusted else html.escape(cell)}</td>"
                        for col, cell in enumerate(row))
        css = f' class="{row_classes[index]}"' if row_classes and row_classes[index] else ""
        body.append(f"<tr{css}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def delta_cell(delta: str) -> str:
    """A delta coloured by its sign; a cell that is no number ("n/a": the metric is unavailable) as it is."""
    try:
        value = float(delta)
    except ValueError:
        return html.escape(delta)
    direction = "up" if value > 0 else "down" if value < 0 else ""
    return f'<span class="{direction}">{html.escape(delta)}</span>' if direction else html.escape(delta)


def capped(rows: list[list[str]], what: str) -> tuple[list[list[str]], str]:
    if len(rows) <= MAX_EXAMPLES:
        return rows, ""
    return rows[:MAX_EXAMPLES], f"<p>First {MAX_EXAMPLES} of {len(rows)} {what}; report.json lists them all.</p>"


def html_run(run: TaskRun, gated: list[GatedMetric], figures: list[Plot]) -> str:
    """One task run: headline, base-vs-tuned table, gates with their evidence, figures, failing examples."""
    e = html.escape
    manifest = run.manifest
    facts = [("base", f"{base_label(run)} (fingerprint {run.base.fingerprint[:12]}, {run.base.parameters:,} parameters)"),
             ("adapter", shown(run.adapter_dir) + (f" (key {manifest.key}, seed {manifest.seed}, "
                                                   f"sha256 {manifest.adapter_sha256[:12]})" if manifest else "")),
             ("trained this run", "yes" if run.trained is not None else "no"),
             ("test examples", str(run.tuned_metrics.n)),
             ("ceiling", f"{run.ceiling:.3f}" if run.ceiling is not None else "n/a"),
             ("trivial predictor", constant_line(run).removeprefix("trivial predictor, ")),
             *(("note", note) for note in notes(run))]
    rows = table_rows(run)
    metrics = html_table(["metric", "base", "tuned", "delta"],
                         [[m.strip(), b, t, delta_cell(d)] for m, b, t, d in rows], numeric=frozenset({1, 2, 3}),
                         trusted=frozenset({3}), row_classes=["sub" if m.startswith("  ") else "" for m, *_ in rows])
    intervals = html_table(
        ["gate", "reference", "tuned", "delta", "CI", "required", "result"],
        [[g.check, f"{g.reference:.3f}", f"{g.tuned:.3f}", f"{g.delta:+.3f}",
          f"{g.confidence:.0%} [{g.low:+.3f}, {g.high:+.3f}]", requirement(g), badge(g.passed)] for g in gated],
        numeric=frozenset({1, 2, 3, 4}), trusted=frozenset({6}))
    gates = html_table(["result", "gate", "finding or evidence"],
                       [[badge(r.passed), r.check, gate_text(r) or "-"] for r in run.gates], trusted=frozenset({0}))
    images = "".join(f'<figure><img src="data:image/png;base64,{base64.b64encode(p.png).decode("ascii")}" '
                     f'alt="{e(p.file)}"><figcaption>{e(p.file)}: {e(p.caption)}</figcaption></figure>'
                     for p in figures)
    all_invalid = [[i, code(out), reason] for i, out, reason in run.tuned_predictions.invalid()]
    invalid, invalid_note = capped(all_invalid, "invalid outputs")
    return f"""
<section>
<h2>{e(run.name)} {badge(run.verdict.status)}</h2>
{"".join(f"<p>{e(reason)}</p>" for reason in partial_reasons(run))}
<dl>{''.join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in facts)}</dl>
<h3>Base vs tuned</h3>
{metrics}
<h3>Gated metrics: paired-bootstrap confidence intervals</h3>
{intervals}
<h3>Gates</h3>
{gates}
<h3>Figures</h3>
{images}{"" if manifest and manifest.loss_curve else "<p>No loss curve: the adapter has no loragate manifest.</p>"}
<h3>Tuned outputs that did not parse ({len(all_invalid)})</h3>
{html_table(["id", "raw output", "reason"], invalid, trusted=frozenset({1})) + invalid_note if invalid
 else "<p>Every tuned output parsed.</p>"}
{wrong_examples(run)}
</section>"""


def wrong_examples(run: TaskRun) -> str:
    """The kind's table of examples to read: the misclassified ones, or the tuned answers worst first beside
    base's and the references. Raw model text is shown escaped, as code."""
    table = kind_of(run.task.card.kind).examples_table(run)
    rows = [[code(cell) if col in table.text_columns else cell for col, cell in enumerate(row)] for row in table.rows]
    shown_rows, note = capped(rows, "examples")
    if not shown_rows:
        return f"<h3>{html.escape(table.title)}</h3>\n<p>{html.escape(table.empty)}</p>"
    return (f"<h3>{html.escape(table.title)}</h3>\n"
            + html_table(table.header, shown_rows, numeric=table.numeric_columns, trusted=table.text_columns) + note)


def html_page(runs: list[RenderedRun], stamp: str) -> str:
    """report.html: one self-contained file (inline CSS, PNGs as data URIs, no script, no external request)."""
    overall = "PASS" if all(run.passed for run in runs) else "FAIL" if any(run.verdict == "FAIL" for run in runs) \
        else "PARTIAL"
    body = "".join(run.html for run in runs)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>loragate report {html.escape(stamp)}</title>
<style>{CSS}</style>
</head>
<body>
<h1>loragate report {badge(overall)}</h1>
<p>Run {html.escape(stamp)}: {len(runs)} task run{'s' if len(runs) != 1 else ''},
{', '.join(html.escape(run.name) for run in runs)}.</p>
{body}
</body>
</html>
"""


def junit_properties(run: TaskRun) -> list[tuple[str, object]]:
    """What the JUnit XML carries for each test of this run: task, tier, whether the card's gates passed, and the
    card's gated metrics. The verdict, known only once every test ran, is a suite property (`loragate.verdict.*`)."""
    properties: list[tuple[str, object]] = [("loragate.task", run.task.card.name), ("loragate.tier", run.tier),
                                            ("loragate.card_gates", "PASS" if run.passed else "FAIL")]
    unavailable = run.tuned_metrics.unavailable
    for metric in run.task.card.gates.min_delta:
        if metric in unavailable:
            properties.append((f"loragate.{metric}.unavailable", unavailable[metric]))
            continue
        base, tuned = run.base_metrics.value(metric), run.tuned_metrics.value(metric)
        properties += [(f"loragate.{metric}.base", round(base, 6)), (f"loragate.{metric}.tuned", round(tuned, 6)),
                       (f"loragate.{metric}.delta", round(tuned - base, 6))]
    return properties


@dataclass(frozen=True)
class RenderedRun:
    """One run's part of each report file and its terminal table, as plain data: a pytest-xdist worker renders
    its runs and hands them to the controller (execnet carries only builtins), which writes one report of all."""

    task: str
    tier: str
    verdict: str  # PASS, FAIL or PARTIAL (loragate.verdict)
    table: str  # text_table: what the terminal shows
    json: dict[str, Any]  # the run's entry in report.json, through JSON and back: builtins only
    markdown: str  # its section of report.md
    html: str  # its section of report.html
    summary: str  # its section of summary.md
    plots: tuple[Plot, ...]
    render_error: str | None = None  # why this run could not be rendered (then it fails)

    @property
    def name(self) -> str:
        return f"{self.task}/{self.tier}"

    @property
    def passed(self) -> bool:
        return self.verdict == "PASS"

    def to_builtins(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_builtins(cls, data: dict[str, Any]) -> RenderedRun:
        return cls(**{**data, "plots": tuple(Plot(**plot) for plot in data["plots"])})


def render(run: TaskRun) -> RenderedRun:
    """Everything the report files and the terminal need from `run`, computed once."""
    intervals = gated_metrics(run)
    figures = run_plots(run)
    return RenderedRun(task=run.task.card.name, tier=run.tier, verdict=run.verdict.status, table=text_table(run),
                       json=json.loads(json.dumps(run_json(run, intervals))),  # numpy floats become floats
                       markdown=markdown_section(run, [plot.file for plot in figures]),
                       html=html_run(run, intervals, figures), summary=summary_section(run, intervals),
                       plots=tuple(figures))


def render_or_explain(run: TaskRun) -> RenderedRun:
    """`render(run)`, or where rendering raised, a FAIL entry that names the error: one run's broken rendering
    must cost neither the other runs' reports nor the session's verdict."""
    try:
        return render(run)
    except Exception as exc:  # noqa: BLE001 - reported in every file and failing the run, never swallowed
        error = f"{run.name}: FAIL  its report could not be rendered: {type(exc).__name__}: {exc}"
        section = f"## {run.name}: FAIL\n\n{error}\n"
        return RenderedRun(task=run.task.card.name, tier=run.tier, verdict="FAIL", table=error,
                           json={"task": run.task.card.name, "tier": run.tier, "passed": False, "render_error": error},
                           markdown=section, html=f"<section><h2>{html.escape(run.name)} {badge(False)}</h2>"
                                                  f"<p>{html.escape(error)}</p></section>",
                           summary=section.replace("## ", "### ", 1), plots=(), render_error=error)


def write_report(runs: list[TaskRun], report_dir: Path) -> Path:
    """reports/<UTC time>/ for `runs`: see write_rendered."""
    return write_rendered([render(run) for run in runs], report_dir)


def source_state() -> dict[str, str | bool | None]:
    """The git commit the run was made from, and whether tracked files differed from it (untracked files, such
    as freshly trained adapters, do not count): a report made from uncommitted code cannot be a release's
    baseline. None where this is not a git checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True, timeout=30).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": git("status", "--porcelain", "--untracked-files=no") != ""}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def write_rendered(runs: list[RenderedRun], report_dir: Path) -> Path:
    """reports/<UTC time>/ with report.json, report.md, report.html, summary.md and the PNGs, renamed into
    place together."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    with atomic_dir(report_dir / stamp) as staged:
        tmp = staged.path
        for plot in (plot for run in runs for plot in run.plots):
            (tmp / plot.file).write_bytes(plot.png)
        report = {"source": source_state(), "runs": [run.json for run in runs]}
        (tmp / "report.json").write_text(redact(json.dumps(report, indent=2) + "\n"))
        (tmp / "report.md").write_text(redact("\n".join(["# loragate report", "", *(run.markdown for run in runs)])))
        (tmp / "report.html").write_text(redact(html_page(runs, stamp)))
        (tmp / "summary.md").write_text(redact("\n".join(["## loragate", "", *(run.summary for run in runs)])))
    return report_dir / stamp
