"""The adapter store's lock of each key, as the runs that share it see it: the holder records who it is (pid, host,
since when) beside the lock, a waiting run says who holds it as it waits, and the record goes before the lock is
released. The lock itself is AdapterStore.lock (loragate.store.adapters)."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock, Timeout

from loragate.atomic import atomic_file
from loragate.progress import duration
from loragate.store.adapters import AdapterStoreError

LOCK_REPORT_S = 60.0  # how often a run waiting on another run's store lock says who holds it


def holder_file(lock: FileLock) -> Path:
    """Beside the lock, who holds it: `.lock-<key>.holder`."""
    return Path(f"{lock.lock_file}.holder")


def record_holder(lock: FileLock) -> None:
    """Write who holds `lock` (pid, host, since when) beside it, for the runs that wait on it."""
    record = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
    try:
        with atomic_file(holder_file(lock)) as staged:
            staged.path.write_text(json.dumps(record) + "\n")
    except OSError as exc:
        raise AdapterStoreError(f"cannot write {holder_file(lock)}: {exc}. Check space and permissions of "
                                f"{holder_file(lock).parent}.") from exc


def release_lock(lock: FileLock) -> None:
    """Remove the holder record, then release: the next holder's record is never the one removed."""
    holder_file(lock).unlink(missing_ok=True)
    lock.release()


def holder_of(lock: FileLock) -> str:
    """Who holds `lock`, as its holder recorded: 'pid 4242 on host ci-7, for 14 min 02 s (since 2026-12-07 06:18:00
    UTC)'."""
    path = holder_file(lock)
    try:
        record = json.loads(path.read_text())
        since = float(record["since"])
        who = f"pid {record['pid']} on host {record['host']}"
    except FileNotFoundError:
        return (f"a process that left no record in {path} (an older loragate, or one taking the lock this "
                f"instant)")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"a process whose record {path} is unreadable ({type(exc).__name__}: {exc})"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(since))
    return f"{who}, for {duration(max(time.time() - since, 0.0))} (since {stamp})"


def wait_for(lock: FileLock, say: Callable[[str], None], every: float = LOCK_REPORT_S) -> None:
    """Acquire `lock`, saying every `every` seconds while another process holds it who that is and how long this
    run has waited; Timeout once the lock's own timeout has passed."""
    started = time.monotonic()
    while True:
        left = lock.timeout - (time.monotonic() - started)
        try:
            lock.acquire(timeout=max(min(every, left), 0.0))
            return
        except Timeout:
            if time.monotonic() - started >= lock.timeout:
                raise
        say(f"waiting {duration(time.monotonic() - started, 0)} for the store lock {lock.lock_file}, held by "
            f"{holder_of(lock)}")
