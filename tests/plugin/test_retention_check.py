"""A card's retention probes are checked as the gate starts (loragate.plugin.hooks check_cards): a probe that cannot
run is one line and exit 4, before any model loads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
