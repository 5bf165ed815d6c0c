"""Retention probes predicted and judged (the card's `retention:`, loragate.card.retention): each probe answered by
the base before the adapter wraps it (base_probes) and by the tuned model after (judge_probes), the same base under
both, so the paired interval measures the adapter alone.

A task probe is another registered task's test split, asked with that task's prompts and scored by its kind, as a run
of that task would (loragate.run.steps; sampled where its card samples). A text probe is the user's general text, one
passage a line, scored by each model's NLL per token; a line longer than ROW tokens is cut into rows."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from loragate.card.gate_settings import GateSettings
from loragate.card.retention import TaskProbe, TextProbe
from loragate.card.settings import TaskCard, Tier
from loragate.data.examples import Splits
from loragate.data.task import Task
from loragate.data.truncation import position_cap
from loragate.gates.checks import GateResult, judge
from loragate.gates.retention import LineLosses, PerplexityRise, probe_drop
from loragate.inference.engine import length_batches
from loragate.inference.predictions import Predictions
from loragate.models.bases import LoadedBase
from loragate.progress import reporter
from loragate.run.judging import score_by_input
from loragate.run.probes import text_lines, text_path
from loragate.run.steps import fit_inputs, for_base, predict, sampled_rows
from loragate.tasks import get_task
from loragate.training.lora import IGNORE, collate, row_losses

ROW = 512  # the most tokens of text scored in one row: bounds memory on a long line; the base's position cap if lower


@dataclass(frozen=True)
class BaseProbe:
    """One probe as the base answered it: a task probe's eval and test splits as the base reads them and the base's
    predictions of the test split, or a text probe's rows of token ids and the base's losses on them."""

    probe: TaskProbe | TextProbe
    task: Task | None  # the probe's task (its card, kind and eval settings); None for a text probe
    splits: Splits | None  # a task probe's, without train (eval: where its kind calibrates a threshold)
    rows: list[tuple[list[int], list[int]]]  # a text probe's (ids, labels) rows
    base: Predictions | LineLosses


@dataclass(frozen=True)
class ProbeResult:
    """A retention probe's gate (also among the run's gates), with what it was scored on, for the reports."""

    probe: str  # the task's name or the text file as the card names them
    source: str  # "task" or "text"
    n: int  # test examples, or rows of text
    gate: GateResult

    def to_json(self) -> dict:
        """The probe and its gate's numbers; a text probe's delta (and interval) is 1 - tuned/base, its rise negated."""
        numbers = self.gate.numbers
        return {"probe": self.probe, "source": self.source, "n": self.n, "check": self.gate.check,
                "passed": self.gate.passed, "finding": self.gate.finding, "evidence": self.gate.evidence,
                **({"metric": numbers.metric, "base": numbers.reference, "tuned": numbers.tuned,
                    "delta": numbers.delta, "low": numbers.low, "high": numbers.high, "required": numbers.required}
                   if numbers else {})}


def base_probes(card: TaskCard, tier: Tier, base: LoadedBase) -> list[BaseProbe]:
    """Every probe of `card` answered by the base; call before the adapter wraps it, once check_probes passed."""
    if not card.retention:
        return []
    with reporter().phase("predict retention probes (base)", "predicted retention probes (base)"):
        return [task_probe(probe, tier, base) if isinstance(probe, TaskProbe)
                else text_probe(card, probe, tier, base) for probe in card.retention]


def task_probe(probe: TaskProbe, tier: Tier, base: LoadedBase) -> BaseProbe:
    """The probe task's eval and test splits as this base reads them (its prompts, fitted to its card's max_length),
    the test split answered by the base. The run's --set overrides are the gated card's, not the probe's: its card is
    read as written."""
    task = get_task(probe.task)
    splits = task.load_splits()
    task.card, fitted, _ = fit_inputs(task, tier, for_base(task, Splits([], splits.eval, splits.test), base), base)
    return BaseProbe(probe, task, fitted, [], answers(task, tier, base.model, base, fitted))


def answers(task: Task, tier: Tier, model: torch.nn.Module, base: LoadedBase, splits: Splits) -> Predictions:
    return predict(task, model, base, splits.test, tier, False, f"retention {task.card.name}", splits.eval)


def text_probe(card: TaskCard, probe: TextProbe, tier: Tier, base: LoadedBase) -> BaseProbe:
    width = min(ROW, position_cap(base.model) or ROW)
    rows = text_rows(base.tokenizer, text_lines(text_path(card, probe)), width)
    losses = row_nll(base.model, base.tokenizer, rows, card.tier(tier).eval.batch_size)
    return BaseProbe(probe, None, None, rows, losses)


def text_rows(tokenizer: PreTrainedTokenizerBase, lines: list[str], width: int) -> list[tuple[list[int], list[int]]]:
    """(ids, labels) rows of at most `width` tokens: each line as the tokenizer encodes it (its BOS first, where it
    adds one), every token after the first scored once. A longer line is cut into rows that overlap by one token, the
    last of a row being the first, unscored, of the next."""
    rows = []
    for ids in tokenizer(lines).input_ids:
        for start in range(0, max(len(ids) - 1, 0), width - 1):
            chunk = ids[start : start + width]
            rows.append((chunk, [IGNORE, *chunk[1:]]))
    return rows


@torch.no_grad()
def row_nll(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, rows: list[tuple[list[int], list[int]]],
            batch_size: int) -> LineLosses:
    """Per row, in row order: the summed NLL of its scored tokens and their count."""
    model.eval()
    device = next(model.parameters()).device
    nll, tokens = np.zeros(len(rows)), np.zeros(len(rows), dtype=np.int64)
    for batch_rows in length_batches([len(ids) for ids, _ in rows], batch_size):
        batch = collate([rows[row] for row in batch_rows], tokenizer.pad_token_id)
        sums, counts = row_losses(model, {name: value.to(device) for name, value in batch.items()})
        nll[batch_rows], tokens[batch_rows] = sums.float().cpu().numpy(), counts.cpu().numpy()
    return LineLosses(nll, tokens)


def as_judged(results: list[ProbeResult], gates: list[GateResult]) -> list[ProbeResult]:
    """`results` with each gate as the run's family judged it (loragate.gates.family): its p-value adjusted with the
    run's other comparisons."""
    judged = {result.check: result for result in gates}
    return [replace(result, gate=judged[result.gate.check]) for result in results]


def judge_probes(probes: list[BaseProbe], tier: Tier, model: torch.nn.Module, base: LoadedBase,
                 settings: GateSettings, batch_size: int) -> list[ProbeResult]:
    """Every probe answered by the tuned `model` and judged against the base's answers (loragate.gates.retention),
    at the gated card's confidence, resamples and seed; `batch_size` is the gated card's eval batch for text."""
    if not probes:
        return []
    with reporter().phase("predict retention probes (tuned)", "predicted retention probes (tuned)"):
        return [judged(probe, tier, model, base, settings, batch_size) for probe in probes]


def judged(probe: BaseProbe, tier: Tier, model: torch.nn.Module, base: LoadedBase, settings: GateSettings,
           batch_size: int) -> ProbeResult:
    if probe.task is None:
        tuned = row_nll(model, base.tokenizer, probe.rows, batch_size)
        check = PerplexityRise(probe.probe.label, probe.probe.max_rise, settings)
        return ProbeResult(probe.probe.label, "text", len(probe.rows), check.judge(tuned, probe.base))
    task, rows = probe.task, sampled_rows(probe.task, tier, probe.splits.test)
    tuned = answers(task, tier, model, base, probe.splits)
    check = probe_drop(probe.probe.label, probe.probe.metric, probe.probe.max_drop, settings)
    result = judge(check, score_by_input(task, rows, tuned), score_by_input(task, rows, probe.base))
    return ProbeResult(probe.probe.label, "task", len(probe.splits.test), result)
