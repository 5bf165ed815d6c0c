"""Everything a gate run will write, checked before any model loads: a report directory under a file, in /proc,
read-only or on a full disk is found in a second, not after hours of full-tier training.

The checks create nothing: they probe the nearest existing directory of each path with a temporary file."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

MIN_FREE_BYTES = 64 * 1024**2  # reports and tiny adapters take a few MiB; less than this free is a full disk


def nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def directory_problem(path: Path) -> str | None:
    """Why `path` cannot become a directory this run writes to, or None."""
    existing = nearest_existing(path)
    if not existing.is_dir():
        return f"{existing} is a file, not a directory" + (f", so {path} cannot be created under it"
                                                          if existing != path.absolute() else "")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".loragate-probe-"):
            pass
    except OSError as exc:
        return f"cannot write in {existing}: {exc.strerror or exc}"
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_BYTES:
        return f"only {free / 1024**2:.1f} MiB free on the disk of {existing} (needs {MIN_FREE_BYTES // 1024**2} MiB)"
    return None


def file_problem(path: Path) -> str | None:
    """Why the file `path` (created if missing) cannot be appended to, or None. Opening in append mode writes
    nothing: an existing summary keeps its bytes."""
    if path.is_dir():
        return f"{path} is a directory, not a file"
    problem = directory_problem(path.parent)
    if problem is not None:
        return problem
    if path.exists() and not os.access(path, os.W_OK):
        return f"{path} is not writable"
    return None
