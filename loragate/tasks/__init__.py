"""The task registry. A task is a card (YAML beside its module) plus the code YAML cannot hold."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from loragate.card import TaskCard
from loragate.data import Example, Splits
from loragate.parsing import ParsedOutput
from loragate.registry import Registry

CARDS_DIR = Path(__file__).parent


class Task(Protocol):
    card: TaskCard
    hub_suffix: str  # the file suffix of the task's real format

    def load_splits(self, data: Path | None = None) -> Splits:
        """Train/eval/test splits from the shipped data, or from `data` in the task's real format."""

    def write_hub_rows(self, rows: Iterable[dict], columns: list[str], source: str, out: Path) -> None:
        """A Hugging Face dataset's rows written to `out` in the task's real format (see loragate.hub_data)."""

    def parse(self, text: str) -> ParsedOutput:
        """Raw generated text -> the output schema, or the reason it is invalid. Never raises."""

    def ceiling(self, test: list[Example]) -> float | None:
        """The best accuracy any model can reach on this test split, where that is knowable."""


TASKS: Registry[type] = Registry("task")


def get_task(name: str) -> Task:
    return TASKS.get(name)()


from loragate.tasks import instruct, iris, squad_v2, sst2, topics  # noqa: E402,F401  (each task module registers itself)

BUILT_IN = frozenset(TASKS.names())  # the examples and regression suite; a project's own tasks replace them by default


def default_tasks() -> list[str]:
    """What runs without --task: a project's own tasks (its tasks directory, the loragate.tasks entry points) where
    it has any, else the built-in ones. A built-in task still runs in a project when named with --task."""
    return [name for name in TASKS.names() if name not in BUILT_IN] or TASKS.names()
