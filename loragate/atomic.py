"""Write to a temporary path beside the target, rename it into place when complete: a killed or failed write
leaves the old file or directory or none, never half of one. The one helper behind the adapter store, the tiny
bases, the reports, the exports and the converted datasets.

mkdtemp and mkstemp create their directory 0700 and their file 0600 whatever the umask, and so does safetensors for
the files it writes; what is renamed into place gets the modes an ordinary mkdir or open would have given it (0777
or 0666 less the umask), so a CI artefact step or a teammate reads reports, tiny bases and adapters as they read any
other file of the checkout."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Staged:
    path: Path  # write here
    target: Path  # renamed onto this when the block ends; a caller that names it from the content may set it late


@contextmanager
def atomic_dir(target: Path, place: Callable[[Path, Path], None] = os.replace) -> Iterator[Staged]:
    """A fresh directory beside `target` to fill; `place(temp, target)` (a rename unless the caller swaps an existing
    entry) puts it there when the block ends. Removed if the block or the placing raises."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = Staged(Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent)), target)
    try:
        yield staged
        as_umask_allows(staged.path)
        place(staged.path, staged.target)
    except BaseException:
        shutil.rmtree(staged.path, ignore_errors=True)
        raise


@contextmanager
def atomic_file(target: Path) -> Iterator[Staged]:
    """A fresh file beside `target` to write; renamed onto `staged.target` when the block ends, removed if it raises."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".tmp-{target.name}-", suffix=target.suffix, dir=target.parent)
    os.close(handle)
    staged = Staged(Path(name), target)
    try:
        yield staged
        os.chmod(staged.path, 0o666 & ~current_umask())
        os.replace(staged.path, staged.target)
    except BaseException:
        staged.path.unlink(missing_ok=True)
        raise


def as_umask_allows(root: Path) -> None:
    """Give `root` and every directory and file under it (never through a link) the mode mkdir or open would have
    given it under the umask: the writers inside a staged directory (mkdtemp, safetensors) make them private. A
    directory keeps its setgid, setuid and sticky bits (a directory made in a group-shared, setgid store inherits
    setgid, so that what is written in it stays the group's), which a chmod to a plain mode would drop."""
    umask = current_umask()
    os.chmod(root, umask_mode(root, True, umask))
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            if not path.is_symlink():
                os.chmod(path, umask_mode(path, name in dirs, umask))


def umask_mode(path: Path, directory: bool, umask: int) -> int:
    """The mode of `path` under `umask`: 0777 for a directory (with its special bits kept), 0666 for a file."""
    if directory:
        return (0o777 & ~umask) | (path.stat().st_mode & 0o7000)
    return 0o666 & ~umask


def current_umask() -> int:
    """The process's umask. Linux reports it in /proc/self/status (since 4.7), read without changing it; elsewhere
    it can only be read by setting it, so it is set and restored at once (another thread creating a file in that
    instant would get 0o077)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o077)
    os.umask(mask)
    return mask
