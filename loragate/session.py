"""The gate session: one per pytest run, kept in config.stash; runs each (task, tier) once."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # heavy imports wait until a test asks for a run, so `pytest --help` stays fast
    from loragate.run import RunOptions, TaskRun


@dataclass
class GateSession:
    option_values: dict[str, Any]  # RunOptions' fields; RunOptions itself waits for the first run (it imports torch)
    tasks: list[str]
    report_dir: Path
    runs: dict[tuple[str, str], TaskRun] = field(default_factory=dict)
    failures: dict[tuple[str, str], BaseException] = field(default_factory=dict)

    @cached_property
    def options(self) -> RunOptions:
        from loragate.run import RunOptions

        return RunOptions(**self.option_values)

    def run(self, task: str, tier: str) -> TaskRun:
        """The run of `task` at `tier`, computed on first request; a failure is re-raised, not retried."""
        key = (task, tier)
        if key in self.failures:
            raise self.failures[key]
        if key not in self.runs:
            from loragate.run import run_task

            try:
                self.runs[key] = run_task(task, tier, self.options)  # type: ignore[arg-type]
            except Exception as exc:
                self.failures[key] = exc
                raise
        return self.runs[key]
