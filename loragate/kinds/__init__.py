"""Task kinds, one package each: everything that differs between generative classification, sequence
classification, extractive QA and instruction tuning. The run (loragate.run) is one pipeline over the `Kind`
protocol and never asks which kind it holds.

A kind registers itself in its own package's `__init__.py` with one line, `KINDS.register(name, KindSpec(...))`,
as PEFT registers a tuning method. The spec holds the facts the plugin and the cards need (PEFT task type, encoder
or causal, labels or text) and no torch: `spec.pipeline()` imports the kind's `pipeline` module only when a run
needs it, so `pytest --help` and card loading stay fast.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from loragate.registry import Registry

if TYPE_CHECKING:
    import torch
    from peft import PeftModel

    from loragate.card import GateSettings, TaskCard, Tier
    from loragate.constrain import Constraint
    from loragate.data import Example, Splits
    from loragate.gates import Check
    from loragate.metrics import Metrics
    from loragate.models import LoadedBase
    from loragate.options import RunOptions
    from loragate.parsing import ParsedOutput
    from loragate.plots import Plot
    from loragate.predictions import Constant, Predictions
    from loragate.run import TaskRun
    from loragate.tasks import Task
    from loragate.training import TrainResult


class Kind(Protocol):
    """What a kind does at each step of the run. Each method gets the task (card and parser) it works for."""

    spec: KindSpec

    def load_base(self, task: Task, tier: Tier, splits: Splits, options: RunOptions) -> LoadedBase:
        """The card's base for `tier` (or --base-model), with the head the kind needs."""

    def for_base(self, task: Task, splits: Splits, base: LoadedBase) -> Splits:
        """The splits as this base reads them (instruct: prompts in the base's chat template)."""

    def answer_tokens(self, task: Task, base: LoadedBase, examples: list[Example]) -> list[int] | None:
        """Per example, the tokens its answer needs after the prompt within train.max_length (loragate.truncation);
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

    def example_records(self, run: TaskRun) -> list[dict]:
        """Per test example, what report.json keeps beside the outputs (labels, or references and scores)."""

    def figures(self, run: TaskRun, prefix: str) -> list[Plot]:
        """The kind's figures for the report (confusion matrices and per-class bars for labels)."""

    def examples_table(self, run: TaskRun) -> ExampleTable:
        """The examples a reader should look at (misclassified ones, or the worst answers)."""

    def card_example(self, card: TaskCard, row_id: str, row: dict[str, object], source: str) -> Example:
        """One data row of a card-only task (loragate.card_data), columns already renamed to the card's field names,
        as an Example; `source` is 'file:row' for errors."""

    def card_parse(self, card: TaskCard, text: str) -> ParsedOutput:
        """Raw generated text -> the card's output schema, or the reason it is invalid (a card-only task's parser).
        Never raises."""

    def constraint(self, card: TaskCard) -> Constraint:
        """The grammar its outputs may be held to (loragate.constrain); only kinds whose spec `constrains`."""

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


@dataclass(frozen=True)
class KindSpec:
    """A kind's facts, light enough for the plugin and the card validator."""

    name: str
    peft_task_type: str  # "CAUSAL_LM", "SEQ_CLS", "QUESTION_ANS"
    encoder: bool  # an encoder with a new head: no quantization, no GGUF export
    labels: bool  # predictions are labels from the card's list: per-class gates, confusion matrices
    block: str | None = None  # the card's block this kind needs ("qa", "instruct")
    windows: bool = False  # reads long inputs in strided windows (its block's max_length, stride): no truncation
    constrains: bool = False  # generates a label or JSON that a grammar can hold it to (eval.constrain, --constrain)

    def pipeline(self) -> Kind:
        return importlib.import_module(f"loragate.kinds.{self.name}.pipeline").KIND


KINDS: Registry[KindSpec] = Registry("task kind")


def kind_of(name: str) -> Kind:
    """The pipeline of the kind `name`; an unknown name answers with the close ones."""
    return KINDS.get(name).pipeline()


def card_checks(card: TaskCard) -> list[Check]:
    """Every check a card's gates make for its kind (the kind adds its own: per class, for labels)."""
    from loragate.gates import checks_from

    return checks_from(card.gates, kind_of(card.kind).checks(card.gates))


from loragate.kinds import (  # noqa: E402,F401  (each kind package registers itself)
    extractive_qa, generative_classification, instruct, sequence_classification, structured_output)
