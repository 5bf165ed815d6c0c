"""The gate ships with the package: `pytest -m smoke` collects suites in any project, with the plugin's
fixtures, and explicit paths run as given (`pytest tests` here runs no gate test)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.plugin.test_discovery import pytest_in, write_flowers

ROOT = Path(__file__).resolve().parents[2]


def collected(cwd: Path, *args: str) -> list[str]:
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q",
                             "--task", "iris", *args], cwd=cwd, capture_output=True, text=True)
    assert result.returncode in (0, 5), result.stdout[-3000:] + result.stderr[-3000:]  # 5: nothing collected
    return [line for line in result.stdout.splitlines() if "::" in line]


@pytest.mark.slow
def test_explicit_paths_run_as_given_and_the_suites_are_collected_once() -> None:
    """`-m smoke tests/...` collects no gate test; `-m smoke` from inside loragate/ (no testpaths there: pytest walks
    the current directory, reaching suites itself) collects each gate test once."""
    explicit = collected(ROOT, "-m", "smoke", "tests/gates/test_verdict.py")
    assert not [nodeid for nodeid in explicit if "suites/" in nodeid], explicit
    inside = collected(ROOT / "loragate", "-m", "smoke")
    gate = [nodeid for nodeid in inside if "test_tuned_outputs_parse" in nodeid]
    assert gate and max(Counter(inside).values()) == 1, inside


@pytest.mark.slow
def test_a_project_outside_this_repository_gates_its_own_task(tmp_path: Path) -> None:
    """`pytest -m smoke` in a fresh project whose pyproject.toml says only `[tool.loragate] tasks = "tasks"`: the
    packaged suites gate its task (trained on the spot: 30 s on an idle 2-core CPU, 90 s on a busy one), and the
    adapter store and reports land in the project."""
    project = tmp_path / "project"
    write_flowers(project / "tasks")
    (project / "pyproject.toml").write_text('[project]\nname = "flowers-project"\n\n[tool.loragate]\ntasks = "tasks"\n')
    result = pytest_in(project, "-m", "smoke", "--task", "flowers", "-rA")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "PASSED suites/test_schema.py::test_tuned_outputs_parse[flowers-tiny]" in result.stdout
    assert "PASSED suites/test_quality.py::test_metric_deltas_meet_card_minimums[flowers-tiny]" in \
        result.stdout
    assert "flowers/tiny: PASS  base" in result.stdout, result.stdout[-3000:]
    (report,) = (project / "reports").iterdir()
    assert (report / "report.json").is_file() and f"report: {report / 'report.md'}" in result.stdout
    assert list((project / "adapters" / "flowers" / "tiny").iterdir()), "the adapter was stored in the project"
