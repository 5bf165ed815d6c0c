"""One verdict: a task's gate tests all count, a run that left some out is PARTIAL, and the exit code, the table,
report.json, summary.md and the JUnit XML agree (before, `pytest --lf` ran 1 of 22 gate tests, exited 0 and wrote
PASS; a second `--export` run exited 1 while every report said PASS)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from loragate.gates.verdict import GATE_SUITES, CaseTests, judge_case

ROOT = Path(__file__).resolve().parents[2]
SUITE_IDS = [f"suites/{name}.py::test_a[iris-tiny]" for name in GATE_SUITES]


def test_every_collected_test_passed_is_a_pass() -> None:
    tests = CaseTests(collected=SUITE_IDS, outcomes={nodeid: "passed" for nodeid in SUITE_IDS})
    tests.record(SUITE_IDS[0], "skipped")  # a test that decided it does not apply has run
    assert judge_case([], tests).status == "PASS"


@pytest.mark.slow
def test_a_failed_gate_test_fails_even_when_the_card_gates_pass() -> None:
    tests = CaseTests(collected=SUITE_IDS, outcomes={nodeid: "passed" for nodeid in SUITE_IDS})
    tests.record(SUITE_IDS[1], "failed")
    tests.record(SUITE_IDS[1], "passed")  # a teardown after a failed call does not clear it
    verdict = judge_case([], tests)
    assert verdict.status == "FAIL" and verdict.reasons == (f"gate test failed: {SUITE_IDS[1]}",)


@pytest.mark.slow
def test_tests_left_out_make_it_partial_naming_them() -> None:
    tests = CaseTests(collected=SUITE_IDS, outcomes={SUITE_IDS[0]: "passed"})
    verdict = judge_case([], tests)
    assert verdict.status == "PARTIAL" and verdict.reasons[0].startswith("4 gate tests of this case did not run")


def test_a_suite_file_never_collected_makes_it_partial() -> None:
    tests = CaseTests(collected=SUITE_IDS[:1], outcomes={SUITE_IDS[0]: "passed"})
    (reason,) = judge_case([], tests).reasons
    assert "test_quality.py (not collected)" in reason


def test_card_gate_findings_fail_before_anything_is_partial() -> None:
    verdict = judge_case(["accuracy delta: +0.01 < +0.05"], CaseTests(collected=SUITE_IDS))
    assert verdict.status == "FAIL" and verdict.reasons == ("accuracy delta: +0.01 < +0.05",)
    assert judge_case([], None).status == "PASS", "outside pytest the card's gates decide alone"


def gate(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """The gate on the committed Iris adapter, as a user runs it (about 15 s on a 2-core CPU)."""
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-m", "smoke", "--task", "iris",
                           f"--report-dir={tmp_path / 'reports'}", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})


def newest_report(tmp_path: Path) -> Path:
    return max((tmp_path / "reports").iterdir())


@pytest.mark.slow
def test_a_run_of_one_gate_test_is_partial_everywhere(tmp_path: Path) -> None:
    result = gate(tmp_path, "-k", "test_tuned_outputs_parse", f"--junitxml={tmp_path / 'junit.xml'}")
    assert result.returncode == 1, result.stdout[-3000:]
    assert "iris/tiny: PARTIAL  base" in result.stdout and "PARTIAL: " in result.stdout
    report = newest_report(tmp_path)
    (run,) = json.loads((report / "report.json").read_text())["runs"]
    assert run["verdict"] == "PARTIAL" and not run["passed"] and "did not run" in run["verdict_reasons"][0]
    assert "### iris/tiny: PARTIAL" in (report / "summary.md").read_text()
    assert "iris/tiny: PARTIAL" in (report / "report.md").read_text()
    assert 'class="badge partial">PARTIAL' in (report / "report.html").read_text()
    properties = {p.get("name"): p.get("value") for p in ET.parse(tmp_path / "junit.xml").iter("property")}
    assert properties["loragate.verdict.iris.tiny"] == "PARTIAL"


@pytest.mark.slow
def test_a_failing_gate_test_fails_the_report_too(tmp_path: Path) -> None:
    """The second --export into the same directory fails a gate test (the export exists); the report says FAIL."""
    first = gate(tmp_path, f"--export={tmp_path / 'dist'}")
    assert first.returncode == 0, first.stdout[-3000:]
    assert json.loads((newest_report(tmp_path) / "report.json").read_text())["runs"][0]["verdict"] == "PASS"
    second = gate(tmp_path, f"--export={tmp_path / 'dist'}")
    assert second.returncode == 1 and "iris/tiny: FAIL  base" in second.stdout, second.stdout[-3000:]
    (run,) = json.loads((newest_report(tmp_path) / "report.json").read_text())["runs"]
    assert run["verdict"] == "FAIL" and any(r.startswith("gate test failed: suites/test_gguf_export.py")
                                            for r in run["verdict_reasons"])
    assert "### iris/tiny: FAIL" in (newest_report(tmp_path) / "summary.md").read_text()
