"""--baseline-adapter: the tuned adapter must not regress against the last release's adapter."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from loragate.run import RunOptions, run_task

COMMITTED = Path(__file__).resolve().parents[1] / "adapters" / "iris" / "tiny"


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


def test_a_regression_against_the_baseline_fails_the_gate(regressed) -> None:
    findings = {r.check: r.finding for r in regressed.gates}
    assert findings["accuracy vs baseline"] is not None, findings
    assert findings["accuracy vs baseline"].startswith("accuracy delta "), findings["accuracy vs baseline"]
    assert re.search(r"baseline 0\.9\d\d, tuned 0\.000", findings["accuracy vs baseline"]), findings["accuracy vs baseline"]
    assert regressed.baseline_metrics is not None and regressed.baseline_metrics.accuracy > 0.9


def test_the_baseline_leaves_the_base_untouched(regressed) -> None:
    from loragate.parameters import base_fingerprint_inside

    assert base_fingerprint_inside(regressed.model) == regressed.base.fingerprint
    assert regressed.tuned_metrics.accuracy == regressed.base_metrics.accuracy, "a no-op adapter must act as base"


def test_training_curve_is_compared_with_the_baselines(tmp_path: Path) -> None:
    from loragate.run import curve_gate
    from loragate.tasks import get_task

    task, baseline = get_task("iris"), committed_adapter()
    manifest = json.loads((baseline / "manifest.json").read_text())
    assert curve_gate(task, manifest, baseline).passed
    shifted = {**manifest, "loss_curve": [loss * 1.02 for loss in manifest["loss_curve"]]}
    finding = curve_gate(task, shifted, baseline).finding
    assert finding is not None and "a systematic shift" in finding, finding
    assert "not compared" in curve_gate(task, None, baseline).evidence


def test_validation_curve_is_compared_with_the_baselines() -> None:
    """Instruct adapters log the eval loss every `eval_every` steps; a shifted validation curve fails."""
    from loragate.run import eval_curve_gate
    from loragate.tasks import get_task

    task = get_task("instruct")
    (baseline,) = [p for p in (Path(__file__).parents[1] / "adapters" / "instruct" / "tiny").iterdir() if p.is_dir()]
    manifest = json.loads((baseline / "manifest.json").read_text())
    assert len(manifest["eval_curve"]) > 10, manifest["eval_curve"]
    assert eval_curve_gate(task, manifest, baseline).passed
    worse = {**manifest, "eval_curve": [[step, loss * 1.1] for step, loss in manifest["eval_curve"]]}
    finding = eval_curve_gate(task, worse, baseline).finding
    assert finding is not None and "validation curve vs baseline" in finding and "> tolerance 5.0%" in finding, finding
    assert eval_curve_gate(task, {"loss_curve": [1.0]}, baseline) is None, "nothing to compare: no gate"
