"""The base-vs-tuned table people read, and reports/<run>/ written atomically: report.json (numbers and
per-example predictions, reusable as a baseline), report.md, report.html (self-contained), summary.md (for a
GitHub job summary) and the figures as SVG files.

Each run is first rendered into plain data (RenderedRun), then the files are assembled from the renderings: under
pytest-xdist the workers render their runs and the controller writes one report of all of them."""

from __future__ import annotations

import hashlib
import html
import json
import subprocess
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loragate.atomic import atomic_dir
from loragate.gates.result import Comparison
from loragate.gates.verdict import case_name
from loragate.kinds import KINDS, kind_of
from loragate.metrics import plots
from loragate.metrics.plots import Plot
from loragate.redact import redact
from loragate.report.candidates import group_markdown
from loragate.report.data_sources import data_json, data_line
from loragate.report.examples import markdown_listing, test_inputs
from loragate.report.html import badge, html_page, html_run
from loragate.report.retention import retention_json, retention_section
from loragate.report.rows import (
    GatedMetric,
    adapter_label,
    base_label,
    constant_line,
    examples_text,
    gate_text,
    gated_metrics,
    gated_mode,
    headline,
    metric_order,
    metric_values,
    mode_section,
    notes,
    p_cell,
    partial_reasons,
    requirement,
    table_rows,
    text_table,
)
from loragate.report.stability import stability_json, stability_markdown
from loragate.report.throughput import throughput_json, throughput_lines

if TYPE_CHECKING:  # loragate.run.task_run loads torch and transformers: an xdist controller only assembles renderings
    from loragate.run.task_run import TaskRun

def markdown_section(run: TaskRun, figure_files: list[str]) -> str:
    """The run's part of report.md, with its figures (SVG file names beside it) as images."""
    parts = [f"## {headline(run)}", "", "| metric | base | tuned | delta |", "|---|---:|---:|---:|"]
    parts += [f"| {m.strip()} | {b} | {t} | {d} |" for m, b, t, d, _ in table_rows(run)]
    parts += ["", constant_line(run), "", data_line(run), "", "**Throughput**", ""]
    parts += [f"- {line}" for line in throughput_lines(run)]
    for section in (mode_section(run), retention_section(run)):
        if section is not None:
            title, header, rows = section
            parts += ["", f"**{title}**", "", f"| {' | '.join(header)} |", "|---|" + "---:|" * (len(header) - 1)]
            parts += [f"| {' | '.join(row)} |" for row in rows]
    parts += ["", *[f"- {r.word} {r.check}" + (f": {gate_text(r)}" if gate_text(r) else "") for r in run.gates]]
    parts += [f"- note: {note}" for note in notes(run)]
    parts += [f"- **PARTIAL**: {reason}" for reason in partial_reasons(run)]
    parts += markdown_listing(run)
    parts += stability_markdown(run)
    parts += ["", *[f"![{name}]({name})" for name in figure_files]]
    parts.append("")
    return "\n".join(parts)


def summary_section(run: TaskRun, intervals: list[GatedMetric]) -> str:
    """The run's compact table in summary.md (for $GITHUB_STEP_SUMMARY): verdict, gated metrics with CIs,
    failed gates (and those left INCONCLUSIVE under `warn`, marked)."""
    failed = [r for r in run.gates if r.finding]
    parts = [f"### {run.name}: {run.verdict.line}", "",
             f"base `{base_label(run)}`, adapter `{adapter_label(run)}`, n={examples_text(run)}", "",
             constant_line(run), "", data_line(run), "",
             "| gate | reference | tuned | delta | CI | required | p / adjusted p (family) | result |",
             "|---|---:|---:|---:|---|---|---|---|"]
    parts += [f"| {g.check} | {g.reference:.3f} | {g.tuned:.3f} | {g.delta:+.3f} | "
              f"{g.confidence:.0%} [{g.low:+.3f}, {g.high:+.3f}] | {requirement(g)} | {p_cell(g)} | "
              f"{'PASS' if g.status == 'PASS' else f'**{g.status}**'} |" for g in intervals]
    parts.append("")
    if failed:
        parts += [f"- **{r.word}**{' (allowed: gates.inconclusive: warn)' if r.warned else ''} {r.check}: {r.finding}"
                  for r in failed]
    else:
        changed = run.verdict.gates_overridden
        parts.append(f"All {len(run.gates)} gates passed" + (f", under gates changed by --set: {', '.join(changed)}."
                                                              if changed else "."))
    parts += [f"- **{run.verdict.status}**: {reason}" for reason in run.verdict.reasons
              if reason.startswith(("gate test failed", "gate test inconclusive")) or run.verdict.status == "PARTIAL"]
    parts += [f"- note: {note}" for note in notes(run)]
    parts.append("")
    return "\n".join(parts)


def predictions_json(run: TaskRun) -> list[dict]:
    """Per example: its input whole (the fields the prompt template reads), what the kind records (gold, base and
    tuned label, None where the output did not parse; or the references and each per-example score) and both raw
    outputs, so a later run can compare against this report."""
    base, tuned = run.base_predictions, run.tuned_predictions
    if base.ids != tuned.ids:
        raise ValueError(f"{run.name}: base and tuned predictions cover different examples; cannot pair them")
    inputs = test_inputs(run)
    return [{"id": i, "input": inputs.get(i), **record, "base_output": base_out, "tuned_output": tuned_out}
            for i, record, base_out, tuned_out in zip(tuned.ids, kind_of(run.task.card.kind).example_records(run),
                                                      base.outputs, tuned.outputs)]


def run_json(run: TaskRun, intervals: list[GatedMetric]) -> dict:
    order = metric_order(run)
    return {
        "task": run.task.card.name,
        "tier": run.tier,
        "candidate": run.candidate,
        "card_sha256": card_sha256(run),
        "passed": run.verdict.passed,
        "verdict": run.verdict.status,
        "verdict_reasons": list(run.verdict.reasons),
        "gates_overridden": list(run.verdict.gates_overridden),
        "base": {"name": run.base.name, "quantization": run.base.quantization, "fingerprint": run.base.fingerprint,
                 "parameters": run.base.parameters,
                 "pad_policy": run.base.pad_policy},
        "adapter": {"dir": str(run.adapter_dir) if run.adapter_dir else None,
                    "key": run.manifest.key if run.manifest else None, "trained_this_run": run.trained is not None,
                    "sha256": run.manifest.adapter_sha256 if run.manifest else None,
                    **(run.adapter_facts.to_json() if run.adapter_facts else {})},
        "data_hash": run.splits.data_hash(),
        "data": data_json(run),
        "overrides": list(run.overrides),
        "inputs": run.inputs.to_json() if run.inputs else None,
        "ceiling": run.ceiling,
        "decoding": run.decoding,
        "metrics": {"base": run.base_metrics.to_json(), "tuned": run.tuned_metrics.to_json()},
        "constrained": constrained_json(run),
        "retention": retention_json(run),
        "trivial_predictor": {"name": run.constant.name, "metrics": metric_values(run.constant_metrics, order)},
        "subgroups": [{"name": group.name, "n": group.n, "base": metric_values(group.base, order),
                       "tuned": metric_values(group.tuned, order)} for group in run.subgroups],
        "gated": [asdict(row) for row in intervals],
        "gates": [{"check": r.check, "passed": r.passed, "status": r.status, "finding": r.finding,
                   "evidence": r.evidence, "comparisons": [comparison_json(c) for c in r.comparisons]}
                  for r in run.gates],
        "invalid_tuned_outputs": [{"id": i, "output": o, "reason": r} for i, o, r in run.tuned_predictions.invalid()],
        "predictions": predictions_json(run),
        "sampling": stability_json(run),
        "throughput": throughput_json(run),
        "eval_batch_size": {"card": run.tuned_predictions.card_batch_size, "base": run.base_predictions.batch_size,
                            "tuned": run.tuned_predictions.batch_size},
        "notes": notes(run),
        "seconds": run.seconds,
    }


def card_sha256(run: TaskRun) -> str:
    """The card as gated (its --set changes included), hashed: shards of one release merge only where it is the same
    (loragate.report.merge)."""
    card = json.dumps(run.task.card.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(card.encode()).hexdigest()


def constrained_json(run: TaskRun) -> dict | None:
    """Where the run decoded both ways: every metric of base and tuned in each mode, which mode the gates read, the
    tuned model's paired deltas free -> constrained, and the reported mode's per-example outputs (the gated mode's
    are under "predictions"). None where the run decoded free only."""
    if run.reported is None:
        return None
    reported, order = run.reported, metric_order(run)
    modes = {mode.mode: mode for mode in (gated_mode(run), reported)}
    return {
        "constraint": run.constraint.what,
        "gated": run.decoding,
        **{name: {"base": metric_values(mode.base_metrics, order),
                  "tuned": metric_values(mode.tuned_metrics, order)}
           for name, mode in sorted(modes.items())},
        "tuned_deltas": [asdict(row) for row in run.mode_deltas],
        "reported_metrics": {"base": reported.base_metrics.to_json(), "tuned": reported.tuned_metrics.to_json()},
        "reported_outputs": [{"id": i, "base_output": b, "tuned_output": t, "tuned_valid": p.valid} for i, b, t, p in
                             zip(reported.tuned_predictions.ids, reported.base_predictions.outputs,
                                 reported.tuned_predictions.outputs, reported.tuned_predictions.parsed)],
    }


def run_plots(run: TaskRun) -> list[Plot]:
    """The kind's figures (confusion matrices and per-class bars for labels) and, when the adapter has a loragate
    manifest, the loss curve; a candidate's files carry its name (its task's others are written beside them)."""
    prefix = "-".join(part for part in (run.task.card.name, run.tier, run.candidate) if part)
    result = kind_of(run.task.card.kind).figures(run, prefix)
    curve = run.manifest.loss_curve if run.manifest else None
    if curve:
        eval_loss = run.manifest.metrics_at_train.get("eval_loss")
        unit, explained = LOSS_UNITS.get(KINDS.get(run.task.card.kind).peft_task_type, OWN_LOSS)
        result.append(Plot(f"{prefix}-loss.svg", f"Training loss per optimizer step (from the adapter's manifest), "
                           f"{explained}; the dots are the eval split's loss while and after training.",
                           plots.loss_svg(curve, eval_loss, run.manifest.eval_curve, unit)))
    return result


# What a kind's training loss is per, by its PEFT task type, and what the loss figure's caption says of it: only a
# causal model's loss per answer token has a perplexity; a classifier head's is a cross-entropy per example.
LOSS_UNITS = {
    "CAUSAL_LM": (plots.TOKEN_LOSS, "in nats per answer token, perplexity (its exp) on the right axis"),
    "SEQ_CLS": ("nats per example", "the classifier head's cross-entropy in nats per example (no perplexity: no "
                "token is predicted)"),
    "QUESTION_ANS": ("nats per window", "the span head's cross-entropy in nats per window, start and end averaged "
                     "(no perplexity: no token is predicted)"),
}
OWN_LOSS = ("nats", "the model's own training loss in nats")  # a project's kind of another task type


def comparison_json(comparison: Comparison) -> dict:
    """One comparison of a gate for report.json: its interval and margin, raw and adjusted p, the family's size, its
    outcome, and the test-set size that would decide it."""
    return {**asdict(comparison), "outcome": comparison.outcome}


def card_gates(run: TaskRun) -> str:
    """The card's gates in one word: PASS (INCONCLUSIVE ones allowed by `warn` included), INCONCLUSIVE where every
    gate that did not pass could not be decided, else FAIL."""
    missed = [r for r in run.gates if not r.passed]
    return "PASS" if not missed else "INCONCLUSIVE" if all(r.inconclusive for r in missed) else "FAIL"


def junit_properties(run: TaskRun) -> list[tuple[str, object]]:
    """What the JUnit XML carries for each test of this run: task, tier, whether the card's gates passed, and the
    card's gated metrics. The verdict, known only once every test ran, is a suite property
    (`loragate.verdict.<task>.<tier>`)."""
    properties: list[tuple[str, object]] = [("loragate.task", run.task.card.name), ("loragate.tier", run.tier),
                                            ("loragate.card_gates", card_gates(run))]
    if run.candidate:
        properties.append(("loragate.candidate", run.candidate))
    properties += [(f"loragate.inconclusive.{r.check}", r.finding) for r in run.gates if r.inconclusive]
    sampling = run.task.card.tier(run.tier).eval.sampling
    if sampling is not None:  # the gated metrics below average each example's samples
        properties.append(("loragate.sampling", sampling.line()))
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
    verdict: str  # PASS, FAIL, INCONCLUSIVE or PARTIAL (loragate.gates.verdict)
    table: str  # text_table: what the terminal shows
    json: dict[str, Any]  # the run's entry in report.json, through JSON and back: builtins only
    markdown: str  # its section of report.md
    html: str  # its section of report.html
    summary: str  # its section of summary.md
    plots: tuple[Plot, ...]
    render_error: str | None = None  # why this run could not be rendered (then it fails)
    candidate: str = ""  # its name among the task's candidates; "" where one adapter was gated

    @property
    def name(self) -> str:
        return case_name(self.task, self.tier, self.candidate)

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
                       plots=tuple(figures), candidate=run.candidate)


def render_or_explain(run: TaskRun) -> RenderedRun:
    """`render(run)`, or where rendering raised, a FAIL entry that names the error: one run's broken rendering
    must cost neither the other runs' reports nor the session's verdict."""
    try:
        return render(run)
    except Exception as exc:  # noqa: BLE001 - reported in every file and failing the run, never swallowed
        error = f"{run.name}: FAIL  its report could not be rendered: {type(exc).__name__}: {exc}"
        section = f"## {run.name}: FAIL\n\n{error}\n"
        return RenderedRun(task=run.task.card.name, tier=run.tier, verdict="FAIL", table=error,
                           json={"task": run.task.card.name, "tier": run.tier, "candidate": run.candidate,
                                 "passed": False, "render_error": error},
                           markdown=section, html=f"<section><h2>{html.escape(run.name)} {badge(False)}</h2>"
                                                  f"<p>{html.escape(error)}</p></section>",
                           summary=section.replace("## ", "### ", 1), plots=(), render_error=error,
                           candidate=run.candidate)


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


RENDERED = "rendered.json"  # beside report.json: RenderedRun.to_builtins of each run


def write_rendered(runs: list[RenderedRun], report_dir: Path, source: dict | None = None,
                   candidates: list[dict] | None = None) -> Path:
    """reports/<UTC time>/ with report.json, report.md, report.html, summary.md, rendered.json and the SVG figures,
    renamed into place together. `source` is report.json's record of the code the runs were made from (by default
    this checkout's: source_state); a merge of shards passes theirs. `candidates`: each task gated with candidates,
    ranked (loragate.report.candidates), after its runs."""
    candidates = candidates or []
    sections = [group_markdown(group) for group in candidates]
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    with atomic_dir(report_dir / stamp) as staged:
        tmp = staged.path
        for plot in (plot for run in runs for plot in run.plots):
            (tmp / plot.file).write_text(plot.svg)
        report = {"source": source_state() if source is None else source, "runs": [run.json for run in runs],
                  "candidates": candidates}
        (tmp / "report.json").write_text(redact(json.dumps(report, indent=2) + "\n"))
        (tmp / "report.md").write_text(redact("\n".join(["# loragate report", "", *sections,
                                                          *(run.markdown for run in runs)])))
        (tmp / "report.html").write_text(redact(html_page(runs, stamp, candidates)))
        (tmp / "summary.md").write_text(redact("\n".join(["## loragate", "", *sections,
                                                           *(run.summary for run in runs)])))
        # every run's sections as rendered, so that `python -m loragate merge` can write one report of many shards
        (tmp / RENDERED).write_text(redact(json.dumps([run.to_builtins() for run in runs]) + "\n"))
    return report_dir / stamp
