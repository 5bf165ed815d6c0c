"""The tasks a project adds to the built-in ones, found before `--task` is checked against them.

Two sources: a tasks directory of the project (`--task-dir DIR`, else the ini option `loragate_tasks`, else
`[tool.loragate] tasks` in the project's pyproject.toml), whose Python modules are imported and whose card-only
cards (YAML with a `data:` block, loragate.tasks.card_task) are registered; and the `loragate.tasks`
entry-point group, for tasks shipped as packages, whose modules are imported. A module registers its tasks when
imported, as the built-in ones do (`TASKS.register("iris", IrisTask)`, its card read from beside it); a name
registered twice is an error naming both files.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import yaml

from loragate.card.settings import CardError
from loragate.tasks import TASKS
from loragate.tasks.card_task import CardTask, CardTaskEntry

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ENTRY_POINT_GROUP = "loragate.tasks"


class DiscoveryError(ValueError):
    """A tasks directory or task package that cannot be loaded; the message names the file and the fix."""


def configured_task_dir(project: Path, ini_value: str) -> tuple[Path, str] | None:
    """The project's tasks directory from its settings, relative to `project`, and the setting that named it: the ini
    option `loragate_tasks`, else `[tool.loragate] tasks` in project/pyproject.toml; None when neither names one."""
    if ini_value:
        return project / ini_value, "the ini option loragate_tasks"
    pyproject = project / "pyproject.toml"
    if not pyproject.is_file():
        return None
    try:
        settings = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {}).get("loragate", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DiscoveryError(f"{pyproject}: cannot read [tool.loragate]: {exc}") from exc
    tasks = settings.get("tasks")
    if tasks is None:
        return None
    if not isinstance(tasks, str):
        raise DiscoveryError(f"{pyproject}: [tool.loragate] tasks = {tasks!r} must be a directory path, like "
                             f'tasks = "tasks"')
    return project / tasks, f"[tool.loragate] tasks in {pyproject}"


def load_task_dir(directory: Path, setting: str) -> None:
    """Import every task module of `directory` (its *.py files, in name order, except those starting with "_");
    each registers its tasks. Then register a CardTask for each card-only task: a *.yaml or *.yml card with a
    `data:` block and no module of the same stem beside it (that module loads it). `setting` names where the
    directory came from, for the error."""
    if not directory.is_dir():
        raise DiscoveryError(f"{setting}: {directory} is not a directory; create it with the project's task modules "
                             f"or point {setting} at the directory that holds them")
    for path in sorted(directory.glob("*.py")):
        if not path.name.startswith("_"):
            import_task_module(path.resolve())
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        if not path.with_suffix(".py").exists() and has_data_block(path):
            register_card_task(path.resolve())


def has_data_block(path: Path) -> bool:
    """Whether the YAML file `path` is a card-only task's card (a mapping with a `data` key)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DiscoveryError(f"{path}: cannot read the card: {exc}; fix its YAML") from exc
    return isinstance(raw, dict) and "data" in raw


def register_card_task(path: Path) -> None:
    """Register the card at `path` (validated now, so a broken card stops the run naming it) under its name; the
    same file registered again (an in-process pytest run) is a no-op."""
    try:
        name = CardTask(path).card.name
    except CardError as exc:
        raise DiscoveryError(str(exc)) from exc
    registered = TASKS.get(name) if name in TASKS else None
    if isinstance(registered, CardTaskEntry) and registered.card_path == path:
        return
    try:
        TASKS.register(name, CardTaskEntry(path))
    except ValueError as exc:
        raise DiscoveryError(f"{path}: cannot register the card-only task: {exc}") from exc


def import_task_module(path: Path) -> None:
    """Import `path` under a name of its own (its stem and a hash of its path), so a task module named like a
    library (`json.py`) shadows nothing, and importing the same file again (an in-process pytest run) is a no-op."""
    name = f"loragate_tasks_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}_{path.stem}"
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None  # a *.py file always has a source loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pydantic and dataclasses look the module up while it runs
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise DiscoveryError(f"{path}: cannot load the task module: {type(exc).__name__}: {exc}") from exc


def load_entry_points(points: Iterable[EntryPoint] | None = None) -> None:
    """Import the module each `loragate.tasks` entry point names (default: every installed one); each registers
    its tasks."""
    for point in entry_points(group=ENTRY_POINT_GROUP) if points is None else points:
        try:
            point.load()
        except Exception as exc:
            package = point.dist.name if point.dist is not None else "its package"
            raise DiscoveryError(f"entry point {point.name} = {point.value} (group {ENTRY_POINT_GROUP}, from "
                                 f"{package}): cannot load: {type(exc).__name__}: {exc}; fix or uninstall "
                                 f"{package}") from exc
