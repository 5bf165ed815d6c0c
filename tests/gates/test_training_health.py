"""Issue 32, point 7: a run that diverged (loss 1.7 -> 2.9) or over-fitted (train loss 0.06, eval 2.77) said nothing
about it. Training health reads the adapter's curves; these are synthetic, their truth known."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from loragate.card.settings import GateSettings
from loragate.gates.training_health import Curves, health_gates, health_notes, smoothed, training_health
from tests.manifests import stub_manifest

REPORT, GATE = GateSettings(), GateSettings(training_health="gate")
FALLING = list(np.linspace(2.5, 0.4, 200))  # a healthy training loss
REPO = Path(__file__).resolve().parents[2]


def by_check(results) -> dict[str, object]:
    return {result.check.removeprefix("training health: "): result for result in results}


def test_a_healthy_run_has_no_finding() -> None:
    curves = Curves(FALLING, [(50, 1.2), (100, 0.8), (150, 0.6), (200, 0.55)], 0.55)
    results = training_health(GATE, curves)
    assert [r.status for r in results] == ["ok", "ok", "ok"], [r.finding for r in results]
    assert health_notes(REPORT, curves) == []


def test_an_eval_loss_rising_from_its_best_is_divergence() -> None:
    curves = Curves(FALLING, [(50, 2.1), (100, 1.7), (150, 2.2), (200, 2.9)], 2.9)
    divergence = by_check(training_health(GATE, curves))["divergence"]
    assert divergence.finding is not None, divergence.evidence
    assert "eval loss ended at 2.900, 70.6% above its best 1.700 (step 100) > 25%" in divergence.finding
    assert "gates.max_eval_loss_rise" in divergence.finding and "train.lr" in divergence.finding


def test_without_an_eval_curve_the_smoothed_training_loss_tells_divergence() -> None:
    """Only instruct logs an eval curve; a classifier's training loss that climbs back is divergence too, while one
    noisy step near zero is not (the floor of the share)."""
    climbing = list(np.linspace(1.7, 1.2, 100)) + list(np.linspace(1.2, 2.9, 100))
    finding = by_check(training_health(GATE, Curves(climbing, [], 2.8)))["divergence"].finding
    assert finding is not None and "training loss (smoothed) ended at" in finding, finding
    noisy = [*np.linspace(1.5, 0.05, 140), 0.2, *[0.05] * 3]
    assert by_check(training_health(GATE, Curves(noisy, [], 0.03)))["divergence"].passed


def test_a_train_loss_far_below_the_eval_loss_is_over_fitting() -> None:
    curves = Curves(list(np.linspace(2.0, 0.06, 300)) + [0.06] * 100, [], 2.77)
    fitting = by_check(training_health(GATE, curves))["over-fitting"]
    assert fitting.finding is not None, fitting.evidence
    assert "eval loss 2.770, final training loss 0.060: a gap of +2.710 nats > 1 (" in fitting.finding
    assert "gates.max_train_eval_gap" in fitting.finding


def test_a_loss_that_barely_moves_is_flat() -> None:
    flat = list(2.30 - 0.05 * np.random.default_rng(0).random(300))
    finding = by_check(training_health(GATE, Curves(flat, [], 2.3)))["flat loss"].finding
    assert finding is not None and "< 5% (gates.min_train_loss_fall)" in finding, finding
    assert by_check(training_health(GATE, Curves(FALLING, [], 0.5)))["flat loss"].passed


def test_the_thresholds_are_the_cards() -> None:
    curves = Curves(list(np.linspace(2.0, 0.06, 300)), [], 0.9)
    assert by_check(training_health(GATE, curves))["over-fitting"].passed
    strict = GateSettings(training_health="gate", max_train_eval_gap=0.5)
    assert not by_check(training_health(strict, curves))["over-fitting"].passed


def test_reported_by_default_gated_when_the_card_says_so() -> None:
    """By default a finding is a note and no gate fails; `training_health: gate` makes the three gates."""
    diverged = Curves(FALLING, [(50, 2.1), (100, 1.7), (200, 2.9)], 2.9)
    assert health_gates(REPORT, diverged) == []
    divergence, over_fitting = health_notes(REPORT, diverged)  # eval 2.9 against training's 0.4 is both
    assert divergence.startswith("training health: divergence: eval loss ended at 2.900"), divergence
    assert over_fitting.startswith("training health: over-fitting: eval loss 2.900,") and "not gated" in over_fitting
    gates = health_gates(GATE, diverged)
    assert [r.status for r in gates] == ["FAIL", "FAIL", "ok"] and health_notes(GATE, diverged) == []


def test_without_curves_health_is_not_known_never_ok() -> None:
    """An adapter trained elsewhere (no loragate manifest) has no curves: skipped with "not known" as a gate, and a
    note by default."""
    gates = health_gates(GATE, None)
    assert [r.status for r in gates] == ["skipped"] * 3 and all("not known" in r.evidence for r in gates)
    assert health_notes(REPORT, None) == ["training health not known: the adapter has no loragate manifest with "
                                          "its loss curves (trained elsewhere)"]
    assert Curves.of(None) is None and Curves.of(stub_manifest(loss_curve=[])) is None


def test_a_manifest_gives_its_curves_and_final_eval_loss() -> None:
    """The eval curve's last point where the kind logged one, else the eval loss recorded after training."""
    classifier = Curves.of(stub_manifest(loss_curve=[1.0, 0.5], metrics_at_train={"eval_loss": 0.7}))
    assert classifier == Curves([1.0, 0.5], [], 0.7)
    instruct = Curves.of(stub_manifest(loss_curve=[1.0, 0.5], eval_curve=[(1, 0.9), (2, 0.8)],
                                       metrics_at_train={"eval_loss": 0.8}))
    assert instruct.eval == [(1, 0.9), (2, 0.8)] and instruct.final_eval == 0.8
    unknown = by_check(training_health(GATE, Curves.of(stub_manifest(loss_curve=[1.0]))))
    assert all(result.status == "skipped" for result in unknown.values()), unknown


@pytest.mark.parametrize(("losses", "windows"), [([1.0] * 5, [1.0] * 5), (list(range(20)), [0.5 + 2 * i for i in
                                                                                          range(10)])])
def test_smoothing_averages_windows_ending_at_the_last_step(losses: list[float], windows: list[float]) -> None:
    assert smoothed(losses) == pytest.approx(windows)


def gate_iris(report_dir: Path, *sets: str) -> subprocess.CompletedProcess:
    """The iris smoke gate's quality suite from the committed adapter, with the `--set` values given."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    command = [sys.executable, "-m", "pytest", "-m", "smoke", "--task", "iris", "suites/test_quality.py", "-rfs",
               "-p", "no:cacheprovider", "--report-dir", str(report_dir), *(arg for s in sets for arg in ("--set", s))]
    return subprocess.run(command, cwd=REPO, env={**env, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_a_finding_is_a_note_by_default_and_fails_the_gate_test_when_gated(tmp_path: Path) -> None:
    """Iris's committed adapter, its loss fallen 98%, held to a fall of 99.9%: by default a note in the table and the
    test skipped; with `training_health: gate` the gate test fails, naming the finding."""
    unhealthy = "gates.min_train_loss_fall=0.999"
    reported = gate_iris(tmp_path / "reported", unhealthy)
    out = reported.stdout + reported.stderr
    finding = "training health: flat loss: training loss fell 98.4% (3.759 -> 0.061 smoothed, 144 steps) < 99.9%"
    assert f"note: {finding}" in out, out[-3000:]
    assert "reported, not gated (gates.training_health: report)" in out, out[-3000:]
    assert "SKIPPED" in out and "iris/tiny: training health is reported, not gated" in out, out[-3000:]
    gated = gate_iris(tmp_path / "gated", unhealthy, "gates.training_health=gate")
    out = gated.stdout + gated.stderr
    assert "FAILED suites/test_quality.py::test_training_is_healthy[iris-tiny]" in out, out[-3000:]
    assert "iris/tiny: training health: flat loss: training loss fell 98.4%" in out, out[-3000:]
    assert gated.returncode == pytest.ExitCode.TESTS_FAILED, out[-3000:]


@pytest.mark.slow
def test_an_adapter_trained_elsewhere_is_not_known_in_the_runs_notes(tmp_path: Path) -> None:
    """The committed Iris adapter without its manifest, as another stack saves it: the run's notes say its training
    health is not known, and no health gate is added by default."""
    from loragate.card.options import RunOptions
    from loragate.report.rows import notes
    from loragate.run.task_run import run_task
    from tests.run.test_baseline_adapter import committed_adapter

    adapter = tmp_path / "elsewhere"
    shutil.copytree(committed_adapter(), adapter, ignore=shutil.ignore_patterns("manifest.json", "README.md"))
    run = run_task("iris", "tiny", RunOptions(store_root=tmp_path / "adapters", cache=REPO / ".loragate",
                                              progress=False, adapter=adapter))
    assert "training health not known: the adapter has no loragate manifest with its loss curves (trained " \
           "elsewhere)" in notes(run), notes(run)
    assert not [r for r in run.gates if r.check.startswith("training health")]
