"""The wheel ships every package of the library, and the gate's suites and fixtures from the repository's top level
(the product card fixes suites/ and fixtures/ there): pyproject lists the packages, since setuptools' find cannot
follow the package-dir mapping, so a new sub-package left out of the list would be missing from every install.
tests/project/test_examples.py proves the built wheel gates the example projects."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_library_package_is_listed() -> None:
    found = {".".join(path.parent.relative_to(ROOT).parts) for path in (ROOT / "loragate").rglob("__init__.py")}
    listed = set(SETUPTOOLS["packages"])
    assert found - listed == set(), f"add to [tool.setuptools] packages in pyproject.toml: {sorted(found - listed)}"
    stale = {name for name in listed - found if name not in SETUPTOOLS["package-dir"]}
    assert stale == set(), f"listed in pyproject.toml but not a package: {sorted(stale)}"


def test_suites_and_fixtures_ship_from_the_top_level() -> None:
    assert SETUPTOOLS["package-dir"] == {"loragate.suites": "suites", "loragate.fixtures": "fixtures"}
    for package, folder in SETUPTOOLS["package-dir"].items():
        assert package in SETUPTOOLS["packages"] and (ROOT / folder / "__init__.py").is_file(), package
