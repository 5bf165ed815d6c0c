"""How often the k samples of one example disagree (eval.sampling): an adapter right at temperature 0 may be a coin
flip at 0.7, and the average over samples alone does not say which examples it is unsure of.

Two samples agree when their outputs are the same text once surrounding whitespace is stripped (for a label, the
same label; for JSON, the same text: a reformatted object is a different output). Per example: the share of its
samples that give its most common answer (agreement with the majority, 1/k to 1) and the share of its pairs of
samples that differ (pairwise disagreement, 0 to 1)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from loragate.inference.predictions import Predictions

INVALID_MARK = " (did not parse)"  # after an answer whose output did not parse, so it never equals a valid one


@dataclass(frozen=True)
class ExampleAgreement:
    """One example's k samples: its id, the row of its first sample, and its distinct answers with their counts, most
    common first (ties in first-drawn order)."""

    id: str
    row: int
    answers: tuple[tuple[str, int], ...]

    @property
    def samples(self) -> int:
        return sum(count for _, count in self.answers)

    @property
    def majority(self) -> float:
        """The share of the samples that give the most common answer."""
        return self.answers[0][1] / self.samples

    @property
    def disagreement(self) -> float:
        """The share of pairs of samples that give different answers."""
        k = self.samples
        return 1.0 - sum(count * (count - 1) for _, count in self.answers) / (k * (k - 1))

    def answers_text(self) -> str:
        """"setosa x3, versicolor x2": what the samples said, most common first."""
        return ", ".join(f"{answer or '(empty)'} x{count}" for answer, count in self.answers)


@dataclass(frozen=True)
class Agreement:
    """The samples' agreement over a split: per example, and the split's means."""

    samples: int  # k
    examples: list[ExampleAgreement]

    @property
    def majority(self) -> float:
        """Mean share of an example's samples that agree with its majority answer."""
        return sum(ex.majority for ex in self.examples) / len(self.examples)

    @property
    def disagreement(self) -> float:
        """Mean share of an example's pairs of samples that differ."""
        return sum(ex.disagreement for ex in self.examples) / len(self.examples)

    @property
    def unanimous(self) -> int:
        """Examples whose k samples all give one answer."""
        return sum(len(ex.answers) == 1 for ex in self.examples)

    def least_stable(self, count: int) -> list[ExampleAgreement]:
        """Up to `count` examples whose samples disagree, the least stable first: the weakest majority, then the most
        pairwise disagreement, then split order."""
        unstable = [ex for ex in self.examples if len(ex.answers) > 1]
        return sorted(unstable, key=lambda ex: (ex.majority, -ex.disagreement, ex.row))[:count]

    def line(self) -> str:
        """The summary every report shows."""
        return (f"{self.majority:.0%} of samples agree with their example's majority answer, two samples of an "
                f"example differ {self.disagreement:.0%} of the time, all {self.samples} agree on {self.unanimous} of "
                f"{len(self.examples)} examples")

    def to_json(self) -> dict:
        return {"samples": self.samples, "majority": self.majority, "disagreement": self.disagreement,
                "unanimous": self.unanimous, "examples": len(self.examples),
                "per_example": [{"id": ex.id, "majority": ex.majority, "disagreement": ex.disagreement,
                                 "answers": dict(ex.answers)} for ex in self.examples]}


def answer_of(output: str, valid: bool) -> str:
    """What a sample answered, as samples are compared: its output, whitespace around it stripped, marked where it
    did not parse."""
    return output.strip() + ("" if valid else INVALID_MARK)


def agreement(predictions: Predictions, samples: int) -> Agreement:
    """The agreement of `predictions`, whose rows hold `samples` consecutive samples of each example
    (loragate.inference.sampling.repeat_samples)."""
    if samples < 2 or len(predictions.ids) % samples:
        raise ValueError(f"{len(predictions.ids)} predictions are not {samples} samples of each example; agreement "
                         f"needs k >= 2 consecutive samples per example")
    answers = [answer_of(output, parsed.valid) for output, parsed in zip(predictions.outputs, predictions.parsed)]
    examples = []
    for row in range(0, len(answers), samples):
        ids = predictions.ids[row:row + samples]
        if len(set(ids)) != 1:
            raise ValueError(f"rows {row}-{row + samples - 1} hold several examples ({ids}); agreement needs each "
                             f"example's {samples} samples in a row")
        counted = Counter(answers[row:row + samples]).most_common()  # ties keep first-drawn order
        examples.append(ExampleAgreement(ids[0], row, tuple(counted)))
    return Agreement(samples, examples)
