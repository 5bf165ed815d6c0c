"""Issue 31, the verdict's integrity: a card renamed with `--set name=other` is judged on its case's gate tests (the
task the tests were parametrized with), and pytest-benchmark's --benchmark-skip leaves the throughput test unrun,
so its case is PARTIAL, as under any deselection."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from loragate.card.options import RunOptions
from loragate.metrics.plots import Plot
from loragate.plugin.session import GateSession
from loragate.report.writer import RenderedRun
from loragate.run.task_run import TaskRun

REPO = Path(__file__).resolve().parents[2]
QUALITY = "suites/test_quality.py::test_metric_deltas_meet_card_minimums[iris-tiny]"
SCHEMA = "suites/test_schema.py::test_tuned_outputs_parse[iris-tiny]"


class RenamedRun(SimpleNamespace):
    """What the verdict reads of a TaskRun (its card gates, its gate tests): iris, renamed `other` by --set."""

    verdict = TaskRun.verdict


@pytest.fixture
def renamed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GateSession:
    """A session whose case iris/tiny ran with its card renamed `other`; rendering gives the run's verdict."""
    monkeypatch.setattr("loragate.report.writer.render_or_explain", lambda run: run.verdict.status)
    session = GateSession(RunOptions(), ["iris"], tmp_path)
    for nodeid in (QUALITY, SCHEMA):
        session.collected(nodeid, ("iris", "tiny"))
    session.runs[("iris", "tiny")] = RenamedRun(task=SimpleNamespace(card=SimpleNamespace(name="other")),
                                                tier="tiny", gates=[], tests=None, overrides=("name=other",))
    return session


def test_a_renamed_cards_case_with_a_deselected_gate_test_is_partial(renamed: GateSession) -> None:
    renamed.record(QUALITY, "passed")  # SCHEMA deselected: never reported
    verdicts, _ = renamed.results()
    assert verdicts == ["PARTIAL"], f"iris renamed by --set name=other, one gate test not run: {verdicts}"


def test_a_renamed_cards_case_with_a_failed_gate_test_fails(renamed: GateSession) -> None:
    renamed.record(QUALITY, "passed")
    renamed.record(SCHEMA, "failed")
    verdicts, _ = renamed.results()
    assert verdicts == ["FAIL"], f"iris renamed by --set name=other, one gate test failed: {verdicts}"


def test_a_workers_run_of_a_renamed_card_is_kept_not_a_crash(tmp_path: Path) -> None:
    """Under xdist a worker hands over its run by its card's name, which no case of the controller has."""
    session = GateSession(RunOptions(), ["iris"], tmp_path)
    run = RenderedRun(task="other", tier="tiny", verdict="PASS", table="other/tiny: PASS", json={"task": "other"},
                      markdown="", html="", summary="", plots=(Plot("other-tiny-loss.svg", "loss", "<svg/>"),))
    session.receive("gw0", {"runs": [run.to_builtins()], "failures": [], "candidates": []})
    runs, _ = session.results()
    assert [run.name for run in runs] == ["other/tiny"]


@pytest.mark.slow
def test_benchmark_skip_leaves_the_case_partial(tmp_path: Path) -> None:
    """The iris smoke gate from its committed adapter (about 20 s): --benchmark-skip skipped the throughput test and
    the case passed; now the test is deselected and the case is PARTIAL, exit 1."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    result = subprocess.run([sys.executable, "-m", "pytest", "-m", "smoke", "--task", "iris", "suites", "-q",
                             "-p", "no:cacheprovider", "--benchmark-skip", "--report-dir", str(tmp_path)],
                            cwd=REPO, env={**env, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}, capture_output=True,
                            text=True, timeout=600)
    out = result.stdout + result.stderr
    assert "iris/tiny: PARTIAL" in out and "test_evaluation_throughput[iris-tiny]" in out, out[-3000:]
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, out[-3000:]


def test_two_tasks_renamed_to_one_name_are_refused_at_start_up() -> None:
    """`--set name=x` with two tasks would give two runs one name: one verdict would hide the other."""
    from types import SimpleNamespace

    from loragate.card.options import OptionError
    from loragate.plugin.startup import check_cards

    config = SimpleNamespace(getoption={"overrides": ["name=shared"], "constrain": False}.get)
    with pytest.raises(OptionError, match="2 tasks would all be named 'shared'; rename one task at a time"):
        check_cards(config, ["iris", "sst2"])
    check_cards(config, ["iris"])


def test_a_ranking_of_candidates_that_raises_fails_the_session_and_keeps_the_report(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The candidates' ranking runs where the report is written: an error in it is one error that fails the session,
    not a crash that leaves every run without its report."""
    session = GateSession(RunOptions(), ["iris"], tmp_path)
    run = RenderedRun(task="iris", tier="tiny", verdict="PASS", table="iris/tiny: PASS", json={"task": "iris"},
                      markdown="", html="", summary="", plots=())
    session.receive("gw0", {"runs": [run.to_builtins()], "failures": [], "candidates": []})
    monkeypatch.setattr(GateSession, "candidate_groups", lambda self: 1 / 0)
    finished = session.finish()
    assert finished.report is not None and (finished.report / "report.json").exists()
    assert finished.errors == ["the candidates could not be ranked: ZeroDivisionError: division by zero"]
    assert "failures" in session.handover() and any("could not be ranked" in line
                                                    for line in session.handover()["failures"])
