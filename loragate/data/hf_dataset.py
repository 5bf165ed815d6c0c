"""`--data` as a Hugging Face dataset: a hub id (when the network is there, e.g. `stanfordnlp/sst2`) or a local
dataset directory (a clone of the hub repository, or any directory `datasets.load_dataset` reads).

Its train split is written once in the task's real format (the task module's `write_hub_rows`), under a name
that hashes the written file, and the task loads that file as it loads any `--data` file: one loader, one set
of checks and errors, whatever the source.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from loragate.atomic import atomic_file

HUB_ID_EXAMPLES = "stanfordnlp/sst2, fancyzhx/ag_news, rajpurkar/squad_v2, databricks/databricks-dolly-15k"


class HubTask(Protocol):
    hub_suffix: str  # the suffix of the task's real file format, which its loader reads by

    def write_hub_rows(self, rows: Iterable[dict], columns: list[str], source: str, out: Path) -> None:
        """Write a dataset's rows to `out` in the task's real format; a missing column is a ValueError naming
        `source`, the columns it has and those the task reads."""


def is_dataset(data: str | Path | None) -> bool:
    """A hub id (not a path that exists) or a directory: what `materialize` reads. A file is the task's own format."""
    return data is not None and (isinstance(data, str) or Path(data).is_dir())


def missing_columns(columns: list[str], needed: Iterable[str], source: str, task: str, shape: str) -> None:
    """Raise when the dataset lacks a column the task reads, naming the dataset's closest column for each (a misspelt
    column, or one a card's data.columns maps to)."""
    missing = [name for name in needed if name not in columns]
    if missing:
        close = {name: difflib.get_close_matches(name, columns, n=1) for name in missing}
        hints = [f"{match[0]!r} for {name!r}" for name, match in close.items() if match]
        hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
        raise ValueError(f"--data {source}: the dataset has columns {columns}, the {task} task reads {missing} "
                         f"too{hint} ({shape}); pass a dataset in that layout or the task's own file format")


def materialize(task_name: str, task: HubTask, data: str | Path, cache: Path) -> Path:
    """The train split of dataset `data` as a file in the task's real format under `cache`/data/."""
    from datasets import load_dataset  # loads pyarrow and pandas: not at pytest start-up

    source = str(data)
    # a directory's Arrow cache stays under .loragate/; a hub id uses the Hugging Face cache, which a machine
    # with the network may have filled for one without
    cache_dir = str(cache / "datasets") if Path(data).is_dir() else None
    try:
        dataset = load_dataset(source, split="train", cache_dir=cache_dir)
    except Exception as exc:  # datasets raises many kinds (not found, offline, no train split): all end here
        raise ValueError(
            f"--data {source}: cannot read it as a Hugging Face dataset ({type(exc).__name__}: {exc}). Fix: a hub "
            f"id needs the network or a filled Hugging Face cache (e.g. {HUB_ID_EXAMPLES}); a directory needs a "
            f"train split datasets can read; or pass the task's data as a file in its own format") from exc
    with atomic_file(cache / "data" / f"{task_name}{task.hub_suffix}") as staged:
        task.write_hub_rows(dataset, list(dataset.column_names), source, staged.path)
        digest = hashlib.sha256(staged.path.read_bytes()).hexdigest()[:12]
        staged.target = staged.target.with_name(f"{task_name}-{digest}{task.hub_suffix}")  # named by its content
    return staged.target
