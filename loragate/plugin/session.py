"""The gate session: one per pytest run, kept in config.stash; runs each (task, tier, candidate) case once: the
candidates of one task and tier (--adapter given more than once, or a card's sweep) are computed together, in one pass
on one base (loragate.run.candidates).

Under pytest-xdist every process has its own session: the workers compute the runs and hand them over rendered
(handover), the controller collects them (receive) and prints and writes them all (results)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from loragate.card.options import RunOptions
from loragate.card.overrides import apply_overrides
from loragate.card.settings import TIERS
from loragate.gates.verdict import CaseTests, case_name
from loragate.kinds import KINDS
from loragate.progress import SILENT, Progress, reporting
from loragate.redact import redact
from loragate.tasks import get_task

Case = tuple[str, str, str]  # (task, tier, candidate): candidate "" where the run gates one adapter
SUMMARY_TIMEOUT_S = 60  # a summary is a few KiB: a regular file takes it in milliseconds

if TYPE_CHECKING:  # heavy imports wait until a test asks for a run, so `pytest --help` stays fast
    from loragate.data.task import Task
    from loragate.report.writer import RenderedRun
    from loragate.run.task_run import TaskRun


@dataclass
class GateSession:
    options: RunOptions  # what pytest_configure read from the command line, checked there
    tasks: list[str]
    report_dir: Path
    runs: dict[Case, TaskRun] = field(default_factory=dict)
    failures: dict[Case, BaseException] = field(default_factory=dict)
    worker_runs: list[tuple[str, RenderedRun]] = field(default_factory=list)  # (xdist worker id, run it computed)
    worker_failures: list[str] = field(default_factory=list)  # the workers' "did not run" lines
    worker_candidates: list[dict] = field(default_factory=list)  # the workers' candidate groups (report.candidates)
    finished: Finished | None = None  # what finish() wrote, once
    tests: dict[Case, CaseTests] = field(default_factory=dict)  # each case's gate tests (this process)
    case_of: dict[str, Case] = field(default_factory=dict)  # gate test node id -> its case
    progress: Progress = SILENT  # what each run shows while it runs; the plugin sets pytest's at session start
    failures_shown: set[Case] = field(default_factory=set)  # cases whose failure's traceback was printed
    tasks_read: dict[str, Task] = field(default_factory=dict)  # task() of each task name, read once

    def task(self, name: str) -> Task:
        """The registered task `name` with the run's --set overrides applied to its card, as its runs read it: a
        suite that reads a task (the properties suite) checks the card the gate runs, not the one on disk."""
        if name not in self.tasks_read:
            task = get_task(name)
            task.card = apply_overrides(task.card, self.options.overrides)
            self.tasks_read[name] = task
        return self.tasks_read[name]

    def candidates(self, task: str) -> list[str]:
        """The candidate names of `task`'s cases: each --adapter's where given more than once, else the card's sweep
        (`candidates.variants`) where the run does not gate one --adapter, else one case of no name."""
        if self.options.candidates:
            return [name for name, _ in self.options.candidates]
        sweep = self.task(task).card.candidates
        if self.options.adapter is None and sweep is not None and sweep.variants:
            return [variant.name for variant in sweep.variants]
        return [""]

    def cases(self, tiers: list[str] | tuple[str, ...] = TIERS) -> list[Case]:
        """Every (task, tier, candidate) case, in task, tier, candidate order."""
        return [(task, tier, candidate) for task in self.tasks for tier in tiers for candidate in self.candidates(task)]

    def collected(self, nodeid: str, case: Case) -> None:
        """A gate test of `case` was collected: the case's verdict needs it to run."""
        self.tests.setdefault(case, CaseTests()).collected.append(nodeid)
        self.case_of[nodeid] = case

    def record(self, nodeid: str, outcome: str) -> None:
        if nodeid in self.case_of:
            self.tests[self.case_of[nodeid]].record(nodeid, outcome)

    def with_tests(self, case: Case, run: TaskRun) -> TaskRun:
        """`run` with the gate tests of its `case` attached, for the verdict, just before it is rendered. The case is
        the registered task the tests were parametrized with, not the card's name: `--set name=other` renames the
        card, and a verdict looked up by it found no tests and passed whatever they did."""
        run.tests = self.tests.get(case)
        return run

    def run(self, task: str, tier: str, candidate: str = "") -> TaskRun:
        """The run of one case, computed on first request (a candidate's with all its task's candidates at `tier`),
        its candidate's adapter made the active one; a failure is re-raised, not retried."""
        key = (task, tier, candidate)
        if key in self.failures:
            raise self.failures[key]
        if key not in self.runs:
            self.runs.update(self.compute(task, tier))
        if key in self.failures:  # its task failed in a fleet's pass that gated the others
            raise self.failures[key]
        run = self.runs[key]
        run.activate()
        return run

    def compute(self, task: str, tier: str) -> dict[Case, TaskRun]:
        """The runs of `task` at `tier`: one; or one per candidate, and one per task of a fleet sharing its base, all
        in one pass (loragate.run.candidates.run_pass); a failure is kept for each case it stopped: every case of the
        pass, or a fleet's task's own."""
        from loragate.run.candidates import run_pass  # loads torch: not at pytest start-up
        from loragate.run.task_run import run_task

        members = self.pass_of(task, tier)
        cases = [(member, tier, name) for member in members for name in self.candidates(member)]
        try:
            with reporting(self.progress), self.progress.case(f"{'+'.join(members)}/{tier}"):
                if cases == [(task, tier, "")]:
                    return {cases[0]: run_task(task, tier, self.options)}
                runs = run_pass(members, tier, self.options)
        except Exception as exc:
            self.failures.update(dict.fromkeys(cases, exc))
            raise
        failed = {case: runs[case[0]] for case in cases if isinstance(runs[case[0]], Exception)}
        self.failures.update(failed)
        return {case: runs[case[0]][case[2]] for case in cases if case not in failed}

    def pass_of(self, task: str, tier: str) -> list[str]:
        """The selected tasks computed in one pass with `task` at `tier`: those whose card names the same base (a fleet:
        one load, one model holding every task's adapter), else `task` alone."""
        shared = self.shared_base(task, tier)
        return [other for other in self.tasks if self.shared_base(other, tier) == shared] if shared else [task]

    def together(self, tiers: list[str]) -> dict[str, str]:
        """Each task -> the first task of those it shares a pass with at any of `tiers` (a fleet), which xdist keeps on
        one worker: grouped at one tier alone, the tasks of a fleet at another were spread over workers, each
        computing the whole fleet's pass."""
        first = {task: task for task in self.tasks}
        for tier in tiers:
            for task in self.tasks:
                joined = {first[other] for other in self.pass_of(task, tier)} | {first[task]}
                lead = min(joined, key=self.tasks.index)
                first = {other: lead if group in joined else group for other, group in first.items()}
        return first

    def shared_base(self, task: str, tier: str) -> str | None:
        """The base `task` loads at `tier`, where other tasks can share it; None where they cannot: the tiny base (each
        task's is built from its own text), an encoder (each task's classifier head is part of its base), a base the
        command line names (--base-model) or quantizes."""
        card = self.task(task).card
        if tier not in card.tiers or KINDS.get(card.kind).encoder or self.options.base_model or self.options.quantize:
            return None
        name = card.tier(tier).base_model
        if name == "tiny":
            return None
        path = Path(name).expanduser()
        return str(path.resolve()) if path.exists() else name

    def repeated_failure(self, error: BaseException) -> str | None:
        """One line for a gate test whose case did not run, where an earlier test already showed the traceback:
        pytest re-raises a session fixture's error in every test that uses it, so a bad --data file printed the same
        traceback 18 times. None for the first test of the case, and for an error that is not a run's failure."""
        for case, failure in self.failures.items():
            if failure is error:
                if case not in self.failures_shown:
                    self.failures_shown.add(case)
                    return None
                return (f"{case_name(*case)} did not run: {type(error).__name__}: {error} (the traceback is under "
                        f"this case's first error)")
        return None

    def failure_lines(self) -> list[str]:
        return [f"{case_name(*case)}: did not run: {type(exc).__name__}: {exc}" for case, exc in self.failures.items()]

    def has_results(self) -> bool:
        return bool(self.runs or self.failures or self.worker_runs or self.worker_failures)

    def handover(self) -> dict[str, list]:
        """On an xdist worker: its runs rendered and its failures as text, builtins only, for xdist's workeroutput
        (exceptions and models do not cross processes)."""
        from loragate.report.writer import render_or_explain  # loads sklearn: not at pytest start-up

        runs = [render_or_explain(self.with_tests(case, run)).to_builtins() for case, run in self.runs.items()]
        failures, candidates = self.failure_lines(), []
        try:
            candidates = self.candidate_groups()
        except Exception as exc:  # noqa: BLE001 - a line under the tables; no pick excuses a candidate without it
            failures.append(f"the candidates could not be ranked: {type(exc).__name__}: {exc}")
        return {"runs": runs, "failures": failures, "candidates": candidates}

    def receive(self, worker: str, handover: dict[str, list]) -> None:
        """On the xdist controller: keep what `worker` handed over; a task's candidates ranked by an earlier worker too
        (--dist load: each worker computes the pass) are kept once, as results() keeps its runs."""
        from loragate.report.writer import RenderedRun  # loads sklearn: not at pytest start-up

        self.worker_runs += [(worker, RenderedRun.from_builtins(run)) for run in handover["runs"]]
        self.worker_failures += handover["failures"]
        ranked = {(group["task"], group["tier"]) for group in self.worker_candidates}
        self.worker_candidates += [group for group in handover["candidates"]
                                   if (group["task"], group["tier"]) not in ranked]

    def candidate_groups(self) -> list[dict]:
        """This process's tasks gated with candidates, each ranked with its pick's verdict (loragate.report.candidates);
        read once the cases' tests ran."""
        from loragate.report.candidates import candidate_groups  # loads torch: not at pytest start-up

        runs = [self.with_tests(case, run) for case, run in self.runs.items()]
        return candidate_groups(runs, self.options.pick_best)

    def results(self) -> tuple[list[RenderedRun], list[str]]:
        """Every run once, rendered (the workers' in task order), and the lines printed below their tables: what
        did not run, and any run that more than one worker computed (the report keeps the first)."""
        from loragate.report.writer import render_or_explain  # loads sklearn: not at pytest start-up

        rendered = [render_or_explain(self.with_tests(case, run)) for case, run in self.runs.items()]
        workers: dict[str, list[str]] = {}  # run name -> the workers that computed it
        order = self.cases()
        for worker, run in sorted(self.worker_runs, key=lambda pair: position(order, pair[1])):
            if run.name not in workers:
                rendered.append(run)
            workers.setdefault(run.name, []).append(worker)
        repeated = [f"{name}: computed by {len(ids)} workers ({', '.join(ids)}), the report keeps {ids[0]}'s; "
                    f"keep each task on one worker with --dist loadgroup (loragate's default with -n)"
                    for name, ids in workers.items() if len(ids) > 1]
        return rendered, [*self.failure_lines(), *dict.fromkeys(self.worker_failures), *repeated]

    def finish(self) -> Finished:
        """Render every run, write reports/<run>/ and append to $GITHUB_STEP_SUMMARY, once. Nothing here raises:
        a run that could not be rendered keeps its table line and fails; a report or summary that could not be
        written is an error the plugin prints and fails the session on, after every table was shown."""
        if self.finished is not None:
            return self.finished
        from loragate.report.writer import write_rendered  # loads sklearn: not at pytest start-up

        runs, lines = self.results()
        errors = [run.render_error for run in runs if run.render_error]
        candidates = list(self.worker_candidates)
        try:
            candidates = [*self.candidate_groups(), *candidates]
        except Exception as exc:  # noqa: BLE001 - shown to the user and fails the run (no pick excuses a candidate)
            errors.append(f"the candidates could not be ranked: {type(exc).__name__}: {exc}")
        report = None
        if runs:
            try:
                report = write_rendered(runs, self.report_dir, candidates=candidates)
            except Exception as exc:  # noqa: BLE001 - shown to the user and fails the run; the tables are kept
                errors.append(f"the report could not be written to {self.report_dir}: {type(exc).__name__}: {exc}")
        step_summary = os.environ.get("GITHUB_STEP_SUMMARY")  # set by GitHub Actions: the job's summary page
        if report is not None and step_summary:
            try:
                append_within(Path(step_summary), (report / "summary.md").read_text(encoding="utf-8"),
                              SUMMARY_TIMEOUT_S)
            except OSError as exc:
                errors.append(f"GITHUB_STEP_SUMMARY={step_summary} could not be written: {exc}")
        self.finished = Finished(runs, lines, report, [redact(error) for error in errors], candidates)
        return self.finished


def append_within(path: Path, text: str, seconds: float) -> None:
    """Append `text` to `path`, or TimeoutError after `seconds`: a FIFO no one reads, or a hung network mount, would
    block the end of the run forever after every test passed. The write goes on in a daemon thread, which the
    interpreter's exit does not wait for."""
    failed: list[OSError] = []

    def append() -> None:
        try:
            with path.open("a", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as exc:
            failed.append(exc)

    writer = threading.Thread(target=append, name=f"loragate: append to {path}", daemon=True)
    writer.start()
    writer.join(seconds)
    if writer.is_alive():
        raise TimeoutError(f"not written within {seconds:g} s (a FIFO no one reads, or a hung file system?)")
    if failed:
        raise failed[0]


def position(order: list[Case], run: RenderedRun) -> int:
    """Where a worker's `run` goes among the cases in `order`: last where it carries a card name no case has
    (`--set name=other` renames the card, not the task)."""
    case = (run.task, run.tier, run.candidate)
    return order.index(case) if case in order else len(order)


@dataclass(frozen=True)
class Finished:
    """The end of a gate session: every run rendered, the lines under the tables, where the report went, and
    what could not be rendered or written (each fails the session)."""

    runs: list[RenderedRun]
    lines: list[str]
    report: Path | None
    errors: list[str]
    candidates: list[dict] = field(default_factory=list)  # tasks gated with candidates (report.json's `candidates`)

    def excused(self) -> set[tuple[str, str, str]]:
        """The runs whose failure does not fail the session (--pick-best: candidates another one outdid)."""
        from loragate.report.candidates import excused  # loads the report's modules: not at pytest start-up

        return excused(self.candidates)
