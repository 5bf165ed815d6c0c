"""The library's modules import each other downwards through a declared order of layers: a module imports modules
of its own layer or a lower one, never a higher one, and within a layer no module imports, at load time, one that
depends on it.

The order counts every import a reader of the module sees at its top level, including those under `if
TYPE_CHECKING:` (a type from a higher layer is a dependency on it all the same) and those in class bodies, `try`
and `if` blocks. Imports inside function bodies are exempt: they defer heavy libraries to the call that needs
them. The cycle check within a layer counts load-time imports only (TYPE_CHECKING ones never run), as before.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# lowest first: a module may import from its own layer and those before it. Each entry names the modules it holds:
# a module and everything under it (the foundation's modules are single files, `loragate` only its __init__)
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("loragate", "loragate.registry", "loragate.atomic", "loragate.redact", "loragate.progress")),
    *((package, (f"loragate.{package}",)) for package in (
        "card", "data", "models", "inference", "training", "store", "metrics", "gates", "kinds", "tasks", "run",
        "report", "plugin")),
    ("suites/fixtures", ("loragate.suites", "loragate.fixtures")),
    ("cli", ("loragate.__main__", "loragate.merge")),  # python -m loragate (and .merge): reads the project's tasks
]
FOUNDATION = set(LAYERS[0][1])

# where each shipped top-level package lives in this checkout: loragate/, and suites/ and fixtures/ at the root,
# which the wheel ships as loragate.suites and loragate.fixtures
SOURCES = {"loragate": ROOT / "loragate", "loragate.suites": ROOT / "suites", "loragate.fixtures": ROOT / "fixtures"}


def module_name(path: Path, package: str, directory: Path) -> str:
    parts = path.relative_to(directory).with_suffix("").parts
    return ".".join([package, *(parts[:-1] if parts[-1] == "__init__" else parts)])


def modules() -> dict[str, Path]:
    return {module_name(path, package, directory): path
            for package, directory in SOURCES.items() for path in sorted(directory.rglob("*.py"))}


def layer_of(module: str) -> int | None:
    """The index in LAYERS of the layer holding `module`, or None when no layer declares it."""
    for index, (_, members) in enumerate(LAYERS):
        for member in members:
            if module == member or (member not in FOUNDATION and module.startswith(member + ".")):
                return index
    return None


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported_names(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> set[str]:
    """The loragate modules (and, for `from x import y`, the candidates x.y) that an import statement names."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name.split(".")[0] == "loragate"}
    source = node.module or ""
    if node.level:  # relative: from the module's package, one level up per dot beyond the first
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[:len(package) - (node.level - 1)]
        source = ".".join([*package, *([source] if source else [])])
    if source.split(".")[0] != "loragate":
        return set()
    return {source, *(f"{source}.{alias.name}" for alias in node.names)}


def imports(path: Path, module: str) -> tuple[set[str], set[str]]:
    """(every import at the module's top level, the load-time ones among them): the first includes those under
    `if TYPE_CHECKING:`, the second leaves them out; neither looks inside function bodies."""
    every: set[str] = set()
    load_time: set[str] = set()
    is_package = path.name == "__init__.py"

    def walk(statements: list[ast.stmt], typing_only: bool) -> None:
        for node in statements:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue  # deferred: runs when called
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = imported_names(node, module, is_package)
                every.update(names)
                if not typing_only:
                    load_time.update(names)
            elif isinstance(node, ast.If):
                walk(node.body, typing_only or is_type_checking(node.test))
                walk(node.orelse, typing_only)
            else:
                for field in ("body", "orelse", "finalbody", "handlers"):
                    block = getattr(node, field, None)
                    if isinstance(block, list):
                        walk([child for child in block if isinstance(child, ast.stmt)], typing_only)
                for handler in getattr(node, "handlers", None) or []:
                    walk(handler.body, typing_only)
                for case in getattr(node, "cases", None) or []:
                    walk(case.body, typing_only)

    walk(ast.parse(path.read_text(encoding="utf-8")).body, False)
    return every, load_time


def graphs() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(every top-level import, load-time imports) between the shipped modules, as edges module -> imported."""
    found = modules()
    every: dict[str, set[str]] = {}
    load_time: dict[str, set[str]] = {}
    for name, path in found.items():
        all_imports, runtime = imports(path, name)
        every[name] = {imported for imported in all_imports if imported in found and imported != name}
        load_time[name] = {imported for imported in runtime if imported in found and imported != name}
    return every, load_time


def layer_violations(edges: dict[str, set[str]]) -> list[str]:
    """Each import of a higher layer's module, as `module -> imported (layer X above layer Y)`, and each module no
    layer declares."""
    problems = []
    for module in sorted(edges):
        own = layer_of(module)
        if own is None:
            problems.append(f"{module}: in no declared layer; add it to LAYERS in {Path(__file__).name}")
            continue
        for imported in sorted(edges[module]):
            other = layer_of(imported)
            if other is not None and other > own:
                problems.append(f"{module} -> {imported} (layer {LAYERS[other][0]} above layer {LAYERS[own][0]})")
    return problems


def without_registration(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """The edges less those of the registration pattern (PEFT registers its methods the same way): a package's
    __init__ imports its plugins (loragate.kinds' kind packages, loragate.tasks' task modules) last, and each plugin
    imports the package, or its registry through it, to register itself."""
    kept = {name: set(imported) for name, imported in edges.items()}
    for name, imported in kept.items():
        parent = name.rsplit(".", 1)[0]
        if parent in imported and name in edges.get(parent, set()):
            imported.discard(parent)
    return kept


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the modules along it, or None."""
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
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


def layer_cycles(edges: dict[str, set[str]]) -> list[str]:
    """One import cycle per layer that has one, each as `layer: a -> b -> a`."""
    edges = without_registration(edges)
    found = []
    for index, (layer, _) in enumerate(LAYERS):
        members = {name for name in edges if layer_of(name) == index}
        loop = cycle({name: edges[name] & members for name in members})
        if loop:
            found.append(f"{layer}: {' -> '.join(loop)}")
    return found


def test_modules_import_only_their_own_layer_or_lower_ones() -> None:
    every, _ = graphs()
    problems = layer_violations(every)
    assert not problems, f"{len(problems)} imports break the layer order:\n" + "\n".join(problems)


def test_no_import_cycle_within_a_layer() -> None:
    _, load_time = graphs()
    found = layer_cycles(load_time)
    assert not found, "import cycles:\n" + "\n".join(found)


def test_every_layer_is_found() -> None:
    """The checker reads the real tree: a renamed package or moved suites/ would otherwise pass unchecked."""
    found = {layer_of(name) for name in graphs()[0]}
    assert found == set(range(len(LAYERS))), [LAYERS[i][0] for i in range(len(LAYERS)) if i not in found]


def test_the_checker_finds_an_upward_import_and_names_both_layers() -> None:
    edges = {"loragate.data.task": {"loragate.kinds.registry", "loragate.card.settings", "loragate.data.examples"},
             "loragate.kinds.registry": {"loragate.registry"}, "loragate.card.settings": set(),
             "loragate.data.examples": set(), "loragate.registry": {"loragate.progress"}, "loragate.progress": set(),
             "loragate.suites.test_x": {"loragate.fixtures.gate", "loragate.plugin.hooks"},
             "loragate.fixtures.gate": set(), "loragate.plugin.hooks": set(), "loragate.elsewhere": set()}
    assert layer_violations(edges) == [
        "loragate.data.task -> loragate.kinds.registry (layer kinds above layer data)",
        "loragate.elsewhere: in no declared layer; add it to LAYERS in test_layering.py",
    ]
    assert layer_violations({"loragate.registry": {"loragate.card"}, "loragate.card": set()}) == \
        ["loragate.registry -> loragate.card (layer card above layer foundation)"]


def test_imports_under_type_checking_count_and_those_in_functions_do_not(tmp_path: Path) -> None:
    source = tmp_path / "module.py"
    source.write_text("from typing import TYPE_CHECKING\n"
                      "import loragate.card.settings\n"
                      "if TYPE_CHECKING:\n"
                      "    from loragate.kinds.protocol import Kind\n"
                      "try:\n"
                      "    from loragate.metrics import stats\n"
                      "except ImportError:\n"
                      "    pass\n"
                      "class Holder:\n"
                      "    from loragate.data import examples\n"
                      "def deferred():\n"
                      "    import loragate.run.task_run\n"
                      "from . import sibling\n"
                      "from .. import registry\n")
    every, load_time = imports(source, "loragate.models.module")
    assert every == {"loragate.card.settings", "loragate.kinds.protocol", "loragate.kinds.protocol.Kind",
                     "loragate.metrics", "loragate.metrics.stats", "loragate.data", "loragate.data.examples",
                     "loragate.models", "loragate.models.sibling", "loragate", "loragate.registry"}
    assert load_time == every - {"loragate.kinds.protocol", "loragate.kinds.protocol.Kind"}


def test_the_checker_finds_a_cycle() -> None:
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None
    assert layer_cycles({"loragate.data.a": {"loragate.data.b"}, "loragate.data.b": {"loragate.data.a"}}) == \
        ["data: loragate.data.a -> loragate.data.b -> loragate.data.a"]
    registration = {"loragate.kinds": {"loragate.kinds.causal"}, "loragate.kinds.causal": {"loragate.kinds"}}
    assert layer_cycles(registration) == []
