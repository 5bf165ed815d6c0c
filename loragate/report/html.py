"""report.html: one self-contained page (inline CSS, SVG figures as data URIs, no script, nothing fetched) whose every
cell of model output is escaped."""

from __future__ import annotations

import base64
import html
from typing import TYPE_CHECKING

from loragate.kinds import kind_of
from loragate.metrics.plots import Plot
from loragate.report.candidates import decision, excused, shown_value
from loragate.report.data_sources import data_line
from loragate.report.examples import LISTED, acted_examples, listing_heading
from loragate.report.retention import retention_section
from loragate.report.rows import (
    GatedMetric,
    base_label,
    constant_line,
    examples_text,
    gate_text,
    mode_section,
    notes,
    p_cell,
    partial_reasons,
    requirement,
    shown,
    table_rows,
)
from loragate.report.stability import agreements, least_stable, stability_heading
from loragate.report.throughput import throughput_lines

if TYPE_CHECKING:
    from loragate.report.writer import RenderedRun
    from loragate.run.task_run import TaskRun


MAX_EXAMPLES = LISTED  # rows per example table in report.html; report.json holds every example
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
.inconclusive { background: #6b46c1; } .skipped { background: #718096; }
.better { color: #2f855a; } .worse { color: #c53030; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; margin: 8px 0; }
dt { color: #4a5568; } dd { margin: 0; }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, monospace; white-space: pre-wrap; word-break: break-all; }
figure { margin: 10px 0 22px; } figure img { max-width: 100%; height: auto; border: 1px solid #e2e8f0; }
figcaption { color: #4a5568; font-size: 13px; }
"""


NUMERIC = ' class="num"'


def badge(verdict: bool | str) -> str:
    """PASS, FAIL, INCONCLUSIVE or PARTIAL (a verdict, or a gate's word: SKIPPED too), or a gate's pass/fail (a
    bool)."""
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


def delta_cell(delta: str, higher_is_better: bool = True) -> str:
    """A delta coloured by whether it is a gain in the metric's direction (green) or a loss (red): a fall in perplexity
    is green. A cell that is no number ("n/a": the metric is unavailable) as it is."""
    try:
        value = float(delta)
    except ValueError:
        return html.escape(delta)
    gain = value if higher_is_better else -value
    direction = "better" if gain > 0 else "worse" if gain < 0 else ""
    return f'<span class="{direction}">{html.escape(delta)}</span>' if direction else html.escape(delta)


def capped(rows: list[list[str]], what: str) -> tuple[list[list[str]], str]:
    if len(rows) <= MAX_EXAMPLES:
        return rows, ""
    return rows[:MAX_EXAMPLES], f"<p>First {MAX_EXAMPLES} of {len(rows)} {what}; report.json lists them all.</p>"


def html_run(run: TaskRun, gated: list[GatedMetric], figures: list[Plot]) -> str:
    """One task run: headline, base-vs-tuned table, gates with their evidence, figures, failing examples."""
    e = html.escape
    manifest = run.manifest
    facts = [("base", f"{base_label(run)} (fingerprint {run.base.fingerprint[:12]}, "
                      f"{run.base.parameters:,} parameters)"),
             ("adapter", shown(run.adapter_dir) + (f" (key {manifest.key}, seed {manifest.seed}, "
                                                   f"sha256 {manifest.adapter_sha256[:12]})" if manifest else "")),
             *((("LoRA", run.adapter_facts.summary()),) if run.adapter_facts else ()),
             ("trained this run", "yes" if run.trained is not None else "no"),
             ("test examples", examples_text(run)),
             ("ceiling", f"{run.ceiling:.3f}" if run.ceiling is not None else "n/a"),
             ("trivial predictor", constant_line(run).removeprefix("trivial predictor, ")),
             ("data", data_line(run).removeprefix("data: ")),
             *(("throughput", line) for line in throughput_lines(run)),
             *(("note", note) for note in notes(run))]
    rows = table_rows(run)
    metrics = html_table(["metric", "base", "tuned", "delta"],
                         [[m.strip(), b, t, delta_cell(d, up)] for m, b, t, d, up in rows],
                         numeric=frozenset({1, 2, 3}),
                         trusted=frozenset({3}), row_classes=["sub" if m.startswith("  ") else "" for m, *_ in rows])
    intervals = html_table(
        ["gate", "reference", "tuned", "delta", "CI", "required", "p / adjusted p (family)", "result"],
        [[g.check, f"{g.reference:.3f}", f"{g.tuned:.3f}", f"{g.delta:+.3f}",
          f"{g.confidence:.0%} [{g.low:+.3f}, {g.high:+.3f}]", requirement(g), p_cell(g), badge(g.status)]
         for g in gated],
        numeric=frozenset({1, 2, 3, 4}), trusted=frozenset({7}))
    gates = html_table(["result", "gate", "finding or evidence"],
                       [[badge(r.word), r.check, gate_text(r) or "-"] for r in run.gates], trusted=frozenset({0}))
    images = "".join(f'<figure><img src="data:image/svg+xml;base64,{base64.b64encode(p.svg.encode()).decode()}" '
                     f'alt="{e(p.file)}"><figcaption>{e(p.file)}: {e(p.caption)}</figcaption></figure>'
                     for p in figures)
    return f"""
<section>
<h2>{e(run.name)} {badge(run.verdict.status)}</h2>
{f"<p><strong>{e(run.verdict.line)}</strong></p>" if run.verdict.line != run.verdict.status else ""}
{"".join(f"<p>{e(reason)}</p>" for reason in partial_reasons(run))}
<dl>{''.join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in facts)}</dl>
<h3>Base vs tuned</h3>
{metrics}
{modes_html(run)}
{retention_html(run)}
<h3>Gated metrics: paired confidence intervals (right/wrong scores: Tango's score interval; others: the bootstrap)</h3>
{intervals}
<h3>Gates</h3>
{gates}
<h3>Figures</h3>
{images}{"" if manifest and manifest.loss_curve else "<p>No loss curve: the adapter has no loragate manifest.</p>"}
{acted_html(run)}
{stability_html(run)}
{wrong_examples(run)}
</section>"""


def stability_html(run: TaskRun) -> str:
    """A sampled run's least stable tuned examples: input and distinct answers with their counts; nothing where the
    run decoded greedily."""
    if agreements(run) is None:
        return ""
    listed = least_stable(run)
    title = f"<h3>{html.escape(stability_heading(run, listed))}</h3>"
    if not listed:
        return f"{title}\n<p>None: every example's samples agree.</p>"
    rows = [[ex.id, "<br>".join(html.escape(line) for line in ex.input.split("\n")), ex.answers,
             f"{ex.majority:.0%}", f"{ex.disagreement:.0%}"] for ex in listed]
    return f"{title}\n" + html_table(["id", "input", "answers (tuned)", "majority", "pairs differing"], rows,
                                      numeric=frozenset({3, 4}), trusted=frozenset({1}))


def retention_html(run: TaskRun) -> str:
    """The target's deltas beside each retention probe's, where the card lists probes."""
    section = retention_section(run)
    if section is None:
        return ""
    title, header, rows = section
    return (f"<h3>{html.escape(title)}</h3>\n"
            + html_table(header, [[*row[:-1], badge(row[-1])] for row in rows], numeric=frozenset({2, 3, 4, 5}),
                         trusted=frozenset({len(header) - 1})))


def acted_html(run: TaskRun) -> str:
    """Every tuned output that did not parse or is wrong, with its input (cut; report.json has it whole), gold, and
    base's and tuned's raw outputs, escaped, as code. The input's lines (one a field) are kept as lines."""
    acted = acted_examples(run)
    title = f"<h3>{html.escape(listing_heading(run, acted))}</h3>"
    if not acted:
        return f"{title}\n<p>None.</p>"
    rows, note = capped([[a.id, a.problem, "<br>".join(html.escape(line) for line in a.input_text().split("\n")),
                          a.gold, code(a.base_output), "<br>".join(map(code, a.tuned_outputs()))] for a in acted],
                        "examples")
    return (f"{title}\n" + html_table(["id", "problem", "input", "gold", "base output", "tuned output"], rows,
                                      trusted=frozenset({2, 4, 5})) + note)


def modes_html(run: TaskRun) -> str:
    """The free-vs-constrained table, where the run decoded both ways."""
    section = mode_section(run)
    if section is None:
        return ""
    title, header, rows = section
    return f"<h3>{html.escape(title)}</h3>\n" + html_table(header, rows, numeric=frozenset(range(1, len(header))))


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


def candidates_html(group: dict) -> str:
    """A task's candidates (loragate.report.candidates): the ranking, each verdict, and the decision."""
    rows = [[str(rank), entry["candidate"], shown_value(entry["value"]), badge(entry["verdict"])]
            for rank, entry in enumerate(group["ranking"], 1)]
    return (f"<section><h2>Candidates {html.escape(group['task'])}/{html.escape(group['tier'])} "
            f"{badge(group['verdict'])}</h2>\n<p>Ranked on {html.escape(group['metric'])} (pick: "
            f"{html.escape(group['pick'])}).</p>\n"
            + html_table(["rank", "candidate", group["metric"], "verdict"], rows, numeric=frozenset({0, 2}),
                         trusted=frozenset({3}))
            + f"\n<p>{html.escape(decision(group))}</p></section>\n")


def html_page(runs: list[RenderedRun], stamp: str, candidates: list[dict] | None = None) -> str:
    """report.html: one self-contained file (inline CSS, SVG figures as data URIs, no script, no external request).
    Candidates that another one outdid under --pick-best do not fail the page's verdict, as they do not fail the run."""
    candidates = candidates or []
    shipped = excused(candidates)
    counted = [run for run in runs if (run.task, run.tier, run.candidate) not in shipped]
    overall = "PASS" if all(run.passed for run in counted) else next(
        (status for status in ("FAIL", "INCONCLUSIVE") if any(run.verdict == status for run in counted)), "PARTIAL")
    body = "".join(candidates_html(group) for group in candidates) + "".join(run.html for run in runs)
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
