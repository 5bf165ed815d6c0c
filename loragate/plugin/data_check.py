"""The start-up check of each selected task's data: before any model loads, its splits are read and checked against
its card (columns, the fields its templates read, label values, split sizes), from the card's files or `--data`.
A mistake in the data is then one line and exit 4, not a traceback under every gate test of its case.

A card-only task keeps what it read for the run (CardTask.check_splits), so a large file is read once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from loragate.card.overrides import apply_overrides
from loragate.data.hf_dataset import is_dataset, materialize
from loragate.tasks import get_task
from loragate.tasks.card_task import CardTask


def check_data(tasks: list[str], overrides: tuple[str, ...], data: Path | str | None, cache: Path) -> None:
    """Read each task's splits with the run's --set overrides and --data, as the run will; a CardError or the
    ValueError a task module raises for its data becomes a usage error naming the task. Any other exception (a task
    module's own bug, a KeyError from its template) is left to the run, which raises it again as the case's error
    with its traceback: here it would be pytest's INTERNALERROR."""
    for name in tasks:
        task = get_task(name)
        task.card = apply_overrides(task.card, overrides)
        try:
            path = materialize(task.card.name, task, data, cache) if is_dataset(data) else data
            if isinstance(task, CardTask):
                task.check_splits(path)
            else:
                task.load_splits(path)
        except ValueError as exc:  # CardError included: the message names the file, the field and the fix
            raise pytest.UsageError(f"task {name}: {exc}") from exc
        except Exception:  # not swallowed: the run meets it again and shows it with its traceback
            continue
