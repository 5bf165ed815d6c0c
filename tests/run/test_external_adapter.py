"""An adapter trained elsewhere (--adapter, no loragate manifest): checked against the base before any prediction,
recorded in report.json, and a regression against the last release fails a gate test in pytest and JUnit."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from loragate.card.options import RunOptions
from loragate.store.adapters import AdapterStoreError, file_sha256
from tests.run.test_baseline_adapter import committed_adapter, zeroed_copy

ROOT = Path(__file__).resolve().parents[2]
OTHER_BASE = "meta-llama/Llama-3.2-1B"


def trained_elsewhere(out: Path, base: str | None = None) -> Path:
    """The committed Iris adapter as another stack saves it: no manifest.json; its config naming `base`."""
    shutil.copytree(committed_adapter(), out, ignore=shutil.ignore_patterns("manifest.json", "README.md"))
    if base is not None:
        config = json.loads((out / "adapter_config.json").read_text())
        (out / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": base}))
    return out


def options(tmp_path: Path, **given: object) -> RunOptions:
    return RunOptions(store_root=tmp_path / "adapters", cache=ROOT / ".loragate", progress=False, **given)


@pytest.mark.slow
def test_an_adapter_naming_another_base_is_refused_before_any_prediction(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from loragate.run import task_run

    def no_prediction(*args: object, **kwargs: object) -> None:
        raise AssertionError("the base predicted before the adapter was checked")

    monkeypatch.setattr(task_run, "predict_base", no_prediction)
    adapter = trained_elsewhere(tmp_path / "foreign", OTHER_BASE)
    with pytest.raises(AdapterStoreError, match=re.escape(
            f"--adapter {adapter}: trained on base '{OTHER_BASE}' (its adapter_config.json's base_model_name_or_path), "
            f"not on this run's base 'tiny:iris'. Pass that base with --base-model=ID|PATH")):
        task_run.run_task("iris", "tiny", options(tmp_path, adapter=adapter))


@pytest.mark.slow
def test_an_adapter_trained_elsewhere_is_recorded_and_its_differences_reported(tmp_path: Path) -> None:
    """Allowed on another base's name, under a card saying r 16: report.json holds its own r, alpha, targets and
    sha256 (it held "sha256": null), the header shows them, the notes say what differs, the trainable count is
    checked against its own r, and the leakage evidence does not claim it trained on the card's train split."""
    from loragate.models.parameters import lora_parameters
    from loragate.report.html import html_run
    from loragate.report.rows import gated_metrics, headline, notes
    from loragate.report.writer import run_json, summary_section
    from loragate.run.task_run import run_task

    adapter = trained_elsewhere(tmp_path / "foreign", OTHER_BASE)
    run = run_task("iris", "tiny", options(tmp_path, adapter=adapter, allow_foreign_adapter=True,
                                           overrides=("tiers.tiny.lora.r=16",)))
    recorded = run_json(run, gated_metrics(run))["adapter"]
    sha256 = file_sha256(adapter / "adapter_model.safetensors")
    assert recorded["sha256"] == sha256 and recorded["r"] == 8 and recorded["alpha"] == 16.0
    assert recorded["target_modules"] == ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]
    assert recorded["base_model_name_or_path"] == OTHER_BASE
    shape = f"r 8, alpha 16, 7 modules, sha256 {sha256[:12]}"
    assert f"({shape})" in headline(run), headline(run)
    assert f"({shape})" in summary_section(run, gated_metrics(run)), "summary.md's header line"
    assert f"<dt>LoRA</dt><dd>{shape}</dd>" in html_run(run, gated_metrics(run), []), "report.html's facts"
    said = notes(run)
    assert any(note.startswith(f"--adapter {adapter}: trained on base '{OTHER_BASE}'") and
               note.endswith("gated anyway (--allow-foreign-adapter)") for note in said), said
    assert any(note.startswith("the adapter differs from the card's tiers.tiny.lora: r 8 (the card's 16)")
               for note in said), said
    assert run.expected_lora_parameters == lora_parameters(run.model)
    (leakage,) = [r for r in run.gates if r.check == "train/test leakage"]
    assert "the card's train split, which an adapter trained elsewhere may never have seen" in leakage.evidence
    assert run.passed, [r.finding for r in run.gates if not r.passed]


@pytest.mark.slow
def test_a_regression_against_the_last_release_fails_a_gate_test_in_pytest_and_junit(tmp_path: Path) -> None:
    """It gave exit 1 and verdict FAIL while pytest printed "20 passed" and JUnit held 0 failures. The baseline,
    trained elsewhere, has no loss curve: that comparison is shown as skipped with its reason, never as ok."""
    noop = zeroed_copy(committed_adapter(), tmp_path / "noop")
    baseline = trained_elsewhere(tmp_path / "last-release")
    junit = tmp_path / "junit.xml"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-m", "smoke", "--task", "iris", "-rA",
         f"--adapter={noop}", f"--baseline-adapter={baseline}", f"--report-dir={tmp_path / 'reports'}",
         f"--junitxml={junit}", "-k", "test_no_regression_against_the_last_release or test_base_weights_bit_identical"],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})
    out = result.stdout
    assert result.returncode == 1, out[-3000:] + result.stderr[-2000:]
    assert "FAILED suites/test_quality.py::test_no_regression_against_the_last_release[iris-tiny]" in out, out[-3000:]
    assert "PASSED suites/test_parameters.py::test_base_weights_bit_identical_under_the_adapter[iris-tiny]" in out
    assert re.search(r"iris/tiny: accuracy delta lower bound -\d\.\d+ < required -0\.020", out), out[-3000:]
    suite = ET.parse(junit).getroot().find("testsuite")
    assert int(suite.get("failures")) >= 1, ET.tostring(suite)[:2000]
    assert ("gate skipped training curve vs baseline: not compared: the baseline adapter has no loragate manifest "
            "with a loss curve (trained elsewhere)") in out, out[-4000:]


NO_TRAINING = ("tiers.tiny.lora=null", "tiers.tiny.train.epochs=null", "tiers.tiny.train.batch_size=null",
               "tiers.tiny.train.lr=null")


@pytest.mark.slow
def test_a_card_without_lora_and_train_gates_an_adapter_trained_elsewhere(tmp_path: Path) -> None:
    """Blocks an external adapter never uses are not demanded of its card; a run that would train is refused."""
    from loragate.card.settings import CardError
    from loragate.run.task_run import run_task

    run = run_task("iris", "tiny", options(tmp_path, adapter=trained_elsewhere(tmp_path / "a"), overrides=NO_TRAINING))
    assert run.task.card.tier("tiny").lora is None and run.passed, [r.finding for r in run.gates if not r.passed]
    assert run.adapter_facts is not None and run.adapter_facts.r == 8
    assert not any("differs from the card" in note for note in run.adapter_notes), run.adapter_notes
    with pytest.raises(CardError, match=re.escape("tiers.tiny has no lora, train.epochs, train.batch_size, train.lr, "
                                                  "so the gate cannot train its adapter")):
        run_task("iris", "tiny", options(tmp_path, overrides=NO_TRAINING))
