"""What every renderer of a run shows (the terminal table, report.md, report.html, summary.md): the base-vs-tuned
rows read from the metric registry, the headline with the verdict, the notes, and the metric gates' numbers."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from loragate.gates.checks import DeltaNumbers, GateResult
from loragate.kinds import KINDS
from loragate.metrics.agreement import agreement
from loragate.metrics.registry import METRICS, MetricSpec, in_table_order
from loragate.metrics.scores import Metrics
from loragate.report.retention import retention_section
from loragate.run.decoding_modes import CONSTRAINED, FREE, Decoded, ModeDelta

if TYPE_CHECKING:  # loragate.run.task_run loads torch and transformers
    from loragate.run.task_run import TaskRun


def metric_order(run: TaskRun) -> list[MetricSpec]:
    """Every registered metric in the order the run's tables show them: its kind's own first (KindSpec.metrics)."""
    return in_table_order(KINDS.get(run.task.card.kind).metrics)


class Row(NamedTuple):
    """One row of the base-vs-tuned table, and which way its delta is good: a fall in perplexity is a gain."""

    metric: str
    base: str
    tuned: str
    delta: str
    higher_is_better: bool = True


def table_rows(run: TaskRun) -> list[Row]:
    """(metric, base, tuned, delta, direction) rows: each registered metric the run computed, in the registry's
    order, with the rows the metrics add under it (per class under accuracy, in its direction); an unavailable metric
    as n/a (its reason is a note); then the empty outputs (fewer is better). A sub-row's title starts with two
    spaces."""
    base, tuned = run.base_metrics, run.tuned_metrics
    rows = []
    for spec in metric_order(run):
        if not spec.shown:
            continue
        title = ("  " if spec.sub else "") + spec.title
        better = spec.higher_is_better
        if spec.name in tuned.unavailable:
            rows.append(Row(title, "n/a", "n/a", "n/a", better))
        elif tuned.has(spec.name):
            before, after = base.value(spec.name), tuned.value(spec.name)
            rows.append(Row(title, spec.cell(before), spec.cell(after), f"{after - before:+.3f}", better))
            rows += [Row(f"  {sub}", *cells, better) for sub, *cells in tuned.sub_rows(spec.name, base)]
    rows.append(Row("empty outputs", str(base.empty_outputs), str(tuned.empty_outputs),
                    f"{tuned.empty_outputs - base.empty_outputs:+d}", higher_is_better=False))
    return rows + subgroup_rows(run)


def subgroup_metrics(run: TaskRun) -> list[str]:
    """The metrics shown per subgroup: those the card's subgroup gates name, else its gated metrics."""
    gates = run.task.card.gates
    return list(dict.fromkeys([*gates.max_subgroup_drop, *gates.min_subgroup_score])) or list(gates.min_delta)


def subgroup_rows(run: TaskRun) -> list[Row]:
    """One row per subgroup and shown metric: "has answer (n=40): F1"."""
    rows = []
    for group in run.subgroups:
        for metric in subgroup_metrics(run):
            if metric in group.tuned.unavailable or not group.tuned.has(metric):
                continue
            spec, before, after = METRICS.get(metric), group.base.value(metric), group.tuned.value(metric)
            rows.append(Row(f"{group.name} (n={group.n}): {spec.title}", spec.cell(before), spec.cell(after),
                            f"{after - before:+.3f}", spec.higher_is_better))
    return rows


def constant_line(run: TaskRun) -> str:
    """The trivial predictor's numbers on the metrics tuned must beat it on, shown under base and tuned."""
    values = [f"{METRICS.get(metric).title} {run.constant_metrics.value(metric):.3f}"
              for metric in run.task.card.gates.over_trivial() if metric not in run.constant_metrics.unavailable]
    return f"trivial predictor, {run.constant.name}: {', '.join(values) or 'no comparable metric'}"


def metric_values(metrics: Metrics, order: list[MetricSpec]) -> dict[str, float]:
    """Every registered metric `metrics` computed, by name, in `order` (metric_order)."""
    return {spec.name: metrics.value(spec.name) for spec in order
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


def adapter_label(run: TaskRun) -> str:
    """The adapter's directory with its LoRA shape and checksum (r, alpha, modules, sha256): what the gate judged."""
    return shown(run.adapter_dir) + (f" ({run.adapter_facts.summary()})" if run.adapter_facts else "")


def headline(run: TaskRun) -> str:
    adapter = adapter_label(run)
    ceiling = f", ceiling {run.ceiling:.3f}" if run.ceiling is not None else ""
    return (f"{run.name}: {run.verdict.line}  base {base_label(run)}, adapter {adapter}, "
            f"n={examples_text(run)}{ceiling}")


def examples_text(run: TaskRun) -> str:
    """How many test examples the metrics count: "30", or "30 x 5 samples" where the run sampled."""
    sampling = run.task.card.tier(run.tier).eval.sampling
    if sampling is None:
        return str(run.tuned_metrics.n)
    return f"{run.tuned_metrics.n // sampling.samples} x {sampling.samples} samples"


def gate_text(result: GateResult) -> str | None:
    """A failure's finding (which carries its evidence and p-values), else the evidence of the pass with each of its
    comparisons' raw and family-adjusted p-values."""
    if result.finding:
        return result.finding
    judged = "; ".join(f"{c.what}: {c.evidence()}" for c in result.comparisons)
    return f"{result.evidence}; {judged}" if result.evidence and judged else result.evidence or judged or None


def family_notes(run: TaskRun) -> list[str]:
    """The family the run's statistical gates were judged in: its size, correction and level."""
    comparisons = [c for r in run.gates for c in r.comparisons]
    if not comparisons:
        return []
    gates = run.task.card.gates
    how = ("Holm's step-down" if gates.correction == "holm" else "no correction, each alone (gates.correction: none)")
    drops = max((c.fail_family for c in comparisons if c.fail_p_value is not None), default=0)
    claims = "1 drop's FAIL claim" if drops == 1 else f"{drops} drops' FAIL claims"
    fails = f"; the {claims} (a drop beyond the margin) a second family, judged alike" if drops else ""
    size = comparisons[0].family  # the run's own, or all its task's candidates' where it is one of several
    among = (f" ({len(comparisons)} of this candidate's among all {run.task.card.name}/{run.tier} candidates', "
             f"under --pick-best or candidates.pick: best)" if size > len(comparisons) else "")
    return [f"family: {size} comparisons judged together{among}, {how} at alpha {1 - gates.confidence:.2g}"
            f"{fails}; deterministic checks (validity, leakage, floors) and deltas judged on the point are not in it"]


def unavailable_notes(run: TaskRun) -> list[str]:
    """Each metric this machine could not compute, with the reason (METEOR without WordNet): shown as n/a in
    every table, and why, never computed some other way."""
    missing = {**run.base_metrics.unavailable, **run.tuned_metrics.unavailable}
    return [f"{METRICS.get(metric).title} unavailable: {reason}" for metric, reason in missing.items()]


def notes(run: TaskRun) -> list[str]:
    return [*card_notes(run), *family_notes(run), *run.adapter_notes, *run.health_notes(), *decoding_notes(run),
            *sampling_notes(run),
            *unavailable_notes(run), *batch_notes(run)]


def sampling_notes(run: TaskRun) -> list[str]:
    """What a sampled run's gates read (eval.sampling), and how often base's and tuned's samples agree."""
    sampling = run.task.card.tier(run.tier).eval.sampling
    if sampling is None:
        return []
    k = sampling.samples
    return [f"{sampling.line()}: every metric averages the {k} samples of each test example and the gates read "
            f"them; intervals count each example once with all its samples (right/wrong scores: the score interval's "
            f"counts divided by the design effect; other metrics: a cluster bootstrap)",
            *(f"agreement of {who}'s samples: {agreement(predictions, k).line()}"
              for who, predictions in (("base", run.base_predictions), ("tuned", run.tuned_predictions)))]


def decoding_notes(run: TaskRun) -> list[str]:
    """Which decoding the gates read, where the run decoded both ways."""
    if run.reported is None:
        return []
    return [f"decoding: the gates read the {run.decoding} outputs (the card's eval.constrain); the {run.reported.mode} "
            f"outputs ({run.constraint.what}) are reported beside them, not gated"]


def gated_mode(run: TaskRun) -> Decoded:
    """The run's predictions and metrics in the mode the gates read."""
    return Decoded(run.decoding, run.base_predictions, run.tuned_predictions, run.base_metrics, run.tuned_metrics)


def mode_section(run: TaskRun) -> tuple[str, list[str], list[list[str]]] | None:
    """(title, header, rows) of the free-vs-constrained table, where the run decoded both ways; else None."""
    if run.reported is None:
        return None
    header, rows = mode_table(gated_mode(run), run.reported, run.mode_deltas, metric_order(run))
    return f"Free vs constrained decoding ({run.constraint.what}; the gates read {run.decoding})", header, rows


def aligned(rows: list[list[str]] | list[tuple[str, ...]]) -> list[str]:
    """Rows as text lines: the first column left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [row[0].ljust(widths[0]) + "".join("  " + cell.rjust(w) for cell, w in zip(row[1:], widths[1:]))
            for row in rows]


def card_notes(run: TaskRun) -> list[str]:
    """The --set overrides the card was run with, what its gates turned off on purpose, and how its examples were
    fitted to train.max_length where prompts were cut."""
    notes = [f"card overrides: {' '.join(f'--set {text}' for text in run.overrides)}"] if run.overrides else []
    notes += run.task.card.gates.waived()
    fitted = run.inputs.note() if run.inputs else None
    return notes + ([f"inputs: {fitted}"] if fitted else [])


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
    lines = [headline(run), *("  " + line for line in aligned([header, *(row[:4] for row in table_rows(run))]))]
    lines.append(f"  {constant_line(run)}")
    for section in (mode_section(run), retention_section(run)):
        if section is not None:
            title, section_header, section_rows = section
            lines += [f"  {title}", *("    " + line for line in aligned([section_header, *section_rows]))]
    lines += [f"  gate {r.status:<4} {r.check}" + (f": {gate_text(r)}" if gate_text(r) else "")
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
    status: str = "FAIL"  # PASS, FAIL or INCONCLUSIVE (GateResult.word)
    p_value: float | None = None  # raw, of the null that the gate's claim is false (a declared drop's FAIL claim
    # where it FAILs); None: judged on the point
    adjusted_p: float | None = None  # after the family's correction (the raw p under gates.correction: none)
    family: int | None = None  # comparisons in the run's family (its FAIL claims, for a declared drop)


def gated_metrics(run: TaskRun) -> list[GatedMetric]:
    """The metric gates' numbers as the gates computed them (nothing is judged again here); a gate on an
    unavailable metric has none and shows as a failed gate with its reason."""
    rows = []
    for r in run.gates:
        if r.numbers:
            raw, adjusted, family = r.comparisons[0].shown() if r.comparisons else (None, None, None)
            rows.append(GatedMetric(**asdict(r.numbers), check=r.check, passed=r.passed, status=r.word,
                                    p_value=raw, adjusted_p=adjusted, family=family))
    return rows


def p_cell(row: GatedMetric) -> str:
    """The raw and the adjusted p-value, and the family's size: "0.0002 / 0.0014 (7)"; "-" on the point."""
    return "-" if row.p_value is None else f"{row.p_value:.2g} / {row.adjusted_p:.2g} ({row.family})"


def requirement(row: GatedMetric) -> str:
    what = "CI lower bound" if row.judged_on == "lower_bound" else "delta"
    return f"{what} >= {row.required + 0.0:+.3f}"  # + 0.0: a max_regression of 0 reads +0.000, not -0.000


def delta_cell(row: ModeDelta) -> str:
    """The delta, with its paired interval where there is one."""
    interval = f" [{row.low:+.3f}, {row.high:+.3f}]" if row.low is not None else ""
    return f"{row.delta:+.3f}{interval}"


def mode_table(gated: Decoded, reported: Decoded, deltas: list[ModeDelta],
               order: list[MetricSpec]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the free-vs-constrained table: every registered metric both modes computed, for base and
    tuned in each mode, and the tuned model's paired delta free -> constrained (gated metrics with their interval)."""
    free, constrained = (gated, reported) if gated.mode == FREE else (reported, gated)
    by_metric = {row.metric: row for row in deltas}
    rows = []
    for spec in order:
        if spec.sub or not spec.shown or any(spec.name in m.unavailable or not m.has(spec.name)
                                              for m in (free.tuned_metrics, constrained.tuned_metrics)):
            continue
        values = [m.value(spec.name) for m in (free.base_metrics, constrained.base_metrics, free.tuned_metrics,
                                                constrained.tuned_metrics)]
        delta = delta_cell(by_metric[spec.name]) if spec.name in by_metric else f"{values[3] - values[2]:+.3f}"
        rows.append([spec.title, *(spec.cell(value) for value in values), delta])
    rows.append(["empty outputs", *(str(m.empty_outputs) for m in (free.base_metrics, constrained.base_metrics,
                                                                   free.tuned_metrics, constrained.tuned_metrics)),
                 f"{constrained.tuned_metrics.empty_outputs - free.tuned_metrics.empty_outputs:+d}"])
    free_title, constrained_title = (f"{mode} (gated)" if mode == gated.mode else mode for mode in (FREE, CONSTRAINED))
    return ["metric", f"base {free_title}", f"base {constrained_title}", f"tuned {free_title}",
            f"tuned {constrained_title}", "tuned delta free -> constrained"], rows
