"""`python -m loragate merge OUT_DIR SHARD...`: shards written by the library's own writer merge into one report
with one verdict; shards of different commits, cards or data, one case twice, or a file that is no shard's report,
are refused with one line and exit 4, and nothing is written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loragate.__main__ import main
from loragate.metrics.plots import Plot
from loragate.report.writer import RenderedRun, write_rendered, write_report
from loragate.run.task_run import TaskRun
from tests.project.workflows import load_workflow

COMMIT = "a" * 40
IRIS_CARD, SST2_CARD = "1" * 64, "2" * 64


def rendered(task: str, tier: str = "tiny", verdict: str = "PASS", card: str = IRIS_CARD,
             data: str = "d1") -> RenderedRun:
    """A run as a gate renders it, small: what the merge reads of it."""
    name = f"{task}/{tier}"
    return RenderedRun(task=task, tier=tier, verdict=verdict, table=f"{name}: {verdict}",
                       json={"task": task, "tier": tier, "card_sha256": card, "data_hash": data,
                             "passed": verdict == "PASS", "verdict": verdict},
                       markdown=f"## {name}: {verdict}\n", html=f"<section><h2>{name}</h2></section>",
                       summary=f"### {name}: {verdict}\n", plots=(Plot(f"{task}-{tier}-loss.svg", "loss", "<svg/>"),))


def shard(tmp_path: Path, name: str, *runs: RenderedRun, commit: str | None = COMMIT, dirty: bool = False) -> Path:
    """A shard's report.json, written by the gate's own writer."""
    return write_rendered(list(runs), tmp_path / name, {"commit": commit, "dirty": dirty}) / "report.json"


def merged(tmp_path: Path, *shards: Path) -> tuple[int, Path | None]:
    """The merge's exit status and the one report it wrote (None where it wrote none)."""
    code = main(["merge", str(tmp_path / "merged"), *map(str, shards)])
    reports = list((tmp_path / "merged").iterdir()) if (tmp_path / "merged").exists() else []
    assert len(reports) <= 1
    return code, reports[0] if reports else None


def test_shards_merge_into_one_report_of_every_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = shard(tmp_path, "a", rendered("iris"))
    second = shard(tmp_path, "b", rendered("sst2", card=SST2_CARD), rendered("iris", "full"))
    code, report = merged(tmp_path, first, second.parent)  # a report.json or its directory
    assert code == 0 and report is not None
    data = json.loads((report / "report.json").read_text())
    assert [(run["task"], run["tier"]) for run in data["runs"]] == [("iris", "tiny"), ("sst2", "tiny"),
                                                                   ("iris", "full")]
    assert data["source"]["commit"] == COMMIT and data["source"]["dirty"] is False
    assert [entry["runs"] for entry in data["source"]["shards"]] == [["iris/tiny"], ["sst2/tiny", "iris/full"]]
    for name in ("report.md", "summary.md", "report.html"):
        text = (report / name).read_text()
        assert all(case in text for case in ("iris/tiny", "sst2/tiny", "iris/full")), name
    assert {"iris-tiny-loss.svg", "sst2-tiny-loss.svg", "iris-full-loss.svg", "rendered.json"} <= {
        path.name for path in report.iterdir()}
    out = capsys.readouterr().out
    assert str(report) in out and "PASS: the merged report of 2 shards" in out


@pytest.mark.parametrize("verdict", ["FAIL", "INCONCLUSIVE", "PARTIAL"])
def test_a_run_that_did_not_pass_in_any_shard_fails_the_merge(tmp_path: Path, verdict: str) -> None:
    code, report = merged(tmp_path, shard(tmp_path, "a", rendered("iris")),
                          shard(tmp_path, "b", rendered("sst2", verdict=verdict, card=SST2_CARD)))
    assert code == 1 and report is not None
    assert [run["verdict"] for run in json.loads((report / "report.json").read_text())["runs"]] == ["PASS", verdict]


def test_a_run_that_could_not_be_rendered_is_merged_and_fails(tmp_path: Path) -> None:
    """A shard's run whose report could not be rendered records no card or data hash: it is kept, and fails."""
    broken = RenderedRun(task="sst2", tier="tiny", verdict="FAIL", table="sst2/tiny: FAIL  its report could not be "
                         "rendered", json={"task": "sst2", "tier": "tiny", "passed": False, "render_error": "boom"},
                         markdown="## sst2/tiny: FAIL\n", html="<section></section>", summary="### sst2/tiny: FAIL\n",
                         plots=(), render_error="boom")
    code, report = merged(tmp_path, shard(tmp_path, "a", rendered("iris")), shard(tmp_path, "b", broken))
    assert code == 1 and report is not None
    assert json.loads((report / "report.json").read_text())["runs"][1]["render_error"] == "boom"


def test_the_merged_summary_goes_to_the_step_summary_with_a_dirty_shard_noted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    dirty = shard(tmp_path, "b", rendered("sst2", card=SST2_CARD), dirty=True)
    code, report = merged(tmp_path, shard(tmp_path, "a", rendered("iris")), dirty)
    assert code == 0 and report is not None
    text = summary.read_text()
    assert text.startswith("earlier step\n## loragate") and "### iris/tiny: PASS" in text and "### sst2/tiny" in text
    assert f"- note: {dirty}: made from uncommitted changes" in text
    assert json.loads((report / "report.json").read_text())["source"]["dirty"] is True


def two_shards(tmp_path: Path, second: RenderedRun, **options) -> list[Path]:
    return [shard(tmp_path, "a", rendered("iris")), shard(tmp_path, "b", second, **options)]


@pytest.mark.parametrize("shards, words", [
    (lambda tmp: two_shards(tmp, rendered("sst2", card=SST2_CARD), commit="b" * 40),
     ["b/", "was made from commit " + "b" * 40, "a/", "merge shards of one commit only"]),
    (lambda tmp: two_shards(tmp, rendered("sst2", card=SST2_CARD), commit=None),
     ["b/", "source.commit is null"]),
    (lambda tmp: two_shards(tmp, rendered("iris", "full", card="9" * 64)),
     ["iris: ", "b/", "a/", "different cards", "999999999999 vs 111111111111"]),
    (lambda tmp: two_shards(tmp, rendered("iris")), ["iris/tiny: gated in both ", "b/", "a/", "to one shard only"]),
    (lambda tmp: two_shards(tmp, rendered("iris", data="d2")),
     ["iris/tiny: gated in both ", "b/", "a/", ", on different test data (data hash d2 vs d1)"]),
], ids=["commit", "no-commit", "card", "same-case", "data"])
def test_shards_of_different_releases_are_refused_with_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], shards, words: list[str]) -> None:
    code, report = merged(tmp_path, *shards(tmp_path))
    error = capsys.readouterr().err
    assert code == 4 and report is None
    assert error.count("\n") == 1 and error.startswith("python -m loragate merge: error: ")
    assert all(word in error for word in words), error


def no_card_hash(tmp: Path) -> Path:
    path = shard(tmp, "old", rendered("iris"))
    runs = json.loads(path.with_name("rendered.json").read_text())
    del runs[0]["json"]["card_sha256"]
    path.with_name("rendered.json").write_text(json.dumps(runs))
    return path


def written(tmp: Path, name: str, text: str) -> Path:
    (tmp / name).mkdir()
    (tmp / name / "report.json").write_text(text)
    return tmp / name / "report.json"


def without_rendered(tmp: Path) -> Path:
    path = shard(tmp, "bare", rendered("iris"))
    path.with_name("rendered.json").unlink()
    return path


@pytest.mark.parametrize("make, words", [
    (lambda tmp: tmp / "missing" / "report.json", ["missing/report.json: no such file"]),
    (lambda tmp: written(tmp, "junit", "<testsuite/>"), ["junit/report.json: not JSON", "not a loragate report.json"]),
    (lambda tmp: written(tmp, "bench", '{"benchmarks": []}'), ["bench/report.json: not a loragate report.json"]),
    (without_rendered, ["bare/", "/rendered.json: no such file", "whole report directory"]),
    (no_card_hash, ["old/", "/report.json: run iris/tiny records no card_sha256", "re-run the shard"]),
], ids=["missing", "not-json", "not-a-report", "no-rendered", "no-card-hash"])
def test_a_file_that_is_no_shard_report_is_one_line_naming_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], make, words: list[str]) -> None:
    code, report = merged(tmp_path, make(tmp_path))
    error = capsys.readouterr().err
    assert code == 4 and report is None and error.count("\n") == 1
    assert all(word in error for word in words), error


@pytest.mark.slow
def test_real_shards_merge_into_the_report_and_verdict_of_one_run(
        two_runs: tuple[TaskRun, TaskRun], instruct_run: TaskRun, tmp_path: Path) -> None:
    """The tiny Iris and instruct runs written as two shards by the gate's writer merge into the runs and verdict
    of one report of both; the same case from two shards (Iris trained twice) is refused."""
    iris, instruct = two_runs[0], instruct_run
    first, second = (write_report([run], tmp_path / name) / "report.json"
                     for run, name in ((iris, "a"), (instruct, "b")))
    whole = json.loads((write_report([iris, instruct], tmp_path / "whole") / "report.json").read_text())
    code, report = merged(tmp_path, first, second)
    assert report is not None
    data = json.loads((report / "report.json").read_text())
    assert json.dumps(data["runs"]) == json.dumps(whole["runs"])
    assert data["source"]["commit"] == whole["source"]["commit"]
    assert code == (0 if iris.verdict.passed and instruct.verdict.passed else 1)
    assert {run["card_sha256"] for run in data["runs"]} == {
        json.loads(first.read_text())["runs"][0]["card_sha256"], json.loads(second.read_text())["runs"][0][
            "card_sha256"]} and len({run["card_sha256"] for run in data["runs"]}) == 2
    again = write_report([two_runs[1]], tmp_path / "c") / "report.json"
    assert main(["merge", str(tmp_path / "refused"), str(first), str(again)]) == 4
    assert not (tmp_path / "refused").exists()


def test_the_release_workflow_gates_shards_and_merges_their_reports(tmp_path: Path) -> None:
    """Each shard (a matrix entry of space-separated tasks) gates its tasks and uploads reports/ under its own
    name; a hosted job downloads them all and merges what the glob it runs finds, as here."""
    workflow = load_workflow(Path(__file__).resolve().parents[2] / ".github" / "workflows" / "release-gate.yml")
    gate, merge_job = workflow["jobs"]["gate"], workflow["jobs"]["merge"]
    assert gate["strategy"]["matrix"]["tasks"] == "${{ fromJSON(inputs.shards || '[\"\"]') }}"
    assert gate["strategy"]["fail-fast"] is False and gate["env"]["TASKS"] == "${{ matrix.tasks || inputs.task }}"
    assert '"${task_args[@]}"' in gate["steps"][-2]["run"]
    assert gate["steps"][-1]["with"]["name"] == "release-gate-reports-${{ strategy.job-index }}"
    assert merge_job["needs"] == "gate" and merge_job["if"] == "always()" and merge_job["runs-on"] == "ubuntu-latest"
    download = next(step for step in merge_job["steps"] if "download-artifact" in str(step.get("uses")))
    assert download["with"] == {"pattern": "release-gate-reports-*", "path": "shards/"}
    command = ".venv/bin/python -m loragate merge reports/ shards/*/*/report.json"
    assert command in "\n".join(step.get("run", "") for step in merge_job["steps"])
    for index, run in enumerate((rendered("iris"), rendered("sst2", verdict="FAIL", card=SST2_CARD))):
        shard(tmp_path / "shards", f"release-gate-reports-{index}", run)
        (tmp_path / "shards" / f"release-gate-reports-{index}" / "junit-release.xml").write_text("<testsuites/>")
    found = sorted(tmp_path.glob("shards/*/*/report.json"))
    assert len(found) == 2 and main(["merge", str(tmp_path / "reports"), *map(str, found)]) == 1


def test_python_m_loragate_merge_is_the_same_command(tmp_path: Path) -> None:
    missing = tmp_path / "missing" / "report.json"
    result = subprocess.run([sys.executable, "-m", "loragate.merge", str(tmp_path / "out"), str(missing)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 4 and result.stdout == ""
    assert result.stderr == f"python -m loragate merge: error: {missing}: no such file; pass the report.json of each " \
                            f"shard's gate run\n"


def candidate(name: str, verdict: str) -> RenderedRun:
    """Candidate `name` of iris/tiny, as a gate of several candidates renders it."""
    run = rendered("iris", verdict=verdict)
    return RenderedRun(**{**run.__dict__, "candidate": name, "json": {**run.json, "candidate": name}})


def group(pick: str, verdicts: dict[str, str]) -> dict:
    """The iris/tiny candidates' ranking as report.candidates writes it."""
    passing = [name for name, verdict in verdicts.items() if verdict == "PASS"]
    passed = bool(passing) if pick == "best" else len(passing) == len(verdicts)
    return {"task": "iris", "tier": "tiny", "metric": "accuracy", "pick": pick, "passed": passed,
            "verdict": "PASS" if passed else "FAIL", "best": passing[0] if passing else None, "runner_up": None,
            "best_vs_runner_up": None, "ship": passing[0] if pick == "best" and passing else None,
            "failed": [name for name, verdict in verdicts.items() if verdict != "PASS"],
            "ranking": [{"candidate": name, "value": 1.0, "verdict": verdict, "adapter": None}
                        for name, verdict in verdicts.items()]}


@pytest.mark.parametrize(("pick", "code"), [("all", 1), ("best", 0)])
def test_a_shard_of_candidates_merges_with_its_pick(tmp_path: Path, pick: str, code: int) -> None:
    """Candidates A (PASS) and B (FAIL) of one task: the merge keeps both runs and their ranking, and passes where the
    pick is `best` (one passing candidate is enough), as the run itself does; under `all` B fails it."""
    verdicts = {"A": "PASS", "B": "FAIL"}
    first = write_rendered([candidate(name, verdict) for name, verdict in verdicts.items()], tmp_path / "a",
                           {"commit": COMMIT, "dirty": False}, [group(pick, verdicts)]) / "report.json"
    second = shard(tmp_path, "b", rendered("sst2", card=SST2_CARD))
    result, report = merged(tmp_path, first, second)
    assert result == code and report is not None
    data = json.loads((report / "report.json").read_text())
    assert [(run["task"], run.get("candidate")) for run in data["runs"]] == [("iris", "A"), ("iris", "B"),
                                                                             ("sst2", None)]
    assert data["candidates"] == [group(pick, verdicts)]
    assert "Candidates iris/tiny" in (report / "summary.md").read_text()


def test_one_candidate_in_two_shards_is_refused(tmp_path: Path) -> None:
    """Candidates are cases of their own: the same candidate from two shards is refused, two of one task are not."""
    first = shard(tmp_path, "a", candidate("A", "PASS"), candidate("B", "PASS"))
    again = shard(tmp_path, "b", candidate("A", "PASS"))
    assert main(["merge", str(tmp_path / "refused"), str(first), str(again)]) == 4
    assert not (tmp_path / "refused").exists()


def test_one_tasks_candidates_split_over_two_shards_are_refused(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Candidates A and B in one shard, C in another: each shard ranked and picked its own (under --pick-best each
    its own Holm family), so the merge passed iris where one run of all three failed it, or the reverse."""
    first = write_rendered([candidate("A", "FAIL"), candidate("B", "FAIL")], tmp_path / "a",
                           {"commit": COMMIT, "dirty": False}, [group("best", {"A": "FAIL", "B": "FAIL"})])
    second = write_rendered([candidate("C", "PASS")], tmp_path / "b", {"commit": COMMIT, "dirty": False},
                            [group("best", {"C": "PASS"})])
    assert main(["merge", str(tmp_path / "refused"), str(first / "report.json"), str(second / "report.json")]) == 4
    assert "iris/tiny: gated in both" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()
