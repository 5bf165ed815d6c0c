"""A sampled run's least stable examples (eval.sampling): the tuned model's examples whose k samples disagree most,
each with its input and its distinct answers and their counts, for report.md, report.html and report.json. The
setting and the agreement summary are notes (loragate.report.rows.sampling_notes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from loragate.metrics.agreement import Agreement, agreement
from loragate.report.examples import cut, example_input, markdown_text

if TYPE_CHECKING:  # loragate.run.task_run loads torch and transformers
    from loragate.run.task_run import TaskRun

LEAST_STABLE = 10  # examples listed in report.md and report.html; report.json keeps every example's agreement


@dataclass(frozen=True)
class UnstableExample:
    """One example whose samples disagree, as the reports list it."""

    id: str
    input: str  # "field: value" per line, cut (report.json's predictions hold it whole)
    answers: str  # "setosa x3, versicolor x2"
    majority: float  # share of its samples giving the most common answer
    disagreement: float  # share of its pairs of samples that differ


def agreements(run: TaskRun) -> tuple[Agreement, Agreement] | None:
    """(base, tuned) agreement of a sampled run's samples; None where the run decoded greedily."""
    sampling = run.task.card.tier(run.tier).eval.sampling
    if sampling is None:
        return None
    return agreement(run.base_predictions, sampling.samples), agreement(run.tuned_predictions, sampling.samples)


def least_stable(run: TaskRun, count: int = LEAST_STABLE) -> list[UnstableExample]:
    """The tuned model's least stable examples (Agreement.least_stable), at most `count`; none where it is greedy."""
    both = agreements(run)
    if both is None:
        return []
    test = run.splits.test
    samples = both[1].samples
    listed = []
    for ex in both[1].least_stable(count):
        fields = example_input(test[ex.row // samples], run.task.card.prompt_template)
        listed.append(UnstableExample(ex.id, cut("\n".join(f"{name}: {value}" for name, value in fields.items())),
                                      ex.answers_text(), ex.majority, ex.disagreement))
    return listed


def stability_heading(run: TaskRun, listed: list[UnstableExample]) -> str:
    """"Least stable tuned examples: 14 of 30 examples' samples disagree, the 10 least stable listed, ..."."""
    both = agreements(run)
    total = len(both[1].examples) if both else 0
    unstable = total - both[1].unanimous if both else 0
    shown = "all listed" if len(listed) == unstable else f"the {len(listed)} least stable listed"
    return (f"Least stable tuned examples: {unstable} of {total} examples' samples disagree, {shown}, the weakest "
            f"majority first")


def stability_markdown(run: TaskRun) -> list[str]:
    """report.md's list of the least stable examples; nothing where the run decoded greedily."""
    if agreements(run) is None:
        return []
    listed = least_stable(run)
    lines = ["", f"**{stability_heading(run, listed)}**", ""]
    if not listed:
        return [*lines, "None: every example's samples agree."]
    for ex in listed:
        lines += [f"- `{ex.id}`: majority {ex.majority:.0%}, pairs differing {ex.disagreement:.0%}",
                  f"  - input: `{markdown_text(ex.input)}`", f"  - answers: `{markdown_text(ex.answers)}`"]
    return lines


def stability_json(run: TaskRun) -> dict | None:
    """report.json's `sampling`: the setting, base's and tuned's agreement per example, the least stable examples."""
    both = agreements(run)
    if both is None:
        return None
    sampling = run.task.card.tier(run.tier).eval.sampling
    return {**sampling.model_dump(), "line": sampling.line(), "base": both[0].to_json(), "tuned": both[1].to_json(),
            "least_stable": [{"id": ex.id, "answers": ex.answers, "majority": ex.majority,
                              "disagreement": ex.disagreement} for ex in least_stable(run)]}
