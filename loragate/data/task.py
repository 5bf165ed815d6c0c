"""What a task is to the run: its card, its splits, its parser. The built-in tasks (loragate.tasks) and a
card-only task (loragate.tasks.card_task) both are one; a kind's pipeline works for any."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from loragate.card.settings import TaskCard
from loragate.data.examples import Example, Splits
from loragate.data.parsing import ParsedOutput


class Task(Protocol):
    card: TaskCard
    hub_suffix: str  # the file suffix of the task's real format

    def load_splits(self, data: Path | None = None) -> Splits:
        """Train/eval/test splits from the shipped data, or from `data` in the task's real format."""

    def write_hub_rows(self, rows: Iterable[dict], columns: list[str], source: str, out: Path) -> None:
        """A Hugging Face dataset's rows written to `out` in the task's real format (see loragate.data.hf_dataset)."""

    def parse(self, text: str) -> ParsedOutput:
        """Raw generated text -> the output schema, or the reason it is invalid. Never raises."""

    def ceiling(self, test: list[Example]) -> float | None:
        """The best accuracy any model can reach on this test split, where that is knowable."""
