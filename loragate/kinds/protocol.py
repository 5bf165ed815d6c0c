"""The `Kind` protocol: what a kind does at each step of the run, and what its report hooks read. The run
(loragate.run.task_run) calls these methods and never asks which kind it holds; each kind's package implements them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import torch
    from peft import PeftModel

    from loragate.card.options import RunOptions
    from loragate.card.settings import GateSettings, TaskCard, Tier
    from loragate.data.examples import Example, Splits
    from loragate.data.parsing import ParsedOutput
    from loragate.data.task import Task
    from loragate.gates.checks import Check
    from loragate.inference.grammar import Constraint
    from loragate.inference.predictions import Constant, Predictions
    from loragate.kinds.registry import KindSpec
    from loragate.metrics.plots import Plot
    from loragate.metrics.scores import Metrics
    from loragate.models.bases import LoadedBase
    from loragate.training.lora import TrainResult


class ScoredRun(Protocol):
    """What a kind's report hooks read of a finished run (loragate.run.task_run.TaskRun is one): the task, and
    the base, tuned and baseline predictions and metrics on the test split."""

    task: Task
    base_predictions: Predictions
    tuned_predictions: Predictions
    base_metrics: Metrics
    tuned_metrics: Metrics
    baseline_metrics: Metrics | None


class Kind(Protocol):
    """What a kind does at each step of the run. Each method gets the task (card and parser) it works for."""

    spec: KindSpec

    def load_base(self, task: Task, tier: Tier, splits: Splits, options: RunOptions) -> LoadedBase:
        """The card's base for `tier` (or --base-model), with the head the kind needs."""

    def for_base(self, task: Task, splits: Splits, base: LoadedBase) -> Splits:
        """The splits as this base reads them (instruct: prompts in the base's chat template)."""

    def answer_tokens(self, task: Task, base: LoadedBase, examples: list[Example]) -> list[int] | None:
        """Per example, the tokens its answer needs after the prompt within train.max_length (loragate.data.truncation);
        None where the kind reads long inputs in windows and fits nothing to max_length."""

    def train(self, task: Task, tier: Tier, model: PeftModel, base: LoadedBase, splits: Splits,
              options: RunOptions) -> TrainResult:
        """Train `model` in place with the kind's loss and collation."""

    def predict(self, task: Task, model: torch.nn.Module, base: LoadedBase, examples: list[Example], tier: Tier,
                progress: bool, desc: str, calibration: list[Example] | float, batch_size: int) -> Predictions:
        """The model's answer to each example at `batch_size`; `calibration` (the eval split) is where a kind
        may choose a threshold, never on the examples it is scored on, or the threshold already chosen there
        (a repeated prediction, such as the throughput benchmark's, times the answers alone)."""

    def probe_logits(self, task: Task, tier: Tier, model: torch.nn.Module, base: LoadedBase,
                     examples: list[Example]) -> torch.Tensor:
        """What the parameter invariants compare (base, tuned, disabled, merged), batched the same way each time."""

    def score(self, task: Task, predictions: Predictions) -> Metrics:
        """The kind's metrics of `predictions`."""

    def constant(self, task: Task, examples: list[Example]) -> Constant:
        """The best constant predictor of `examples` (the test split), which `score` scores as it scores a model:
        the majority class, always abstain, or the most common response."""

    def subgroups(self, task: Task, examples: list[Example]) -> dict[str, list[int]]:
        """The kind's own subgroups of `examples` by row (QA: has answer, no answer), beside the card's
        `subgroups` field."""

    def checks(self, gates: GateSettings) -> list[Check]:
        """The kind's own gates beyond the card's metric gates (per class, for classification kinds)."""

    def manifest_facts(self, base: LoadedBase) -> dict:
        """What the adapter's manifest must record for this kind to be loaded correctly later."""

    def check_adapter(self, task: Task, base: LoadedBase, adapter_dir: Path) -> None:
        """Refuse an adapter this base cannot evaluate faithfully (instruct: another chat template)."""

    def example_records(self, run: ScoredRun) -> list[dict]:
        """Per test example, what report.json keeps beside the outputs (labels, or references and scores)."""

    def figures(self, run: ScoredRun, prefix: str) -> list[Plot]:
        """The kind's figures for the report (confusion matrices and per-class bars for labels)."""

    def examples_table(self, run: ScoredRun) -> ExampleTable:
        """The examples a reader should look at (misclassified ones, or the worst answers)."""

    def card_example(self, card: TaskCard, row_id: str, row: dict[str, object], source: str) -> Example:
        """One data row of a card-only task (loragate.data.card_files), columns already renamed to the card's field
        names, as an Example; `source` is 'file:row' for errors."""

    def card_parse(self, card: TaskCard, text: str) -> ParsedOutput:
        """Raw generated text -> the card's output schema, or the reason it is invalid (a card-only task's parser).
        Never raises."""

    def constraint(self, card: TaskCard) -> Constraint:
        """The grammar its outputs may be held to (loragate.inference.grammar); only kinds whose spec `constrains`."""

    def predict_constrained(self, task: Task, model: torch.nn.Module, base: LoadedBase, examples: list[Example],
                            tier: Tier, progress: bool, desc: str, batch_size: int,
                            constraint: Constraint) -> Predictions:
        """Greedy outputs under `constraint`, parsed as free ones are; only kinds whose spec `constrains`."""


@dataclass(frozen=True)
class ExampleTable:
    """Examples for report.html as plain strings; the report escapes them, and shows `text_columns` (raw model
    text) as code."""

    title: str
    header: list[str]
    rows: list[list[str]]
    empty: str = ""  # what to say when there are no rows
    numeric_columns: frozenset[int] = field(default_factory=frozenset)
    text_columns: frozenset[int] = field(default_factory=frozenset)
