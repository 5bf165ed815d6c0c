"""ruff on the whole repository, with the config in pyproject.toml ([tool.ruff]: pyflakes, pycodestyle, import
order, lines of up to 120 characters): no finding, as zizmor finds nothing in the workflows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_ruff_finds_nothing_in_the_repository() -> None:
    """`python -m ruff`: the ruff of this venv (the test extra), never another on PATH."""
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise",
                             "--extend-exclude", "build,dist", "."],  # what a local wheel build leaves
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    if result.returncode != 0 and "No module named ruff" in result.stderr:
        pytest.fail("ruff is not installed: it is in the test extra, `pip install -e '.[test]'`")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
