"""Issue 31, case 6e: a truncated cached tiny base failed with `SafetensorError: invalid header length`, naming no
path, and was never rebuilt. A damaged tiny base under the cache is rebuilt with a warning naming it (it is built
offline, the same bytes from the same recipe); any other base with a damaged safetensors file is a ModelLoadError
naming the base and the fix."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch

from loragate.models.bases import ModelLoadError, load_causal, tiny_base_dir


def small_base(cache: Path, iris, iris_splits) -> Path:
    spec = iris.card.tier("tiny").tiny_base.model_copy(update={"hidden_size": 16, "intermediate_size": 32,
                                                                "num_hidden_layers": 1, "num_attention_heads": 2})
    return tiny_base_dir(cache, "iris", spec, iris_splits.texts())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("damage", ["truncated", "emptied", "tokenizer missing", "config cut"])
def test_a_damaged_cached_tiny_base_is_rebuilt_with_a_warning_naming_it(tmp_path: Path, iris, iris_splits,
                                                                         damage: str) -> None:
    base = small_base(tmp_path, iris, iris_splits)
    weights = base / "model.safetensors"
    whole = sha256(weights)
    if damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:100])
    elif damage == "emptied":
        weights.write_bytes(b"")
    elif damage == "tokenizer missing":
        (base / "tokenizer.json").unlink()
    else:
        (base / "config.json").write_text((base / "config.json").read_text()[:20])
    with pytest.warns(UserWarning, match="the cached tiny base is damaged") as caught:
        rebuilt = small_base(tmp_path, iris, iris_splits)
    assert str(base) in str(caught[0].message), caught[0].message
    assert rebuilt == base and sha256(weights) == whole, "the rebuilt base differs from the one first built"
    assert not list(base.parent.glob(".tmp-*")), "the damaged copy was left behind"
    load_causal(str(rebuilt), "cpu", torch.float32)


def test_a_whole_cached_tiny_base_is_reused_untouched(tmp_path: Path, iris, iris_splits, recwarn) -> None:
    base = small_base(tmp_path, iris, iris_splits)
    stamp = (base / "model.safetensors").stat().st_mtime_ns
    assert small_base(tmp_path, iris, iris_splits) == base
    assert (base / "model.safetensors").stat().st_mtime_ns == stamp
    assert not [w for w in recwarn if "damaged" in str(w.message)]


def test_a_base_with_a_truncated_safetensors_file_is_a_named_error(tmp_path: Path, tiny_dir: Path) -> None:
    copy = tmp_path / "my-base"
    shutil.copytree(tiny_dir, copy)
    (copy / "model.safetensors").write_bytes((copy / "model.safetensors").read_bytes()[:100])
    with pytest.raises(ModelLoadError, match="a safetensors file of it is damaged") as caught:
        load_causal(str(copy), "cpu", torch.float32)
    assert str(copy) in str(caught.value) and "save the model again" in str(caught.value)
