"""The library's modules import each other in one direction: no module imports, at load time, one that
depends on it (imports inside functions and under TYPE_CHECKING excepted: they run later or never)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "loragate"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def load_time_imports(path: Path) -> set[str]:
    """loragate modules imported at the top level of `path` (not in functions, not under `if TYPE_CHECKING`)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("loragate"):
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.startswith("loragate"))
    return names


def graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: {imported for imported in load_time_imports(path) if imported in modules and imported != name}
            for name, path in modules.items()}


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the modules along it, or None."""
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                return trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt]
            if nxt not in state:
                found = visit(nxt, [*trail, nxt])
                if found:
                    return found
        state[node] = "done"
        return None

    for start in sorted(edges):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_no_import_cycle_among_the_library_modules() -> None:
    edges = graph()
    # registration by design (PEFT registers its methods the same way): a package's __init__ imports its plugins
    # (loragate.kinds' kind packages, loragate.tasks' task modules) last, and each plugin imports the package's
    # registry to register itself
    for name, imported in edges.items():
        parent = name.rsplit(".", 1)[0]
        if parent in imported and name in edges.get(parent, set()):
            imported.discard(parent)
    found = cycle(edges)
    assert found is None, f"import cycle: {' -> '.join(found)}"


def test_the_checker_finds_a_cycle() -> None:
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None
