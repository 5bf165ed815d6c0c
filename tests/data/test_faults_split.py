"""Issue 31, case 6c: a split share that leaves train too few rows (`split.eval: 0.99`) is a card error naming the
card's file, data.split.eval, the row count and the fix, where sklearn's train_test_split raised its own error
about train_size."""

from __future__ import annotations

from pathlib import Path

import pytest

from loragate.card.settings import CardError
from loragate.tasks.card_task import CardTask
from tests.data.test_card_files import MAPPING, rows, write_card, write_csv, write_jsonl


def load_error(path: Path) -> str:
    with pytest.raises(CardError) as raised:
        CardTask(path).load_splits()
    return str(raised.value)


def test_an_eval_share_that_leaves_train_no_row_of_each_label_is_a_card_error(tmp_path: Path) -> None:
    write_csv(tmp_path / "train.csv", rows(20))  # 60 rows, 3 labels
    write_csv(tmp_path / "test.csv", rows(2, start=100))
    message = load_error(write_card(tmp_path, {"train": "train.csv", "test": "test.csv",
                                               "split": {"eval": 0.99}, "columns": MAPPING}))
    assert message == (f"{tmp_path / 'train.csv'} (data.split.eval): a share of 0.99 of 60 rows cuts off all but 0, "
                       f"fewer than the 3 labels the rows left must each hold once; lower the share (at most 0.95 "
                       f"here) or add rows"), message


def test_the_eval_share_of_one_cut_file_is_checked_the_same_way(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "all.jsonl", rows(20))
    message = load_error(write_card(tmp_path, {"file": "all.jsonl", "split": {"test": 0.5, "eval": 0.49},
                                               "columns": MAPPING}))
    assert message.startswith(f"{tmp_path / 'all.jsonl'} (data.split.eval 0.49 of all rows, 0.98 of those "
                              f"data.split.test 0.5 left): a share of 0.98 of 30 rows cuts off all but 0, fewer than "
                              f"the 3 labels"), message
