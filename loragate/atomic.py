"""Write to a temporary path beside the target, rename it into place when complete: a killed or failed write
leaves the old file or directory or none, never half of one. The one helper behind the adapter store, the tiny
bases, the reports, the exports and the converted datasets."""

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
        os.replace(staged.path, staged.target)
    except BaseException:
        staged.path.unlink(missing_ok=True)
        raise
