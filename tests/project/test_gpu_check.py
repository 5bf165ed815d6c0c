"""benchmarks/gpu_check.py cannot rot while no GPU is at hand: its dry run (CPU, tiny sizes) runs every step, and
the JSON and the table hold every one; the GPU machine's way (each step in a child process) records results,
errors and an exhausted budget."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.gpu_check import STEPS, run_step

REPO = Path(__file__).resolve().parents[2]


def checkout_outputs() -> set[Path]:
    """What a gate run in this checkout would add: adapter entries and report runs."""
    return set(REPO.glob("adapters/*/*/*")) | set(REPO.glob("reports/*"))


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path, set[Path]]:
    """The dry run's process, its --out folder, and what it added to this checkout (must be nothing)."""
    before = checkout_outputs()
    out = tmp_path_factory.mktemp("gpu-check")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--dry-run", "--out", str(out)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)
    return done, out, checkout_outputs() - before


@pytest.mark.slow
def test_dry_run_writes_every_step_to_the_json_and_the_table(dry_run) -> None:
    done, out, _ = dry_run
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.splitlines()[0].startswith("versions: ok"), "the versions are not printed first"
    summary = json.loads((out / "gpu-check.json").read_text())
    assert list(summary["steps"]) == [step.name for step in STEPS]
    table = (out / "gpu-check.md").read_text()
    for step in STEPS:
        entry = summary["steps"][step.name]
        assert entry["status"] in ("ok", "skipped"), f"{step.name}: {entry}"
        assert f"| {step.name} | {entry['status']} |" in table, f"{step.name} has no row in the table"
    skipped = {name: entry["result"]["skipped"] for name, entry in summary["steps"].items()
               if entry["status"] == "skipped"}
    assert "CUDA" in skipped["full-4bit-sst2"], skipped
    assert not {"versions", "base", "eval-oom", "mfu", "speed", "full-bf16-iris"} & set(skipped), skipped


@pytest.mark.slow
def test_dry_run_shows_the_gate_the_fallback_and_the_speed_figures(dry_run) -> None:
    _, out, added = dry_run
    steps = json.loads((out / "gpu-check.json").read_text())["steps"]
    assert steps["versions"]["result"]["torch"] and steps["versions"]["result"]["transformers"]
    gate = steps["full-bf16-iris"]["result"]
    assert gate["verdict"] in ("PASS", "FAIL") and gate["tests"] > 10 and gate["table"], gate
    assert "--base-model=" in gate["command"] and gate["base_parameters"] > 0
    oom = steps["eval-oom"]["result"]
    assert oom["card_batch_size"] == 256 and oom["final_batch_size"] < 256 and oom["same_outputs_as_batch_8"], oom
    assert "out of memory at eval batch size 256" in oom["fallback_log"][0]
    speed = steps["speed"]["result"]
    assert speed["engine_vs_naive"] > 0 and speed["packed_vs_dynamic"] > 0 and speed["training_tokens_per_s"]
    runs = steps["mfu"]["result"]["runs"]
    for name in ("grouped-16", "grouped-64", "grouped-256", "packed-4096", "grouped-256-compiled"):
        assert runs[name].get("tokens_per_s", 0) > 0 and runs[name]["steps"] > 0, f"mfu run {name}: {runs[name]}"
    assert runs["grouped-256-compiled"]["dynamo_graphs"] > 0, "torch.compile traced no decoder layer"
    assert runs["grouped-16"]["steps"] > runs["grouped-256"]["steps"], "a larger batch took no fewer steps"
    assert "Triton" in runs["grouped-256-liger"]["skipped"], runs["grouped-256-liger"]
    assert not added, f"the dry run wrote into this checkout: {sorted(added)}"


@pytest.mark.slow
def test_a_step_in_its_own_process_records_its_result_its_error_or_the_spent_budget(tmp_path: Path) -> None:
    """The GPU machine's way: a child process per step. The 4-bit step skips on a dry run without importing torch,
    and eval-oom fails at once without the base step's result; neither costs the other."""
    (tmp_path / "logs").mkdir()
    args = argparse.Namespace(out=tmp_path, dry_run=True)
    by_name = {step.name: step for step in STEPS}
    skipped = run_step(by_name["full-4bit-sst2"], args, remaining_s=60)
    assert skipped["status"] == "skipped" and "CUDA" in skipped["result"]["skipped"], skipped
    failed = run_step(by_name["eval-oom"], args, remaining_s=60)
    assert failed["status"] == "error" and failed["exit_code"] == 1, failed
    assert "step 'base' left no result" in failed["log_tail"], failed["log_tail"]
    assert run_step(by_name["speed"], args, remaining_s=5) == {"status": "not run", "why": "5 s of --budget-s left"}
