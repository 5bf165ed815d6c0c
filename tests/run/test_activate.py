"""TaskRun.activate on candidates sharing one model: the plugin activates a candidate before each of its gate tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from peft.tuners.lora import LoraLayer

from loragate.card.options import RunOptions
from loragate.run.candidates import run_candidates

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = next((ROOT / "adapters" / "iris" / "tiny").glob("*/adapter_model.safetensors")).parent


@pytest.mark.slow
def test_activating_a_candidate_sets_the_adapter_only_where_another_is_active(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """set_adapter walks every module of a model holding every candidate's layers (5 ms on 8 MiniLM candidates), and a
    candidate's 25 gate tests each activated it: a second of a pass of 8. Activating the active one does nothing;
    activating another, or this one after something else set another, switches every layer."""
    for name in ("one", "two"):
        shutil.copytree(COMMITTED, tmp_path / name)
    options = RunOptions(candidates=(("one", tmp_path / "one"), ("two", tmp_path / "two")), cache=tmp_path / "cache",
                         progress=False)
    runs = run_candidates("iris", "tiny", options)
    one, two = runs["one"], runs["two"]
    model = one.model
    assert two.model is model
    set_adapter = model.set_adapter
    set_adapter(one.adapter_name)
    calls: list[str] = []
    monkeypatch.setattr(model, "set_adapter", lambda name: (calls.append(name), set_adapter(name))[1])

    one.activate()
    two.activate()
    two.activate()
    set_adapter(one.adapter_name)  # as judging or a probe may, behind the runs' back
    two.activate()

    assert calls == [two.adapter_name, two.adapter_name]
    layers = [module for module in model.modules() if isinstance(module, LoraLayer)]
    assert layers and all(layer.active_adapters == [two.adapter_name] for layer in layers)
