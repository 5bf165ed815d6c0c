"""The checks behind the plugin's start-up errors for places a run writes to."""

from __future__ import annotations

import shutil
from collections import namedtuple
from pathlib import Path

import pytest

from loragate.plugin import preflight


def test_a_missing_directory_under_a_writable_one_is_fine_and_nothing_is_created(tmp_path: Path) -> None:
    assert preflight.directory_problem(tmp_path / "reports" / "deeper") is None
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1024, 1024))
    problem = preflight.directory_problem(tmp_path / "reports")
    assert problem is not None and "only 0.0 MiB free" in problem


def test_a_summary_file_is_appendable_and_kept(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier\n")
    assert preflight.file_problem(summary) is None and summary.read_text() == "earlier\n"
    assert "is a directory" in preflight.file_problem(tmp_path)
