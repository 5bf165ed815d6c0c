"""A card's retention probes (loragate.card.retention) checked before any model loads: each named task is registered,
is answered by a causal base, has the tier that runs and computes the metric named; each text file exists and holds
text. The plugin calls this at start-up (a usage error, one line) and run_task again (train_fixtures.py, a library
caller). Light: no torch, so `pytest --help` and start-up stay fast."""

from __future__ import annotations

import difflib
from pathlib import Path

from loragate.card.retention import TaskProbe, TextProbe
from loragate.card.settings import CardError, TaskCard, Tier
from loragate.kinds import KINDS
from loragate.metrics.registry import METRICS
from loragate.tasks import TASKS, get_task

CAUSAL = "CAUSAL_LM"  # the PEFT task type of a kind whose base writes text: it can answer any prompt and score text


def text_path(card: TaskCard, probe: TextProbe) -> Path:
    """The probe's file, relative to the card's file as a card's data files are (the working directory for a card
    built in code)."""
    return (card.path.parent if card.path is not None else Path.cwd()) / probe.text_file


def text_lines(path: Path) -> list[str]:
    """The file's non-blank lines, each one scored passage."""
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def check_probes(card: TaskCard, tiers: list[Tier]) -> None:
    """A CardError naming the card, the probe's field and the fix for the first probe that cannot run at `tiers` (those
    of them the card has: a tier it lacks never runs)."""
    if not card.retention:
        return
    tiers = [tier for tier in tiers if tier in card.tiers]
    where = f"{card.path}: " if card.path is not None else f"task {card.name!r}: "
    if KINDS.get(card.kind).peft_task_type != CAUSAL:
        raise CardError(f"{where}retention: kind {card.kind} answers through a head trained for this card's task, "
                        f"which can neither answer another task's prompts nor score text; retention probes need a "
                        f"causal kind: remove `retention`")
    seen: dict[tuple[str, str], int] = {}
    for index, probe in enumerate(card.retention):
        field = f"retention[{index}]"
        key = (probe.label, probe.metric if isinstance(probe, TaskProbe) else "perplexity")
        if key in seen:
            raise CardError(f"{where}{field} repeats retention[{seen[key]}] ({probe.label}, {key[1]}): give each probe "
                            f"once")
        seen[key] = index
        problem = (task_problem(card, probe, tiers) if isinstance(probe, TaskProbe)
                   else file_problem(card, probe))
        if problem is not None:
            raise CardError(f"{where}{field}.{problem}")


def task_problem(card: TaskCard, probe: TaskProbe, tiers: list[Tier]) -> str | None:
    """What stops `probe` from running on this card's base, as "field: problem; fix", or None."""
    if probe.task == card.name:
        return (f"task: {probe.task} is this card's own task; a probe measures what the adapter costs outside it: "
                f"name another task, or a text_file")
    if probe.task not in TASKS:
        return f"task: {TASKS.unknown_message(probe.task)}"
    other = get_task(probe.task).card
    spec = KINDS.get(other.kind)
    if spec.peft_task_type != CAUSAL:
        return (f"task: {probe.task} is a {other.kind} task, answered by a head of its own that the base under test "
                f"does not have; probe a task of a causal kind, or a text_file")
    missing = [tier for tier in tiers if tier not in other.tiers]
    if missing:
        return (f"task: {probe.task}'s card has no tiers.{missing[0]}, which this run gates; its eval settings "
                f"(batch size, decoding) are read from there: add tiers.{missing[0]} to its card")
    if probe.metric not in METRICS:
        return f"metric: {METRICS.unknown_message(probe.metric)}"
    computed = spec.gated_metrics()
    if spec.metrics and probe.metric not in computed:
        close = difflib.get_close_matches(probe.metric, computed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return (f"metric: {probe.task} is a {other.kind} task, which does not compute {probe.metric!r}{hint}; it "
                f"computes {', '.join(computed)}")
    return None


def file_problem(card: TaskCard, probe: TextProbe) -> str | None:
    """What stops a text probe from being read, as "field: problem; fix", or None."""
    path = text_path(card, probe)
    if not path.is_file():
        return (f"text_file: {path} does not exist; paths in `retention` are relative to the card's file: ship the "
                f"general-text sample there, or fix the path")
    try:
        lines = text_lines(path)
    except (OSError, UnicodeDecodeError) as exc:
        return f"text_file: {path} cannot be read as UTF-8 text ({exc}); save it as UTF-8"
    if len(lines) < 2:
        return (f"text_file: {path} holds {len(lines)} non-blank line(s); the interval resamples lines, so give it "
                f"many (a few hundred passages of general text, one a line)")
    return None
