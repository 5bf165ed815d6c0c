"""Issue 31, case 5a: a run that only loads a committed adapter waited silently, up to the 4-hour lock timeout,
while another process held the store lock. A whole entry is now loaded without the lock; a run that does wait
says who holds the lock (pid, host, since when, recorded beside the lock by its holder) and for how long, every
LOCK_REPORT_S seconds, and its timeout error names the holder too."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import warnings
from pathlib import Path

import pytest
from filelock import FileLock, Timeout

import loragate.run.adapter
from loragate.card.options import RunOptions
from loragate.progress import Progress, reporting
from loragate.run.adapter import acquire, prepare_adapter, say_waiting
from loragate.store.adapters import AdapterStore, AdapterStoreError, BaseRecord, adapter_key
from loragate.store.locks import holder_file, record_holder, release_lock, wait_for
from tests.manifests import stub_manifest

KEY = "0123456789abcdef"


def held(store: AdapterStore, key: str = KEY) -> FileLock:
    """The key's lock taken as another run takes it (its holder recorded); a second FileLock on the same file
    conflicts with it even in this process. Not thread-local, so a timer thread can release it."""
    lock = FileLock(store.lock("iris", "tiny", key).lock_file, thread_local=False)
    lock.acquire()
    record_holder(lock)
    return lock


def test_a_waiting_run_says_who_holds_the_lock_and_for_how_long(tmp_path: Path) -> None:
    store = AdapterStore(tmp_path / "adapters")
    holder = held(store)
    said: list[str] = []
    try:
        with pytest.raises(Timeout):
            wait_for(store.lock("iris", "tiny", KEY, timeout=0.5), said.append, every=0.1)
    finally:
        release_lock(holder)
    assert len(said) >= 3, said
    assert f"held by pid {os.getpid()} on host {socket.gethostname()}, for " in said[-1], said[-1]
    assert f".lock-{KEY}" in said[-1] and said[-1].startswith("waiting "), said[-1]
    assert not holder_file(holder).exists(), "the holder record outlived the lock"


def shorten(monkeypatch: pytest.MonkeyPatch, timeout: float) -> None:
    """The store's locks time out after `timeout` seconds, not 4 hours: a test that goes wrong fails, not hangs."""
    lock = AdapterStore.lock
    monkeypatch.setattr(AdapterStore, "lock", lambda self, task, tier, key: lock(self, task, tier, key, timeout))


class Lines:
    """A progress terminal that keeps its lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def line(self, text: str) -> None:
        self.lines.append(text)


def test_acquire_says_who_holds_the_lock_while_it_waits_then_takes_it(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The waiting line was a UserWarning too: under a project's `filterwarnings = error` the wait ended in it."""
    monkeypatch.setattr(loragate.run.adapter, "wait_for", lambda lock, say: wait_for(lock, say, every=0.1))
    store = AdapterStore(tmp_path / "adapters")
    shorten(monkeypatch, 20)
    holder = held(store)
    threading.Timer(0.5, release_lock, [holder]).start()
    terminal = Lines()
    with warnings.catch_warnings(), reporting(Progress(terminal, "lines")):
        warnings.simplefilter("error")
        lock = acquire(store, "iris", "tiny", KEY)
    assert lock.is_locked and f'"pid": {os.getpid()}' in holder_file(lock).read_text()
    release_lock(lock)
    assert terminal.lines and f"held by pid {os.getpid()} on host " in terminal.lines[0], terminal.lines


def test_outside_pytest_a_waiting_run_says_so_on_stderr(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    say_waiting("waiting 60 s for the store lock")
    assert capsys.readouterr().err == "loragate: waiting 60 s for the store lock\n"


def test_the_timeout_error_names_the_holder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = AdapterStore(tmp_path / "adapters")
    holder = held(store)
    shorten(monkeypatch, 0.3)
    try:
        with pytest.raises(AdapterStoreError, match=rf"held by pid {os.getpid()} on host .*let it finish"):
            acquire(store, "iris", "tiny", KEY)
    finally:
        release_lock(holder)


def test_a_stored_adapter_loads_while_another_run_holds_its_lock(tmp_path: Path, tuned, iris, iris_splits,
                                                                 fresh_base, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = iris.card.tier("tiny")
    key = adapter_key(fresh_base.fingerprint, iris_splits.data_hash(), settings.lora, settings.train)
    store = AdapterStore(tmp_path / "adapters")
    manifest = stub_manifest(base=BaseRecord(name=fresh_base.name, fingerprint=fresh_base.fingerprint))
    stored = store.save(tuned[1], manifest, "iris", "tiny", key)
    holder = held(store, key)
    shorten(monkeypatch, 20)
    loaded: list[Path] = []
    loading = threading.Thread(target=lambda: loaded.append(prepare_adapter(
        iris, "tiny", fresh_base, iris_splits, RunOptions(store_root=store.root))[1]), daemon=True)
    try:
        loading.start()
        loading.join(timeout=60)
        assert not loading.is_alive(), "the load waited for the lock although the entry was complete"
    finally:
        release_lock(holder)
        loading.join(timeout=60)
    assert loaded == [stored]


def stored_for(store: AdapterStore, tuned, iris, iris_splits, base, data_hash: str) -> str:
    """Store the tuned adapter under the key `iris`'s tiny tier has on `base`, its manifest saying `data_hash`;
    returns the key."""
    settings = iris.card.tier("tiny")
    key = adapter_key(base.fingerprint, iris_splits.data_hash(), settings.lora, settings.train)
    manifest = stub_manifest(base=BaseRecord(name=base.name, fingerprint=base.fingerprint), data_hash=data_hash)
    store.save(tuned[1], manifest, "iris", "tiny", key)
    return key


def test_an_entry_replaced_during_the_lock_free_load_is_loaded_again_under_the_lock(
        tmp_path: Path, tuned, iris, iris_splits, fresh_base, monkeypatch: pytest.MonkeyPatch) -> None:
    """A --retrain that swaps the entry between the lock-free check of its manifest and the load of its weights:
    the run gated the new weights under the old manifest. Now the directory's identity is compared after the load,
    and a changed one is unloaded and loaded again under the lock."""
    store = AdapterStore(tmp_path / "adapters")
    stored_for(store, tuned, iris, iris_splits, fresh_base, "old")
    real_load = loragate.run.adapter.load_adapter
    loads: list[Path] = []

    def retrain_meanwhile(model, entry: Path):  # the other run's --retrain lands as this one loads
        if not loads:
            stored_for(store, tuned, iris, iris_splits, fresh_base, "new")
        loads.append(entry)
        return real_load(model, entry)

    monkeypatch.setattr(loragate.run.adapter, "load_adapter", retrain_meanwhile)
    model, _, manifest, _ = prepare_adapter(iris, "tiny", fresh_base, iris_splits, RunOptions(store_root=store.root))
    assert manifest.data_hash == "new", "the run kept the manifest of the entry it checked, not of what it loaded"
    assert len(loads) == 2, loads
    assert model.base_model.model is fresh_base.model, "the reloaded adapter does not wrap the run's base"


def test_an_entry_missing_for_an_instant_during_the_lock_free_load_is_loaded_under_the_lock(
        tmp_path: Path, tuned, iris, iris_splits, fresh_base, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the OS cannot swap directories atomically a --retrain leaves an instant with no entry: peft's raw
    FileNotFoundError ended the run. Now the run loads the entry under the lock."""
    store = AdapterStore(tmp_path / "adapters")
    stored_for(store, tuned, iris, iris_splits, fresh_base, "old")
    real_load = loragate.run.adapter.load_adapter
    loads: list[Path] = []

    def missing_once(model, entry: Path):
        loads.append(entry)
        if len(loads) == 1:
            raise FileNotFoundError(2, "No such file or directory", str(entry / "adapter_config.json"))
        return real_load(model, entry)

    monkeypatch.setattr(loragate.run.adapter, "load_adapter", missing_once)
    _, entry, manifest, _ = prepare_adapter(iris, "tiny", fresh_base, iris_splits, RunOptions(store_root=store.root))
    assert len(loads) == 2 and manifest.data_hash == "old", loads


def test_a_holder_record_that_cannot_be_written_leaves_the_lock_free(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """acquire took the lock, then failed to write its holder record and left the lock held as long as the error's
    traceback lived (pytest keeps it for the report): every other run waited on it."""
    store = AdapterStore(tmp_path / "adapters")

    def disk_full(lock: FileLock) -> None:
        raise AdapterStoreError(f"cannot write {holder_file(lock)}: [Errno 28] No space left on device")

    monkeypatch.setattr(loragate.run.adapter, "record_holder", disk_full)
    with pytest.raises(AdapterStoreError, match="No space left") as failed:
        acquire(store, "iris", "tiny", KEY)
    other = FileLock(store.lock("iris", "tiny", KEY).lock_file, timeout=0)
    other.acquire()  # Timeout while the failed run holds it: its traceback, which pytest keeps, refers to the lock
    other.release()
    assert failed.traceback, "the failure's traceback, and with it the lock, must be alive for this check"


def test_a_holder_record_a_killed_write_left_is_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run killed while it wrote its holder record left `.tmp-.lock-<key>.holder-*`, which no one removed."""
    store = AdapterStore(tmp_path / "adapters")
    named: list[str] = []
    mkstemp = tempfile.mkstemp

    def spy(*args, **kwargs):  # the temp name the holder record's write really uses
        handle, name = mkstemp(*args, **kwargs)
        named.append(name)
        return handle, name

    monkeypatch.setattr(tempfile, "mkstemp", spy)
    release_lock(held(store))
    monkeypatch.undo()
    left = Path(named[0])
    left.write_text('{"pid": 1')  # as the killed write left it
    with pytest.warns(UserWarning, match=rf"removed 1 temp .*{left.name}"):
        assert store.remove_stale_temps("iris", "tiny") == [left]
    assert not left.exists()
