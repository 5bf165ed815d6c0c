"""README's Layout section names every example project (it listed two of the three)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def layout_block() -> str:
    """The fenced block under README's `## Layout` heading."""
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("\n## Layout\n", 1)[1]
    return section.split("```", 2)[1]


def test_the_layout_names_every_example_project() -> None:
    examples = sorted(path.name for path in (ROOT / "examples").iterdir()
                      if path.is_dir() and not path.name.startswith((".", "_")))
    assert examples, "no example projects found"
    block = layout_block()
    assert [name for name in examples if name not in block] == [], block
