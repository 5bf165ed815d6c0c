"""Candidates of one task in one pass (loragate.run.candidates), on input a user gets wrong or that differs between
candidates: ranks and target modules that differ, a directory that disappears while the run goes on."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from loragate.card.options import RunOptions
from loragate.models.parameters import lora_parameters
from loragate.run import candidates as candidates_module
from loragate.run.candidates import run_candidates
from loragate.run.task_run import run_task
from loragate.store.adapters import AdapterStoreError

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = next((ROOT / "adapters" / "iris" / "tiny").glob("*/adapter_model.safetensors")).parent
SWEEP = "candidates={variants: [{name: r2qv, set: {lora.r: 2, lora.target_modules: [q_proj, v_proj]}}, " \
        "{name: r8, set: {lora.r: 8}}]}"


@pytest.mark.slow
def test_candidates_of_different_ranks_and_targets_share_one_pass(tmp_path: Path) -> None:
    """A sweep of r=2 on two modules and r=8 on seven: peft's mixed batches take both; each counts its own LoRA
    parameters and answers as it does alone."""
    options = RunOptions(store_root=tmp_path / "adapters", cache=tmp_path / "cache", progress=False,
                         overrides=(SWEEP,))
    runs = run_candidates("iris", "tiny", options)
    assert list(runs) == ["r2qv", "r8"]
    for name, run in runs.items():
        run.activate()
        assert lora_parameters(run.model) == run.expected_lora_parameters, name
    assert runs["r2qv"].expected_lora_parameters < runs["r8"].expected_lora_parameters
    alone = run_task("iris", "tiny", RunOptions(adapter=runs["r2qv"].adapter_dir, cache=tmp_path / "cache",
                                                progress=False))
    assert alone.tuned_predictions.outputs == runs["r2qv"].tuned_predictions.outputs


@pytest.mark.slow
def test_a_candidate_directory_that_disappears_mid_run_stops_it_naming_the_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checked as the run starts, gone by the time the candidates are loaded (after the base's predictions): the run
    stops with the directory named, and leaves no run of the other candidate half-judged."""
    first, second = tmp_path / "first", tmp_path / "second"
    shutil.copytree(COMMITTED, first)
    shutil.copytree(COMMITTED, second)
    predict_base = candidates_module.predict_base

    def then_remove(*args, **kwargs):
        shutil.rmtree(second)
        return predict_base(*args, **kwargs)

    monkeypatch.setattr(candidates_module, "predict_base", then_remove)
    options = RunOptions(candidates=(("first", first), ("second", second)), cache=tmp_path / "cache", progress=False)
    with pytest.raises(AdapterStoreError, match=f"{second}: no adapter_model.safetensors"):
        run_candidates("iris", "tiny", options)


@pytest.mark.slow
def test_candidates_named_like_modules_of_the_base_load_and_count_their_own_weights(tmp_path: Path) -> None:
    """`--adapter out/model --adapter q_proj=...`: peft keys each adapter's LoRA weights `.lora_A.<name>.`, and the
    base has modules called `model` and `q_proj`. Matching the name anywhere in a key refused the candidate `model`
    ("Was this adapter trained for another base model?") and counted every adapter's weights as its own."""
    directories = {name: tmp_path / name for name in ("model", "q_proj")}
    for directory in directories.values():
        shutil.copytree(COMMITTED, directory)
    options = RunOptions(candidates=tuple(directories.items()), cache=tmp_path / "cache", progress=False)
    runs = run_candidates("iris", "tiny", options)
    assert list(runs) == ["model", "q_proj"]
    for name, run in runs.items():
        run.activate()
        assert lora_parameters(run.model) == run.expected_lora_parameters, name
    assert runs["model"].tuned_predictions.outputs == runs["q_proj"].tuned_predictions.outputs
