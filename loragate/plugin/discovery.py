"""The tasks a project adds to the built-in ones, found before `--task` is checked against them.

Two sources: a tasks directory of the project (`--task-dir DIR`, else the ini option `loragate_tasks`, else
`[tool.loragate] tasks` in the project's pyproject.toml), whose Python modules are imported and whose card-only
cards (YAML with a `data:` block, loragate.tasks.card_task) are registered; and the `loragate.tasks`
entry-point group, for tasks shipped as packages, whose modules are imported. A module registers its tasks when
imported, as the built-in ones do (`TASKS.register("iris", IrisTask)`, its card read from beside it); a name
registered twice is an error naming both files.

Nothing in a tasks directory that may be a task is passed over without a word: a card that is not a card-only task
and that no module loads (a misspelt `data:`), or a directory that registers no task, is an error naming the file or
directory, and every other file left out (a private module, a data file) is listed with the reason
(`TaskDir.skipped`). Dotfiles, __init__.py and notes (*.md, *.txt, *.rst) are left out unlisted.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import yaml

from loragate.card.loader import load_yaml
from loragate.card.settings import CardError
from loragate.tasks import TASKS
from loragate.tasks.card_task import CardTask, CardTaskEntry

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ENTRY_POINT_GROUP = "loragate.tasks"
CARD_SUFFIXES = (".yaml", ".yml")  # matched whatever their case: a card saved as orders.YAML is a card
NOTE_SUFFIXES = (".md", ".txt", ".rst")  # notes beside the tasks, never a task
MODULE_TASKS: dict[str, list[str]] = {}  # a task module's import name -> the tasks it registered when imported


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


@dataclass
class TaskDir:
    """What a tasks directory gave: the tasks it registered, each file it left out with the reason, and the cards
    that are no task at all (each an error, `problem`)."""

    directory: Path
    setting: str  # where the directory came from: "--task-dir", "[tool.loragate] tasks in ..."
    registered: list[str] = field(default_factory=list)
    skipped: dict[Path, str] = field(default_factory=dict)  # file -> why it is not a task
    not_cards: dict[Path, str] = field(default_factory=dict)  # YAML file -> why it is no card-only task

    def problem(self) -> str | None:
        """Why this directory cannot stand for the project's tasks, or None: a card that is no task (its task would
        silently be missing) or no task at all (the built-in ones would silently run in the project's place)."""
        if self.not_cards:
            return "; ".join(f"{path}: {reason}" for path, reason in self.not_cards.items())
        if not self.registered:
            listed = ", ".join(f"{path.name} ({reason})" for path, reason in self.skipped.items())
            listed = f" ({listed})" if listed else ""
            return (f"{self.setting}: {self.directory} registers no task{listed}; put the project's task modules "
                    f"(*.py) or card-only cards (*.yaml with a data: block) there, or point {self.setting} at the "
                    f"directory that holds them")
        return None


def load_task_dir(directory: Path, setting: str) -> TaskDir:
    """Import every task module of `directory` (its *.py files, in name order, except those starting with "_");
    each registers its tasks. Then register a CardTask for each card-only task: a *.yaml or *.yml card (any case)
    with a `data:` block that no module loads (one of the same stem, or one that registered the task the card names).
    `setting` names where the directory came from, for the errors. Returns what was registered and what was left
    out, and why."""
    if not directory.is_dir():
        raise DiscoveryError(f"{setting}: {directory} is not a directory; create it with the project's task modules "
                             f"or point {setting} at the directory that holds them")
    loaded = TaskDir(directory, setting)
    files = sorted(path for path in directory.iterdir() if path.is_file() and not ignored(path))
    for path in files:
        if path.suffix == ".py" and not path.name.startswith("_"):
            loaded.registered += import_task_module(path.resolve())
    by_modules = set(loaded.registered)
    for path in files:
        if path.suffix == ".py" and path.name.startswith("_"):
            loaded.skipped[path] = "a private module: its name starts with _"
        elif path.suffix.lower() in CARD_SUFFIXES:
            add_card(loaded, path, by_modules)
        elif path.suffix != ".py":
            loaded.skipped[path] = "neither a task module (*.py) nor a card (*.yaml, *.yml)"
    return loaded


def ignored(path: Path) -> bool:
    """Files no one means as a task, left out without a word: dotfiles (.gitkeep), the package's __init__.py and
    notes (*.md, *.txt, *.rst). Other files left out (private modules, data files, a card saved as .json) are
    listed, as they may be a task its author expects to run."""
    return path.name.startswith(".") or path.name == "__init__.py" or path.suffix.lower() in NOTE_SUFFIXES


def add_card(loaded: TaskDir, path: Path, by_modules: set[str]) -> None:
    """The YAML file `path` into `loaded`: nothing more where a task module loads it (one of the same stem, or one
    that registered the task it names: a module may load several cards, or a card of another stem); else a
    card-only task, registered; else a card that is no task, named with the fix."""
    if path.with_suffix(".py").exists():
        return
    raw = read_card(path)
    if isinstance(raw, dict) and isinstance(raw.get("name"), str) and raw["name"] in by_modules:
        return
    reason = not_a_card_task(path, raw)
    if reason is None:
        loaded.registered.append(register_card_task(path.resolve()))
    else:
        loaded.not_cards[path] = reason


def read_card(path: Path) -> object:
    """The YAML of `path` as the cards read it (a repeated key is an error); a file that cannot be read is an error
    naming it."""
    try:
        return load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DiscoveryError(f"{path}: cannot read the card: {exc}; fix its YAML") from exc


def not_a_card_task(path: Path, raw: object) -> str | None:
    """Why the YAML file `path`, read as `raw`, which no task module loads, is no card-only task's card, naming the
    fix, or None where it is one (a mapping with a `data` key)."""
    if isinstance(raw, dict) and "data" in raw:
        return None
    module = path.with_suffix(".py").name
    fix = (f"give it a data: block (a card-only task), put the task module that loads it beside it ({module}, or "
           f"one that registers the task its name: names), or move it out of the tasks directory")
    if not isinstance(raw, dict):
        return f"is not a card (a YAML mapping) but {type(raw).__name__}; {fix}"
    close = difflib.get_close_matches("data", [str(key) for key in raw], n=1)
    guess = f" (did you mean data:? found {close[0]}:)" if close else ""
    return f"has no data: block{guess} and no task module beside it loads it; {fix}"


def register_card_task(path: Path) -> str:
    """Register the card at `path` (validated now, so a broken card stops the run naming it) under its name, and
    return the name; the same file registered again (an in-process pytest run) is a no-op."""
    try:
        name = CardTask(path).card.name
    except CardError as exc:
        raise DiscoveryError(str(exc)) from exc
    registered = TASKS.get(name) if name in TASKS else None
    if isinstance(registered, CardTaskEntry) and registered.card_path == path:
        return name
    try:
        TASKS.register(name, CardTaskEntry(path))
    except ValueError as exc:
        raise DiscoveryError(f"{path}: cannot register the card-only task: {exc}") from exc
    return name


def import_task_module(path: Path) -> list[str]:
    """Import `path` under a name of its own (its stem and a hash of its path), so a task module named like a
    library (`json.py`) shadows nothing, and importing the same file again (an in-process pytest run) is a no-op.
    Returns the tasks it registered (when first imported)."""
    name = f"loragate_tasks_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}_{path.stem}"
    if name in sys.modules:
        return MODULE_TASKS.get(name, [])
    before = set(TASKS.names())
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None  # a *.py file always has a source loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pydantic and dataclasses look the module up while it runs
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise DiscoveryError(f"{path}: cannot load the task module: {type(exc).__name__}: {exc}") from exc
    MODULE_TASKS[name] = [task for task in TASKS.names() if task not in before]
    return MODULE_TASKS[name]


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
