"""The kinds' registry. A kind registers itself in its own package's `__init__.py` with one line,
`KINDS.register(name, KindSpec(...))`, as PEFT registers a tuning method. The spec holds the facts the plugin and
the cards need (PEFT task type, encoder or causal, labels or text) and no torch: `spec.pipeline()` imports the
kind's `pipeline` module only when a run needs it, so `pytest --help` and card loading stay fast."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel

from loragate.metrics.registry import METRICS
from loragate.registry import Registry

if TYPE_CHECKING:
    from loragate.card.settings import TaskCard
    from loragate.gates.checks import Check
    from loragate.kinds.protocol import Kind


TRIVIAL_MARGIN = 0.01  # above 0, so a tuned model that ties with the constant predictor (is one) does not pass


@dataclass(frozen=True)
class KindSpec:
    """A kind's facts, light enough for the plugin and the card validator."""

    name: str
    peft_task_type: str  # "CAUSAL_LM", "SEQ_CLS", "QUESTION_ANS"
    encoder: bool  # an encoder with a new head: no quantization, no GGUF export
    labels: bool  # predictions are labels from the card's list: per-class gates, confusion matrices
    block: str | None = None  # the card's block this kind needs ("qa", "instruct"), validated by `block_model`
    block_model: type[BaseModel] | None = None  # the pydantic model of that block, declared in the kind's package
    after_validity: tuple[str, ...] = ()  # metrics its score computes that tables show after validity (structured
    # output: outputs valid only once a fence is stripped)
    metrics: tuple[str, ...] = ()  # the metrics its score computes, in the order its tables show them; a card's
    # gates may name only these and validity_rate (none declared: the names are not checked)
    pooling: bool = False  # reads tiers.<tier>.pooling (what a new classification head reads)
    windows: bool = False  # reads long inputs in strided windows (its block's max_length, stride): no truncation
    constrains: bool = False  # generates a label or JSON that a grammar can hold it to (eval.constrain, --constrain)
    package: str | None = None  # the package registering the kind, default loragate.kinds.<name>: `__name__` there
    # what the kind checks of a card at start-up, before any model loads (card, whether the run decodes under the
    # output's grammar), raising CardError: structured output imports the card's output schema; light, no torch
    check_card: Callable[[TaskCard, bool], None] | None = None

    def __post_init__(self) -> None:
        """What a registration gets wrong is refused where it is made, naming the kind."""
        if (self.block is None) != (self.block_model is None):
            raise ValueError(f"kind {self.name}: block and block_model go together (the block's name in the card and "
                             f"the pydantic model that validates it); give both or neither")
        unknown = [name for name in (*self.metrics, *self.after_validity) if name not in METRICS]
        if unknown:
            raise ValueError(f"kind {self.name}: metrics {unknown} are not registered; register each with "
                             f"METRICS.register before the kind")

    def gated_metrics(self) -> list[str]:
        """The metrics a card of this kind may gate on: its own, the validity rate every kind's score computes, and
        those it reports after validity."""
        return list(dict.fromkeys([*self.metrics, "validity_rate", *self.after_validity]))

    def constant_scorable(self) -> list[str]:
        """Its metrics a constant predictor can be scored on: not a likelihood (a constant response has no
        perplexity)."""
        return [name for name in self.metrics if METRICS.get(name).statistic != "token_weighted_nll"]

    def trivial_margins(self) -> dict[str, float]:
        """The margins over the trivial predictor of a card whose min_delta names none of constant_scorable():
        TRIVIAL_MARGIN on the first of them."""
        scored = self.constant_scorable()
        return {scored[0]: TRIVIAL_MARGIN} if scored else {}

    def pipeline(self) -> Kind:
        """The kind's pipeline object, `KIND` in its package's `pipeline` module, imported on first use."""
        return importlib.import_module(f"{self.package or 'loragate.kinds.' + self.name}.pipeline").KIND


KINDS: Registry[KindSpec] = Registry("task kind")


def kind_of(name: str) -> Kind:
    """The pipeline of the kind `name`; an unknown name answers with the close ones."""
    return KINDS.get(name).pipeline()


def card_checks(card: TaskCard) -> list[Check]:
    """Every check a card's gates make for its kind (the kind adds its own: per class, for labels)."""
    from loragate.gates.checks import checks_from  # loads numpy and sklearn: not when a card is validated

    return checks_from(card.gates, kind_of(card.kind).checks(card.gates))
