"""Candidates (issue 34): `--adapter` given more than once gates each adapter on one base in one pass, each with its own
verdict, side by side in the table, report.json and summary.md; `--pick-best` passes when one passes. Their names are
checked at start-up."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from loragate.card.options import OptionError
from loragate.plugin.options import named_candidates, parse_candidate
from tests.plugin.test_adapter_options import an_adapter

ROOT = Path(__file__).resolve().parents[2]


def test_candidates_are_named_by_their_directory_or_as_given(tmp_path: Path) -> None:
    first, second = an_adapter(tmp_path / "r8.lr3"), an_adapter(tmp_path / "9th")
    given = [parse_candidate(str(first)), parse_candidate(f"best={second}")]
    assert named_candidates(given) == (("r8_lr3", first), ("best", second))  # peft's adapter names hold no dots
    assert named_candidates([parse_candidate(str(second))]) == (("c_9th", second),)


def test_two_candidates_of_one_name_are_refused_naming_both(tmp_path: Path) -> None:
    first, second = an_adapter(tmp_path / "a" / "adapter"), an_adapter(tmp_path / "b" / "adapter")
    with pytest.raises(OptionError, match=f"two candidates are named 'adapter' \\({first} and {second}\\); name each "
                                          f"with --adapter NAME=PATH"):
        named_candidates([parse_candidate(str(first)), parse_candidate(str(second))])
    with pytest.raises(OptionError, match="named 'adapter' and 'Adapter', one name but for letter case,"):
        named_candidates([parse_candidate(str(first)), parse_candidate(f"Adapter={second}")])


@pytest.mark.parametrize("name", ["a.b", "base", "__base__", "lora_A", "1st"])
def test_a_name_peft_or_the_report_cannot_take_is_refused(tmp_path: Path, name: str) -> None:
    adapter = an_adapter(tmp_path / "x")
    with pytest.raises(argparse.ArgumentTypeError, match=f"the candidate name {name!r} cannot be used"):
        parse_candidate(f"{name}={adapter}")


def gate(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """`pytest -m smoke ARGS` in a project directory of its own, as a user runs it."""
    if not (tmp_path / "pyproject.toml").exists():
        (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("PYTEST_XDIST") and key != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"}
    return subprocess.run([sys.executable, "-m", "pytest", "-m", "smoke", "-p", "no:cacheprovider",
                           "-p", "no:randomly", "--benchmark-disable", *args], cwd=tmp_path,
                          env={**env, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True)


def good_and_broken(task: str, root: Path) -> Path:
    """root/A: the committed adapter of `task`; root/B: the same with every lora_B tensor zeroed: it takes no
    effect."""
    from safetensors.torch import load_file, save_file

    committed = next((ROOT / "adapters" / task / "tiny").glob("*/adapter_model.safetensors")).parent
    for name in ("A", "B"):
        shutil.copytree(committed, root / name)
    weights = root / "B" / "adapter_model.safetensors"
    save_file({key: value * 0 if "lora_B" in key else value for key, value in load_file(weights).items()}, weights)
    return root


@pytest.fixture(scope="module")
def candidates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Iris's good and broken candidates."""
    return good_and_broken("iris", tmp_path_factory.mktemp("candidates"))


def report_of(project: Path) -> dict:
    (report,) = (project / "reports").iterdir()
    return json.loads((report / "report.json").read_text())


@pytest.mark.slow
def test_two_candidates_each_get_their_verdict_in_one_pass(tmp_path: Path, candidates: Path) -> None:
    """The issue's done-when: B (lora_B zeroed) FAILs naming that it took no effect, A PASSes; the run exits 1, since
    every candidate must pass by default; both are in the table, report.json and summary.md, and the base was loaded
    and predicted once. Each keeps its own family when every one must pass (7 comparisons, not 14)."""
    result = gate(tmp_path, "--task", "iris", f"--adapter={candidates / 'A'}", f"--adapter={candidates / 'B'}")
    out = result.stdout
    assert result.returncode == 1, out[-3000:]
    assert "iris/tiny[A]: PASS" in out and "iris/tiny[B]: FAIL" in out, out[-3000:]
    assert "test_adapter_changes_outputs[iris-tiny-B]" in out and "adapter has no effect" in out, out[-3000:]
    assert "test_adapter_changes_outputs[iris-tiny-A]" not in out.split("short test summary info")[-1]
    assert out.count("predicted base") == 1, out[-3000:]  # one base pass for both candidates
    assert "over 7 comparisons" in out and "over 14 comparisons" not in out
    assert "candidates iris/tiny, ranked on accuracy (pick: all): FAIL" in out
    assert "best that passes: A; vs B on the same examples" in out and "every candidate must pass (B did not)" in out
    data = report_of(tmp_path)
    assert [(run["candidate"], run["verdict"]) for run in data["runs"]] == [("A", "PASS"), ("B", "FAIL")]
    (group,) = data["candidates"]
    assert (group["best"], group["runner_up"], group["verdict"], group["failed"]) == ("A", "B", "FAIL", ["B"])
    assert [entry["candidate"] for entry in group["ranking"]] == ["A", "B"]
    assert group["best_vs_runner_up"]["delta"] > 0 and group["best_vs_runner_up"]["low"] > 0
    summary = next((tmp_path / "reports").iterdir()) / "summary.md"
    assert "### Candidates iris/tiny: FAIL (pick: all)" in summary.read_text()
    assert "iris/tiny[B]: FAIL" in summary.read_text()


@pytest.mark.slow
def test_pick_best_passes_with_one_passing_candidate_and_names_it(tmp_path: Path) -> None:
    """All candidates' comparisons are one family under --pick-best: sst2's 80 test examples carry the good adapter
    through a family of both (Iris's 12 distinct inputs cannot carry one of 14 comparisons; docs/statistics.md)."""
    adapters = good_and_broken("sst2", tmp_path / "candidates")
    result = gate(tmp_path, "--task", "sst2", f"--adapter=good={adapters / 'A'}", f"--adapter=broken={adapters / 'B'}",
                  "--pick-best")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "candidates sst2/tiny, ranked on accuracy (pick: best): PASS" in result.stdout
    assert "ship good" in result.stdout and "Holm p=" in result.stdout and "over 12 comparisons" in result.stdout
    (group,) = report_of(tmp_path)["candidates"]
    assert (group["ship"], group["pick"], group["failed"]) == ("good", "best", ["broken"])


@pytest.mark.slow
def test_a_candidate_for_another_base_is_refused_naming_it(tmp_path: Path, candidates: Path) -> None:
    """An adapter whose config names another model is refused before any prediction, naming the candidate."""
    foreign = tmp_path / "adapters-elsewhere" / "other"
    shutil.copytree(candidates / "A", foreign)
    (foreign / "manifest.json").unlink()
    config = json.loads((foreign / "adapter_config.json").read_text())
    (foreign / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "org/other-1b"}))
    result = gate(tmp_path, "--task", "iris", f"--adapter={candidates / 'A'}", f"--adapter={foreign}")
    assert result.returncode != 0
    assert f"candidate other ({foreign})" in result.stdout and "org/other-1b" in result.stdout, result.stdout[-3000:]
