"""Issue 31, late failures and hangs at the end of a run: GITHUB_STEP_SUMMARY naming a FIFO blocked forever after
every test passed, and one in a missing directory passed the start-up check and failed at the end. Now the summary
must be a regular file, or creatable in an existing writable directory, checked at start-up, and it is written
with a timeout."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from loragate.plugin.preflight import file_problem
from loragate.plugin.session import append_within

USAGE_ERROR = pytest.ExitCode.USAGE_ERROR  # 4


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "summary.fifo"
    os.mkfifo(path)
    return path


@pytest.fixture
def gate_dir(gate_dir: pytest.Pytester) -> pytest.Pytester:
    """The user's directory (tests/conftest.py) with one plain test."""
    gate_dir.makepyfile(test_plain="def test_ok():\n    pass\n")
    return gate_dir


def test_a_fifo_is_no_summary_file(fifo: Path) -> None:
    assert file_problem(fifo) == f"{fifo} is a FIFO (named pipe), not a file"


def test_a_summary_in_a_missing_directory_is_found_at_start_up(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "summary.md"
    assert file_problem(path) == f"its directory {path.parent} does not exist"
    assert file_problem(tmp_path / "summary.md") is None, "a new file in an existing directory is fine"


def test_the_summary_is_written_within_a_timeout(fifo: Path, tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"not written within 0\.5 s \(a FIFO no one reads"):
        append_within(fifo, "| task | verdict |\n", 0.5)
    assert time.monotonic() - start < 5
    os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))  # a reader at last: the waiting writer finishes
    append_within(tmp_path / "summary.md", "| task | verdict |\n", 5)
    assert (tmp_path / "summary.md").read_text() == "| task | verdict |\n"


@pytest.mark.slow
def test_a_fifo_summary_is_a_usage_error_at_start_up(gate_dir: pytest.Pytester, fifo: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(fifo))
    result = gate_dir.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    assert result.ret == USAGE_ERROR, result.stdout.str()[-2000:]
    result.stderr.fnmatch_lines([f"*GITHUB_STEP_SUMMARY={fifo}: {fifo} is a FIFO (named pipe), not a file; point "
                                 f"it at a writable file or unset it*"])


@pytest.mark.slow
def test_a_summary_in_a_missing_directory_is_a_usage_error_at_start_up(gate_dir: pytest.Pytester, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "missing" / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(path))
    result = gate_dir.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    assert result.ret == USAGE_ERROR, result.stdout.str()[-2000:]
    result.stderr.fnmatch_lines([f"*GITHUB_STEP_SUMMARY={path}: its directory {path.parent} does not exist*"])
