"""A user's project whose card reads a CSV file as it comes (no header row, numeric class labels, AG News's layout:
class index, title, description) and names the labels in the card (`labels: {1: World, ...}`): `pytest -m smoke`
gates it end to end on the tiny tier, and every table and report reads the names, never the numbers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

TOPICS = {1: "World", 2: "Sports", 3: "Business"}
WORDS = {1: ["leaders", "summit", "embassy", "treaty"], 2: ["match", "goal", "coach", "league"],
         3: ["stocks", "market", "profits", "shares"]}
CARD = {
    "name": "news", "description": "The topic of a news item.", "kind": "generative_classification",
    "labels": TOPICS, "prompt_template": "{title}\nTopic:", "target_template": " {label}",
    "data": {"file": "../data/news.csv", "split": {"test": 0.25, "eval": 0.15, "seed": 0}, "header": False,
             "names": ["topic", "title", "description"], "columns": {"label": "topic"}},
    "tiers": {"tiny": {"base_model": "tiny",
                       "lora": {"r": 8, "alpha": 16, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]},
                       "train": {"epochs": 6, "batch_size": 8, "lr": 5.0e-3, "seed": 0}}},
    "gates": {"min_delta": {"accuracy": 0.3}, "min_validity": 0.9},
}


def write_project(project: Path) -> None:
    """The card, and 120 headerless rows: `index,"title","description"`, the title's words telling the topic."""
    (project / "tasks").mkdir(parents=True)
    (project / "data").mkdir()
    (project / "pyproject.toml").write_text('[tool.loragate]\ntasks = "tasks"\n\n[tool.pytest.ini_options]\n')
    (project / "tasks" / "news.yaml").write_text(yaml.safe_dump(CARD, sort_keys=False))
    rows = [f'{index},"{WORDS[index][i % 4]} {WORDS[index][(i + 1) % 4]} {i}","Item {i}, about {index}"\n'
            for i in range(40) for index in TOPICS]
    (project / "data" / "news.csv").write_text("".join(rows))


@pytest.mark.slow
def test_a_headerless_csv_with_numeric_labels_gates_and_reports_the_names(tmp_path: Path) -> None:
    project = tmp_path / "news_project"
    write_project(project)
    env = {key: value for key, value in os.environ.items() if key != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-m", "smoke", "-p", "no:cacheprovider"], cwd=project,
                            env={**env, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}, capture_output=True,
                            text=True)
    output = result.stdout[-6000:] + result.stderr[-3000:]
    assert result.returncode == 0, output
    assert "news/tiny: PASS" in result.stdout, output
    for name in TOPICS.values():
        assert re.search(rf"^    {name} \(n=\d+\) ", result.stdout, re.M), output
    (report,) = (project / "reports").iterdir()
    (run,) = json.loads((report / "report.json").read_text())["runs"]
    assert run["trivial_predictor"]["name"] in {f"majority class {name!r}" for name in TOPICS.values()}, run
    golds = {record["gold"] for record in run["predictions"]}
    assert golds == set(TOPICS.values()), "the gold labels are the names"
    markdown = (report / "report.md").read_text()
    for name in TOPICS.values():
        assert name in markdown, markdown[-3000:]
    assert not any(f"'{index}'" in markdown or f" {index} (n=" in markdown for index in TOPICS), markdown[-3000:]
    listed = re.findall(r"^  - gold: `(.*)`$", markdown, re.M)  # each wrong example with its input (report.md)
    assert set(listed) <= set(TOPICS.values()) and len(listed) == len(re.findall(r"^  - input: `title: ", markdown,
                                                                                 re.M)), markdown[-3000:]
