"""The gate under pytest-xdist: `pytest -m smoke -n 2` keeps each task's tests on one worker, so each run is
computed once, and the controller prints every task's table and writes one report of all runs (before, the
controller printed nothing and every worker computed every task and wrote its own report)."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from loragate.card.options import RunOptions
from loragate.metrics.plots import Plot
from loragate.plugin.hooks import pytest_load_initial_conftests
from loragate.plugin.session import GateSession
from loragate.report.writer import RenderedRun

ROOT = Path(__file__).resolve().parents[2]
WORKER_RESULT = re.compile(r"^\[(gw\d+)\] .*\[(\w+)-tiny\]", re.MULTILINE)  # -v: "[gw0] [ 9%] PASSED ...[iris-tiny]"


def pytest_in_repo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **(env or {})},
                          capture_output=True, text=True)


@pytest.mark.slow
def test_two_workers_gate_each_task_once_and_the_controller_reports_all(tmp_path: Path) -> None:
    """Committed adapters, so nothing trains: about 35 s on a 2-core CPU. One suite file of the gate runs, so each
    task's verdict, decided on its worker and handed over, is PARTIAL and the run exits 1."""
    step_summary = tmp_path / "step-summary.md"
    result = pytest_in_repo("suites/test_quality.py", "-m", "smoke", "-n", "2", "-v", "--task", "iris",
                            "--task", "sst2", "--report-dir", str(tmp_path / "reports"),
                            env={"GITHUB_STEP_SUMMARY": str(step_summary)})
    out = result.stdout
    assert result.returncode == 1, out[-3000:]
    assert "scheduling tests via TaskScheduling" in out, "-n without --dist should schedule whole tasks"
    workers: dict[str, set[str]] = {}
    for worker, task in WORKER_RESULT.findall(out):
        workers.setdefault(task, set()).add(worker)
    assert workers.keys() == {"iris", "sst2"} and all(len(ids) == 1 for ids in workers.values()), (
        f"each task's tests should run on one worker, which computes its run once: {workers}")
    assert "computed by" not in out, out[-3000:]
    for task in ("iris", "sst2"):
        assert out.count(f"{task}/tiny: PARTIAL  base") == 1, \
            f"the controller prints {task}'s table once:\n{out[-3000:]}"
        assert result.stderr.count(f"{task}/tiny: loaded adapter in ") == 1, (
            f"{task}'s worker writes its phase lines to stderr (its stdout is not the terminal):\n"
            f"{result.stderr[-3000:]}")

    (report,) = (tmp_path / "reports").iterdir()  # one report, written by the controller, none by the workers
    assert f"report: {report / 'report.md'}" in out
    runs = json.loads((report / "report.json").read_text())["runs"]
    assert [(run["task"], run["tier"], run["verdict"]) for run in runs] == [("iris", "tiny", "PARTIAL"),
                                                                             ("sst2", "tiny", "PARTIAL")]
    assert "test_schema.py (not collected)" in runs[0]["verdict_reasons"][0]
    for name in ("report.md", "report.html", "summary.md"):
        text = (report / name).read_text()
        assert "iris/tiny" in text and "sst2/tiny" in text, name
    assert {"iris-tiny-confusion.svg", "sst2-tiny-confusion.svg"} <= {path.name for path in report.iterdir()}
    assert step_summary.read_text() == (report / "summary.md").read_text(), "the job summary is appended once"


@pytest.mark.slow
def test_without_xdist_the_suites_collect_under_strict_markers() -> None:
    """The plugin's xdist hooks are optional: without xdist the gate collects as before, strict markers on."""
    result = pytest_in_repo("suites/test_quality.py", "suites/test_properties.py", "-p", "no:xdist", "-m", "smoke",
                            "--task", "iris", "--collect-only", "-q")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "test_metric_deltas_meet_card_minimums[iris-tiny]" in result.stdout


@pytest.mark.parametrize(("numprocesses", "dist", "distload", "added"), [
    (2, "no", False, ["--dist=loadgroup"]),  # -n 2
    ("auto", "no", False, ["--dist=loadgroup"]),  # -n auto
    (2, "load", False, []),  # -n 2 --dist load: the user's choice stays
    (2, "no", True, []),  # -n 2 -d (xdist's shortcut for --dist load)
    (0, "no", False, []),  # -n 0: no workers
    (None, "no", False, []),  # no -n
])
def test_n_without_dist_means_loadgroup(numprocesses: int | str | None, dist: str, distload: bool,
                                        added: list[str]) -> None:
    args = ["-m", "smoke"]
    known = argparse.Namespace(numprocesses=numprocesses, dist=dist, distload=distload)
    pytest_load_initial_conftests(SimpleNamespace(known_args_namespace=known), None, args)  # type: ignore[arg-type]
    assert args == [*added, "-m", "smoke"]


def test_without_xdist_the_arguments_stay() -> None:
    args = ["-m", "smoke"]
    no_xdist = SimpleNamespace(known_args_namespace=argparse.Namespace())  # no -n, no --dist options at all
    pytest_load_initial_conftests(no_xdist, None, args)  # type: ignore[arg-type]
    assert args == ["-m", "smoke"]


def rendered(task: str) -> dict:
    """A worker's handed-over run, as builtins."""
    plot = Plot(f"{task}-tiny-loss.svg", "loss", "<svg/>")
    return RenderedRun(task=task, tier="tiny", verdict="PASS", table=f"{task}/tiny: PASS", json={"task": task},
                       markdown="", html="", summary="", plots=(plot,)).to_builtins()


def test_controller_orders_runs_by_task_and_names_a_run_two_workers_computed(tmp_path: Path) -> None:
    """With --dist load a task's tests spread over workers and each computes the run: the report keeps one,
    and the summary says how to keep each task on one worker."""
    session = GateSession(RunOptions(), ["iris", "sst2"], tmp_path)
    session.receive("gw1", {"runs": [rendered("sst2"), rendered("iris")], "failures": [], "candidates": []})
    session.receive("gw0", {"runs": [rendered("iris")],
                            "failures": ["topics/tiny: did not run: RuntimeError: no base"], "candidates": []})
    runs, lines = session.results()
    assert [run.name for run in runs] == ["iris/tiny", "sst2/tiny"]
    assert runs[0].plots == (Plot("iris-tiny-loss.svg", "loss", "<svg/>"),)
    assert lines == ["topics/tiny: did not run: RuntimeError: no base",
                     "iris/tiny: computed by 2 workers (gw1, gw0), the report keeps gw1's; keep each task on one "
                     "worker with --dist loadgroup (loragate's default with -n)"]


def test_a_task_whose_candidates_two_workers_ranked_is_ranked_once(tmp_path: Path) -> None:
    """--dist load: both workers computed iris's pass and ranked its candidates; the report ranks them once, as
    the first worker did (the run it keeps)."""
    session = GateSession(RunOptions(), ["iris", "sst2"], tmp_path)
    group = {"task": "iris", "tier": "tiny", "pick": "all", "ranking": []}
    session.receive("gw1", {"runs": [rendered("iris")], "failures": [], "candidates": [group]})
    session.receive("gw0", {"runs": [rendered("iris"), rendered("sst2")], "failures": [],
                            "candidates": [{**group, "pick": "other"}, {**group, "task": "sst2"}]})
    assert session.worker_candidates == [group, {**group, "task": "sst2"}]


def test_task_of_reads_the_task_from_the_parameter_id() -> None:
    """The scheduler's grouping key: pytest 9.2 drops xdist's own group suffix (pytest-xdist #1386), so the task
    is read from the parameter id, whatever other parameters share it."""
    from loragate.plugin.scheduling import task_of

    tasks = {"iris", "sst2", "sst2_encoder"}
    assert task_of("suites/test_quality.py::test_x[iris-tiny]", tasks) == "iris"
    assert task_of("suites/test_properties.py::test_y[sst2_encoder]", tasks) == "sst2_encoder"
    assert task_of("suites/test_z.py::test_z[4bit-sst2-full]", tasks) == "sst2"
    assert task_of("suites/test_quality.py::test_without_a_case", tasks) is None
    assert task_of("tests/test_a.py::test_b[topics]", tasks) is None


def test_a_fleet_at_any_tier_goes_to_one_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """a and b share a base at tiny, b and c at full: all three to one worker. The scheduler's groups were the last
    tier's alone, so a and b went to two workers, each computing their tiny pass."""
    session = GateSession(RunOptions(), ["a", "b", "c", "d"], tmp_path)
    bases = {("a", "tiny"): "x", ("b", "tiny"): "x", ("b", "full"): "y", ("c", "full"): "y"}
    monkeypatch.setattr(session, "shared_base", lambda task, tier: bases.get((task, tier)))
    assert session.together(["tiny", "full"]) == {"a": "a", "b": "a", "c": "a", "d": "d"}
    assert session.together(["tiny"]) == {"a": "a", "b": "a", "c": "c", "d": "d"}
