"""Everything a gate run will write, checked before any model loads: a report directory under a file, in /proc,
read-only or on a full disk is found in a second, not after hours of full-tier training.

The checks create nothing: they probe the nearest existing directory of each path with a temporary file."""

from __future__ import annotations

import os
import shutil
import stat
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
        under = f", so {path} cannot be created under it" if existing != path.absolute() else ""
        return f"{existing} is {file_type(existing)}, not a directory{under}"
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
    """Why the file `path` cannot be appended to, or None: it must be a regular file (a FIFO blocks the writer until
    someone reads it, forever in CI), or be missing from an existing, writable directory (nothing creates the
    directory: the run would find out only at its end)."""
    if path.exists():
        if not path.is_file():
            return f"{path} is {file_type(path)}, not a file"
        return None if os.access(path, os.W_OK) else f"{path} is not writable"
    if not path.parent.is_dir():
        missing = nearest_existing(path.parent)
        return (f"its directory {path.parent} does not exist" if missing.is_dir()
                else f"{missing} is {file_type(missing)}, not a directory")
    return directory_problem(path.parent)


def file_type(path: Path) -> str:
    """What `path` is, in words: "a directory", "a FIFO", "a socket", ..."""
    mode = path.stat().st_mode
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISREG, "a file")):
        if test(mode):
            return name
    return "not a file"
