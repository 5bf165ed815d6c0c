"""A card-only task's start-up check hands the splits it read to the run's first load, so a large file is read once;
only where the card and the files' content are what the check read."""

from __future__ import annotations

from pathlib import Path

from loragate.card.overrides import apply_overrides
from loragate.tasks.card_task import CHECKED, CardTask
from tests.data.test_card_files import MAPPING, rows, write_card, write_csv


def tickets(tmp_path: Path) -> CardTask:
    write_csv(tmp_path / "all.csv", rows(10))
    return CardTask(write_card(tmp_path, {"file": "all.csv", "split": {"test": 0.2}, "columns": MAPPING}))


def test_the_checked_splits_are_the_next_load_once(tmp_path: Path) -> None:
    task = tickets(tmp_path)
    task.check_splits()
    checked = CHECKED[task.loaded_key(None)]
    again = CardTask(task.card_path)  # the run makes a task of its own
    assert again.load_splits() is checked, "not read twice"
    fresh = again.load_splits()
    assert fresh is not checked and fresh.data_hash() == checked.data_hash(), "later loads read the files again"


def test_changed_files_or_card_are_read_again(tmp_path: Path) -> None:
    task = tickets(tmp_path)
    task.check_splits()
    checked = CHECKED[task.loaded_key(None)]
    overridden = CardTask(task.card_path)
    overridden.card = apply_overrides(overridden.card, ("prompt_template=\"Ticket {text} -\"",))
    assert overridden.load_splits() is not checked, "another card"
    write_csv(tmp_path / "all.csv", rows(10, start=1))
    changed = CardTask(task.card_path).load_splits()
    assert changed is not checked and changed.data_hash() != checked.data_hash(), "another content"
    CHECKED.clear()
