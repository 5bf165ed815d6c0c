"""Issue 31, case 7a: reports, tiny bases and adapters were written 0600/0700 whatever the umask (mkstemp and
mkdtemp's modes, renamed into place), so a CI artefact step or a teammate could not read them. Everything
loragate.atomic puts in place now has the mode an ordinary open or mkdir gives under the process's umask.
Case 7b: a token in a --set value is masked in the adapter's manifest.json, as in reports."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from loragate.atomic import atomic_dir, atomic_file, current_umask
from loragate.store.adapters import AdapterStore, read_manifest
from tests.manifests import stub_manifest


@pytest.fixture(params=[0o022, 0o027])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


def test_the_umask_is_read_without_changing_it(umask: int) -> None:
    assert current_umask() == umask
    assert current_umask() == umask


def test_atomic_dirs_and_files_get_the_modes_of_the_umask(tmp_path: Path, umask: int) -> None:
    with atomic_dir(tmp_path / "report") as staged:
        (staged.path / "report.json").write_text("{}")
    with atomic_file(tmp_path / "model.gguf") as staged:
        staged.path.write_bytes(b"GGUF")
    assert mode(tmp_path / "report") == oct(0o777 & ~umask), "a directory renamed into place kept mkdtemp's 0700"
    assert mode(tmp_path / "report" / "report.json") == oct(0o666 & ~umask)
    assert mode(tmp_path / "model.gguf") == oct(0o666 & ~umask), "a file renamed into place kept mkstemp's 0600"


def test_a_stored_adapter_is_readable_as_the_umask_allows(tmp_path: Path, tuned, umask: int) -> None:
    entry = AdapterStore(tmp_path / "adapters").save(tuned[1], stub_manifest(), "iris", "tiny", "k1")
    assert mode(entry) == oct(0o777 & ~umask), f"{entry}: {mode(entry)}"
    for name in ("manifest.json", "adapter_model.safetensors", "adapter_config.json"):
        assert mode(entry / name) == oct(0o666 & ~umask), f"{entry / name}: {mode(entry / name)}"


def test_a_tiny_base_is_readable_as_the_umask_allows(tmp_path: Path, iris, iris_splits, umask: int) -> None:
    from loragate.models.bases import tiny_base_dir  # loads torch and transformers

    spec = iris.card.tier("tiny").tiny_base.model_copy(update={"hidden_size": 16, "intermediate_size": 32,
                                                                "num_hidden_layers": 1, "num_attention_heads": 2})
    base = tiny_base_dir(tmp_path, "iris", spec, iris_splits.texts())
    assert mode(base) == oct(0o777 & ~umask), f"{base}: {mode(base)}"
    assert mode(base / "model.safetensors") == oct(0o666 & ~umask)


TOKEN = "hf_" + "A1b2C3d4E5f6G7h8I9j0K1l2"


def test_a_token_in_a_set_value_is_masked_in_the_stored_manifest(tmp_path: Path, tuned,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 31, case 7b: the run's --set overrides went into manifest.json, a file projects commit, unmasked."""
    monkeypatch.setenv("HF_TOKEN", "s3cret-token-value")
    overrides = [f"base_model=https://user:{TOKEN}@example.com/base", "description=s3cret-token-value", "lora.r=4"]
    entry = AdapterStore(tmp_path / "adapters").save(tuned[1], stub_manifest(overrides=overrides), "iris", "tiny",
                                                     "k1")
    text = (entry / "manifest.json").read_text()
    assert TOKEN not in text and "s3cret-token-value" not in text, text
    assert read_manifest(entry, "k1").overrides == ["base_model=https://user:hf_***@example.com/base",
                                                    "description=hf_***", "lora.r=4"]


def test_a_manifest_without_secrets_is_written_as_before(tmp_path: Path) -> None:
    manifest = stub_manifest(overrides=["lora.r=4"], key="k1")
    manifest.write(tmp_path / "manifest.json")
    before = json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
    assert (tmp_path / "manifest.json").read_text() == before


def test_a_directory_staged_in_a_setgid_store_keeps_setgid(tmp_path: Path, umask: int) -> None:
    """A group-shared store is a setgid directory, whose new subdirectories inherit setgid (and so its group for
    what is written in them); the chmod to the umask's mode dropped it from every staged directory."""
    store = tmp_path / "store"
    store.mkdir()
    os.chmod(store, 0o2775)
    with atomic_dir(store / "entry") as staged:
        (staged.path / "inner").mkdir()
        (staged.path / "inner" / "weights").write_bytes(b"w")
    for directory in (store / "entry", store / "entry" / "inner"):
        assert directory.stat().st_mode & stat.S_ISGID, f"{directory}: {mode(directory)} lost setgid"
        assert stat.S_IMODE(directory.stat().st_mode) == 0o2000 | (0o777 & ~umask), mode(directory)
    assert mode(store / "entry" / "inner" / "weights") == oct(0o666 & ~umask)
