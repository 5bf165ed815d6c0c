"""Progress on the terminal while a run loads, trains and predicts: which case is in which phase, its steps done and
the time left. A run on real data can train for minutes; a terminal that shows nothing meanwhile looks hung.

The run and train_fixtures.py open a case ("iris/tiny") and phases within it ("train"); the loops report their steps
to `reporter()`, the reporter the caller made current with `reporting()` (silent otherwise: library calls and tests
print nothing). Three modes:

- live (a terminal, pytest's default verbosity or -v; train_fixtures.py on a terminal): one line per case, rewritten
  in place at most every INTERVAL_S ("iris/tiny train 120/300 steps 40% 12 s left"), which ends as the case's summary;
- lines (not a terminal, as in CI logs, or -q): one line per phase when it ends ("iris/tiny: trained 300 steps in
  31.2 s"), no step updates;
- silent (-qq): nothing.

Under pytest the run happens inside a fixture, whose output pytest captures (and shows only for a failing test), so
PytestTerminal writes with capture suspended, as pytest's own live logging does. An xdist worker's stdout is not the
terminal: workers write lines mode to stderr, which is.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    import pytest

Mode = Literal["live", "lines", "silent"]
INTERVAL_S = 0.25  # live mode redraws at most 4 times a second: a tiny model's step takes milliseconds


class Terminal(Protocol):
    """Where progress goes."""

    def line(self, text: str) -> None:
        """Write `text` as a line of its own, below anything already on the current line."""

    def rewrite(self, text: str) -> None:
        """Replace the current line with `text`, no newline (live mode only)."""

    def finish(self, text: str) -> None:
        """Replace the current line with `text` and end it (live mode only)."""

    def width(self) -> int:
        """Columns of the terminal: a live line longer than that would wrap and could not be rewritten."""


def mode_for(verbosity: int, tty: bool) -> Mode:
    """-qq (verbosity -2 or less) is silent, -q or a stream that is not a terminal is one line per phase, else live."""
    if verbosity <= -2:
        return "silent"
    if verbosity == -1 or not tty:
        return "lines"
    return "live"


def duration(seconds: float, decimals: int = 1) -> str:
    """'31.2 s', '4 min 05 s', '2 h 07 min': seconds are no use for a run of hours."""
    if seconds < 60:
        return f"{seconds:.{decimals}f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


@dataclass
class Phase:
    name: str  # what the live line says while it runs: "train"
    ended: str  # what its closing line says: "trained"
    started: float
    done: int = 0  # steps of the phase's loops so far (a phase may run several: QA predicts calibration, then test)
    total: int = 0
    unit: str = ""
    counting_since: float | None = None  # when its first loop started: the rate excludes set-up before it
    note: str = ""  # the latest step's note, e.g. the training loss

    def status(self, now: float) -> str:
        """'train 120/300 steps 40% 12 s left, loss 0.4312'"""
        text = self.name
        if self.total:
            text += f" {self.done}/{self.total} {self.unit} {100 * self.done // self.total}%"
        if self.done and self.counting_since is not None and self.done < self.total:
            rate = self.done / max(now - self.counting_since, 1e-9)
            text += f" {duration((self.total - self.done) / rate, 0)} left"
        return f"{text}, {self.note}" if self.note else text

    def summary(self, now: float, failed: bool) -> str:
        """'trained 300 steps in 31.2 s', or 'train failed after 3.1 s at 120/300 steps'."""
        if failed:
            counted = f" at {self.done}/{self.total} {self.unit}" if self.total else ""
            return f"{self.name} failed after {duration(now - self.started)}{counted}"
        counted = f" {self.done} {self.unit}" if self.total else ""
        return f"{self.ended}{counted} in {duration(now - self.started)}"


@dataclass
class Case:
    name: str  # "iris/tiny"
    summaries: list[str] = field(default_factory=list)  # each ended phase's summary, for the live line's last state


class Progress:
    """The reporter: cases, their phases and the phases' steps, shown as `mode` says on `terminal`."""

    def __init__(self, terminal: Terminal | None, mode: Mode, clock: Callable[[], float] = time.monotonic) -> None:
        self.terminal = terminal
        self.mode: Mode = mode if terminal is not None else "silent"
        self.clock = clock
        self.case_now: Case | None = None
        self.phase_now: Phase | None = None
        self.drawn_at = -float("inf")  # when the live line was last drawn

    @contextmanager
    def case(self, name: str) -> Iterator[None]:
        """One (task, tier) run. In live mode its line ends, on exit, as the summary of its phases."""
        outer = self.case_now
        self.case_now = Case(name)
        try:
            yield
        finally:
            case, self.case_now = self.case_now, outer
            if self.mode == "live" and case.summaries:  # may wrap: nothing rewrites it
                self.terminal.finish(f"{case.name}: {', '.join(case.summaries)}")

    @contextmanager
    def phase(self, name: str, ended: str) -> Iterator[None]:
        """A phase of the current case: `name` while it runs ("train"), `ended` when it is over ("trained")."""
        outer = self.phase_now
        self.phase_now = phase = Phase(name, ended, self.clock())
        self.draw(force=True)
        failed = True
        try:
            yield
            failed = False
        finally:
            self.phase_now = outer
            summary = phase.summary(self.clock(), failed)
            if self.case_now is not None:
                self.case_now.summaries.append(summary)
            if self.mode == "lines":
                self.terminal.line(self.prefixed(summary, ": "))

    def steps(self, total: int, unit: str) -> Steps:
        """A loop of `total` steps (of `unit`) in the current phase; outside any phase it counts nothing."""
        phase = self.phase_now
        if phase is not None:
            phase.total += total
            phase.unit = phase.unit or unit
            if phase.counting_since is None:
                phase.counting_since = self.clock()
        return Steps(self, phase)

    def advance(self, phase: Phase | None, count: int, note: str) -> None:
        if phase is None:
            return
        phase.done += count
        phase.note = note
        self.draw(force=False)

    def draw(self, force: bool) -> None:
        """The live line, now if `force` (a phase began), else unless it was drawn less than INTERVAL_S ago."""
        if self.mode != "live" or self.phase_now is None:
            return
        now = self.clock()
        if not force and now - self.drawn_at < INTERVAL_S:
            return
        self.drawn_at = now
        text = self.prefixed(self.phase_now.status(now), " ")
        self.terminal.rewrite(text[: self.terminal.width() - 1])  # a wrapped line could not be rewritten

    def prefixed(self, text: str, separator: str) -> str:
        return f"{self.case_now.name}{separator}{text}" if self.case_now is not None else text


@dataclass(frozen=True)
class Steps:
    """One loop's counter: the loop calls `advance` after each step."""

    progress: Progress
    phase: Phase | None

    def advance(self, count: int = 1, note: str = "") -> None:
        self.progress.advance(self.phase, count, note)


SILENT = Progress(None, "silent")
_current = SILENT


def reporter() -> Progress:
    """The reporter the loops report to: the one `reporting()` made current, else SILENT."""
    return _current


@contextmanager
def reporting(progress: Progress) -> Iterator[Progress]:
    """Make `progress` the reporter of the loops run inside the block."""
    global _current
    outer, _current = _current, progress
    try:
        yield progress
    finally:
        _current = outer


class StderrTerminal:
    """sys.stderr, looked up at each write (pytest replaces it while capturing); `suspend()` wraps each write."""

    def __init__(self, suspend: Callable[[], AbstractContextManager[None]] = nullcontext) -> None:
        self.suspend = suspend

    def line(self, text: str) -> None:
        with self.suspend():
            sys.stderr.write(text + "\n")
            sys.stderr.flush()

    def rewrite(self, text: str) -> None:
        with self.suspend():
            sys.stderr.write("\r" + text.ljust(self.width() - 1))
            sys.stderr.flush()

    def finish(self, text: str) -> None:
        self.rewrite(text)
        self.line("")

    def width(self) -> int:
        return shutil.get_terminal_size().columns


class PytestTerminal:
    """pytest's terminal, written with output capture suspended. A line first ends the line pytest's progress dots
    are on; pytest writes the test file's name again before its next dot."""

    def __init__(self, config: pytest.Config) -> None:
        self.reporter = config.pluginmanager.get_plugin("terminalreporter")
        self.writer = config.get_terminal_writer()
        self.capture = config.pluginmanager.get_plugin("capturemanager")

    def suspend(self) -> AbstractContextManager[None]:
        return self.capture.global_and_fixture_disabled() if self.capture is not None else nullcontext()

    def end_pytest_line(self) -> None:
        self.reporter.ensure_newline()  # after "suites/test_schema.py ": pytest writes the name again
        if self.writer.width_of_current_line:  # after -q's dots
            self.writer.line()

    def line(self, text: str) -> None:
        with self.suspend():
            self.end_pytest_line()
            self.writer.line(text)
            self.writer.flush()

    def rewrite(self, text: str) -> None:
        with self.suspend():
            if self.reporter.currentfspath:
                self.end_pytest_line()
            self.reporter.rewrite(text, erase=True)
            self.writer.flush()

    def finish(self, text: str) -> None:
        self.rewrite(text)
        with self.suspend():
            self.writer.line()
            self.writer.flush()

    def width(self) -> int:
        return self.writer.fullwidth


def terminal_progress(config: pytest.Config) -> Progress:
    """The gate's reporter for this pytest process: live or lines on pytest's terminal as its verbosity and the
    terminal say; on an xdist worker, lines on stderr (several workers cannot share one live line)."""
    verbosity = config.get_verbosity()
    if hasattr(config, "workerinput"):
        capture = config.pluginmanager.get_plugin("capturemanager")
        suspend = capture.global_and_fixture_disabled if capture is not None else nullcontext
        return Progress(StderrTerminal(suspend), mode_for(verbosity, tty=False))
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:  # -p no:terminal
        return SILENT
    return Progress(PytestTerminal(config), mode_for(verbosity, reporter.isatty()))
