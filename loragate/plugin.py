"""The pytest plugin: options, markers, per-task parametrization, the session, the closing table.

Registered by the `pytest11` entry point. Nothing heavy (torch, transformers) is imported at load time.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import pytest

from loragate.card import TIERS
from loragate.session import GateSession

SESSION = pytest.StashKey[GateSession]()
MARKERS = {
    "smoke": "tiny tier: offline models and data, any CPU, minutes",
    "full": "full tier: real models and data; needs --gpu",
    "gpu": "needs CUDA; runs only with --gpu",
    "benchmark": "throughput measurement with pytest-benchmark",
}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def parse_task(value: str) -> str:
    from loragate.tasks import TASKS

    if value not in TASKS:
        raise argparse.ArgumentTypeError(TASKS.unknown_message(value))
    return value


def parse_base_model(value: str) -> str:
    path = Path(value)
    if path.exists():
        if not (path / "config.json").is_file():
            raise argparse.ArgumentTypeError(f"{value} has no config.json: point --base-model at a model directory "
                                             f"saved with save_pretrained")
        return str(path.resolve())
    if not HUB_ID.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{value!r} is neither an existing directory nor a hub id like "
                                         f"'google/gemma-3-1b-it'")
    return value


def parse_adapter(value: str) -> Path:
    path = Path(value)
    if not (path / "adapter_config.json").is_file():
        raise argparse.ArgumentTypeError(f"{value} has no adapter_config.json: point --adapter at a directory "
                                         f"written by peft's save_pretrained")
    return path.resolve()


def parse_existing_path(value: str) -> Path:
    path = Path(value)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{value} does not exist")
    return path.resolve()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("loragate", "loragate release gate")
    group.addoption("--gpu", action="store_true", help="run on CUDA in bf16 and enable the full tier")
    group.addoption("--task", action="append", type=parse_task, metavar="NAME",
                    help="gate only this task (repeatable); default: every registered task")
    group.addoption("--base-model", type=parse_base_model, metavar="ID|PATH",
                    help="base model hub id or local directory instead of the card's")
    group.addoption("--adapter", type=parse_adapter, metavar="PATH",
                    help="gate this peft adapter directory instead of training one (needs one --task)")
    group.addoption("--baseline-adapter", type=parse_adapter, metavar="PATH",
                    help="the last release's adapter: fail if a gated metric drops against it (needs one --task)")
    group.addoption("--baseline-report", type=parse_existing_path, metavar="PATH",
                    help="the last release's report.json instead of its adapter (needs one --task)")
    group.addoption("--data", type=parse_existing_path, metavar="PATH",
                    help="the task's data in its real format instead of the shipped data (needs one --task)")
    group.addoption("--retrain", action="store_true", help="train adapters even when the store has them")
    group.addoption("--report-dir", type=Path, default=Path("reports"), metavar="DIR",
                    help="where reports/<run>/report.json and report.md go (default: reports)")


def pytest_configure(config: pytest.Config) -> None:
    for name, help_text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {help_text}")
    from loragate.tasks import TASKS

    chosen = list(dict.fromkeys(config.getoption("task") or []))  # `--task iris --task iris` is one task
    tasks = chosen or TASKS.names()
    if config.getoption("baseline_adapter") and config.getoption("baseline_report"):
        raise pytest.UsageError("--baseline-adapter and --baseline-report name the same thing: pass one")
    for flag in ("adapter", "baseline_adapter", "baseline_report", "data", "base_model"):
        # an explicit --task, even with one task registered: the same command must not change meaning when
        # a second task is added
        if config.getoption(flag) is not None and len(chosen) != 1:
            raise pytest.UsageError(f"--{flag.replace('_', '-')} applies to one task: add --task NAME "
                                    f"(one of {', '.join(TASKS.names())})")
    device = "cpu"
    if config.getoption("gpu"):
        import torch

        if not torch.cuda.is_available():
            raise pytest.UsageError(
                f"--gpu: CUDA is not available to torch {torch.__version__}. Run without --gpu for the tiny tier "
                f"on CPU, or install a CUDA build of torch on a machine with an NVIDIA GPU."
            )
        device = "cuda"
    rootdir = Path(config.rootpath)
    options = dict(  # RunOptions(**options), built on the first run: importing loragate.run loads torch
        device=device,
        base_model=config.getoption("base_model"),
        adapter=config.getoption("adapter"),
        baseline_adapter=config.getoption("baseline_adapter"),
        baseline_report=config.getoption("baseline_report"),
        data=config.getoption("data"),
        retrain=config.getoption("retrain"),
        store_root=rootdir / "adapters",
        cache=rootdir / ".loragate",
    )
    config.stash[SESSION] = GateSession(options, list(tasks), rootdir / config.getoption("report_dir"))


def gate_session(config: pytest.Config) -> GateSession:
    return config.stash[SESSION]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`gate_case` -> (task, tier) for every selected task and tier; `task_name` -> every selected task."""
    tasks = gate_session(metafunc.config).tasks
    if "gate_case" in metafunc.fixturenames:
        marks = {"tiny": [pytest.mark.smoke], "full": [pytest.mark.full, pytest.mark.gpu]}
        cases = [pytest.param((task, tier), id=f"{task}-{tier}", marks=marks[tier]) for task in tasks for tier in TIERS]
        metafunc.parametrize("gate_case", cases, scope="session")
    if "task_name" in metafunc.fixturenames:
        metafunc.parametrize("task_name", tasks, scope="session")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if not item.config.getoption("gpu") and (item.get_closest_marker("full") or item.get_closest_marker("gpu")):
        pytest.skip("the full tier runs on a GPU: add --gpu (pytest -m full --gpu)")


def pytest_runtest_teardown(item: pytest.Item) -> None:
    """A gate test's JUnit properties (what record_property adds): task, tier, verdict, accuracy and macro F1
    base/tuned/delta, so CI dashboards read the numbers without opening the report. Added at teardown, when
    the session-scoped run exists; junitxml reads them from the teardown report."""
    callspec = getattr(item, "callspec", None)
    session = item.config.stash.get(SESSION, None)
    if callspec is None or session is None or "gate_case" not in callspec.params:
        return
    run = session.runs.get(tuple(callspec.params["gate_case"]))
    if run is None:
        return
    from loragate.report import junit_properties

    item.user_properties.extend(junit_properties(run))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    session = config.stash.get(SESSION, None)
    if session is None or not (session.runs or session.failures):
        return
    from loragate.report import text_table, write_report

    terminalreporter.section("loragate: base vs tuned")
    for run in session.runs.values():
        terminalreporter.write_line(text_table(run))
        terminalreporter.write_line("")
    for (task, tier), exc in session.failures.items():
        terminalreporter.write_line(f"{task}/{tier}: did not run: {type(exc).__name__}: {exc}")
    if session.runs:
        path = write_report(list(session.runs.values()), session.report_dir)
        terminalreporter.write_line(f"report: {path / 'report.md'}")
        step_summary = os.environ.get("GITHUB_STEP_SUMMARY")  # set by GitHub Actions: the job's summary page
        if step_summary:
            with open(step_summary, "a", encoding="utf-8") as handle:
                handle.write((path / "summary.md").read_text(encoding="utf-8"))
