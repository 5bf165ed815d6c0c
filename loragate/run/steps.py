"""The kind's steps as a run takes them: the task with its --set overrides, its splits, the base, the inputs fitted
to max_length, and predictions (halving the eval batch when the GPU runs out of memory), probes and scores. Each
asks the task's kind (loragate.kinds) and never which kind it is."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

import torch

from loragate.card.options import RunOptions
from loragate.card.overrides import apply_overrides
from loragate.card.settings import TaskCard, Tier
from loragate.data.examples import Example, Splits, field_subgroups, input_groups
from loragate.data.hf_dataset import is_dataset, materialize
from loragate.data.task import Task
from loragate.data.truncation import SPLITS, InputFit, fit_splits, position_cap
from loragate.gates.checks import Subgroup
from loragate.inference.grammar import Constraint
from loragate.inference.predictions import Predictions
from loragate.inference.sampling import repeat_samples
from loragate.kinds import Kind, kind_of
from loragate.metrics.scores import Metrics, with_input_groups
from loragate.models.bases import LoadedBase
from loragate.progress import reporter
from loragate.tasks import get_task
from loragate.training.distributed import current

T = TypeVar("T")


def kind(task: Task) -> Kind:
    return kind_of(task.card.kind)


def probe_logits(task: Task, tier: Tier, model: torch.nn.Module, base: LoadedBase,
                 examples: list[Example]) -> torch.Tensor:
    """What the parameter invariants compare, as the task's kind takes it."""
    return kind(task).probe_logits(task, tier, model, base, examples)


def probe_of(task: Task, tier: Tier, model: torch.nn.Module, base: LoadedBase, examples: list[Example],
             predictions: Predictions) -> torch.Tensor:
    """The probe logits of `model`; where its predictions already hold them at the card's batch size (a classifier
    head's logits are both), they are not computed twice: the same batches give the same bits."""
    if predictions.logits is not None and predictions.batch_size == predictions.card_batch_size:
        return predictions.logits
    return probe_logits(task, tier, model, base, examples)


def predict(task: Task, model: torch.nn.Module, base: LoadedBase, examples: list[Example], tier: Tier,
            progress: bool, desc: str, calibration: list[Example] | float | None = None,
            constraint: Constraint | None = None) -> Predictions:
    """The model's answer to each example, as the task's kind makes it (under `constraint`, the kind's grammar,
    where given), at the card's eval batch size; when the GPU runs out of memory the batch is halved and the whole
    prediction redone (the report says so). Batching changes no greedy output, so a smaller batch gives the same
    predictions, only slower. Where the tier samples, each example is answered k times (`sampled_rows`)."""
    card_batch = task.card.tier(tier).eval.batch_size
    examples = sampled_rows(task, tier, examples)

    def attempt(batch_size: int) -> Predictions:
        if constraint is None:
            return kind(task).predict(task, model, base, examples, tier, progress, desc,
                                      examples if calibration is None else calibration, batch_size)
        return kind(task).predict_constrained(task, model, base, examples, tier, progress, desc, batch_size,
                                              constraint)

    predictions, batch_size = halving(desc, card_batch, attempt)
    return replace(predictions, batch_size=batch_size, card_batch_size=card_batch)


def halving(desc: str, card_batch: int, attempt: Callable[[int], T], candidates: int = 1) -> tuple[T, int]:
    """attempt(batch size) at the card's eval batch size, and the batch size it ran at: when the GPU runs out of
    memory the batch is halved and the whole attempt redone (the warning says so), down to 1. `candidates`: each batch
    holds each of its examples once per candidate (loragate.run.mixed)."""
    batch_size = card_batch
    per = f" x {candidates} candidates" if candidates > 1 else ""
    while True:
        try:
            return attempt(batch_size), batch_size
        except torch.OutOfMemoryError as exc:
            if batch_size == 1:
                each = f", one example for each of {candidates} candidates" if candidates > 1 else ""
                fewer = "gate fewer candidates in one run, " if candidates > 1 else ""
                raise RuntimeError(f"{desc}: out of memory even at eval batch size 1{each} (card: {card_batch}); "
                                   f"{fewer}use a smaller base or a GPU with more memory") from exc
            batch_size //= 2
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            warnings.warn(f"{desc}: out of memory at eval batch size {batch_size * 2}{per}; retrying at {batch_size}")


def sampled_rows(task: Task, tier: Tier, examples: list[Example]) -> list[Example]:
    """The rows a prediction answers and the gates score: each example once, or where the tier samples
    (eval.sampling) k times in a row, so every metric averages over an example's samples; the copies share its input,
    so the paired bootstrap draws them together (loragate.data.examples.input_groups)."""
    sampling = task.card.tier(tier).eval.sampling
    return examples if sampling is None else repeat_samples(examples, sampling.samples)


def score(task: Task, predictions: Predictions) -> Metrics:
    """The kind's metrics of `predictions`."""
    return kind(task).score(task, predictions)


def samples_per_example(rows: list[Example]) -> int:
    """k where `rows` are k copies of each example in a row, as sampled_rows makes them (each copy keeps its
    example's id), else 1: the gates count examples, not rows (loragate.gates.result.Comparison)."""
    ids = [ex.id for ex in rows]
    k = len(ids) // max(len(set(ids)), 1)
    return k if k > 1 and ids == [i for i in ids[::k] for _ in range(k)] else 1


def score_subgroups(task: Task, examples: list[Example], base: Predictions, tuned: Predictions) -> list[Subgroup]:
    """Base and tuned scored by the kind on each subgroup of the test split: the kind's own, then one per value of
    the card's `subgroups` field; their intervals resample the rows of one input (an example's samples) together."""
    groups = kind(task).subgroups(task, examples)
    if task.card.subgroups is not None:
        groups |= field_subgroups(examples, task.card.subgroups)
    return [Subgroup(name, len(rows), *(with_input_groups(score(task, predictions.subset(rows)),
                                                          input_groups([examples[row] for row in rows]),
                                                          samples_per_example([examples[row] for row in rows]))
                                        for predictions in (base, tuned)))
            for name, rows in groups.items()]


def load_splits(task: Task, options: RunOptions) -> Splits:
    """The task's shipped data, a --data file in its real format, or a Hugging Face dataset (hub id or local
    directory) written once in that format: the task's loader and its checks read all three."""
    data = options.data
    with reporter().phase("load data", "loaded data"):
        if is_dataset(data):  # data-parallel: rank 0 downloads and converts, the others read its file
            data = current().from_main(lambda: materialize(task.card.name, task, options.data, options.cache))
        return task.load_splits(data)


def prepare_base(task: Task, tier: Tier, splits: Splits, options: RunOptions) -> LoadedBase:
    """The card's base for `tier` (or --base-model), as the task's kind loads it ('tiny': built offline)."""
    with reporter().phase("load base", "loaded base"):
        return kind(task).load_base(task, tier, splits, options)


def for_base(task: Task, splits: Splits, base: LoadedBase) -> Splits:
    """The splits as the loaded base reads them (instruct: its chat template)."""
    return kind(task).for_base(task, splits, base)


def load_task(name: str, options: RunOptions) -> Task:
    """The registered task with the run's --set overrides applied to its card."""
    task = get_task(name)
    task.card = apply_overrides(task.card, options.overrides)
    return task


def with_max_length(card: TaskCard, tier: Tier, max_length: int) -> TaskCard:
    """`card` with tiers.<tier>.train.max_length set (`auto` resolved)."""
    settings = card.tier(tier)
    train = settings.train.model_copy(update={"max_length": max_length})
    return card.model_copy(update={"tiers": {**card.tiers, tier: settings.model_copy(update={"train": train})}})


def fit_inputs(task: Task, tier: Tier, splits: Splits, base: LoadedBase) -> tuple[TaskCard, Splits, InputFit | None]:
    """The card with an `auto` max_length resolved, and the splits with every example fitted to it (refused, or its
    prompt cut, as train.truncation says: loragate.data.truncation); the card and splits as they are for a kind that
    windows long inputs."""
    answers = {}
    for name in SPLITS:
        tokens = kind(task).answer_tokens(task, base, getattr(splits, name))
        if tokens is None:
            return task.card, splits, None
        answers[name] = tokens
    fitted, fit = fit_splits(splits, base.tokenizer, answers, task.card.tier(tier).train, position_cap(base.model),
                             f"tiers.{tier}")
    return with_max_length(task.card, tier, fit.max_length), fitted, fit
