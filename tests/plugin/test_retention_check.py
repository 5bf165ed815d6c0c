"""A card's retention probes are checked as the gate starts (loragate.plugin.startup check_cards): a probe that cannot
run is one line and exit 4, before any model loads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_an_unknown_probe_task_stops_the_gate_at_start_up_with_one_line() -> None:
    result = subprocess.run([sys.executable, "-m", "pytest", "-m", "smoke", "-p", "no:cacheprovider", "--task", "iris",
                             "--set", "retention=[{task: sst, metric: accuracy, max_drop: 0.05}]",
                             "suites/test_quality.py"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 4, result.stdout[-2000:] + result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"ERROR: {ROOT / 'loragate/tasks/iris.yaml'}: retention[0].task: Unknown task 'sst'. "
                                f"Did you mean 'sst2'? Available: "), errors
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.slow
def test_the_gate_test_fails_a_probe_that_does_not_hold_and_the_table_shows_it(tmp_path: Path) -> None:
    """The committed Iris adapter on its random tiny base, probed with the base's own task text: the adapter raises
    its perplexity about five-fold, so test_retention_holds fails and the table's Retention section shows the rise."""
    from loragate.tasks import get_task

    text = tmp_path / "iris.txt"
    text.write_text("\n".join(get_task("iris").load_splits().texts()) + "\n")
    result = subprocess.run([sys.executable, "-m", "pytest", "-m", "smoke", "-p", "no:cacheprovider", "--task", "iris",
                             "--set", f"retention=[{{text_file: {text}, max_rise: 0.05}}]", "--report-dir",
                             str(tmp_path / "reports"), "suites/test_quality.py", "-k", "test_retention_holds"],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    out = result.stdout
    assert result.returncode == 1, out[-3000:] + result.stderr[-2000:]
    assert "FAILED suites/test_quality.py::test_retention_holds[iris-tiny]" in out, out[-3000:]
    assert "Retention: what the adapter keeps outside its task" in out, out[-3000:]
    assert f"retention: {text}  perplexity" in out and "rise +" in out, out[-3000:]
