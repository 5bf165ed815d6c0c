"""--baseline-adapter: the tuned adapter must not regress against the last release's adapter."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from loragate.card.options import RunOptions
from loragate.models.parameters import base_fingerprint_inside
from loragate.run.task_run import run_task

COMMITTED = Path(__file__).resolve().parents[2] / "adapters" / "iris" / "tiny"


def committed_adapter() -> Path:
    entries = [p for p in COMMITTED.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(entries) == 1, f"expected one committed tiny iris adapter, found {entries}"
    return entries[0]


def zeroed_copy(adapter: Path, out: Path) -> Path:
    """The adapter with every lora_B zeroed: a well-formed adapter that changes nothing."""
    shutil.copytree(adapter, out)
    weights = load_file(out / "adapter_model.safetensors")
    save_file({k: v.zero_() if "lora_B" in k else v for k, v in weights.items()}, out / "adapter_model.safetensors")
    return out


@pytest.fixture(scope="module")
def regressed(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("baseline")
    options = RunOptions(adapter=zeroed_copy(committed_adapter(), tmp / "noop"), baseline_adapter=committed_adapter(),
                         store_root=tmp / "adapters", cache=tmp / "cache", progress=False)
    return run_task("iris", "tiny", options)


@pytest.mark.slow
def test_a_regression_against_the_baseline_fails_the_gate(regressed) -> None:
    findings = {r.check: r.finding for r in regressed.gates}
    assert findings["accuracy vs baseline"] is not None, findings
    assert findings["accuracy vs baseline"].startswith("accuracy delta "), findings["accuracy vs baseline"]
    finding = findings["accuracy vs baseline"]
    assert re.search(r"baseline 0\.9\d\d, tuned 0\.000", finding), finding
    assert regressed.baseline_metrics is not None and regressed.baseline_metrics.accuracy > 0.9


@pytest.mark.slow
def test_the_baseline_leaves_the_base_untouched(regressed) -> None:
    from loragate.models.parameters import base_fingerprint_inside

    assert base_fingerprint_inside(regressed.model) == regressed.base.fingerprint
    assert regressed.tuned_metrics.accuracy == regressed.base_metrics.accuracy, "a no-op adapter must act as base"


def test_training_curve_is_compared_with_the_baselines(tmp_path: Path) -> None:
    from loragate.gates.checks import curve_gates
    from loragate.store.adapters import Manifest
    from loragate.tasks import get_task

    gates, baseline = get_task("iris").card.gates, committed_adapter()
    manifest = Manifest.read(baseline / "manifest.json")
    (same,) = curve_gates(gates, manifest, manifest)
    assert same.passed
    shifted = manifest.model_copy(update={"loss_curve": [loss * 1.02 for loss in manifest.loss_curve]})
    (moved,) = curve_gates(gates, shifted, manifest)
    assert moved.finding is not None and "a systematic shift" in moved.finding, moved.finding
    (foreign,) = curve_gates(gates, None, manifest)
    assert "not compared" in foreign.evidence


def test_validation_curve_is_compared_with_the_baselines() -> None:
    """Instruct adapters log the eval loss every `eval_every` steps; a shifted validation curve fails."""
    from loragate.gates.checks import curve_gates
    from loragate.store.adapters import Manifest
    from loragate.tasks import get_task

    gates = get_task("instruct").card.gates
    (baseline,) = [p for p in (Path(__file__).parents[2] / "adapters" / "instruct" / "tiny").iterdir() if p.is_dir()]
    manifest = Manifest.read(baseline / "manifest.json")
    assert len(manifest.eval_curve) > 10, manifest.eval_curve
    assert all(result.passed for result in curve_gates(gates, manifest, manifest))
    worse = manifest.model_copy(update={"eval_curve": [(step, loss * 1.1) for step, loss in manifest.eval_curve]})
    _, validation = curve_gates(gates, worse, manifest)
    finding = validation.finding
    assert finding is not None and "validation curve vs baseline" in finding and "> tolerance 5.0%" in finding, finding
    no_points = manifest.model_copy(update={"eval_curve": None})
    assert len(curve_gates(gates, no_points, manifest)) == 1, "nothing to compare: no validation gate"


@pytest.mark.slow
def test_a_baseline_adapter_on_an_encoder_leaves_the_base_head_in_place(tmp_path: Path) -> None:
    """peft's unload() put the baseline's trained classifier head where the base's own was: every --baseline-adapter
    on an encoder card stopped with "changed the base weights". Its own head is put back (run.adapter.bare_base)."""
    store = Path(__file__).resolve().parents[2] / "adapters"
    (stored,) = [p for p in (store / "sst2_encoder" / "tiny").iterdir() if p.is_dir() and not p.name.startswith(".")]
    run = run_task("sst2_encoder", "tiny", RunOptions(baseline_adapter=stored, store_root=store,
                                                      cache=tmp_path / "cache", progress=False))
    assert run.baseline_metrics is not None
    assert run.baseline_metrics.value("accuracy") == run.tuned_metrics.value("accuracy")  # the same adapter
    assert base_fingerprint_inside(run.model) == run.base.fingerprint  # the base's own head under the adapter
