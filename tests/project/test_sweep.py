"""train_fixtures.py --sweep-ranks: one training per rank, a table of what each rank bought, nothing stored."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def train_fixtures():
    spec = importlib.util.spec_from_file_location("train_fixtures", ROOT / "train_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_rank_sweep_writes_one_row_per_rank_and_stores_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "adapters"
    assert train_fixtures().main(["--task", "iris", "--sweep-ranks", "1,2", "--store", str(store)]) == 0
    rows = json.loads((tmp_path / "reports" / "sweep-iris-tiny.json").read_text())
    assert [(row["rank"], row["alpha"]) for row in rows] == [(1, 2.0), (2, 4.0)]  # the card's alpha/r kept
    assert rows[1]["trainable_parameters"] == 2 * rows[0]["trainable_parameters"]
    assert all(row["best_val_loss"] > 0 and row["wall_seconds"] > 0 for row in rows)
    assert "| 2 | 4 | " in (tmp_path / "reports" / "sweep-iris-tiny.md").read_text()
    assert not store.exists(), "a sweep must not write adapters"
    printed = capsys.readouterr()
    assert "written to reports/sweep-iris-tiny.md" in printed.out
    trained = [line.split(" in ")[0] for line in printed.err.splitlines() if " trained " in line]
    assert trained == ["iris/tiny sweep: trained r=1 144 steps", "iris/tiny sweep: trained r=2 144 steps"], \
        f"train_fixtures.py's progress on stderr, one line per phase off a terminal:\n{printed.err}"


def test_rank_sweep_needs_one_task(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        train_fixtures().main(["--sweep-ranks", "4,8"])
    assert "--sweep-ranks applies to one task: add --task NAME" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_fixtures().main(["--task", "iris", "--sweep-ranks", "4,x"])
    assert "give ranks as positive integers" in capsys.readouterr().err


@pytest.mark.slow
def test_a_card_sweep_stores_each_variant_the_gate_loads(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """train_fixtures.py trained only the card's own adapter, which a gate of the sweep never loads, and left the
    variants to be trained by the gate itself (in CI)."""
    sweep = "candidates={variants: [{name: r2, set: {lora.r: 2}}, {name: short, set: {train.epochs: 1}}]}"
    args = ["--task", "iris", "--set", sweep, "--store", str(tmp_path / "adapters")]
    assert train_fixtures().main(args) == 0
    first = capsys.readouterr().out
    assert "candidate r2: " in first and "candidate short: " in first and first.count(": trained") == 2
    assert len(list((tmp_path / "adapters" / "iris" / "tiny").iterdir())) == 2
    assert train_fixtures().main(args) == 0
    assert capsys.readouterr().out.count(": up to date") == 2
