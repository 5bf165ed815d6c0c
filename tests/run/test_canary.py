"""Tiny-then-full: a full-tier training run starts only after the tiny canary of the same task passed."""

from __future__ import annotations

from pathlib import Path

import pytest

from loragate.card.options import RunOptions
from loragate.run.adapter import CanaryFailed, prepare_adapter, run_canary
from loragate.run.steps import prepare_base
from loragate.tasks import get_task


def options(tmp_path: Path, **overrides) -> RunOptions:
    return RunOptions(store_root=tmp_path / "adapters", cache=tmp_path / "cache", progress=False, **overrides)


def broken_iris():
    """Iris whose tiny tier cannot learn (lr ~ 0): its outputs stay unparseable."""
    task = get_task("iris")
    tiny = task.card.tiers["tiny"]
    frozen = tiny.model_copy(update={"train": tiny.train.model_copy(update={"lr": 1e-12, "epochs": 1})})
    task.card = task.card.model_copy(update={"tiers": {**task.card.tiers, "tiny": frozen}})
    return task


@pytest.mark.slow
def test_a_healthy_canary_passes(tmp_path: Path) -> None:
    task = get_task("iris")
    run_canary(task, task.load_splits(), options(tmp_path))
    assert any((tmp_path / "adapters" / "iris" / "tiny").iterdir()), "the canary adapter was not stored"


@pytest.mark.slow
def test_a_canary_that_cannot_learn_fails_with_its_reason(tmp_path: Path) -> None:
    task = broken_iris()
    with pytest.raises(CanaryFailed, match=r"canary iris/tiny .*eval outputs do not parse, e.g. iris-\d+") as error:
        run_canary(task, task.load_splits(), options(tmp_path))
    assert "The full run was not started" in str(error.value)


@pytest.mark.slow
def test_full_tier_training_does_not_start_after_a_failed_canary(tmp_path: Path) -> None:
    task = broken_iris()
    splits = task.load_splits()
    stand_in = prepare_base(task, "tiny", splits, options(tmp_path))  # the full tier's base, small enough here
    with pytest.raises(CanaryFailed):
        prepare_adapter(task, "full", stand_in, splits, options(tmp_path))
    assert not (tmp_path / "adapters" / "iris" / "full").exists() or not [
        p for p in (tmp_path / "adapters" / "iris" / "full").iterdir() if not p.name.startswith(".")
    ], "a full-tier adapter was stored although the canary failed"
