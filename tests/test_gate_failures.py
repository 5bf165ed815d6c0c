"""The gate itself, run as a user runs it, must fail on adapters that should not ship."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from test_baseline import committed_adapter, zeroed_copy

ROOT = Path(__file__).resolve().parents[1]


def gate(*args: str, report_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-m", "smoke", "-p", "no:cacheprovider",
                           "--report-dir", str(report_dir), *args], cwd=ROOT, capture_output=True, text=True)


def test_an_adapter_with_no_effect_fails_the_gate(tmp_path: Path) -> None:
    noop = zeroed_copy(committed_adapter(), tmp_path / "noop")
    result = gate("suites/test_parameters.py", "suites/test_quality.py", "--task", "iris", "--adapter", str(noop),
                  report_dir=tmp_path / "reports")
    assert result.returncode == 1, result.stdout[-3000:]
    assert "adapter has no effect: max logit change 0.00e+00" in result.stdout, result.stdout[-3000:]
    assert "FAILED suites/test_quality.py::test_metric_deltas_meet_card_minimums[iris-tiny]" in result.stdout
    assert "iris/tiny: FAIL" in result.stdout


def test_leakage_is_found_through_case_and_spacing() -> None:
    from loragate.data import Example, Splits

    def ex(i: str, prompt: str) -> Example:
        return Example(id=i, prompt=prompt, target=" a", label="a")

    splits = Splits(train=[ex("tr-0", "Review: good  film")], eval=[],
                    test=[ex("te-0", "review: GOOD film"), ex("te-1", "Review: bad film")])
    assert splits.leaked() == ["te-0"]


def test_leakage_gate_refuses_above_the_card_share_and_names_the_examples() -> None:
    from loragate.gates import leakage_gate

    refused = leakage_gate(["te-0", "te-3"], 10, max_share=0.0)
    assert not refused.passed and "2 of 10 test inputs also in train (20.0% > allowed 0.0%): te-0, te-3" in refused.finding
    assert leakage_gate(["te-0"], 10, max_share=0.1).passed
    assert leakage_gate(["te-0"] * 9, 10, max_share=None).passed, "a card that allows repeats is not gated"
