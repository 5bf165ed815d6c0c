"""The cards of README's "Gate your own task" are gated as written (issue 32, point 7: the README's structured card,
used verbatim on a realistic task, failed, and nothing had ever run it). Each ```yaml block whose first line names
its file (`# tasks/orders.yaml`) is written to a temporary project with the data its card names, generated in the
documented shape, and `pytest -m smoke` gates them there as a user runs it. The examples' cards are gated by
test_examples.py."""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from loragate.card.settings import TaskCard
from loragate.tasks.sst2 import generate_rows

ROOT = Path(__file__).resolve().parents[2]
JSON_EXAMPLE = ROOT / "examples" / "json_extraction"


def readme_cards(readme: str) -> dict[str, str]:
    """Each ```yaml block of the "Gate your own task" section whose first line is `# <path>` -> its text."""
    section = re.search(r"^## Gate your own task\n(.*?)(?=^## )", readme, re.M | re.S)
    assert section, "README.md has no '## Gate your own task' section"
    blocks = re.findall(r"```yaml\n(.*?)```", section.group(1), re.S)
    return {match[1]: block for block in blocks if (match := re.match(r"# (\S+\.yaml)\n", block))}


def write_reviews(path: Path) -> None:
    """The classification card's data: CSV with columns text,label, as the card says (loragate's generated reviews:
    negation and contrast, 200 per label)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows((sentence, label) for _, sentence, label in generate_rows())


def readme_project(project: Path) -> list[str]:
    """A project holding README's cards, the data they name and the schema module the structured card names; the
    json example's committed adapter store beside them (the README's structured card is that example's card, so its
    key matches and the run loads it; a card that drifts trains instead). The cards' task names."""
    cards = readme_cards((ROOT / "README.md").read_text())
    (project / "pyproject.toml").parent.mkdir(parents=True)
    (project / "pyproject.toml").write_text('[tool.loragate]\ntasks = "tasks"\n\n[tool.pytest.ini_options]\n'
                                            'minversion = "8"\n')
    for path, text in cards.items():
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text(text)
    shutil.copy(JSON_EXAMPLE / "order_schema.py", project / "order_schema.py")
    shutil.copy(JSON_EXAMPLE / "generate_data.py", project / "generate_data.py")
    subprocess.run([sys.executable, "generate_data.py"], cwd=project, check=True, capture_output=True)
    write_reviews(project / "data" / "reviews.csv")
    shutil.copytree(JSON_EXAMPLE / "adapters", project / "adapters")
    return [yaml.safe_load(text)["name"] for text in cards.values()]


def test_the_readme_shows_a_classification_and_a_structured_card() -> None:
    cards = {path: yaml.safe_load(text) for path, text in readme_cards((ROOT / "README.md").read_text()).items()}
    assert {card["kind"] for card in cards.values()} == {"sequence_classification", "structured_output"}, cards
    (encoder,) = [card for card in cards.values() if card["kind"] == "sequence_classification"]
    assert encoder["tiers"]["tiny"]["base_model"] == "minilm" and encoder["tiers"]["tiny"]["pooling"] == "mean"


def test_the_readme_structured_card_is_the_json_examples() -> None:
    """The README says so, and the gate run below loads that example's committed adapter by the key its tiny recipe
    gives: the cards may differ only in their description, comments and full tier's eval batch."""
    (readme,) = [TaskCard.model_validate(yaml.safe_load(text)) for text in readme_cards(
        (ROOT / "README.md").read_text()).values() if "structured:" in text]
    example = TaskCard.model_validate(yaml.safe_load((JSON_EXAMPLE / "tasks" / "orders.yaml").read_text()))
    ignored = {"description": True, "tiers": {"full": {"eval"}}}
    assert readme.model_dump(exclude=ignored) == example.model_dump(exclude=ignored)


@pytest.mark.slow
def test_the_readme_cards_pass_their_smoke_gate_as_written(tmp_path: Path) -> None:
    """Both cards in one project: the encoder card trains MiniLM (about a minute), the structured card loads the json
    example's committed adapter where its key matches (else it trains, about 2 minutes on one thread); 2-4 minutes."""
    project = tmp_path / "readme_project"
    names = readme_project(project)
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTHONPATH") and not key.startswith("PYTEST_")}
    result = subprocess.run([sys.executable, "-m", "pytest", "-m", "smoke", "-p", "no:cacheprovider", "-rA"],
                            cwd=project, env={**env, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
                                              "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=1800)
    output = result.stdout[-6000:] + result.stderr[-3000:]
    assert result.returncode == 0, output
    assert sorted(names) == ["orders", "reviews"]
    for name in names:
        assert f"{name}/tiny: PASS  " in result.stdout, output
    assert "orders/tiny: PASS  base tiny:orders, adapter adapters/orders/tiny/" in result.stdout, output
    assert "iris/tiny" not in result.stdout, "a built-in task was gated"
