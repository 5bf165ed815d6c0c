"""The suites read each task as the gate runs it, with the run's --set overrides (issue 32, point 6:
`test_properties` read the card on disk and ignored --set)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from loragate.plugin.hooks import SUITES

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "csv_classification"


def test_the_properties_suite_reads_the_overridden_card(gate_dir: pytest.Pytester) -> None:
    """The card on disk names a training file that is not there; `--set data.train=...` names the one that is. The
    gate's runs read the overridden card, and so must the suite that loads the task's splits."""
    root = gate_dir.path
    shutil.copytree(EXAMPLE / "tasks", root / "tasks")
    (root / "data").mkdir()
    shutil.copy(EXAMPLE / "data" / "test.csv", root / "data" / "test.csv")
    shutil.copy(EXAMPLE / "data" / "train.csv", root / "data" / "train_v2.csv")  # data/train.csv is not there
    # -c: the suite's path lies outside this directory, and pytest would take the config above it
    result = gate_dir.runpytest_subprocess("-p", "no:cacheprovider", "-c", "tox.ini",
                                           str(SUITES / "test_properties.py"), "-k", "test_prompts_are_deterministic",
                                           "--task-dir", "tasks", "--set", "data.train=../data/train_v2.csv", "-q")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.assert_outcomes(passed=1)


ENCODER_TIER = ("tiers={tiny: {base_model: minilm, pooling: mean, lora: {r: 8, alpha: 16, target_modules: [query, "
                "value], modules_to_save: [classifier]}, train: {epochs: 1, batch_size: 8, lr: 1.0e-3}}}")


def test_the_export_suite_reads_the_overridden_kind(gate_dir: pytest.Pytester) -> None:
    """sst2 made an encoder task by --set: the GGUF suite skips it as one before asking for its run (it read the
    card on disk, saw a causal task and ran it)."""
    result = gate_dir.runpytest_subprocess("-p", "no:cacheprovider", "-c", "tox.ini",
                                           str(SUITES / "test_gguf_export.py"), "-k", "gguf_tokenizer", "-m", "smoke",
                                           "--task", "sst2",
                                           "--set", "kind=sequence_classification", "--set", ENCODER_TIER, "-rs")
    result.stdout.fnmatch_lines(["*sst2/tiny: sequence_classification is an encoder task; GGUF export covers causal*"])
    result.assert_outcomes(skipped=1)
