"""Structured output's steps: greedy JSON within a budget from the gold objects' length, read strictly against the
card's pydantic model, scored per object and per field, with per-field gates and the schema errors in the report."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import torch
from pydantic import ValidationError

from loragate.card.settings import CardError, GateSettings, TaskCard, Tier
from loragate.data.card_files import MissingField, prompt_fields, template_fields
from loragate.data.examples import Example
from loragate.data.parsing import ParsedOutput
from loragate.data.task import Task
from loragate.gates.checks import Check
from loragate.inference.engine import answer_budget, generate
from loragate.inference.grammar import Constraint, json_of
from loragate.inference.predictions import Constant, Predictions
from loragate.kinds.causal import CausalKind, parsed_predictions
from loragate.kinds.protocol import ExampleTable
from loragate.kinds.registry import KINDS
from loragate.kinds.structured_output.checks import field_checks
from loragate.kinds.structured_output.fields import layout
from loragate.kinds.structured_output.schema import canonical, duplicate_keys, location, output_schema, parse_object
from loragate.kinds.structured_output.scoring import StructuredMetrics, error_keys, structured_metrics
from loragate.kinds.trivial_predictors import most_common_response
from loragate.metrics.plots import Plot
from loragate.models.bases import LoadedBase

if TYPE_CHECKING:
    from loragate.kinds.protocol import ScoredRun

BUDGET_SLACK = 1.25  # generation budget: the longest gold object of the split, in tokens, times this, + 1 for EOS


def object_budget(task: Task, tier: Tier, base: LoadedBase, examples: list[Example]) -> int:
    """The card's max_new_tokens, else the longest gold object's tokens x BUDGET_SLACK + 1 for EOS."""
    return task.card.tier(tier).eval.max_new_tokens or int(
        answer_budget(base.tokenizer, [ex.target for ex in examples]) * BUDGET_SLACK) + 1


class StructuredOutput(CausalKind):
    spec = KINDS.get("structured_output")

    def predict(self, task: Task, model: torch.nn.Module, base: LoadedBase, examples: list[Example], tier: Tier,
                progress: bool, desc: str, calibration: list[Example] | float, batch_size: int) -> Predictions:
        """Free greedy outputs, read strictly against the schema. The budget is the card's max_new_tokens, else the
        longest gold object's tokens x 1.25 + 1: room for a longer wrong object, not for rambling."""
        started = time.perf_counter()
        generations = generate(model, base.tokenizer, [ex.prompt for ex in examples],
                               object_budget(task, tier, base, examples), batch_size, progress=progress)
        return parsed_predictions(task, examples, generations, started)

    def constraint(self, card: TaskCard) -> Constraint:
        """Compact JSON valid under the card's output schema, then EOS."""
        return json_of(output_schema(card))

    def constrained_budget(self, task: Task, tier: Tier, base: LoadedBase, examples: list[Example]) -> int:
        """The free budget: a constrained object needs no more tokens than a free one."""
        return object_budget(task, tier, base, examples)

    def score(self, task: Task, predictions: Predictions) -> StructuredMetrics:
        return structured_metrics(predictions.ids, predictions.gold, predictions.parsed, predictions.outputs,
                                  layout(task.card, output_schema(task.card)))

    def checks(self, gates: GateSettings) -> list[Check]:
        return field_checks(gates)

    def constant(self, task: Task, examples: list[Example]) -> Constant:
        """The split's most common gold object for every example (the first one when none repeats)."""
        return most_common_response(task, examples, "object")

    def subgroups(self, task: Task, examples: list[Example]) -> dict[str, list[int]]:
        return {}

    def card_example(self, card: TaskCard, row_id: str, row: dict[str, object], source: str) -> Example:
        """A row's `output` (an object, or its JSON text) validated against the schema and written canonically as
        the target; the fields the prompt reads fill it. A gold object that does not validate is an error naming
        the row: the gate would score against an answer the schema forbids."""
        if "output" not in row:  # worded by the file's reader, with the closest column (`outptu`)
            raise MissingField(source, "output", "the gold object", list(row))
        other = [name for name in template_fields(card.target_template) if name != "output"]
        if other:
            raise CardError(f"task {card.name!r}: target_template {card.target_template!r} reads {other}; a structured "
                            f"output's target reads only {{output}}, e.g. \" {{output}}\"")
        gold = row["output"]
        repeated = duplicate_keys(gold) if isinstance(gold, str) else []
        if repeated:
            raise CardError(f"{source}: the gold output writes the key {location(repeated[0])} twice; keep one value")
        try:
            value = output_schema(card).model_validate_json(gold) if isinstance(gold, str) else \
                output_schema(card).model_validate(gold)
        except ValidationError as exc:
            error = exc.errors()[0]
            raise CardError(f"{source}: the gold output does not validate against "
                            f"{card.block('structured').output_schema} ({location(error['loc'])}: {error['msg']}); "
                            f"fix the row or the schema") from exc
        text = canonical(value)
        fields = prompt_fields(card, row, source)
        return Example(id=row_id, prompt=card.prompt_template.format(**fields),
                       target=card.target_template.format(**fields, output=text), label=text, fields=fields,
                       references=(text,))

    def card_parse(self, card: TaskCard, text: str) -> ParsedOutput:
        return parse_object(text, output_schema(card))

    def example_records(self, run: ScoredRun) -> list[dict]:
        """The gold object, each output's fields right or wrong, and its schema errors."""
        tuned, base = run.tuned_metrics, run.base_metrics
        return [{"gold": json.loads(gold),
                 "base_fields_exact": {f: base.per_example[f"field:{f}"][row] == 1 for f in tuned.fields},
                 "tuned_fields_exact": {f: tuned.per_example[f"field:{f}"][row] == 1 for f in tuned.fields},
                 "tuned_lenient_valid": parsed.lenient,
                 "tuned_errors": [{"loc": e.loc, "type": e.type} for e in parsed.errors]}
                for row, (gold, parsed) in enumerate(zip(run.tuned_predictions.gold, run.tuned_predictions.parsed))]

    def figures(self, run: ScoredRun, prefix: str) -> list[Plot]:
        return []

    def examples_table(self, run: ScoredRun) -> ExampleTable:
        """Schema errors by location and type, with the share of base and tuned outputs failing each and a tuned
        output that does, then the valid tuned objects that are wrong, with the fields that are."""
        tuned, base, predictions = run.tuned_metrics, run.base_metrics, run.tuned_predictions
        rows = []
        for loc, kind in error_keys(tuned, base):
            example = next((out for out, p in zip(predictions.outputs, predictions.parsed)
                            if any(e.loc == loc and e.type == kind for e in p.errors)), "")
            rows.append([f"schema error at {loc}: {kind}", f"base {base.error_share(loc, kind):.3f}, tuned "
                         f"{tuned.error_share(loc, kind):.3f}", example])
        examples = zip(predictions.ids, predictions.outputs, predictions.parsed)
        for row, (example_id, output, parsed) in enumerate(examples):
            wrong = [f for f in tuned.fields if tuned.per_example[f"field:{f}"][row] != 1]
            if parsed.valid and wrong:
                rows.append([example_id, f"wrong: {', '.join(wrong)}; gold {predictions.gold[row]}", output])
        return ExampleTable(f"Tuned schema errors and wrong objects ({len(rows)})", ["where", "what", "tuned output"],
                            rows, empty="Every tuned output validated and every object is exactly right.",
                            text_columns=frozenset({2}))


KIND = StructuredOutput()
