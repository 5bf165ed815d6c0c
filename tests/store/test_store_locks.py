"""Issue 32, point 8: each run that took a key's lock left a zero-byte `.lock-<key>` (and, for an instant, its
`.holder` record) in adapters/<task>/<tier>/, the directory a project commits. The locks now live in the project's
cache beside the store (`.loragate/locks/`), where every process that uses the store finds them."""

from __future__ import annotations

from pathlib import Path

from loragate.card.options import RunOptions
from loragate.run.adapter import acquire, prepare_adapter
from loragate.store.adapters import AdapterStore, BaseRecord, adapter_key
from loragate.store.locks import release_lock
from tests.manifests import stub_manifest


def test_a_save_and_load_round_leaves_no_lock_file_in_the_store(tmp_path: Path, tuned, iris, iris_splits,
                                                               fresh_base) -> None:
    settings = iris.card.tier("tiny")
    key = adapter_key(fresh_base.fingerprint, iris_splits.data_hash(), settings.lora, settings.train)
    store = AdapterStore(tmp_path / "adapters")
    lock = acquire(store, "iris", "tiny", key)  # as a run that trains takes it, its holder recorded
    try:
        store.save(tuned[1], stub_manifest(base=BaseRecord(name=fresh_base.name, fingerprint=fresh_base.fingerprint)),
                   "iris", "tiny", key)
    finally:
        release_lock(lock)
    _, entry, _, _ = prepare_adapter(iris, "tiny", fresh_base, iris_splits, RunOptions(store_root=store.root))
    assert entry.parent.parent.parent == store.root
    left = [str(path.relative_to(store.root)) for path in store.root.rglob(".lock*")]
    assert not left, f"lock files left in the store a project commits: {left}"
    assert Path(lock.lock_file).is_relative_to(tmp_path / ".loragate" / "locks")


def test_every_process_of_one_store_takes_the_same_lock(tmp_path: Path) -> None:
    """The lock's place follows the store, not the run's options: a run and train_fixtures.py exclude each other."""
    one, other = AdapterStore(tmp_path / "adapters"), AdapterStore(tmp_path / "adapters")
    assert one.lock("iris", "tiny", "k").lock_file == other.lock("iris", "tiny", "k").lock_file
    assert AdapterStore(tmp_path / "adapters", tmp_path / "elsewhere").lock("iris", "tiny", "k").lock_file == str(
        tmp_path / "elsewhere" / "iris" / "tiny" / ".lock-k")
