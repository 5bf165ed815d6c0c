"""The fleet part of benchmarks/candidates.py (issue 34, point 4): many tasks, one adapter each (a customer each), on
one base, gated in one pass with the tasks' batches shared (loragate.inference.shared_batches) against the same pass
with each task predicted on its own, one after another, as run_pass predicts a pass of one task.

The fleet is tests/run/test_fleet.py's project (customers routing items to two of four teams, each by its own rule),
on its own tiny base or on that base rebuilt larger (BASES); each customer's adapter is trained and stored in an
untimed warm-up pass; then alternated rounds of the two ways, medians of the base's predictions, the adapters' and the
whole pass, and every task's base and adapter predictions (outputs and logits) checked equal between them in every
round.
"""

from __future__ import annotations

import csv
import shutil
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from peft import PeftModel

from benchmarks.timed_runs import Timed, mib, middle, timed
from loragate.card.options import RunOptions
from loragate.card.settings import Tier, TinyBase
from loragate.models.bases import LoadedBase, build_tiny_causal
from loragate.run import candidates as pass_module
from loragate.run.candidates import Member, outcome, run_pass, tuned_outputs
from loragate.run.task_run import BaseOutputs, Laps, Outputs, predict_base
from loragate.tasks import TASKS
from loragate.tasks.card_task import CardTaskEntry
from tests.run.test_fleet import write_fleet

BASES = {  # the fleet's base: test_fleet's own (None), whose batches cost little beside a call, or a larger one
    "small (hidden 32, 1 layer)": None,
    "larger (hidden 256, 4 layers)": TinyBase(hidden_size=256, intermediate_size=512, num_hidden_layers=4,
                                              num_attention_heads=4, vocab_size=128, seed=0),
}


def fleet_project(root: Path, customers: int, spec: TinyBase | None) -> list[str]:
    """test_fleet's project of `customers` tasks under `root`, their one base rebuilt as `spec` from the same text
    (unless None); the tasks' names."""
    names = write_fleet(root, customers)
    if spec is None:
        return names
    texts = []
    for name in names:
        for split in ("train", "test"):
            with open(root / "data" / name / f"{split}.csv", newline="") as rows:
                texts += [f"Item: {row['text']}\nTeam: {row['team']}" for row in csv.DictReader(rows)]
    shutil.rmtree(root / "base")
    build_tiny_causal(spec, texts, root / "base")
    return names


@contextmanager
def registered(root: Path, names: list[str]) -> Iterator[None]:
    """The fleet's cards registered as tasks, for as long as it is timed (the next fleet reuses their names)."""
    entries = dict(TASKS._entries)
    for name in names:
        TASKS.register(name, CardTaskEntry(root / "tasks" / f"{name}.yaml"))
    try:
        yield
    finally:
        TASKS._entries = entries


@contextmanager
def each_task_alone(options: RunOptions) -> Iterator[list[str]]:
    """run_pass with each fleet task predicted on its own, one task after another, as run_pass predicts a pass of one
    task (predict_base, then tuned_outputs), instead of in shared batches; each stage lapped once for all tasks. Yields
    the tasks predicted so, once for the base's predictions and once for the adapters'."""
    predicted: list[str] = []

    def base_outputs(members: list[Member], tier: Tier, base: LoadedBase, laps: Laps) -> list[BaseOutputs]:
        befores = [predict_base(member.task, tier, member.task.card.name, base, member.splits, options,
                                member.constraint, Laps()) for member in members]
        predicted.extend(member.task.card.name for member in members)
        laps.lap("base predictions")
        return befores

    def outputs(members: list[Member], tier: Tier, model: PeftModel, base: LoadedBase, given: RunOptions,
                laps: Laps) -> list[dict[str, Outputs]]:
        own = [tuned_outputs(member, tier, model, base, given, True, Laps()) for member in members]
        predicted.extend(member.task.card.name for member in members)
        laps.lap("candidate predictions")
        return own

    shared = pass_module.fleet_base_outputs, pass_module.fleet_outputs
    pass_module.fleet_base_outputs, pass_module.fleet_outputs = base_outputs, outputs
    try:
        yield predicted
    finally:
        pass_module.fleet_base_outputs, pass_module.fleet_outputs = shared


def fleet(base: str, count: int, rounds: int, work: Path, options: RunOptions) -> dict:
    """A fleet of `count` customers on `base` (a key of BASES; fleet_project) gated in one pass with its tasks' batches
    shared against the same pass with each task predicted on its own (each_task_alone), alternated `rounds` times after
    a warm-up pass that trains and stores each customer's adapter; every task's base and adapter predictions checked
    equal in every round. The fleet is written under `work`; its tasks run with `options` (device, cache) on their
    cards' base."""
    root = work / f"fleet-{list(BASES).index(base)}-{count}"
    root.mkdir()
    names = fleet_project(root, count, BASES[base])
    options = replace(options, base_model=None, store_root=root / "adapters")

    def one_pass() -> Timed:
        return timed(lambda: {name: outcome(runs)[""] for name, runs in run_pass(names, "tiny", options).items()})

    with registered(root, names):
        one_pass()  # warm-up: trains and stores each customer's adapter; the first load of the base
        shared, alone, predicted_alone = [], [], []
        for _ in range(rounds):
            shared.append(one_pass())
            with each_task_alone(options) as predicted:
                alone.append(one_pass())
            predicted_alone.append(len(predicted))
    diffs = [mine[name].logit_diff(own[name]) for call, lone in zip(shared, alone) for name in names
             for mine, own in ((call.answers, lone.answers), (call.base_answers, lone.base_answers))]
    differing = sorted({name for call, lone in zip(shared, alone) for name in names
                        if not (call.answers[name].equals(lone.answers[name])
                                and call.base_answers[name].equals(lone.base_answers[name]))})

    def median(calls: list[Timed], stage: str | None = None) -> float:
        return round(statistics.median(call.stages[stage] if stage else call.seconds for call in calls), 3)

    row = {"base": base, "customers": count, "rounds": rounds,
           "test_rows": sum(len(answers.outputs) for answers in shared[0].answers.values())}
    for key, stage in (("base", "base predictions"), ("candidates", "candidate predictions"), ("pass", None)):
        row[f"{key}_shared_s"], row[f"{key}_alone_s"] = median(shared, stage), median(alone, stage)
        row[f"{key}_alone_vs_shared"] = round(row[f"{key}_alone_s"] / row[f"{key}_shared_s"], 2)
    return {**row, "shared_rounds_s": [round(call.seconds, 3) for call in shared],
            "alone_rounds_s": [round(call.seconds, 3) for call in alone],
            "shared_stages": middle(shared).stages, "alone_stages": middle(alone).stages,
            "shared_peak_rss_mib": round(max(call.peak_rss for call in shared) / 2**20),
            "alone_peak_rss_mib": round(max(call.peak_rss for call in alone) / 2**20),
            "shared_peak_gpu_mib": mib(max(call.peak_gpu or 0 for call in shared)),
            "alone_peak_gpu_mib": mib(max(call.peak_gpu or 0 for call in alone)),
            "predicted_alone": predicted_alone, "predictions_equal": not differing, "differing": differing,
            "max_logit_diff": None if None in diffs else max(diffs)}


def fleet_table(rows: list[dict]) -> list[str]:
    """The fleet's figures as markdown lines."""
    lines = ["", "Fleet: one pass over N customers (a task and an adapter each, on one base), the tasks' batches "
                  "shared vs each task predicted on its own; medians, seconds", "",
              "| base | customers (test rows) | base predictions: shared / own | adapter predictions: shared / own | "
              "whole pass: shared / own | own / shared: base, adapters, pass | predictions equal (largest logit "
              "difference) | peak RSS shared / own (MiB) |", "|---|---|---:|---:|---:|---|---|---:|"]
    for row in rows:
        lines.append(f"| {row['base']} | {row['customers']} ({row['test_rows']}) | {row['base_shared_s']:.2f} / "
                     f"{row['base_alone_s']:.2f} | {row['candidates_shared_s']:.2f} / "
                     f"{row['candidates_alone_s']:.2f} | {row['pass_shared_s']:.2f} / {row['pass_alone_s']:.2f} | "
                     f"{row['base_alone_vs_shared']:.2f}x, {row['candidates_alone_vs_shared']:.2f}x, "
                     f"**{row['pass_alone_vs_shared']:.2f}x** | "
                     f"{'yes' if row['predictions_equal'] else 'NO: ' + ', '.join(row['differing'])} "
                     f"({row['max_logit_diff']}) | {row['shared_peak_rss_mib']} / {row['alone_peak_rss_mib']}"
                     + (f"; GPU {row['shared_peak_gpu_mib']} / {row['alone_peak_gpu_mib']}"
                        if row["shared_peak_gpu_mib"] else "") + " |")
    return lines
