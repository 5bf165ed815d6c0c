"""A project's own tasks: a tasks directory (--task-dir, the ini option loragate_tasks, [tool.loragate] tasks) and the
`loragate.tasks` entry-point group, loaded before --task is checked; a name registered twice names both files.

The in-process tests register into a copy of TASKS, restored after; the plugin's are subprocesses, as a user runs
pytest in a project of their own (a temporary directory outside this repository)."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from loragate.plugin import discovery
from loragate.plugin.discovery import DiscoveryError, configured_task_dir, load_entry_points, load_task_dir
from loragate.tasks import CARDS_DIR, TASKS

FLOWERS = '''
from pathlib import Path

from loragate.card.settings import TaskCard
from loragate.tasks import TASKS
from loragate.tasks.iris import IrisTask


class FlowersTask(IrisTask):
    """Iris under another name, its card beside this module: a project's own task."""

    def __init__(self) -> None:
        self.card = TaskCard.from_yaml(Path(__file__).with_name("flowers.yaml"))


TASKS.register("flowers", FlowersTask)
'''


def write_flowers(directory: Path, module: str = "flowers") -> Path:
    """A task module registering `flowers` and its card, in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    card = (CARDS_DIR / "iris.yaml").read_text().replace("\nname: iris\n", "\nname: flowers\n")
    (directory / "flowers.yaml").write_text(card)
    (directory / f"{module}.py").write_text(FLOWERS)
    return directory / f"{module}.py"


@pytest.fixture
def tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    """TASKS as it is, restored after the test: what the test registers does not outlive it."""
    monkeypatch.setattr(TASKS, "_entries", dict(TASKS._entries))


def test_a_tasks_directory_registers_its_modules_beside_the_built_in_tasks(tmp_path: Path, tasks: None) -> None:
    write_flowers(tmp_path / "tasks")
    (tmp_path / "tasks" / "_shared.py").write_text("raise RuntimeError('a private module is not a task module')\n")
    load_task_dir(tmp_path / "tasks", "--task-dir")
    assert "flowers" in TASKS and "iris" in TASKS
    assert TASKS.get("flowers")().card.name == "flowers"
    load_task_dir(tmp_path / "tasks", "--task-dir")  # an in-process pytest run loads it again: no duplicate


def test_a_task_named_like_a_built_in_one_is_an_error_naming_both_files(tmp_path: Path, tasks: None) -> None:
    module = write_flowers(tmp_path / "tasks", module="iris")
    module.write_text(module.read_text().replace('TASKS.register("flowers"', 'TASKS.register("iris"'))
    with pytest.raises(DiscoveryError) as raised:
        load_task_dir(tmp_path / "tasks", "--task-dir")
    message = str(raised.value)
    assert "task 'iris' is registered twice" in message, message
    assert str(CARDS_DIR / "iris.py") in message and str(module) in message, message


def test_a_module_that_fails_to_import_is_named(tmp_path: Path, tasks: None) -> None:
    (tmp_path / "broken.py").write_text("import no_such_module_here\n")
    with pytest.raises(DiscoveryError, match=r"broken\.py: cannot load the task module: ModuleNotFoundError"):
        load_task_dir(tmp_path, "--task-dir")


def test_a_missing_tasks_directory_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(DiscoveryError, match=r"^--task-dir: .*nope is not a directory; create it"):
        load_task_dir(tmp_path / "nope", "--task-dir")


def test_the_tasks_directory_comes_from_the_ini_option_else_tool_loragate(tmp_path: Path) -> None:
    assert configured_task_dir(tmp_path, "") is None, "no pyproject.toml: no tasks directory"
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert configured_task_dir(tmp_path, "") is None, "no [tool.loragate]: no tasks directory"
    (tmp_path / "pyproject.toml").write_text('[tool.loragate]\ntasks = "my_tasks"\n')
    assert configured_task_dir(tmp_path, "") == (tmp_path / "my_tasks",
                                                 f"[tool.loragate] tasks in {tmp_path / 'pyproject.toml'}")
    assert configured_task_dir(tmp_path, "ini_tasks") == (tmp_path / "ini_tasks", "the ini option loragate_tasks")
    (tmp_path / "pyproject.toml").write_text("[tool.loragate]\ntasks = ['a', 'b']\n")
    with pytest.raises(DiscoveryError, match=r"pyproject\.toml: \[tool\.loragate\] tasks = \['a', 'b'\] must be a "
                                             r"directory path"):
        configured_task_dir(tmp_path, "")


def test_the_entry_point_group_loads_task_packages(tmp_path: Path, tasks: None,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    write_flowers(tmp_path, module="flowers_package")
    monkeypatch.syspath_prepend(str(tmp_path))
    point = EntryPoint(name="flowers", value="flowers_package", group="loragate.tasks")
    monkeypatch.setattr(discovery, "entry_points", lambda group: [point] if group == "loragate.tasks" else [])
    load_entry_points()
    assert "flowers" in TASKS


def test_an_entry_point_that_fails_names_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    point = EntryPoint(name="gone", value="no_such_task_package", group="loragate.tasks")
    with pytest.raises(DiscoveryError, match=r"^entry point gone = no_such_task_package \(group loragate\.tasks, "
                                             r"from its package\): cannot load: ModuleNotFoundError"):
        load_entry_points([point])


def pytest_in(project: Path, *args: str, site: Path | None = None) -> subprocess.CompletedProcess:
    """pytest in `project`, as its user runs it: loragate loaded by its entry point, nothing cached; `site` holds
    more installed packages."""
    env = {key: value for key, value in os.environ.items() if key != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"}
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=project,
                          env={**env, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True)


@pytest.mark.slow
def test_task_dir_is_loaded_before_task_is_checked(tmp_path: Path) -> None:
    write_flowers(tmp_path / "elsewhere")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    result = pytest_in(tmp_path, "--task-dir", "elsewhere", "--task", "flowers", "-m", "smoke", "--collect-only", "-q")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "suites/test_schema.py::test_tuned_outputs_parse[flowers-tiny]" in result.stdout
    typo = pytest_in(tmp_path, "--task-dir=elsewhere", "--task", "flowrs")
    assert typo.returncode == pytest.ExitCode.USAGE_ERROR
    assert "ERROR: --task: Unknown task 'flowrs'. Did you mean 'flowers'?" in typo.stderr, typo.stderr
    assert "Unknown task 'flowers'" in pytest_in(tmp_path, "--task", "flowers").stderr, "without --task-dir"


@pytest.mark.slow
def test_the_ini_option_names_the_tasks_directory(tmp_path: Path) -> None:
    write_flowers(tmp_path / "ini_tasks")
    (tmp_path / "pytest.ini").write_text("[pytest]\nloragate_tasks = ini_tasks\n")
    result = pytest_in(tmp_path, "--task", "flowers", "-m", "smoke", "--collect-only", "-q")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "test_tuned_outputs_parse[flowers-tiny]" in result.stdout


@pytest.mark.slow
def test_a_duplicate_task_name_stops_the_run_naming_both_files(tmp_path: Path) -> None:
    module = write_flowers(tmp_path / "tasks")
    copy = tmp_path / "tasks" / "more_flowers.py"
    copy.write_text(module.read_text())
    (tmp_path / "pyproject.toml").write_text('[tool.loragate]\ntasks = "tasks"\n')
    result = pytest_in(tmp_path, "--collect-only")
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout[-3000:]
    assert (f"ERROR: {copy.resolve()}: cannot load the task module: ValueError: task 'flowers' is registered twice: "
            f"by {module.resolve()} and by {copy.resolve()}") in result.stderr, result.stderr


@pytest.mark.slow
def test_an_installed_package_adds_its_tasks_through_the_entry_point_group(tmp_path: Path) -> None:
    """A package installed with `[project.entry-points."loragate.tasks"] flowers = "flowers_package"`: its module is
    imported before --task is checked."""
    site = tmp_path / "site"
    write_flowers(site, module="flowers_package")
    info = site / "flowers_package-0.1.dist-info"  # what pip writes for the entry point
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: flowers-package\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[loragate.tasks]\nflowers = flowers_package\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    result = pytest_in(tmp_path, "--task", "flowers", "-m", "smoke", "--collect-only", "-q", site=site)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "suites/test_schema.py::test_tuned_outputs_parse[flowers-tiny]" in result.stdout
