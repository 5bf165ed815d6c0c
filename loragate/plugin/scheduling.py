"""pytest-xdist scheduling that keeps each task's tests on one worker, so each task's run is computed once (and the
tasks of a fleet, which share one base and one pass, on one worker together).

xdist's own `--dist loadgroup` reads groups from a suffix it writes into node ids, which pytest 9.2 no longer
lets it write (pytest-xdist issue #1386): the groups are silently dropped and a task's tests spread over the
workers. This scheduler reads the task from the test's parameter id instead ("[iris-tiny]", "[iris]").
Imported only when xdist asks for a scheduler: it needs xdist.
"""

from __future__ import annotations

import pytest
from xdist.scheduler import LoadScopeScheduling


def task_of(nodeid: str, tasks: set[str]) -> str | None:
    """The task a test is parametrized with: one of the '-'-separated parts of its parameter id."""
    if not nodeid.endswith("]") or "[" not in nodeid:
        return None
    parts = nodeid[nodeid.rindex("[") + 1 : -1].split("-")
    return next((part for part in parts if part in tasks), None)


class TaskScheduling(LoadScopeScheduling):
    """Whole tasks to workers (every test parametrized with a task is one unit of work); any other test is a
    unit of its own, as under `--dist load`."""

    def __init__(self, config: pytest.Config, tasks: list[str], log=None,
                 together: dict[str, str] | None = None) -> None:
        super().__init__(config, log)
        self.tasks = set(tasks)
        self.together = together or {}  # task -> the first task of the fleet it shares a base with, in one pass

    def _split_scope(self, nodeid: str) -> str:
        task = task_of(nodeid, self.tasks)
        return f"loragate task {self.together.get(task, task)}" if task is not None else nodeid
