"""AdapterStore.save under faults: a real SIGKILL at many points of a save, a second save of a key that exists
(--retrain), and two runs storing the same key at once.

The kills run in one subprocess (SAVER below, written to a temp file and run with python): it imports
torch once, then forks one child per kill point; the child saves with every step slowed down, the
subprocess SIGKILLs it after a delay spread over the save's measured duration, and this process checks the
store each kill left behind.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from filelock import FileLock

import loragate.store.adapters as store_module
from loragate.card.settings import LoraSettings, TinyBase
from loragate.models.bases import load_causal, tiny_base_dir
from loragate.run.adapter import acquire
from loragate.store.adapters import ADAPTER_FILES, AdapterStore, AdapterStoreError, read_manifest
from loragate.training.lora import attach_lora
from tests.manifests import stub_manifest

TASK, TIER, KEY = "faults", "tiny", "0123456789abcdef"
SPEC = TinyBase(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, vocab_size=96)
TEXTS = ["Sepal length: low. Petal width: high. Species: setosa", "versicolor virginica medium"] * 4
LORA = LoraSettings(r=4, alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
ROOT = Path(__file__).resolve().parents[2]  # the SAVER imports this module as tests.store.test_save_faults


def build_model(cache: Path):
    """A tiny offline base wrapped with fresh LoRA layers: enough for the store, no training."""
    base = load_causal(str(tiny_base_dir(cache, TASK, SPEC, TEXTS)), "cpu", torch.float32)
    return attach_lora(base.model, LORA, seed=0)


SAVER = textwrap.dedent('''
    """Fork one child per kill point; each saves with every step slowed, and is SIGKILLed `delay` seconds in."""
    import json, os, shutil, signal, sys, tempfile, time
    from pathlib import Path

    import torch

    torch.set_num_threads(1)  # no thread pool in the forked children
    sys.path.insert(0, sys.argv[1])
    from tests.store.test_save_faults import KEY, TASK, TIER, build_model
    from tests.manifests import stub_manifest
    import loragate.store.adapters as store_module
    from loragate.store.adapters import AdapterStore

    work, fractions = Path(sys.argv[2]), [float(f) for f in sys.argv[3].split(",")]
    model = build_model(work / "cache")
    STEP = 0.02

    def slowed(fn, before=STEP, after=STEP):
        def wrapper(*args, **kwargs):
            time.sleep(before)
            try:
                return fn(*args, **kwargs)
            finally:
                time.sleep(after)
        return wrapper

    def slow_down():
        """Stretch every step of save so that kill points land between (and inside) them."""
        model.save_pretrained = slowed(model.save_pretrained)
        store_module.file_sha256 = slowed(store_module.file_sha256)
        store_module.tempfile.mkdtemp = slowed(tempfile.mkdtemp)
        store_module.os.replace = slowed(os.replace)
        store_module.shutil.rmtree = slowed(shutil.rmtree)
        if hasattr(store_module, "exchange"):
            store_module.exchange = slowed(store_module.exchange)
        Path.write_text = slowed(Path.write_text)

    def save(root, generation):
        AdapterStore(root).save(model, stub_manifest(generation), TASK, TIER, KEY)

    def prepare(root, path):
        if path == "overwrite":
            save(root, "old")

    def timed_save(root, path):
        prepare(root, path)
        pid = os.fork()
        if pid == 0:
            slow_down()
            save(root, "new")
            os._exit(0)
        started = time.perf_counter()
        os.waitpid(pid, 0)
        return time.perf_counter() - started

    durations = {path: timed_save(work / f"timing-{path}", path) for path in ("new", "overwrite")}
    print(json.dumps({"durations": durations}), flush=True)
    for path in ("new", "overwrite"):
        for i, fraction in enumerate(fractions):
            root = work / f"{path}-{i}"
            prepare(root, path)
            ready_r, ready_w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(ready_r)
                slow_down()
                os.write(ready_w, b"go")
                save(root, "new")
                os._exit(0)
            os.close(ready_w)
            assert os.read(ready_r, 2) == b"go"
            os.close(ready_r)
            time.sleep(fraction * durations[path])
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
            print(json.dumps({"root": str(root), "path": path, "fraction": fraction, "killed": killed}), flush=True)
''')

FRACTIONS = [round(0.05 + 0.1 * i, 2) for i in range(10)]  # 0.05 .. 0.95 of a slowed save


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory):
    return build_model(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def kills(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """One record per kill point: the store root it left, new entry or overwrite, and whether it was killed."""
    work = tmp_path_factory.mktemp("kills")
    script = work / "saver.py"
    script.write_text(SAVER)
    done = subprocess.run(
        [sys.executable, str(script), str(ROOT), str(work), ",".join(map(str, FRACTIONS))],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert "durations" in records[0], done.stdout
    return records[1:]


def tmp_leftovers(root: Path) -> list[Path]:
    tier_dir = root / TASK / TIER
    return sorted(p for p in tier_dir.iterdir() if p.name.startswith(".tmp-")) if tier_dir.is_dir() else []


@pytest.mark.slow
def test_kill_points_landed_inside_saves(kills: list[dict]) -> None:
    """Guards the tests below against passing vacuously: most kills hit a running save, some left a temp dir."""
    assert len(kills) == 2 * len(FRACTIONS)
    killed = [k for k in kills if k["killed"]]
    assert len(killed) >= len(kills) // 2, kills
    assert any(tmp_leftovers(Path(k["root"])) for k in killed if k["path"] == "new"), kills


@pytest.mark.slow
def test_killed_new_save_leaves_a_whole_entry_or_none(kills: list[dict]) -> None:
    outcomes = []
    for kill in (k for k in kills if k["path"] == "new"):
        entry = AdapterStore(Path(kill["root"])).entry_dir(TASK, TIER, KEY)
        if entry.exists():
            assert sorted(p.name for p in entry.iterdir() if p.name in ADAPTER_FILES) == sorted(ADAPTER_FILES), kill
            assert read_manifest(entry, KEY).data_hash == "new", kill
        outcomes.append(entry.exists())
    assert False in outcomes, "no kill landed before the entry was in place"


@pytest.mark.slow
def test_killed_overwrite_leaves_the_old_or_the_new_entry(kills: list[dict]) -> None:
    """--retrain over an existing entry: a kill at any point leaves a valid entry, never none."""
    generations = []
    for kill in (k for k in kills if k["path"] == "overwrite"):
        entry = AdapterStore(Path(kill["root"])).entry_dir(TASK, TIER, KEY)
        assert entry.is_dir(), f"the kill at {kill['fraction']:.2f} of the save left no entry: {kill}"
        generations.append(read_manifest(entry, KEY).data_hash)
    assert set(generations) <= {"old", "new"} and "old" in generations, generations


@pytest.mark.slow
def test_find_never_returns_a_temp_dir(kills: list[dict]) -> None:
    for kill in kills:
        root = Path(kill["root"])
        store = AdapterStore(root)
        found = store.find(TASK, TIER, KEY)
        assert found is None or found == store.entry_dir(TASK, TIER, KEY), (kill, found)
        for leftover in tmp_leftovers(root):
            with pytest.raises(AdapterStoreError, match="not a plain name"):
                store.find(TASK, TIER, leftover.name)  # a temp dir cannot even be named as a key


@pytest.mark.slow
def test_save_after_a_kill_succeeds(kills: list[dict], model) -> None:
    roots = [Path(k["root"]) for k in kills if k["killed"]]
    with_leftovers = [root for root in roots if tmp_leftovers(root)]
    assert with_leftovers, kills
    for root in with_leftovers[:2] + roots[-1:]:
        leftovers = tmp_leftovers(root)
        entry = AdapterStore(root).save(model, stub_manifest("parent"), TASK, TIER, KEY)
        assert read_manifest(entry, KEY).data_hash == "parent"
        assert AdapterStore(root).find(TASK, TIER, KEY) == entry
        assert tmp_leftovers(root) == leftovers  # other runs' temp dirs are not touched (they may be live)


@pytest.mark.slow
def test_the_next_run_removes_what_killed_saves_left_but_not_a_save_in_progress(kills: list[dict],
                                                                              tmp_path: Path) -> None:
    """A kill -9 during a save left `.tmp-<key>-*` in the store and nothing removed it. The next run's `acquire`
    does, with a warning; a temp dir whose key another process holds locked may be a live save and stays."""
    source = next(Path(k["root"]) for k in kills if k["path"] == "new" and tmp_leftovers(Path(k["root"])))
    root = tmp_path / "store"
    shutil.copytree(source, root)
    stale = tmp_leftovers(root)
    tier_dir = root / TASK / TIER
    live = tier_dir / ".tmp-fedcba9876543210-abcd_123"
    live.mkdir()
    saving = FileLock(AdapterStore(root).lock(TASK, TIER, "fedcba9876543210").lock_file)  # another run saving it
    saving.acquire()
    try:
        with pytest.warns(UserWarning, match=rf"{tier_dir}: removed {len(stale)} temp dirs left by interrupted saves"):
            acquire(AdapterStore(root), TASK, TIER, KEY).release()
    finally:
        saving.release()
    assert stale and tmp_leftovers(root) == [live]


def atomic_exchange_supported(directory: Path) -> bool:
    """Whether this filesystem can swap two directories atomically (Linux renameat2 RENAME_EXCHANGE)."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    a, b = directory / "probe-a", directory / "probe-b"
    a.mkdir(), b.mkdir()
    try:
        return renameat2 is not None and renameat2(-100, os.fsencode(a), -100, os.fsencode(b), 2) == 0
    finally:
        shutil.rmtree(a), shutil.rmtree(b)


def test_overwrite_is_never_observed_missing(model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader looking after every rename and delete of a --retrain save sees a whole entry each time."""
    if not atomic_exchange_supported(tmp_path):
        pytest.skip("no atomic directory exchange on this filesystem: the entry is briefly missing by design")
    store = AdapterStore(tmp_path / "adapters")
    entry = store.save(model, stub_manifest(0), TASK, TIER, KEY)
    seen: list[object] = []

    def look() -> None:
        try:
            seen.append(read_manifest(entry, KEY).data_hash)
        except (OSError, AdapterStoreError) as exc:
            seen.append(f"{type(exc).__name__}: {exc}")

    def observed(fn):
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            finally:
                look()
        return wrapper

    monkeypatch.setattr(store_module.os, "replace", observed(os.replace))
    monkeypatch.setattr(store_module.shutil, "rmtree", observed(shutil.rmtree))
    for generation in (1, 2, 3):
        assert store.save(model, stub_manifest(generation), TASK, TIER, KEY) == entry
    monkeypatch.undo()
    assert seen and all(s in {"0", "1", "2", "3"} for s in seen), seen
    assert read_manifest(entry, KEY).data_hash == "3"
    assert tmp_leftovers(store.root) == []  # neither .tmp-<key>- nor .tmp-old- dirs remain


def test_overwrite_without_atomic_exchange_falls_back_to_two_renames(model, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the filesystem cannot exchange (exchange() -> False), --retrain still replaces the entry and
    cleans up its .tmp-old- dir."""
    store = AdapterStore(tmp_path / "adapters")
    entry = store.save(model, stub_manifest(0), TASK, TIER, KEY)
    monkeypatch.setattr(store_module, "exchange", lambda a, b: False)
    assert store.save(model, stub_manifest(1), TASK, TIER, KEY) == entry
    assert read_manifest(entry, KEY).data_hash == "1"
    assert tmp_leftovers(store.root) == []


@pytest.mark.slow
def test_overwrite_under_a_concurrent_reader_process(model, tmp_path: Path) -> None:
    """A separate process polls the entry while this one overwrites it 30 times."""
    if not atomic_exchange_supported(tmp_path):
        pytest.skip("no atomic directory exchange on this filesystem: the entry is briefly missing by design")
    store = AdapterStore(tmp_path / "adapters")
    entry = store.save(model, stub_manifest(0), TASK, TIER, KEY)
    stop = tmp_path / "stop"
    reader = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import os, sys
        entry, stop = {str(entry)!r}, {str(stop)!r}
        looks = misses = 0
        print("ready", flush=True)
        while not os.path.exists(stop):
            looks += 1
            misses += not all(os.path.isfile(os.path.join(entry, name)) for name in {ADAPTER_FILES!r})
        print(looks, misses)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "ready"
        for generation in range(1, 31):
            store.save(model, stub_manifest(generation), TASK, TIER, KEY)
            time.sleep(0.002)
    finally:
        stop.touch()
        out, _ = reader.communicate(timeout=30)
    looks, misses = map(int, out.split())
    assert looks > 100, out
    assert misses == 0, f"a reader found the entry missing or partial {misses} times in {looks} looks"
    assert read_manifest(entry, KEY).data_hash == "30"
    assert tmp_leftovers(store.root) == []


def test_concurrent_save_of_the_same_key_is_not_an_error(model, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Two runs (two CI jobs, xdist workers) sharing adapters/ train the same key: the one that renames second
    finds the entry already there. That is not a disk or permission problem; the later entry wins."""
    root = tmp_path / "adapters"
    entry = AdapterStore(root).entry_dir(TASK, TIER, KEY)
    real_replace = os.replace
    other_run_done = []

    def other_run_stores_first(src, dst):
        if Path(dst) == entry and not other_run_done:  # our rename into place is next; the other run wins the race
            other_run_done.append(True)
            AdapterStore(root).save(model, stub_manifest("other run"), TASK, TIER, KEY)
        return real_replace(src, dst)

    monkeypatch.setattr(store_module.os, "replace", other_run_stores_first)
    assert AdapterStore(root).save(model, stub_manifest("this run"), TASK, TIER, KEY) == entry
    monkeypatch.undo()
    assert other_run_done
    assert read_manifest(entry, KEY).data_hash == "this run"
    assert tmp_leftovers(root) == []
