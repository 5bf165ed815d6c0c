"""Progress while a run loads, trains and predicts (loragate.progress): the reporter's lines and throttling on a fake
terminal and clock, the loops' step counts, and the gate under pytest's capture in a subprocess, as a user runs it
(a pseudo-terminal for the live line, a pipe as in CI)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForQuestionAnswering

from loragate.card.settings import TrainSettings
from loragate.inference.engine import generate
from loragate.kinds.extractive_qa.spans import predict_spans, qa_windows
from loragate.kinds.sequence_classification.heads import classifier_head, classify_logits
from loragate.models.bases import LoadedBase, load_encoder
from loragate.progress import (
    SILENT,
    Progress,
    StderrTerminal,
    duration,
    mode_for,
    reporter,
    reporting,
    terminal_progress,
)
from loragate.tasks import CARDS_DIR, get_task
from loragate.tasks.iris import IrisTask
from loragate.tasks.squad_v2 import generated_splits
from loragate.training.lora import attach_lora, train_lora
from tests.plugin.test_discovery import FLOWERS, pytest_in


class FakeTerminal:
    """What the reporter wrote: ("line" | "rewrite" | "finish", text)."""

    def __init__(self, columns: int = 120) -> None:
        self.columns = columns
        self.calls: list[tuple[str, str]] = []

    def line(self, text: str) -> None:
        self.calls.append(("line", text))

    def rewrite(self, text: str) -> None:
        self.calls.append(("rewrite", text))

    def finish(self, text: str) -> None:
        self.calls.append(("finish", text))

    def width(self) -> int:
        return self.columns


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def reporter_on(mode: str, columns: int = 120) -> tuple[Progress, FakeTerminal, FakeClock]:
    terminal, clock = FakeTerminal(columns), FakeClock()
    return Progress(terminal, mode, clock=clock), terminal, clock  # type: ignore[arg-type]


def test_the_mode_follows_verbosity_and_the_terminal() -> None:
    assert [mode_for(verbosity, tty=True) for verbosity in (2, 1, 0, -1, -2, -3)] == \
        ["live", "live", "live", "lines", "silent", "silent"]
    assert [mode_for(verbosity, tty=False) for verbosity in (1, 0, -1, -2)] == ["lines", "lines", "lines", "silent"]


def test_durations_read_as_seconds_minutes_or_hours() -> None:
    assert [duration(s) for s in (0.04, 31.24, 65, 245.9, 7620)] == ["0.0 s", "31.2 s", "1 min 05 s", "4 min 05 s",
                                                                     "2 h 07 min"]
    assert duration(12.4, 0) == "12 s"


def test_lines_mode_writes_one_line_per_phase_when_it_ends_and_no_step_updates() -> None:
    progress, terminal, clock = reporter_on("lines")
    with progress.case("iris/tiny"):
        with progress.phase("load base", "loaded base"):
            clock.now += 0.4
        with progress.phase("train", "trained"):
            steps = progress.steps(300, "steps")
            for _ in range(300):
                clock.now += 0.104
                steps.advance(note="loss 0.1")
    assert terminal.calls == [("line", "iris/tiny: loaded base in 0.4 s"),
                              ("line", "iris/tiny: trained 300 steps in 31.2 s")]


def test_live_mode_rewrites_one_line_with_steps_and_time_left_then_ends_it_as_the_case_summary() -> None:
    progress, terminal, clock = reporter_on("live")
    with progress.case("iris/tiny"):
        with progress.phase("load base", "loaded base"):
            clock.now += 0.5
        with progress.phase("train", "trained"):
            steps = progress.steps(300, "steps")
            for _ in range(120):
                clock.now += 0.25
                steps.advance(note="loss 0.4312")
            live = terminal.calls[-1]
            clock.now += 45
            steps.advance(180)
    assert terminal.calls[0] == ("rewrite", "iris/tiny load base")
    assert live == ("rewrite", "iris/tiny train 120/300 steps 40% 45 s left, loss 0.4312")  # 120 in 30 s: 180 in 45
    assert terminal.calls[-1] == ("finish", "iris/tiny: loaded base in 0.5 s, trained 300 steps in 1 min 15 s")
    assert all(kind == "rewrite" for kind, _ in terminal.calls[:-1]), "no phase lines in live mode"


def test_live_updates_are_throttled_to_four_a_second() -> None:
    """A step every 1/64 s (exact in binary) for 3.125 s: 200 steps, a redraw every 16 of them (12) after the one at
    the phase's start, not 200."""
    progress, terminal, clock = reporter_on("live")
    with progress.case("iris/tiny"), progress.phase("train", "trained"):
        steps = progress.steps(200, "steps")
        for _ in range(200):
            clock.now += 1 / 64
            steps.advance()
    rewrites = [text for kind, text in terminal.calls if kind == "rewrite"]
    assert len(rewrites) == 1 + 12, rewrites
    assert rewrites[1] == "iris/tiny train 16/200 steps 8% 3 s left"


def test_a_live_line_is_cut_to_the_terminal_width() -> None:
    progress, terminal, _ = reporter_on("live", columns=20)
    with progress.case("squad_v2/tiny"), progress.phase("predict tuned", "predicted tuned"):
        pass
    assert terminal.calls[0] == ("rewrite", "squad_v2/tiny predi")  # 19 columns: a wrapped line cannot be rewritten
    assert terminal.calls[-1] == ("finish", "squad_v2/tiny: predicted tuned in 0.0 s")  # the last line may wrap


def test_a_failed_phase_says_where_it_stopped_and_the_error_goes_on() -> None:
    progress, terminal, clock = reporter_on("lines")
    with pytest.raises(RuntimeError, match="loss became nan"), progress.case("iris/tiny"):
        with progress.phase("train", "trained"):
            steps = progress.steps(300, "steps")
            clock.now += 3.1
            steps.advance(120)
            raise RuntimeError("loss became nan")
    assert terminal.calls == [("line", "iris/tiny: train failed after 3.1 s at 120/300 steps")]


def test_the_loops_of_a_phase_add_up_and_steps_outside_a_phase_count_nothing() -> None:
    """QA predicts the calibration split, then the test split, in one phase."""
    progress, terminal, clock = reporter_on("lines")
    progress.steps(5, "examples").advance(5)
    with progress.case("squad_v2/tiny"), progress.phase("predict base", "predicted base"):
        progress.steps(40, "windows").advance(40)
        progress.steps(60, "windows").advance(60)
    assert terminal.calls == [("line", "squad_v2/tiny: predicted base 100 windows in 0.0 s")]


def test_silent_writes_nothing_and_is_what_the_loops_see_outside_reporting() -> None:
    progress, terminal, _ = reporter_on("silent")
    with progress.case("iris/tiny"), progress.phase("train", "trained"):
        progress.steps(3, "steps").advance(3)
    assert terminal.calls == []
    assert reporter() is SILENT
    lines, _, _ = reporter_on("lines")
    with reporting(lines):
        assert reporter() is lines
    assert reporter() is SILENT


def test_stderr_terminal_writes_lines_and_rewrites_in_place(capsys: pytest.CaptureFixture,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "30")
    terminal = StderrTerminal()
    terminal.line("iris/tiny: loaded base in 0.4 s")
    terminal.rewrite("iris/tiny train 1/9 steps")
    terminal.finish("iris/tiny: trained 9 steps in 1.0 s")
    assert capsys.readouterr().err == ("iris/tiny: loaded base in 0.4 s\n" + "\riris/tiny train 1/9 steps".ljust(30)
                                       + "\riris/tiny: trained 9 steps in 1.0 s".ljust(30) + "\n")


@pytest.mark.slow
def test_training_and_generation_count_their_steps_in_the_current_phase(fresh_base: LoadedBase,
                                                                        iris: IrisTask, iris_splits) -> None:
    progress, terminal, _ = reporter_on("lines")
    settings = TrainSettings(epochs=2, batch_size=8, lr=1e-3, max_length=64)
    train = iris_splits.train[:20]  # 3 batches an epoch, 2 epochs
    model = attach_lora(fresh_base.model, iris.card.tier("tiny").lora, seed=0)
    prompts = [example.prompt for example in iris_splits.test[:10]]
    with reporting(progress), progress.case("iris/tiny"):
        with progress.phase("train", "trained"):
            result = train_lora(model, fresh_base.tokenizer, train, iris_splits.eval[:4], settings, progress=True)
        with progress.phase("predict tuned", "predicted tuned"):
            generate(model, fresh_base.tokenizer, prompts, max_new_tokens=2, batch_size=4, progress=True)
        with progress.phase("predict eval", "predicted eval"):  # progress=False: the loop counts nothing
            generate(model, fresh_base.tokenizer, prompts, max_new_tokens=2, batch_size=4)
    assert result.steps == 6
    assert [text.split(" in ")[0] for _, text in terminal.calls] == \
        ["iris/tiny: trained 6 steps", "iris/tiny: predicted tuned 10 examples", "iris/tiny: predicted eval"]
    assert torch.isfinite(torch.tensor(result.loss_curve)).all()


def test_encoder_predictions_count_examples_and_qa_windows() -> None:
    """Sequence classification counts examples; extractive QA counts the windows it scores (a long context is
    several), here calibration and test split in one phase."""
    progress, terminal, _ = reporter_on("lines")
    topics = get_task("topics").load_splits().test[:6]
    classifier = load_encoder("minilm", *classifier_head(get_task("topics").card.labels), "cpu", torch.float32)
    questions = generated_splits().test[:5]
    reader = load_encoder("minilm", AutoModelForQuestionAnswering, {}, "cpu", torch.float32)
    windows = len(qa_windows(reader.tokenizer, questions, 64, 16, with_positions=False))
    with reporting(progress), progress.case("eval"):
        with progress.phase("classify", "classified"):
            classify_logits(classifier.model, classifier.tokenizer, topics, batch_size=4, progress=True)
        with progress.phase("read", "read"):
            for part in (questions[:2], questions[2:]):
                predict_spans(reader.model, reader.tokenizer, part, 64, 16, 4, 5, progress=True)
    assert [text.split(" in ")[0] for _, text in terminal.calls] == ["eval: classified 6 examples",
                                                                     f"eval: read {windows} windows"]


def write_project(root: Path) -> Path:
    """A project whose task `flowers` is Iris trained for 6 epochs (72 steps: seconds, yet several live updates on a
    fast CPU), and a test that asks for the session's run of each case, as the gate's suites do."""
    tasks = root / "tasks"
    tasks.mkdir(parents=True)
    card = (CARDS_DIR / "iris.yaml").read_text().replace("\nname: iris\n", "\nname: flowers\n")
    card = card.replace("train: {epochs: 12, batch_size: 8,", "train: {epochs: 6, batch_size: 8,")
    assert "epochs: 6," in card, "the iris card's tiny training settings changed: update this test"
    (tasks / "flowers.yaml").write_text(card)
    (tasks / "flowers.py").write_text(FLOWERS)
    (root / "pyproject.toml").write_text('[tool.loragate]\ntasks = "tasks"\n')
    (root / "test_run.py").write_text("def test_run(task_run):\n    assert task_run.tuned_predictions.ids\n")
    return root


def on_terminal(project: Path, *args: str) -> str:
    """pytest in `project` on a pseudo-terminal (what a user at a terminal sees), its output as written."""
    env = {key: value for key, value in os.environ.items() if key != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"}
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=project,
                               stdin=follower, stdout=follower, stderr=follower,
                               env={**env, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "COLUMNS": "100"})
    os.close(follower)
    output = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        elif process.poll() is not None:
            break
    process.wait()
    os.close(leader)
    return output.decode(errors="replace")


@pytest.mark.slow
def test_a_captured_run_shows_its_phases_on_the_terminal(tmp_path: Path) -> None:
    """The run happens in a fixture, under pytest's output capture. On a terminal: one live line with the training
    steps and the time left, ending as the case's summary; in a pipe (CI) and with -q: one line per phase, no
    step updates, not in a captured-output section."""
    project = write_project(tmp_path / "project")
    live = on_terminal(project, "-m", "smoke", "--task", "flowers", "test_run.py")
    assert "1 passed" in live, live[-3000:]
    assert "\rflowers/tiny train " in live and " steps " in live and " left, loss " in live, live[-3000:]
    assert ("\rflowers/tiny: loaded data in " in live and ", trained 72 steps in " in live
            and ", predicted tuned 30 examples in " in live), live[-3000:]

    logged = pytest_in(project, "-m", "smoke", "--task", "flowers", "test_run.py", "-q", "-rA", "--retrain")
    assert "1 passed" in logged.stdout, logged.stdout[-3000:] + logged.stderr[-3000:]
    shown, passes = logged.stdout.split(" PASSES ", 1)  # -rA: what pytest captured comes after this heading
    phases = [line for line in shown.splitlines() if line.startswith("flowers/tiny: ")]
    assert [line.split(" in ")[0] for line in phases] == [
        "flowers/tiny: loaded data", "flowers/tiny: loaded base", "flowers/tiny: predicted base 30 examples",
        "flowers/tiny: trained 72 steps", "flowers/tiny: predicted tuned 30 examples"], logged.stdout[-3000:]
    assert "\r" not in logged.stdout and " left" not in logged.stdout
    assert "flowers/tiny: loaded" not in passes, "the phase lines went to pytest's capture, not the terminal"


@pytest.mark.slow
def test_pytest_verbosity_chooses_the_mode(pytester: pytest.Pytester, capsys: pytest.CaptureFixture) -> None:
    """stdout is captured here (capsys, even under -s), not a terminal: lines, and -qq silences it."""
    modes = {args: terminal_progress(pytester.parseconfigure(*args)).mode for args in [(), ("-v",), ("-q",), ("-qq",)]}
    assert modes == {(): "lines", ("-v",): "lines", ("-q",): "lines", ("-qq",): "silent"}
    assert terminal_progress(pytester.parseconfigure("-p", "no:terminal")) is SILENT
