"""format.md's claims for cards the plain export does not cover: a card that only gates adapters trained elsewhere
(no `lora` block) and a tier that samples (eval.sampling)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loragate.__main__ import main
from loragate.tasks import TASKS


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(TASKS, "_entries", dict(TASKS._entries))
    return tmp_path


def format_md(out: Path, *overrides: str) -> str:
    sets = [arg for value in overrides for arg in ("--set", value)]
    main(["export-data", "--task", "iris", "--out", str(out), *sets])
    return (out / "format.md").read_text(encoding="utf-8")


def test_a_card_without_a_lora_block_exports_and_says_it_trains_none(project: Path) -> None:
    """A card may leave out `lora` where it only gates --adapter; export-data once failed on it with an
    AttributeError in format.md's recipe section."""
    text = format_md(project / "out", "tiers.tiny.lora=null")
    assert "no `tiers.tiny.lora` block" in text and "LoRA `{" not in text


def test_a_sampling_tier_s_format_md_says_it_samples(project: Path) -> None:
    greedy = format_md(project / "greedy")
    sampled = format_md(project / "sampled", "tiers.tiny.eval.decode=generate",
                        "tiers.tiny.eval.sampling={temperature: 0.7, samples: 3, seed: 1}")
    assert "Greedy decoding (no sampling)" in greedy
    assert "Greedy decoding" not in sampled
    assert "Sampling (`eval.sampling`: sampled at T=0.7, top_p=1, k=3, seed=1" in sampled
