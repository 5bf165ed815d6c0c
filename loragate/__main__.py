"""`python -m loragate export-data --task T --tier TIER --out DIR`: a task's splits as the gate sees them, for an
adapter trained elsewhere (loragate.run.export_data). The task is a built-in one or the project's: the modules and
cards of --task-dir, else of `[tool.loragate] tasks` in ./pyproject.toml, and the `loragate.tasks` entry points,
as the gate's plugin finds them. A mistake in what was asked (an unknown task, a bad --set, --data or --base-model,
the data or the card) is one line on stderr naming the flag and the fix, exit 4 as the gate's usage errors, never a
traceback; argparse's own (a missing or unknown flag) stays its usage and exit 2."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from loragate.card.options import RunOptions
from loragate.card.settings import TIERS
from loragate.plugin.discovery import DiscoveryError, configured_task_dir, load_entry_points, load_task_dir
from loragate.plugin.options import parse_base_model, parse_data, parse_set
from loragate.tasks import TASKS

T = TypeVar("T")
USAGE_ERROR = 4  # pytest.ExitCode.USAGE_ERROR: what the gate exits with for a mistake in what the user asked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loragate", description="loragate's commands outside pytest.")
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser(
        "export-data", help="write a task's splits as the gate sees them, and format.md",
        description="Write DIR/train.jsonl, eval.jsonl, test.jsonl (the exact prompt and target strings the gate "
                    "uses), DIR/format.md (how the gate tokenizes them) and, on the tiny tier, DIR/base/ (the tiny "
                    "base to train on).")
    export.add_argument("--task", required=True, help="a built-in task or one of the project's")
    export.add_argument("--tier", choices=TIERS, default="tiny")
    export.add_argument("--out", type=Path, required=True, metavar="DIR")
    export.add_argument("--set", action="append", default=[], dest="overrides", metavar="PATH=VALUE",
                        help="change a card value, as the gate's --set (repeatable; the value is read as YAML)")
    export.add_argument("--data", help="the task's data instead of its own, as the gate's --data")
    export.add_argument("--base-model", help="the base whose tokenizer fits the rows, as the gate's --base-model")
    export.add_argument("--task-dir", action="append", type=Path, default=[], metavar="DIR",
                        help="load the task modules and cards of DIR (repeatable) instead of the project's")
    args = parser.parse_args(argv)
    try:
        options = RunOptions(base_model=parsed("--base-model", parse_base_model, args.base_model),
                             data=parsed("--data", parse_data, args.data),
                             overrides=tuple(parsed("--set", parse_set, value) for value in args.overrides),
                             cache=Path.cwd() / ".loragate", progress=False)
        load_project_tasks(args.task_dir, Path.cwd())
        if args.task not in TASKS:
            raise ValueError(f"--task: {TASKS.unknown_message(args.task)}")
    except ValueError as exc:  # a flag's value: answered before torch loads
        return refused(export.prog, exc)
    from loragate.models.bases import ModelLoadError  # these load torch and transformers: only for an export
    from loragate.run.export_data import export_data

    try:
        command = shlex.join(["python", "-m", "loragate", *(sys.argv[1:] if argv is None else argv)])
        written = export_data(args.task, args.tier, options, args.out, command)
    except (ValueError, ModelLoadError, OSError) as exc:  # the card's, the data's, a base's or the files' own words
        return refused(export.prog, exc)
    for path in written:
        print(path)
    return 0


def refused(prog: str, exc: Exception) -> int:
    """The mistake as one line on stderr, and the gate's exit status for it."""
    print(f"{prog}: error: {' '.join(str(exc).splitlines())}", file=sys.stderr)
    return USAGE_ERROR


def parsed(flag: str, parse: Callable[[str], T], value: str | None) -> T | None:
    """`value` of `flag` read by the gate's own parser of that flag, or None where it was not given; a ValueError naming
    the flag where the parser refuses it."""
    if value is None:
        return None
    try:
        return parse(value)
    except argparse.ArgumentTypeError as exc:
        raise ValueError(f"{flag}: {exc}") from exc


def load_project_tasks(task_dirs: list[Path], project: Path) -> None:
    """The project's tasks beside the built-in ones, as the plugin loads them (loragate.plugin.hooks): the
    `loragate.tasks` entry points, and the modules and cards of `task_dirs`, else of the project's [tool.loragate]
    tasks; a directory with a card that is no task, or with no task, is a DiscoveryError naming it."""
    load_entry_points()
    if task_dirs:
        loaded = [load_task_dir(directory, "--task-dir") for directory in task_dirs]
    else:
        configured = configured_task_dir(project, "")
        loaded = [load_task_dir(*configured)] if configured is not None else []
    for task_dir in loaded:
        problem = task_dir.problem()
        if problem is not None:
            raise DiscoveryError(problem)


if __name__ == "__main__":
    sys.exit(main())
