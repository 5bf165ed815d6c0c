"""A stored report.json as the baseline: paired by example id, refused when it cannot be paired."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from loragate.run.baseline import baseline_from_report


def report(splits, predicted: dict[str, str | None], data_hash: str | None = None) -> dict:
    rows = [{"id": ex.id, "gold": ex.label, "base": None, "tuned": predicted.get(ex.id, ex.label),
             "base_output": "", "tuned_output": predicted.get(ex.id, ex.label) or "junk"} for ex in splits.test]
    return {"runs": [{"task": "iris", "tier": "tiny", "data_hash": data_hash or splits.data_hash(),
                      "predictions": rows}]}


def write(tmp_path: Path, content: dict) -> Path:
    path = tmp_path / "report.json"
    path.write_text(json.dumps(content))
    return path


def test_a_stored_report_gives_paired_baseline_metrics(tmp_path: Path, iris, iris_splits) -> None:
    first = iris_splits.test[0]
    wrong = "virginica" if first.label != "virginica" else "setosa"
    path = write(tmp_path, report(iris_splits, {first.id: wrong, iris_splits.test[1].id: None}))
    metrics = baseline_from_report(path, "iris", "tiny", iris_splits, iris.card.labels)
    assert metrics.n == 30 and metrics.accuracy == pytest.approx(28 / 30)
    assert metrics.validity_rate == pytest.approx(29 / 30)
    assert metrics.gold == [ex.label for ex in iris_splits.test], "not aligned with this run's test order"


@pytest.mark.parametrize("change, message", [
    (lambda r: r["runs"][0].update(data_hash="0" * 64), "made on other data"),
    (lambda r: r["runs"][0].update(tier="full"), r"no run of iris/tiny \(it holds iris/full\)"),
    (lambda r: r["runs"][0]["predictions"].pop(), "no prediction for test examples"),
    (lambda r: r["runs"][0]["predictions"][0].update(gold="nonsense"), "gold labels differ"),
    (lambda r: r.pop("runs"), "not a loragate report.json"),
    (lambda r: r.update(source={"commit": "a" * 40, "dirty": True}), "with uncommitted changes to tracked files"),
])
def test_a_report_that_cannot_be_paired_is_refused(tmp_path: Path, iris, iris_splits, change, message: str) -> None:
    content = report(iris_splits, {})
    change(content)
    with pytest.raises(ValueError, match=message):
        baseline_from_report(write(tmp_path, content), "iris", "tiny", iris_splits, iris.card.labels)


@pytest.mark.slow
def test_a_report_of_candidates_gives_the_one_it_shipped(tmp_path: Path, iris, iris_splits) -> None:
    """The first candidate's predictions were taken, whichever the report shipped; a report that shipped none (every
    candidate had to pass) is refused, naming them."""
    first = iris_splits.test[0]
    wrong = "virginica" if first.label != "virginica" else "setosa"
    content = report(iris_splits, {first.id: wrong})
    shipped = {**content["runs"][0], "candidate": "b", "predictions": report(iris_splits, {})["runs"][0]["predictions"]}
    content["runs"] = [{**content["runs"][0], "candidate": "a"}, shipped]
    content["candidates"] = [{"task": "iris", "tier": "tiny", "pick": "best", "ship": "b"}]
    assert baseline_from_report(write(tmp_path, content), "iris", "tiny", iris_splits, iris.card.labels).accuracy == 1
    content["candidates"] = [{"task": "iris", "tier": "tiny", "pick": "all", "ship": None}]
    with pytest.raises(ValueError, match=r"holds 2 candidates of iris/tiny \(a, b\) and shipped none"):
        baseline_from_report(write(tmp_path, content), "iris", "tiny", iris_splits, iris.card.labels)


def test_a_perfect_stored_release_fails_a_tuned_adapter_that_is_worse(tmp_path: Path, iris_splits) -> None:
    from loragate.card.options import RunOptions
    from loragate.run.task_run import run_task

    store = Path(__file__).resolve().parents[2] / "adapters"
    path = write(tmp_path, report(iris_splits, {}))  # the last release got every test example right
    run = run_task("iris", "tiny", RunOptions(baseline_report=path, store_root=store, cache=tmp_path / "cache",
                                              progress=False))
    assert run.trained is None, "the committed adapter should have been loaded, not retrained"
    findings = {r.check: r.finding for r in run.gates}
    assert run.baseline_metrics is not None and run.baseline_metrics.accuracy == 1.0
    finding = findings["accuracy vs baseline"]
    assert finding is not None and "baseline 1.000, tuned 0.967" in finding, finding


@pytest.mark.slow
def test_a_report_records_its_commit_and_whether_tracked_files_were_edited(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """What the dirty-baseline refusal reads: a clean checkout, an edited tracked file, an untracked file (a
    freshly trained adapter must not make a release dirty), and no repository at all."""
    from loragate.report.writer import source_state

    monkeypatch.chdir(tmp_path)
    assert source_state() == {"commit": None, "dirty": None}
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], check=True)
    (tmp_path / "card.yaml").write_text("lr: 1\n")
    subprocess.run(["git", "add", "card.yaml"], check=True)
    subprocess.run([*git, "commit", "-qm", "release"], check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    (tmp_path / "adapter.safetensors").write_text("untracked")
    assert source_state() == {"commit": head, "dirty": False}
    (tmp_path / "card.yaml").write_text("lr: 2\n")
    assert source_state() == {"commit": head, "dirty": True}


def test_a_report_made_on_another_base_is_refused_naming_both(tmp_path: Path, iris_splits) -> None:
    from loragate.run.baseline import check_report_base

    content = report(iris_splits, {})
    content["runs"][0]["base"] = {"name": "meta-llama/Llama-3.2-1B", "fingerprint": "a" * 64}
    path = write(tmp_path, content)
    with pytest.raises(ValueError, match=re.escape(
            f"{path}: its iris/tiny run was made on base 'meta-llama/Llama-3.2-1B' (fingerprint aaaaaaaaaaaa), not on "
            f"this run's base 'tiny:iris' (fingerprint bbbbbbbbbbbb): pass the last release's report made on this "
            f"base, or --allow-foreign-adapter")):
        check_report_base(path, "iris", "tiny", "tiny:iris", "b" * 64)
    check_report_base(path, "iris", "tiny", "meta-llama/Llama-3.2-1B", "a" * 64)
    check_report_base(path, "iris", "full", "tiny:iris", "b" * 64)  # another tier's run: not this one's baseline
