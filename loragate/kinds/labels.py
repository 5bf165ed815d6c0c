"""What the kinds whose predictions are labels (generative and sequence classification) share: per-class gates,
the majority class as their trivial predictor, and what they add to the report (each example's gold, base and
tuned label, confusion matrices and per-class bars, the misclassified examples)."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, create_model

from loragate.card.settings import CardError, GateSettings, TaskCard
from loragate.data.card_files import UnknownLabel, fields_read, prompt_fields, text_value
from loragate.data.examples import Example
from loragate.data.parsing import ParsedOutput, parse_label
from loragate.gates.per_key import KeyDrop, KeyFloor, KeyScore, key_score
from loragate.gates.result import Check
from loragate.inference.predictions import Constant
from loragate.kinds.protocol import ExampleTable
from loragate.kinds.trivial_predictors import majority_class
from loragate.metrics import plots
from loragate.metrics.plots import Plot
from loragate.metrics.scores import ClassificationMetrics

if TYPE_CHECKING:
    from loragate.data.task import Task
    from loragate.kinds.protocol import ScoredRun


@lru_cache(maxsize=None)
def label_schema(labels: tuple[str, ...]) -> type[BaseModel]:
    """A card-only task's output schema: `label`, one of the card's labels."""
    return create_model("CardLabel", label=(Literal[labels], ...))


def class_scores(tuned: ClassificationMetrics, base: ClassificationMetrics) -> list[KeyScore]:
    """Each class's accuracy (recall of its gold examples) for base and tuned, with each of its examples' rightness
    for the per-class drop's paired interval: the keys of the per-class gates."""
    gold = np.array(tuned.gold)
    right = [np.array([p == g for p, g in zip(m.predicted, m.gold)]) for m in (base, tuned)]
    return [key_score(label, base.per_class_accuracy[label], tuned.per_class_accuracy[label], gold == label, *right,
                      tuned.input_groups) for label in tuned.labels]


class LabelKind:
    def card_example(self, card: TaskCard, row_id: str, row: dict[str, object], source: str) -> Example:
        """The prompt template over the row's fields; the gold is the label the row's `label` value stands for (the
        value itself, or its name in the card's `labels` mapping)."""
        other = [name for name in fields_read(card.target_template) if name != "label"]
        if other:
            raise CardError(f"task {card.name!r}: target_template {card.target_template!r} reads {other}; a label "
                            f"kind's target reads only {{label}}, e.g. \" {{label}}\"")
        fields = prompt_fields(card, row, source)
        value = text_value(row, "label", source, "the gold label")
        label = card.label_values.get(value)
        if label is None:
            raise UnknownLabel(source, value, card.labels)
        return Example(id=row_id, prompt=card.prompt_template.format(**fields),
                       target=card.target_template.format(label=label), label=label, fields=fields)

    def card_parse(self, card: TaskCard, text: str) -> ParsedOutput:
        return parse_label(text, card.labels, label_schema(tuple(card.labels)), "label")

    def checks(self, gates: GateSettings) -> list[Check]:
        """No class may lose more than the card allows against base, and every class must reach its floor."""
        return [KeyDrop("class", "accuracy", gates.max_class_drop, class_scores, settings=gates),
                KeyFloor("class", "accuracy", gates.min_class_accuracy, class_scores)]

    def constant(self, task: Task, examples: list[Example]) -> Constant:
        return majority_class(task, examples)

    def subgroups(self, task: Task, examples: list[Example]) -> dict[str, list[int]]:
        return {}

    def example_records(self, run: ScoredRun) -> list[dict]:
        """Gold, base and tuned label (None where the output did not parse) of each test example."""
        return [{"gold": gold, "base": base, "tuned": tuned} for gold, base, tuned
                in zip(run.tuned_metrics.gold, run.base_metrics.predicted, run.tuned_metrics.predicted)]

    def figures(self, run: ScoredRun, prefix: str) -> list[Plot]:
        """Confusion matrices and per-class accuracy bars: base, the baseline adapter if any, tuned."""
        labels = run.tuned_metrics.labels
        compared = {"base": run.base_metrics}
        if run.baseline_metrics is not None:
            compared["baseline"] = run.baseline_metrics
        compared["tuned"] = run.tuned_metrics
        return [
            Plot(f"{prefix}-confusion.svg", "Confusion matrices: rows are gold labels, columns predictions; "
                 "<invalid> counts outputs that did not parse.",
                 plots.confusion_svg(labels, {name: m.confusion for name, m in compared.items()})),
            Plot(f"{prefix}-per-class.svg", "Accuracy of each class; the dashed line is the card's per-class floor.",
                 plots.per_class_svg(labels, {name: m.per_class_accuracy for name, m in compared.items()},
                                     run.tuned_metrics.per_class_support, run.task.card.gates.min_class_accuracy)),
        ]

    def examples_table(self, run: ScoredRun) -> ExampleTable:
        tuned = run.tuned_metrics
        wrong = [[i, gold, predicted] for i, gold, predicted in zip(run.tuned_predictions.ids, tuned.gold,
                                                                    tuned.predicted)
                 if predicted is not None and predicted != gold]
        return ExampleTable(f"Misclassified by the tuned model ({len(wrong)})", ["id", "gold", "predicted"], wrong,
                            empty="No parsed tuned prediction is wrong.")
