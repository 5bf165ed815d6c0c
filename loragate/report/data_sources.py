"""The data a run read, as every report names it: the --data file or dataset, else the card's data files, else the task
module's own data; with the data hash that ties the adapter to it. A `--data` run did not name the file it read."""

from __future__ import annotations

from typing import TYPE_CHECKING

from loragate.report.rows import shown

if TYPE_CHECKING:  # loragate.run.task_run loads torch and transformers
    from loragate.run.task_run import TaskRun


def data_sources(run: TaskRun) -> list[str]:
    """What the run's splits were read from, as the user named it: `--data` as given, the card's `data:` files
    relative to the card (the overridden card's, under --set), or the task module that ships or generates its data."""
    if run.data is not None:
        return [f"{run.data} (--data)"]
    card = run.task.card
    if card.data is not None:
        folder = card.path.parent if card.path is not None else None
        return [f"{name}: {shown(folder / path) if folder is not None else path}"
                for name in ("file", "train", "eval", "test") if (path := getattr(card.data, name)) is not None]
    return [f"the task module's own data ({type(run.task).__module__})"]


def data_line(run: TaskRun) -> str:
    """One line for the reports: the sources and the data hash."""
    return f"data: {'; '.join(data_sources(run))} (data hash {run.splits.data_hash()[:12]})"


def data_json(run: TaskRun) -> dict:
    return {"sources": data_sources(run), "hash": run.splits.data_hash()}
