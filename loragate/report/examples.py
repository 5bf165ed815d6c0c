"""The examples a person acts on: every tuned output that did not parse or is wrong, with the input it came from (the
fields the prompt template reads), base's and tuned's outputs and the gold answer. Users grepped their data by line
number to find the message a wrong answer came from; the reports now show it, cut to INPUT_CHARS, and report.json
keeps every example's input whole (`predictions[].input`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from loragate.card.templates import template_fields
from loragate.data.examples import Example
from loragate.data.parsing import ParsedOutput
from loragate.metrics.registry import METRICS
from loragate.report.rows import metric_order

if TYPE_CHECKING:  # loragate.run.task_run loads torch and transformers
    from loragate.run.task_run import TaskRun

INPUT_CHARS = 200  # of an example's input in report.md and report.html; report.json holds it whole
LISTED = 200  # examples listed per run in report.md and report.html; report.json holds every one


@dataclass(frozen=True)
class ActedExample:
    """One tuned output to act on, and what it came from."""

    id: str
    input: dict[str, str]  # the fields the prompt template reads, whole
    gold: str
    base_output: str
    tuned_output: str  # the first wrong (or unparsed) one, where the run sampled
    problem: str  # "did not parse: <reason>", or which right-or-wrong metric it is wrong on; sampled: how many of k
    other_outputs: tuple[str, ...] = ()  # a sampled example's other distinct wrong answers, in sample order

    def tuned_outputs(self) -> tuple[str, ...]:
        """Every distinct wrong (or unparsed) tuned answer: one, unless the run sampled."""
        return (self.tuned_output, *self.other_outputs)

    def input_text(self) -> str:
        """The input as the reports show it: "field: value" per field, cut to INPUT_CHARS with a pointer to the
        whole text."""
        return cut("\n".join(f"{name}: {value}" for name, value in self.input.items()))


def cut(text: str, limit: int = INPUT_CHARS) -> str:
    """`text`, or its first `limit` characters and how long it is, saying where the rest is."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters; report.json has the whole input)"


def example_input(example: Example, prompt_template: str) -> dict[str, str]:
    """The fields of `example` that `prompt_template` reads, in its order; the prompt itself where the example holds
    none of them (a task module that keeps no fields)."""
    names = [name for name in template_fields(prompt_template) if name in example.fields]
    if not names:
        return {"prompt": example.prompt}
    return {name: str(example.fields[name]) for name in names}


def test_inputs(run: TaskRun) -> dict[str, dict[str, str]]:
    """Every test example's input (example_input), by id."""
    return {ex.id: example_input(ex, run.task.card.prompt_template) for ex in run.splits.test}


def right_or_wrong_metric(run: TaskRun) -> str | None:
    """The first metric of the run's kind that scores each example right or wrong (accuracy, exact match, whole-object
    exact match) and that tuned computed; None where the kind has none (instruct: its answers are scored, not
    judged)."""
    return next((spec.name for spec in metric_order(run) if spec.right_or_wrong and run.tuned_metrics.has(spec.name)
                 and spec.name not in run.tuned_metrics.unavailable), None)


def gold_text(run: TaskRun, row: int) -> str:
    """The gold answer of test row `row`: every reference, where the kind has references, else the gold label."""
    references = run.tuned_predictions.references
    if references is None:
        return run.tuned_predictions.gold[row]
    return " | ".join(references[row]) or "(no answer)"


def samples_of(run: TaskRun) -> int:
    """How many rows each test example has in the predictions: k where the tier samples (eval.sampling), else 1."""
    return getattr(run.tuned_metrics, "samples", 1)  # a kind's own container without it scored each example once


def acted_examples(run: TaskRun) -> list[ActedExample]:
    """Every test example whose tuned output did not parse or is wrong on right_or_wrong_metric, in test order; in a
    sampled run once, saying how many of its k samples are, with its distinct wrong answers."""
    base, tuned = run.base_predictions, run.tuned_predictions
    metric = right_or_wrong_metric(run)
    right = run.tuned_metrics.correct(metric) if metric else [True] * len(tuned.ids)
    inputs, k = test_inputs(run), samples_of(run)
    acted = []
    for first in range(0, len(tuned.ids), k):  # sampled_rows puts an example's k samples in a row
        problems = [(row, problem(tuned.parsed[row], right[row], metric)) for row in range(first, first + k)]
        problems = [(row, text) for row, text in problems if text]
        if not problems:
            continue
        row, text = problems[0]
        answers = list(dict.fromkeys(tuned.outputs[r] for r, _ in problems))
        if k > 1:
            text = (f"{text} in {len(problems)} of {k} samples" if len({t for _, t in problems}) == 1 else
                    f"{len(problems)} of {k} samples did not parse or are wrong (the first: {text})")
        acted.append(ActedExample(tuned.ids[row], inputs.get(tuned.ids[row], {}), gold_text(run, row),
                                  base.outputs[row], answers[0], text, tuple(answers[1:])))
    return acted


def problem(parsed: ParsedOutput, right: bool, metric: str | None) -> str | None:
    """Why one tuned output is listed (it did not parse, or is wrong on `metric`); None where it is right."""
    if not parsed.valid:
        return f"did not parse: {parsed.reason or 'no reason given'}"
    if not right:
        return f"wrong ({METRICS.get(metric).title})"
    return None


def listing_heading(run: TaskRun, acted: list[ActedExample]) -> str:
    """The reports' heading over acted_examples: which examples they are, and how many of the test split."""
    metric = right_or_wrong_metric(run)
    what = ("Tuned outputs that did not parse (this kind scores its answers and judges none right or wrong)"
            if metric is None else f"Tuned outputs that did not parse or are wrong ({METRICS.get(metric).title})")
    k = samples_of(run)
    if k > 1:
        return f"{what}: {len(acted)} of {len(run.tuned_predictions.ids) // k} examples ({k} samples each)"
    return f"{what}: {len(acted)} of {len(run.tuned_predictions.ids)}"


def markdown_listing(run: TaskRun) -> list[str]:
    """report.md's list: each example's id and problem, its input and gold, and base's and tuned's outputs (as Python
    reprs, so whitespace shows), all as inline code."""
    acted = acted_examples(run)
    lines = ["", f"**{listing_heading(run, acted)}**", ""]
    if not acted:
        return [*lines[:2], "", "None."]
    for example in acted[:LISTED]:
        lines += [f"- `{example.id}`: {example.problem}",
                  f"  - input: `{markdown_text(example.input_text())}`",
                  f"  - gold: `{markdown_text(example.gold)}`",
                  f"  - base: `{markdown_code(example.base_output)}`",
                  f"  - tuned: {', '.join(f'`{markdown_code(output)}`' for output in example.tuned_outputs())}"]
    if len(acted) > LISTED:
        lines.append(f"- ... the first {LISTED} of {len(acted)}; report.json has every prediction")
    return lines


def markdown_text(text: str) -> str:
    """`text` for inline code on one markdown line (data is shown as code, so no markup in it renders): its newlines
    shown as ⏎, a backtick that would end the code span replaced."""
    return text.replace("\r", "").replace("\n", " ⏎ ").replace("`", "'")


def markdown_code(text: str) -> str:
    """A model output for inline code: its repr, with backticks that would end the code span replaced."""
    return repr(text).replace("`", "'")
