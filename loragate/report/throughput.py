"""Evaluation speed as one explained figure: examples/s and tokens/s of the run's own base and tuned prediction passes
over the test split, measured in the same run on the same machine, and their ratio. pytest-benchmark's
test_evaluation_throughput times the tuned pass again; where it ran, its figure is shown beside the run's, named as
what it is (users saw two disagreeing numbers, neither explained)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # loragate.run.task_run loads torch and transformers
    from loragate.inference.predictions import Predictions
    from loragate.run.task_run import TaskRun


@dataclass(frozen=True)
class PassSpeed:
    """One timed prediction pass over the test split."""

    examples: int
    seconds: float
    tokens: int | None  # prompt plus generated tokens; None where the kind generates none (a classifier head)

    @property
    def examples_per_s(self) -> float | None:
        """None where the pass took no measurable time (predictions that were not timed: report.json holds no NaN)."""
        return self.examples / self.seconds if self.seconds > 0 else None

    @property
    def tokens_per_s(self) -> float | None:
        return None if self.tokens is None or self.seconds <= 0 else self.tokens / self.seconds

    def text(self) -> str:
        examples, tokens = self.examples_per_s, self.tokens_per_s
        if examples is None:
            return f"not timed ({self.examples} examples)"
        return (f"{examples:.1f} examples/s, "
                + (f"{tokens:.0f} tokens/s" if tokens is not None else "tokens/s n/a (no tokens generated)")
                + f" ({self.examples} in {self.seconds:.2f} s)")

    def to_json(self) -> dict:
        return {"examples": self.examples, "seconds": round(self.seconds, 4), "tokens": self.tokens,
                "examples_per_s": rounded(self.examples_per_s), "tokens_per_s": rounded(self.tokens_per_s)}


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def pass_speed(predictions: Predictions) -> PassSpeed:
    generations = predictions.generations
    tokens = None if generations is None else generations.prompt_tokens + generations.new_tokens
    return PassSpeed(len(predictions.ids), predictions.seconds, tokens)


def measured(run: TaskRun) -> str:
    """What the figures time, in a sentence."""
    chooses = run.tuned_predictions.threshold is not None
    return (f"the run's own prediction passes over the {len(run.tuned_predictions.ids)} test examples "
            f"({run.decoding} decoding, eval batch {run.tuned_predictions.batch_size}): base first, then tuned with "
            f"the adapter unmerged, each timed whole (the model's answers and their parsing"
            f"{', and the choice of the no-answer threshold on the eval split' if chooses else ''}); tokens are "
            f"prompt plus generated tokens. pytest-benchmark's test_evaluation_throughput times the tuned pass again "
            f"after them{', at the threshold already chosen,' if chooses else ''} and reports its own figure")


def speed_ratio(run: TaskRun) -> float | None:
    """tuned examples/s over base examples/s, in this run: below 1, the adapter slows evaluation; None where a pass
    was not timed."""
    tuned, base = pass_speed(run.tuned_predictions).examples_per_s, pass_speed(run.base_predictions).examples_per_s
    return None if tuned is None or base is None else tuned / base


def throughput_lines(run: TaskRun) -> list[str]:
    """The figures as the reports list them: base, tuned, their ratio, the benchmark's where it ran, and what is
    measured."""
    lines = [f"base: {pass_speed(run.base_predictions).text()}", f"tuned: {pass_speed(run.tuned_predictions).text()}",
             f"tuned / base: {ratio:.2f}x examples/s" if (ratio := speed_ratio(run)) is not None else
             "tuned / base: n/a (a pass was not timed)"]
    if run.benchmark_seconds is not None:
        lines.append(f"pytest-benchmark, tuned pass again: {len(run.tuned_predictions.ids) / run.benchmark_seconds:.1f}"
                     f" examples/s (median of its rounds)")
    return [*lines, f"measured: {measured(run)}"]


def throughput_json(run: TaskRun) -> dict:
    """report.json's throughput: both passes, their ratio, the benchmark's tuned figure (None where it did not
    run), and what is measured. `tuned_examples_per_s` is kept for readers of earlier reports."""
    tuned = pass_speed(run.tuned_predictions)
    benchmark = run.benchmark_seconds
    return {"base": pass_speed(run.base_predictions).to_json(), "tuned": tuned.to_json(),
            "tuned_over_base": rounded(speed_ratio(run)), "tuned_examples_per_s": tuned.examples_per_s,
            "benchmark_tuned_examples_per_s": None if benchmark is None else len(run.tuned_predictions.ids) / benchmark,
            "measured": measured(run)}
