"""report.md's least stable examples (loragate.report.stability): each stays on its lines as inline code."""

from __future__ import annotations

import pytest

from loragate.report import stability
from loragate.report.stability import UnstableExample, stability_markdown


def test_a_multi_line_answer_stays_on_its_markdown_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sampled answer may hold newlines (pretty-printed JSON, a free-text reply): written raw, it broke the inline
    code span and the list item it was in."""
    listed = [UnstableExample("ex-1", "text: a\nb", '{\n  "room": "1"\n} x2, {"room": "2"} x1', 2 / 3, 2 / 3)]
    monkeypatch.setattr(stability, "agreements", lambda run: object())
    monkeypatch.setattr(stability, "least_stable", lambda run: listed)
    monkeypatch.setattr(stability, "stability_heading", lambda run, shown: "Least stable tuned examples")
    lines = stability_markdown(None)
    assert "\n" not in "".join(lines), lines
    assert '  - answers: `{ ⏎   "room": "1" ⏎ } x2, {"room": "2"} x1`' in lines, lines
    assert "  - input: `text: a ⏎ b`" in lines, lines
