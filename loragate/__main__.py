"""`python -m loragate export-data --task T --tier TIER --out DIR`: a task's splits as the gate sees them, for an
adapter trained elsewhere (loragate.run.export_data). The task is a built-in one or the project's: the modules and
cards of --task-dir, else of `[tool.loragate] tasks` in ./pyproject.toml, and the `loragate.tasks` entry points,
as the gate's plugin finds them. A mistake in what was asked (an unknown task, a bad --set, --data or --base-model,
the data or the card) is one line on stderr naming the flag and the fix, exit 4 as the gate's usage errors, never a
traceback; argparse's own (a missing or unknown flag) stays its usage and exit 2.

`python -m loragate merge OUT_DIR SHARD...`: one report of the shards' reports (loragate.report.merge), written to
OUT_DIR/<UTC time>/ and appended to $GITHUB_STEP_SUMMARY when set; exit 0 when every run of every shard passed, 1
when one did not, 4 (one line) for shards that are not one release's."""

from __future__ import annotations

import argparse
import os
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
    merging = commands.add_parser(
        "merge", help="one report and one verdict of the report.json of several shards",
        description="Write OUT_DIR/<UTC time>/ (report.json, report.md, report.html, summary.md) with every run of "
                    "the shards, each a report.json written by a gate run (with rendered.json beside it). Exit 0 "
                    "when every run passed, 1 when one did not; shards of different commits, cards or test data, or "
                    "one case in two shards, are refused (exit 4).")
    merging.add_argument("out", type=Path, metavar="OUT_DIR")
    merging.add_argument("shards", type=Path, nargs="+", metavar="SHARD_REPORT.json",
                         help="a shard's reports/<run>/report.json, or that directory")
    args = parser.parse_args(argv)
    if args.command == "merge":
        return merge_shards(merging.prog, args.out, args.shards)
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


def merge_shards(prog: str, out: Path, shards: list[Path]) -> int:
    """The merged report's path and notes on stdout, appended to $GITHUB_STEP_SUMMARY as the gate does; the merged
    verdict as the exit status."""
    from loragate.plugin.session import SUMMARY_TIMEOUT_S, append_within  # these load torch: only for a merge
    from loragate.report.merge import MergeError, merge

    try:
        merged = merge(shards, out)
    except (MergeError, OSError) as exc:
        return refused(prog, exc)
    print(merged.report)
    for note in merged.notes:
        print(f"note: {note}")
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        summary = (merged.report / "summary.md").read_text(encoding="utf-8")
        try:
            append_within(Path(step_summary), summary + "".join(f"- note: {note}\n" for note in merged.notes),
                          SUMMARY_TIMEOUT_S)
        except OSError as exc:  # the report is written; the job fails, as the gate's session does
            print(f"{prog}: error: GITHUB_STEP_SUMMARY={step_summary} could not be written: {exc}", file=sys.stderr)
            return 1
    print(f"{'PASS' if merged.passed else 'FAIL'}: the merged report of {len(shards)} shards")
    return 0 if merged.passed else 1


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
