"""Issue 31, a project's tasks silently replaced: a card whose `data:` key is misspelt, or whose file ends in .YAML,
was skipped without a word and the built-in tasks were gated in the project's place. Now every file a tasks
directory leaves out is named with the reason, a card that is no task is an error naming it, and a directory that
registers no task is an error: a project with a tasks directory never falls back to the built-in tasks.

The in-process tests register into a copy of TASKS, restored after; the plugin's are subprocesses, as a user runs
pytest in a project of their own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from loragate.plugin.discovery import load_task_dir
from loragate.tasks import TASKS

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "csv_classification"


@pytest.fixture
def tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    """TASKS as it is, restored after the test: what the test registers does not outlive it."""
    monkeypatch.setattr(TASKS, "_entries", dict(TASKS._entries))


def write_project(root: Path, card_name: str = "tickets.yaml", replace: tuple[str, str] = ("", "")) -> Path:
    """The csv_classification example (card-only task `tickets`) in `root`, its card saved as `card_name` with
    `replace` applied; returns the tasks directory."""
    shutil.copytree(EXAMPLE / "data", root / "data")
    shutil.copy(EXAMPLE / "pyproject.toml", root / "pyproject.toml")
    (root / "tasks").mkdir()
    card = (EXAMPLE / "tasks" / "tickets.yaml").read_text()
    assert replace[0] in card, f"the example's card changed: {replace[0]!r} is gone"
    (root / "tasks" / card_name).write_text(card.replace(*replace))
    return root / "tasks"


def pytest_in(project: Path, *args: str) -> subprocess.CompletedProcess:
    """pytest in `project`, as its user runs it: loragate loaded by its entry point, nothing cached."""
    env = {key: value for key, value in os.environ.items() if key != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=project,
                          env={**env, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True,
                          timeout=300)


def test_a_card_with_a_misspelt_data_key_is_named_with_the_fix(tmp_path: Path, tasks: None) -> None:
    directory = write_project(tmp_path, replace=("\ndata:\n", "\ndataset:\n"))
    problem = load_task_dir(directory, "--task-dir").problem()
    assert problem is not None and problem.startswith(f"{directory / 'tickets.yaml'}: has no data: block (did you "
                                                      f"mean data:? found dataset:)"), problem
    assert "give it a data: block" in problem and "tickets.py" in problem, problem


def test_a_card_ending_in_upper_case_yaml_is_a_card(tmp_path: Path, tasks: None) -> None:
    directory = write_project(tmp_path, card_name="tickets.YAML")
    (directory / "more.Yml").write_text((directory / "tickets.YAML").read_text().replace("name: tickets",
                                                                                         "name: more_tickets"))
    loaded = load_task_dir(directory, "--task-dir")
    assert loaded.registered == ["more_tickets", "tickets"] and loaded.problem() is None, loaded
    assert "tickets" in TASKS and "more_tickets" in TASKS


def test_every_file_left_out_is_named_with_the_reason(tmp_path: Path, tasks: None) -> None:
    directory = write_project(tmp_path)
    (directory / "_helpers.py").write_text("raise RuntimeError('a private module is not imported')\n")
    (directory / "tickets.csv").write_text("text,label\n")
    for noise in ("__init__.py", ".gitkeep", "README.md", "notes.txt"):  # no one means these as a task
        (directory / noise).write_text("")
    loaded = load_task_dir(directory, "--task-dir")
    assert loaded.skipped == {directory / "_helpers.py": "a private module: its name starts with _",
                              directory / "tickets.csv": "neither a task module (*.py) nor a card (*.yaml, *.yml)"}


def test_a_tasks_directory_that_registers_no_task_is_an_error_naming_it(tmp_path: Path, tasks: None) -> None:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "README.md").write_text("our tasks\n")
    (tmp_path / "tasks" / "tickets.json").write_text("{}\n")
    problem = load_task_dir(tmp_path / "tasks", "[tool.loragate] tasks").problem()
    assert problem == (f"[tool.loragate] tasks: {tmp_path / 'tasks'} registers no task (tickets.json (neither a task "
                       f"module (*.py) nor a card (*.yaml, *.yml))); put the project's task modules (*.py) or "
                       f"card-only cards (*.yaml with a data: block) there, or point [tool.loragate] tasks at the "
                       f"directory that holds them"), problem


@pytest.mark.slow
def test_a_project_whose_card_is_misspelt_never_gates_the_built_in_tasks(tmp_path: Path) -> None:
    write_project(tmp_path, replace=("\ndata:\n", "\ndataset:\n"))
    result = pytest_in(tmp_path, "-m", "smoke", "-k", "iris", "--collect-only", "-q")
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout[-3000:]
    assert "iris-tiny" not in result.stdout, "the built-in tasks ran in the project's place"
    assert f"{tmp_path / 'tasks' / 'tickets.yaml'}: has no data: block (did you mean data:? found dataset:)" in \
        result.stderr, result.stderr[-3000:]


@pytest.mark.slow
def test_a_project_card_ending_in_upper_case_yaml_is_gated_and_other_files_are_listed(tmp_path: Path) -> None:
    write_project(tmp_path, card_name="tickets.YAML")
    (tmp_path / "tasks" / "tickets.csv").write_text("text,label\n")
    result = pytest_in(tmp_path, "-m", "smoke", "--collect-only", "-q")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "[tickets-tiny]" in result.stdout and "iris-tiny" not in result.stdout, result.stdout[-3000:]
    assert (f"loragate: [tool.loragate] tasks in {tmp_path / 'pyproject.toml'} {tmp_path / 'tasks'}: skipped "
            f"tickets.csv (neither a task module (*.py) nor a card (*.yaml, *.yml))") in result.stdout, result.stdout



MODULE_OF_TWO_CARDS = """
from pathlib import Path
from loragate.tasks import TASKS
from loragate.tasks.card_task import CardTaskEntry

TASKS.register("two_a", CardTaskEntry(Path(__file__).parent / "two.yaml"))
TASKS.register("two_b", CardTaskEntry(Path(__file__).parent / "two_encoder.yaml"))
"""


def test_a_card_a_module_of_another_stem_loads_is_no_error(tmp_path: Path, tasks: None) -> None:
    """A module may load several cards, or a card of another stem (sst2.py loads sst2.yaml and sst2_encoder.yaml):
    a card without a data: block whose name a module of the directory registered is that module's."""
    (tmp_path / "two.py").write_text(MODULE_OF_TWO_CARDS)
    (tmp_path / "two.yaml").write_text("name: two_a\nkind: generative_classification\n")
    (tmp_path / "two_encoder.yaml").write_text("name: two_b\nkind: sequence_classification\n")
    loaded = load_task_dir(tmp_path, "--task-dir")
    assert loaded.problem() is None, loaded.problem()
    assert loaded.registered == ["two_a", "two_b"] and loaded.skipped == {}, loaded
    (tmp_path / "orphan.yaml").write_text("name: orphan\nkind: generative_classification\n")
    problem = load_task_dir(tmp_path, "--task-dir").problem()
    assert problem is not None and problem.startswith(f"{tmp_path / 'orphan.yaml'}: has no data: block"), problem
