"""--adapter is checked against the base once per run: given_adapters checks it before any prediction, and the
adapter under test is then loaded without checking again (its safetensors were read and checked twice)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loragate.card.options import RunOptions
from loragate.run import adapter
from loragate.run.adapter import given_adapters
from loragate.run.task_run import adapter_under_test
from loragate.store.adapters import AdapterStore
from tests.manifests import stub_manifest


def test_a_given_adapter_is_read_and_checked_once(tmp_path: Path, tuned, iris, iris_splits, fresh_base,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    entry = AdapterStore(tmp_path / "adapters").save(tuned[1], stub_manifest(), "iris", "tiny", "k1")
    reads: list[Path] = []
    read_weights = adapter.read_weights
    monkeypatch.setattr(adapter, "read_weights", lambda path: reads.append(path) or read_weights(path))
    options = RunOptions(adapter=entry, allow_foreign_adapter=True, store_root=tmp_path / "adapters")
    given_adapters(iris, "tiny", fresh_base, options)
    loaded = adapter_under_test(iris, "tiny", fresh_base, iris_splits, options, None)
    assert loaded.directory == entry and any("lora_" in name for name, _ in loaded.model.named_parameters())
    assert reads == [entry / "adapter_model.safetensors"], "the adapter's weights were read more than once"
