"""An OSError reading a task's data at start-up (permission denied, a directory where a file is expected) is the
user's mistake: one line naming the file (exit 4), where it was left to the run as if a task module's own bug."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from loragate.card.options import RunOptions
from loragate.plugin import data_check


def test_a_file_the_check_cannot_read_is_one_usage_error_naming_it(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    locked = tmp_path / "iris.csv"

    def denied(*_: object) -> None:  # a chmod 000 file reads fine as root: the error itself stands in
        raise PermissionError(errno.EACCES, "Permission denied", str(locked))

    monkeypatch.setattr(data_check, "check_splits", denied)
    with pytest.raises(pytest.UsageError) as raised:
        data_check.check_data(["iris"], RunOptions(data=locked), ["tiny"])
    assert str(raised.value) == (f"task iris: cannot read {locked}: Permission denied; make it a file this user can "
                                 f"read, or point the card's data field (or --data) at one")


def test_a_directory_where_a_file_is_expected_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def read(*_: object) -> None:
        tmp_path.joinpath("iris.csv").read_text()  # a directory: IsADirectoryError, as a task module's open() meets

    tmp_path.joinpath("iris.csv").mkdir()
    monkeypatch.setattr(data_check, "check_splits", read)
    with pytest.raises(pytest.UsageError, match=rf"^task iris: cannot read {tmp_path / 'iris.csv'}: Is a directory; "):
        data_check.check_data(["iris"], RunOptions(), ["tiny"])


def test_a_task_modules_other_exception_is_still_left_to_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    def bug(*_: object) -> None:
        raise KeyError("a bug of the task module")

    monkeypatch.setattr(data_check, "check_splits", bug)
    data_check.check_data(["iris"], RunOptions(), ["tiny"])  # no error here: the run raises it with its traceback
