"""docs/architecture.md names every module of the layers a change most often adds to (the top-level modules, store,
run, report, plugin): a module it leaves out is one a reader of the doc cannot place (the shard merge landed without
its loragate/merge.py and loragate/report/merge.py)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["store", "run", "report", "plugin"]


def unnamed(doc: str) -> list[str]:
    """The modules of loragate/ and of PACKAGES that `doc` names neither by path nor, in their layer's paragraph, as
    `file.py`."""
    paragraphs = {package: next((part for part in doc.split("\n\n") if part.startswith(f"**{package}** (")), "")
                  for package in ["Foundation", *PACKAGES]}
    missing = [f"loragate/{path.name}" for path in sorted((ROOT / "loragate").glob("*.py"))
               if path.name != "__init__.py" and f"loragate/{path.name}" not in doc
               and f"`{path.name}`" not in paragraphs["Foundation"]]
    for package, paragraph in paragraphs.items():
        missing += [f"loragate/{package}/{path.name}" for path in sorted((ROOT / "loragate" / package).glob("*.py"))
                    if path.name != "__init__.py" and f"`{path.name}`" not in paragraph
                    and f"loragate/{package}/{path.name}" not in doc]
    return missing


def test_architecture_md_names_every_module_of_these_layers() -> None:
    missing = unnamed((ROOT / "docs" / "architecture.md").read_text())
    assert not missing, f"docs/architecture.md does not name {missing}: add each to its package's paragraph"


def test_a_module_left_out_is_found() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    assert unnamed(doc.replace("`merge.py`", "`merged.py`")) == ["loragate/report/merge.py"]
    assert unnamed(doc.replace("loragate/merge.py", "loragate/merged.py")) == ["loragate/merge.py"]
