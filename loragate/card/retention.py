"""A card's `retention:` probes: what the tuned model must keep of what its base could do outside the card's task.

LoRA fine-tunes can make the base worse at everything else. Each probe is scored by base and tuned (the same base
and the adapter under test) and judged like a regression against the last release: as non-inferiority, on the
paired interval's bound (loragate.gates.retention). Two sorts, told apart by their key:

- `{task: sst2, metric: accuracy, max_drop: 0.05}`: another task's test split, asked with its own prompts and scored
  by its own kind; tuned - base on `metric` must have its lower bound at or above -max_drop.
- `{text_file: data/general.txt, max_rise: 0.05}`: a sample of general text, one passage a line, scored by
  perplexity; the rise in perplexity, tuned over base minus 1, must have its upper bound at or under max_rise.

What the names point to (the task, its metric, the file) is checked at start-up by loragate.run.probes, which reads
the task registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Discriminator, Field, Tag

from loragate.card.strict import Strict


class TaskProbe(Strict):
    """Another task's test split, asked by base and tuned with that task's prompts."""

    task: str = Field(description="a registered task (the project's or a built-in one) of a causal kind, by name")
    metric: str = Field(description="one of that task's kind's metrics (accuracy, macro_f1, rougeL, ...)")
    max_drop: float = Field(ge=0.0, description="how far tuned may fall below base on the metric, on the paired "
                            "interval's lower bound (in the metric's own units: 0.05 is 5 points of accuracy)")

    @property
    def label(self) -> str:
        """How reports name the probe."""
        return self.task


class TextProbe(Strict):
    """General text the user ships, one passage a line, scored by the perplexity of base and tuned."""

    text_file: Path = Field(description="a UTF-8 text file, relative to the card's file; each non-blank line is one "
                            "scored passage (longer than the base reads: cut into chunks)")
    max_rise: float = Field(gt=0.0, description="the relative rise in perplexity allowed, tuned/base - 1 (0.05: 5%; "
                            "log(1 + max_rise) nats per token), on the paired interval's upper bound")

    @property
    def label(self) -> str:
        return str(self.text_file)


def probe_sort(value: Any) -> str | None:
    """Which probe a card entry is, by its key: `task` or `text_file` (None: neither, pydantic's error names both)."""
    keys = value if isinstance(value, dict) else vars(value) if isinstance(value, Strict) else {}
    return "text" if "text_file" in keys else "task" if "task" in keys else None


RetentionProbe = Annotated[
    Annotated[TaskProbe, Tag("task")] | Annotated[TextProbe, Tag("text")],
    Discriminator(probe_sort, custom_error_type="retention_probe",
                  custom_error_message="a retention probe names another task ({task: NAME, metric: METRIC, "
                                       "max_drop: 0.05}) or a text file ({text_file: PATH, max_rise: 0.05})"),
]
