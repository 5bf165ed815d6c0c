"""A name -> object registry whose unknown-name error suggests the closest names."""

from __future__ import annotations

import difflib
import inspect
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Holds named entries of one kind (tasks, metrics) and explains lookups that miss."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice: by {source_of(self._entries[name])} and by "
                             f"{source_of(entry)}; rename one of them")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise KeyError(self.unknown_message(name))
        return self._entries[name]

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, self.names(), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return f"Unknown {self.kind} {name!r}.{hint} Available: {', '.join(self.names())}"

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[T]:
        """Every entry, in the order registered."""
        return list(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries


def source_of(entry: object) -> str:
    """The file that defines `entry` where it is a class or function (a task's class), else the entry itself."""
    try:
        return inspect.getsourcefile(entry) or repr(entry)  # type: ignore[arg-type]
    except TypeError:  # an instance (a KindSpec, a MetricSpec) has no source file of its own
        return repr(entry)
