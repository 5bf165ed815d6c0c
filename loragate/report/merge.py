"""One report of many shards: the release workflow gates its tasks on several runners, each writing its own
reports/<run>/, and `python -m loragate merge OUT_DIR SHARD...` writes one report of every shard's runs with one
verdict. Shards merge only where they gated the same code, the same cards and, for a case, the same test data:
anything else is refused with one line naming both files, never averaged over."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loragate.report.candidates import excused
from loragate.report.writer import RENDERED, RenderedRun, write_rendered


class MergeError(ValueError):
    """Shards that cannot make one report: one line naming the file(s) and the fix."""


@dataclass(frozen=True)
class Shard:
    """One shard's report: where its report.json is, the code it was made from, and its runs as rendered."""

    path: Path
    source: dict[str, Any]
    runs: list[RenderedRun]
    candidates: list[dict[str, Any]]  # its tasks gated with candidates, ranked (report.json's `candidates`)


@dataclass(frozen=True)
class Merged:
    """What a merge wrote: the report directory, whether every run of every shard passed, and what the reader
    should know of the shards (a shard made from uncommitted code)."""

    report: Path
    passed: bool
    notes: list[str]


def read_shard(path: Path) -> Shard:
    """The shard whose report.json is `path` (or its report directory), with rendered.json beside it."""
    path = path / "report.json" if path.is_dir() else path
    report = read_json(path, "report.json")
    if not (isinstance(report, dict) and isinstance(report.get("source"), dict)
            and isinstance(report.get("runs"), list)
            and all(isinstance(run, dict) and {"task", "tier", "passed"} <= set(run) for run in report["runs"])):
        raise MergeError(f"{path}: not a loragate report.json (it has no `source` and `runs` of tasks); pass the "
                         f"report.json of each shard's gate run, reports/<run>/report.json")
    rendered = read_json(path.with_name(RENDERED), RENDERED)
    try:
        runs = [RenderedRun.from_builtins(run) for run in rendered]
    except (TypeError, KeyError) as exc:
        raise MergeError(f"{path.with_name(RENDERED)}: not the runs a gate rendered ({exc}); download the shard's "
                         f"whole report directory again") from exc
    if ([(run.task, run.tier, run.candidate) for run in runs]
            != [(run["task"], run["tier"], run.get("candidate", "")) for run in report["runs"]]):
        raise MergeError(f"{path}: its runs differ from those of {RENDERED} beside it; both must come from one gate "
                         f"run: download the shard's report directory again")
    return Shard(path, report["source"], runs, report.get("candidates", []))


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        fix = ("upload and download each shard's whole report directory, not report.json alone"
               if what == RENDERED else "pass the report.json of each shard's gate run")
        raise MergeError(f"{path}: no such file; {fix}") from exc
    except OSError as exc:
        raise MergeError(f"{path}: cannot be read ({exc.strerror}); pass a readable {what}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MergeError(f"{path}: not JSON ({exc}), so not a loragate {what}; pass the {what} of a shard's gate "
                         f"run") from exc


def check_shards(shards: list[Shard]) -> None:
    """MergeError where the shards did not gate one release: a commit unknown or not the first shard's, a task
    gated under different cards, a case (task, tier) on different test data or in two shards."""
    first = shards[0]
    for shard in shards:
        commit = shard.source.get("commit")
        if commit is None:
            raise MergeError(f"{shard.path}: source.commit is null (made outside a git checkout): a merge needs "
                             f"each shard's commit; run every shard from a checkout of the release")
        if commit != first.source.get("commit"):
            raise MergeError(f"{shard.path} was made from commit {commit}, {first.path} from "
                             f"{first.source.get('commit')}: merge shards of one commit only; re-run the stale shard")
    cards: dict[str, tuple[str, Path]] = {}  # task -> (its card's hash, the first shard that gated it)
    cases: dict[tuple[str, str, str], tuple[str | None, Path]] = {}  # (task, tier, candidate) -> (data hash, shard)
    gated_in: dict[tuple[str, str], Path] = {}  # (task, tier) -> the shard that gated it
    for shard in shards:
        for run in shard.runs:
            if run.render_error is None:
                card = required(run, "card_sha256", shard.path)
                seen, where = cards.setdefault(run.task, (card, shard.path))
                if seen != card:
                    raise MergeError(f"{run.task}: {shard.path} and {where} gated it under different cards (card "
                                     f"sha256 {card[:12]} vs {seen[:12]}): merge shards run with the same cards and "
                                     f"--set values")
            data = None if run.render_error else required(run, "data_hash", shard.path)
            case = (run.task, run.tier, run.candidate)
            if case in cases:
                seen_data, where = cases[case]
                data_differs = data and seen_data and data != seen_data
                problem = f", on different test data (data hash {data} vs {seen_data})" if data_differs else ""
                raise MergeError(f"{run.name}: gated in both {shard.path} and {where}{problem}: give each task and "
                                 f"tier to one shard only")
            cases[case] = (data, shard.path)
            where = gated_in.setdefault((run.task, run.tier), shard.path)
            if where != shard.path:  # a task's candidates are ranked, and under --pick-best judged, together
                raise MergeError(f"{run.task}/{run.tier}: gated in both {shard.path} and {where}: a task's candidates "
                                 f"are ranked and picked together, in one pass; give each task and tier to one shard "
                                 f"only")


def required(run: RenderedRun, field: str, path: Path) -> str:
    value = run.json.get(field)
    if not isinstance(value, str):
        raise MergeError(f"{path}: run {run.name} records no {field} (a report from a loragate that did not write "
                         f"it); re-run the shard with this loragate")
    return value


def merge(paths: list[Path], out_dir: Path) -> Merged:
    """Read and check every shard, then write out_dir/<UTC time>/ with all their runs, in the order given."""
    if not paths:
        raise MergeError("no shard given: pass each shard's report.json")
    shards = [read_shard(path) for path in paths]
    check_shards(shards)
    runs = [run for shard in shards for run in shard.runs]
    if not runs:
        raise MergeError(f"{', '.join(str(shard.path) for shard in shards)}: no run in any shard; nothing to merge")
    dirty = [shard.path for shard in shards if shard.source.get("dirty")]
    source = {"commit": shards[0].source["commit"], "dirty": bool(dirty),
              "shards": [{"report": str(shard.path), "dirty": shard.source.get("dirty"),
                          "runs": [run.name for run in shard.runs]} for shard in shards]}
    candidates = [group for shard in shards for group in shard.candidates]
    report = write_rendered(runs, out_dir, source, candidates)
    notes = [f"{path}: made from uncommitted changes to commit {source['commit']}: not a release's baseline"
             for path in dirty]
    shipped = excused(candidates)
    return Merged(report, all(run.passed or (run.task, run.tier, run.candidate) in shipped for run in runs), notes)
