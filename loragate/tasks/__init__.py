"""The task registry. A task is a card (YAML beside its module) plus the code YAML cannot hold."""

from __future__ import annotations

from pathlib import Path

from loragate.data.task import Task
from loragate.registry import Registry

__all__ = ["BUILT_IN", "CARDS_DIR", "TASKS", "Task", "default_tasks", "get_task"]

CARDS_DIR = Path(__file__).parent


TASKS: Registry[type] = Registry("task")


def get_task(name: str) -> Task:
    return TASKS.get(name)()


from loragate.tasks import instruct, iris, squad_v2, sst2, topics  # noqa: E402,F401  (each task module registers itself)

BUILT_IN = frozenset(TASKS.names())  # the examples and regression suite; a project's own tasks replace them by default


def default_tasks() -> list[str]:
    """What runs without --task: a project's own tasks (its tasks directory, the loragate.tasks entry points) where
    it has any, else the built-in ones. A built-in task still runs in a project when named with --task."""
    return [name for name in TASKS.names() if name not in BUILT_IN] or TASKS.names()
