"""benchmarks/candidates.py cannot rot: its dry run (3 candidates on the tiny causal base and on MiniLM, iris's gate
end to end, a pass over 2 and 4 adapters) writes ratios, the predictions check and the scale's figures, and writes
nothing into this checkout; its fleet part times both ways, shared batches and each task on its own, and finds their
predictions equal; and its check of the predictions does tell different answers apart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.fleet import BASES
from benchmarks.timed_runs import Answers

REPO = Path(__file__).resolve().parents[2]


def checkout_outputs() -> set[Path]:
    """What a run in this checkout could add: adapter entries and report runs."""
    return set(REPO.glob("adapters/*/*/*")) | set(REPO.glob("reports/*"))


def dry_run(out: Path, *args: str) -> dict:
    """`python -m benchmarks.candidates --dry-run ARGS` writing to `out`: its candidates.json."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_XDIST_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    command = [sys.executable, "-m", "benchmarks.candidates", "--dry-run", *args, "--out", str(out)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((out / "candidates.json").read_text())


@pytest.mark.slow
def test_dry_run_writes_ratios_equal_predictions_and_the_scale(tmp_path: Path) -> None:
    before = checkout_outputs()
    result = dry_run(tmp_path, "--gate", "iris", "--fleet")  # the fleet part: the test below
    assert [row["task"] for row in result["compare"]] == ["iris", "sst2_encoder"]
    for row in result["compare"]:
        assert row["candidates"] == 3 and row["predictions_equal"] and not row["differing"], row
        for ratio in ("pass_vs_one", "sequential_vs_one", "sequential_vs_pass"):
            assert isinstance(row[ratio], float) and row[ratio] > 0, (ratio, row)
        assert len(row["alone_rounds_s"][0]) == 3 and row["pass_stages"] and row["one_stages"], row
    [gate] = result["gate"]
    assert gate["task"] == "iris" and len(gate["alone_s"]) == 3 and gate["pass_exit"] in (0, 1), gate
    assert isinstance(gate["pass_vs_one"], float) and isinstance(gate["sequential_vs_one"], float), gate
    rows = result["scale"]["rows"]
    assert [row["adapters"] for row in rows] == [1, 2, 4]
    assert len({row["base_parameters"] for row in rows}) == 1, "the base is held more than once"
    assert [row["adapter_parameters"] for row in rows] == [n * rows[0]["adapter_parameters"] for n in (1, 2, 4)]
    assert all(isinstance(row["per_adapter_s"], float) and row["peak_rss_mib"] > 0 for row in rows[1:]), rows
    assert result["commit"] and result["date"], result
    table = (tmp_path / "candidates.md").read_text()
    assert "| iris | 3 |" in table and "| sst2_encoder | 3 |" in table and "| 4 |" in table, table
    assert "End to end" in table, table
    assert not checkout_outputs() - before, "the benchmark wrote into this checkout"


def test_the_predictions_check_tells_one_logit_or_one_output_apart() -> None:
    logits = torch.linspace(-1, 1, 12).reshape(3, 4)
    alone = Answers(["setosa", "versicolor", "virginica"], None, logits)
    assert Answers(list(alone.outputs), None, logits.clone()).equals(alone)
    nudged = logits.clone()
    nudged[1, 2] = torch.nextafter(nudged[1, 2], torch.tensor(2.0))
    assert not Answers(list(alone.outputs), None, nudged).equals(alone)
    assert Answers(list(alone.outputs), None, nudged).logit_diff(alone) > 0
    assert not Answers(["setosa", "setosa", "virginica"], None, logits.clone()).equals(alone)
    assert not Answers(list(alone.outputs), ["setosa"] * 3, logits.clone()).equals(alone)


@pytest.mark.slow
def test_dry_run_fleet_times_shared_batches_and_each_task_alone_and_finds_equal_predictions(tmp_path: Path) -> None:
    """The fleet part alone: 4 customers on each base, one round of each way; each task's base and adapter predictions
    ran on its own in the second (twice 4), and every prediction of the two ways is equal."""
    before = checkout_outputs()
    result = dry_run(tmp_path, "--tasks", "--scale")
    assert not result["compare"] and result["scale"] is None, result
    assert [(row["base"], row["customers"]) for row in result["fleet"]] == [(base, 4) for base in BASES]
    for row in result["fleet"]:
        assert row["predictions_equal"] and not row["differing"] and row["max_logit_diff"] == 0.0, row
        assert row["test_rows"] == 4 * 8 and row["rounds"] == 1, row
        assert len(row["shared_rounds_s"]) == len(row["alone_rounds_s"]) == 1, row
        assert row["predicted_alone"] == [2 * 4], "the second way did not predict each task on its own"
        for key in ("base", "candidates", "pass"):
            assert row[f"{key}_shared_s"] > 0 and row[f"{key}_alone_s"] > 0, (key, row)
            assert isinstance(row[f"{key}_alone_vs_shared"], float), (key, row)
        assert {"base predictions", "candidate predictions"} <= set(row["shared_stages"]) & set(row["alone_stages"])
    table = (tmp_path / "candidates.md").read_text()
    assert all(f"| {base} | 4 (32) |" in table for base in BASES), table
    assert not checkout_outputs() - before, "the benchmark wrote into this checkout"
