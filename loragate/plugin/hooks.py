"""The pytest plugin: options, markers, per-task parametrization, the session, the closing table; the start-up
checks it runs first live in loragate.plugin.startup.

Registered by the `pytest11` entry point. Nothing heavy (torch, transformers) is imported at load time.

Under pytest-xdist (`-n N`) one task's tests run on one worker (loragate.plugin.scheduling, --dist loadgroup by
default), so each run is computed once; the workers hand their runs to the controller, which prints them and writes
one report.
"""

from __future__ import annotations

import atexit
import gc
import importlib.util
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from loragate.card.options import RunOptions
from loragate.card.settings import TIERS
from loragate.gates.verdict import INCONCLUSIVE_TEST
from loragate.plugin.data_check import check_data
from loragate.plugin.discovery import DiscoveryError, configured_task_dir, load_entry_points, load_task_dir
from loragate.plugin.options import add_options, named_candidates
from loragate.plugin.session import GateSession
from loragate.plugin.startup import GATE_SELECTED, check_options, check_outputs
from loragate.progress import terminal_progress
from loragate.redact import redact
from loragate.tasks import TASKS, default_tasks

if TYPE_CHECKING:
    from collections.abc import Generator

    from xdist.workermanage import WorkerController

pytest_plugins = ["loragate.fixtures.gate"]  # the fixtures the suites ask for, in any project that installs loragate

SESSION = pytest.StashKey[GateSession]()
HANDOVER = "loragate"  # a worker's GateSession.handover() in xdist's workeroutput
GATE_MARKERS = {"smoke", "full"}
# the gate's test modules: suites/, shipped as loragate.suites; located, not imported (a layer above the plugin)
SUITES = Path(importlib.util.find_spec("loragate.suites").submodule_search_locations[0])


class GateTally:
    """Which gate tests (marked smoke or full) ran and why the others were skipped; under xdist the controller
    sees every worker's reports. A run in which every gate test was skipped checked nothing."""

    def __init__(self, session: GateSession) -> None:
        self.session = session
        self.ran: list[str] = []
        self.skipped: list[str] = []
        self.failed: list[tuple[str, ...] | None] = []  # the case of each failed test report; None: not a gate test

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            case = getattr(report, "loragate_case", None)  # set by pytest_runtest_makereport, where xdist ran it too
            self.failed.append(tuple(case) if case is not None else None)
        if report.failed or report.skipped or report.when == "call":  # each case's tests, for its verdict
            outcome = "failed" if report.failed else "skipped" if report.skipped else "passed"
            if report.failed and any(tuple(p) == INCONCLUSIVE_TEST for p in report.user_properties):  # undecided
                outcome = "inconclusive"
            self.session.record(report.nodeid, outcome)
        if not GATE_MARKERS & set(report.keywords):
            return
        if report.skipped:
            self.skipped.append(report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr))
        elif report.when == "call":
            self.ran.append(report.nodeid)

    @property
    def checked_nothing(self) -> bool:
        return bool(self.skipped) and not self.ran


GATE_TALLY = pytest.StashKey[GateTally]()
SKIPPED_FILES = pytest.StashKey[list[str]]()  # one line per file a tasks directory left out, with the reason
MARKERS = {
    "smoke": "tiny tier: offline models and data, any CPU, minutes",
    "full": "full tier: real models and data; needs --gpu",
    "gpu": "needs CUDA; runs only with --gpu",
    "benchmark": "throughput measurement with pytest-benchmark",
}
# Deprecations one library raises against another while the gate runs, which no user can act on: without these,
# a user's gate printed 15 of them under every run
THIRD_PARTY_WARNINGS = (
    "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning",  # torch's own mkldnn module, via transformers
    "ignore:`is_gradient_checkpointing` is deprecated:FutureWarning",  # peft calling a renamed transformers 5 API
)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    """`-n N` without `--dist` means `--dist loadgroup`, which loragate schedules by task (pytest_xdist_make_scheduler):
    one task's tests on one worker, so its run is computed once (xdist's default, load, spreads them and every
    worker computes the run). Added to the arguments rather than set on config.option: each worker parses the
    same arguments again."""
    known = early_config.known_args_namespace
    if getattr(known, "numprocesses", None) and known.dist == "no" and not known.distload:
        args.insert(0, "--dist=loadgroup")


@pytest.hookimpl(optionalhook=True)  # an xdist hook: without xdist it is never called
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """Under `--dist loadgroup`, whole tasks to workers (loragate.plugin.scheduling); any other --dist is xdist's."""
    if config.getoption("dist") != "loadgroup":
        return None
    from loragate.plugin.scheduling import TaskScheduling  # imports xdist, which loragate does not require

    session = gate_session(config)
    tiers = list(TIERS) if config.getoption("gpu") else ["tiny"]
    return TaskScheduling(config, session.tasks, log, session.together(tiers))


def pytest_configure(config: pytest.Config) -> None:
    """Everything about the run that can fail without a model fails here, as a usage error naming the fix, before
    any test is collected; then the session that computes the runs."""
    add_markers_and_warnings(config)
    refuse_distributed_launch()
    rootdir = project_root(config)
    chosen, tasks = select_tasks(config, rootdir)
    device = check_options(config, chosen, tasks)
    if not hasattr(config, "workerinput") and not config.getoption("help") and not config.getoption("collectonly"):
        check_outputs(config, rootdir)
    start_session(config, rootdir, tasks, device)


def add_markers_and_warnings(config: pytest.Config) -> None:
    """The gate's markers, and filters for the third-party deprecations no user can act on."""
    for name, help_text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {help_text}")
    for line in THIRD_PARTY_WARNINGS:
        config.addinivalue_line("filterwarnings", line)


def refuse_distributed_launch() -> None:
    """The gate runs as one process: under torchrun every process would run every test."""
    # as loragate.training.distributed.launched(), without importing torch
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise pytest.UsageError(
            "the gate runs as one process (several GPUs: pytest -n N --gpu, one task per GPU), not under torchrun or "
            "accelerate launch, which would run every test once per process. Train the adapter data-parallel with "
            "`torchrun --nproc_per_node N train_fixtures.py --task NAME --tier full --gpu`, then run pytest: it "
            "loads that adapter from the store.")


def select_tasks(config: pytest.Config, rootdir: Path) -> tuple[list[str], list[str]]:
    """The tasks named with --task (checked once the project's tasks are loaded), and the tasks to run: those,
    else the default ones."""
    try:
        load_project_tasks(config, rootdir)
    except DiscoveryError as exc:
        raise pytest.UsageError(str(exc)) from exc
    chosen = list(dict.fromkeys(config.getoption("task") or []))  # `--task iris --task iris` is one task
    unknown = [name for name in chosen if name not in TASKS]
    if unknown:
        raise pytest.UsageError(f"--task: {TASKS.unknown_message(unknown[0])}")
    return chosen, chosen or default_tasks()


def start_session(config: pytest.Config, rootdir: Path, tasks: list[str], device: str) -> None:
    """The run's GateSession and the tally of its gate tests, kept in config.stash."""
    given = config.getoption("adapter") or []
    options = RunOptions(
        device=device,
        base_model=config.getoption("base_model"),
        adapter=given[0][1] if len(given) == 1 else None,
        candidates=named_candidates(given) if len(given) > 1 else (),
        pick_best=config.getoption("pick_best"),
        baseline_adapter=config.getoption("baseline_adapter"),
        baseline_report=config.getoption("baseline_report"),
        data=config.getoption("data"),
        retrain=config.getoption("retrain"),
        allow_foreign_adapter=config.getoption("allow_foreign_adapter"),
        quantize=config.getoption("quantize"),
        overrides=tuple(config.getoption("overrides")),
        constrain=config.getoption("constrain"),
        store_root=rootdir / "adapters",
        cache=rootdir / ".loragate",
    )
    config.stash[SESSION] = session = GateSession(options, list(tasks), rootdir / config.getoption("report_dir"))
    config.stash[GATE_TALLY] = tally = GateTally(session)
    config.pluginmanager.register(tally, "loragate-gate-tally")


def pytest_sessionstart(session: pytest.Session) -> None:
    """The runs' progress goes to pytest's terminal, which exists from here on (loragate.progress)."""
    gate = session.config.stash.get(SESSION, None)
    if gate is not None:
        gate.progress = terminal_progress(session.config)


def load_project_tasks(config: pytest.Config, rootdir: Path) -> None:
    """The project's tasks beside the built-in ones, before --task is checked: the modules of --task-dir (else of the
    ini option loragate_tasks, else of [tool.loragate] tasks), and the `loragate.tasks` entry points. A tasks
    directory with a card that is no task, or with no task at all, stops the run naming it (the built-in tasks
    would run in its place); the files it left out are listed under the run (pytest_terminal_summary)."""
    load_entry_points()
    dirs = config.getoption("task_dir")
    if dirs:
        loaded = [load_task_dir(Path(config.invocation_params.dir) / directory, "--task-dir") for directory in dirs]
    else:
        configured = configured_task_dir(rootdir, config.getini("loragate_tasks"))
        loaded = [load_task_dir(*configured)] if configured is not None else []
    for task_dir in loaded:
        problem = task_dir.problem()
        if problem is not None:
            raise DiscoveryError(problem)
    config.stash[SKIPPED_FILES] = [f"loragate: {task_dir.setting} {task_dir.directory}: skipped {path.name} ({why})"
                                   for task_dir in loaded for path, why in task_dir.skipped.items()]


PATH_OPTIONS = ("--report-dir", "--data", "--adapter", "--baseline-adapter", "--baseline-report", "--base-model")


def project_root(config: pytest.Config) -> Path:
    """Where adapters/, .loragate/ and reports/ live: beside pytest's config file, else where pytest was started.

    Not config.rootpath: pytest picks its rootdir before plugins are loaded, so `--data /data/sst2.tsv` (two
    arguments) looks like a test path to it: it roots the run at the common ancestor and may skip the project's
    config file, and the adapter store would follow. Warned about, since the config's markers and warning
    filters are lost too; `--data=/data/sst2.tsv` (one argument) avoids it."""
    invoked = Path(config.invocation_params.dir)
    if config.inipath is not None:
        return Path(config.inipath).parent
    args = list(config.invocation_params.args)
    outside = [f"{flag} {args[i + 1]}" for i, flag in enumerate(args[:-1]) if flag in PATH_OPTIONS
               and not (invoked / args[i + 1]).resolve().is_relative_to(invoked.resolve())]
    if outside:
        config.issue_config_time_warning(pytest.PytestConfigWarning(
            f"pytest read no config file and rooted the run at {config.rootpath}: it takes the value of "
            f"{outside[0]} for a test path. Write it as one argument ({outside[0].replace(' ', '=', 1)}) so pytest "
            f"finds the project's config; loragate keeps adapters/ and reports/ under {invoked}"), stacklevel=2)
    return invoked


def gate_session(config: pytest.Config) -> GateSession:
    return config.stash[SESSION]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`gate_case` -> (task, tier, candidate) for every selected task, tier and candidate (candidate "" where one
    adapter is gated); `task_name` -> every selected task. The ids ("iris-tiny", "iris-tiny-r8", "iris") are what the
    xdist scheduler groups by: a task's candidates stay on one worker, which computes them in one pass."""
    session = gate_session(metafunc.config)
    tasks = session.tasks
    if "gate_case" in metafunc.fixturenames:
        marks = {"tiny": [pytest.mark.smoke], "full": [pytest.mark.full, pytest.mark.gpu]}
        cases = [pytest.param(case, id="-".join(part for part in case if part), marks=marks[case[1]])
                 for case in session.cases()]
        metafunc.parametrize("gate_case", cases, scope="session")
    if "task_name" in metafunc.fixturenames:
        metafunc.parametrize("task_name", tasks, scope="session")


def inside_another_session() -> bool:
    """Whether this session runs inside another one in this process (pytester's in-process runs): two of pytest's
    session frames on the stack, whichever plugins the outer session loaded."""
    frame, sessions = sys._getframe(), 0
    while frame is not None:
        sessions += frame.f_code.co_name == "wrap_session" and frame.f_globals.get("__name__") == "_pytest.main"
        frame = frame.f_back
    return sessions > 1


@pytest.hookimpl(wrapper=True)
def pytest_collection(session: pytest.Session) -> Generator[None, object, object]:
    """Collecting the gate imports torch, transformers and peft: millions of objects that live as long as the
    process. The collector's full passes over them while they load took 2-3 s of the smoke gate, and once more each
    time the heap grew by a quarter. In a run whose -m names a gate marker, not inside another session, the collector
    waits until collection ends; if gate tests were selected, what exists by then is left to the OS (gc.freeze), and
    the collector goes on with what the run creates."""
    quiet = (gc.isenabled() and GATE_SELECTED.search(session.config.option.markexpr or "") is not None
             and not inside_another_session())
    if quiet:
        gc.disable()
    try:
        check_gate_data(session.config)
        return (yield)
    finally:
        if quiet:
            selected = getattr(session, "items", [])  # none where collection failed, or on xdist's controller
            if any(item.get_closest_marker(marker) for item in selected for marker in GATE_MARKERS):
                gc.freeze()
            gc.enable()


def check_gate_data(config: pytest.Config) -> None:
    """In a gate run (-m names a gate marker), each selected task's data read and checked against its card before
    any model loads (loragate.plugin.data_check): once, by xdist's controller or the only process. Run as collection
    starts, inside pytest's warning filters (its kind's pipeline imports torch)."""
    gate = config.stash.get(SESSION, None)
    if (gate is not None and GATE_SELECTED.search(config.option.markexpr or "") and not config.getoption("collectonly")
            and not hasattr(config, "workerinput")):
        check_data(gate.tasks, gate.options, list(TIERS) if config.getoption("gpu") else ["tiny"])


@pytest.hookimpl(tryfirst=True)  # before -m, -k, --deselect and --lf: they filter the gate's tests like any other
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """The gate's suites joined to a `-m smoke` / `-m full` run (add_suites), less the gate tests a
    pytest-benchmark option would skip (deselect_benchmark_skipped)."""
    add_suites(session, config, items)
    deselect_benchmark_skipped(config, items)


def add_suites(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """`pytest -m smoke` or `-m full` runs the gate in any project: the suites shipped in suites join the
    tests collected from testpaths or the current directory. Collected from the session, not added as a path: pytest
    ignores paths inside a virtualenv, where loragate is usually installed, and names files outside the rootdir
    oddly. Explicit paths (`pytest tests`) run as given, and a run that reached the suites itself (`pytest -m smoke`
    started inside this repository's loragate/) does not collect them twice."""
    if config.args_source == pytest.Config.ArgsSource.ARGS or not GATE_SELECTED.search(config.option.markexpr or ""):
        return
    if any(item.path.is_relative_to(SUITES) for item in items):
        return
    for path in sorted(SUITES.glob("test_*.py")):  # ids as in this repository's tree, wherever loragate is installed
        module = pytest.Module.from_parent(session, path=path, nodeid=f"suites/{path.name}")
        items.extend(session.genitems(module))


def deselect_benchmark_skipped(config: pytest.Config, items: list[pytest.Item]) -> None:
    """pytest-benchmark's --benchmark-skip skips every test that takes its `benchmark` fixture (--benchmark-only
    every other one), and a skip counts as having run: the throughput test measured nothing, yet the case passed.
    Those gate tests are deselected instead, so their case is PARTIAL, as under `-k` or `--deselect`."""
    only = config.getoption("benchmark_only", default=False)
    if not (only or config.getoption("benchmark_skip", default=False)):
        return
    skipped = [item for item in items if "gate_case" in getattr(item, "fixturenames", ())
               and ("benchmark" in getattr(item, "fixturenames", ())) != only]
    if skipped:
        config.hook.pytest_deselected(items=skipped)
        items[:] = [item for item in items if item not in skipped]


@pytest.hookimpl(tryfirst=True)  # before the test's fixtures are set up: they read the active adapter
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Full-tier tests skipped without --gpu; a candidate's tests see its adapter active: its task's other candidates
    share the one base model, and a merged copy or a probe reads whichever adapter is active."""
    if not item.config.getoption("gpu") and (item.get_closest_marker("full") or item.get_closest_marker("gpu")):
        pytest.skip("the full tier runs on a GPU: add --gpu (pytest -m full --gpu)")
    callspec = getattr(item, "callspec", None)
    session = item.config.stash.get(SESSION, None)
    if callspec is not None and session is not None and "gate_case" in callspec.params:
        run = session.runs.get(tuple(callspec.params["gate_case"]))
        if run is not None:
            run.activate()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                               call: pytest.CallInfo) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failure's traceback and captured output with Hugging Face tokens masked, before anything prints them
    or writes them to JUnit XML; a case that did not run shows its traceback once, then one line per test."""
    report = yield
    session = item.config.stash.get(SESSION, None)
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "gate_case" in callspec.params:  # a builtin, so xdist carries it to the controller
        report.loragate_case = list(callspec.params["gate_case"])
    if call.when == "setup" and call.excinfo is not None and session is not None:
        line = session.repeated_failure(call.excinfo.value)
        if line is not None:
            report.longrepr = line
    if report.longrepr is not None:
        text = str(report.longrepr)
        if redact(text) != text:
            report.longrepr = redact(text)
    report.sections = [(name, redact(content)) for name, content in report.sections]
    return report


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
    from loragate.report.writer import junit_properties  # loads sklearn: not at pytest start-up

    item.user_properties.extend(junit_properties(run))


def pytest_itemcollected(item: pytest.Item) -> None:
    """Every gate test of a case, before -k, -m or --lf leave some out: a case's verdict needs them all to run."""
    callspec = getattr(item, "callspec", None)
    session = item.config.stash.get(SESSION, None)
    if callspec is not None and session is not None and "gate_case" in callspec.params:
        session.collected(item.nodeid, tuple(callspec.params["gate_case"]))


@pytest.hookimpl(tryfirst=True)  # before --junitxml writes its file: the verdicts go in as suite properties
def pytest_sessionfinish(session: pytest.Session) -> None:
    """On an xdist worker: hand the runs to the controller, which prints them and writes the one report.
    Elsewhere: a run whose every gate test was skipped (`pytest -m full` without --gpu, say) checked nothing,
    so it fails instead of passing with skips."""
    gate = session.config.stash.get(SESSION, None)
    if gate is not None and hasattr(session.config, "workeroutput"):
        session.config.workeroutput[HANDOVER] = gate.handover()
        return
    tally = session.config.stash.get(GATE_TALLY, None)
    if tally is not None and tally.checked_nothing and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if gate is None or not gate.has_results():
        return
    finished = gate.finish()
    # pytest's last collections (unraisableexception's, at unconfigure: 1.3 s) and the interpreter's exit (2.2 s)
    # walk the millions of objects torch, transformers and peft made; frozen once the report is written, they are
    # left to the OS, as they are anyway. A session run inside another (pytester's in-process runs) freezes only at
    # exit, once: freezing now would keep the garbage the outer test process makes later.
    if not inside_another_session():
        gc.freeze()
    else:
        atexit.unregister(gc.freeze)
        atexit.register(gc.freeze)
    xml = next((plugin for plugin in session.config.pluginmanager.get_plugins()  # --junitxml's LogXML
                if hasattr(plugin, "add_global_property") and hasattr(plugin, "node_reporters")), None)
    for run in finished.runs:
        if xml is not None:
            xml.add_global_property(f"loragate.verdict.{run.name.replace('/', '.').replace('[', '.').rstrip(']')}",
                                    run.verdict)
    excused = finished.excused()
    not_passed = [run for run in finished.runs if not run.passed and (run.task, run.tier, run.candidate) not in excused]
    if (not_passed or finished.errors) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif (excused and not not_passed and not finished.errors and session.exitstatus == pytest.ExitCode.TESTS_FAILED
          and tally is not None and tally.failed and not tally.checked_nothing
          and all(case is not None and case in excused for case in tally.failed)):
        session.exitstatus = pytest.ExitCode.OK  # --pick-best: only candidates that another one outdid failed


@pytest.hookimpl(optionalhook=True)  # an xdist hook: without xdist it is never called
def pytest_testnodedown(node: WorkerController, error: object | None) -> None:
    """On the xdist controller: keep what a finished worker handed over. A worker that crashed hands nothing
    over; xdist reports the crash and fails the test it was running."""
    if error is None:
        gate_session(node.config).receive(node.gateway.id, node.workeroutput[HANDOVER])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        for line in config.stash.get(SKIPPED_FILES, []):
            terminalreporter.write_line(line, yellow=True)
    tally = config.stash.get(GATE_TALLY, None)
    if tally is not None and tally.checked_nothing and not hasattr(config, "workerinput"):
        terminalreporter.write_line(
            f"loragate: FAILED: all {len(tally.skipped)} selected gate tests were skipped, so nothing was checked and "
            f"this run cannot pass a release ({'; '.join(sorted(set(tally.skipped))[:3])})", red=True, bold=True)
    session = config.stash.get(SESSION, None)
    # an xdist worker's runs are the controller's to show: a worker writing them would make a partial report
    if session is None or hasattr(config, "workerinput") or not session.has_results():
        return
    finished = session.finish()  # written at sessionfinish; computed here when a caller skipped that hook
    terminalreporter.section("loragate: base vs tuned")
    for run in finished.runs:
        terminalreporter.write_line(redact(run.table))
        terminalreporter.write_line("")
    from loragate.report.candidates import group_lines  # loads torch: not at pytest start-up

    for group in finished.candidates:
        for line in group_lines(group):
            terminalreporter.write_line(redact(line), green=group["passed"], red=not group["passed"])
        terminalreporter.write_line("")
    for line in finished.lines:
        terminalreporter.write_line(redact(line))
    if finished.report is not None:
        terminalreporter.write_line(f"report: {finished.report / 'report.md'}")
    for error in finished.errors:
        terminalreporter.write_line(f"loragate: FAILED: {error}", red=True, bold=True)
