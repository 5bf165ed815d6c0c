"""A kind is one package: a toy kind (a number as the answer, scored by mean absolute error) defined in a temporary
project, outside loragate, registers everything it adds from its own package (its card block, its metrics, its
table order) and runs through the whole pipeline and report: card, data, tiny base, training, predictions,
metrics, gates, report.json/md. docs/add-a-kind.md walks through the same code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

KIND_INIT = '''\
"""A toy kind: the model answers with a number, scored by mean absolute error."""

from pydantic import Field

from loragate.card.settings import Strict
from loragate.kinds.registry import KINDS, KindSpec
from loragate.metrics.registry import METRICS, MetricSpec


class NumericSettings(Strict):
    """The card's `numeric:` block."""

    max_error: float = Field(100.0, gt=0, description="the error an answer that is not a number counts as")


METRICS.register("mae", MetricSpec("mae", "mean absolute error", False, "mean", scale=">= 0"))
METRICS.register("within_one", MetricSpec("within_one", "within 1", True, "mean", right_or_wrong=True))
KINDS.register("numeric_answer", KindSpec("numeric_answer", "CAUSAL_LM", encoder=False, labels=False,
                                          block="numeric", block_model=NumericSettings,
                                          metrics=("mae", "within_one"), package=__name__))
'''

KIND_PIPELINE = '''\
"""The toy kind's pipeline: a causal LM writes a number after the prompt (loragate's causal base does the rest)."""

from __future__ import annotations

from pydantic import BaseModel

from loragate.data.card_files import prompt_fields, text_value
from loragate.data.examples import Example
from loragate.data.parsing import ParsedOutput
from loragate.kinds.causal import CausalKind
from loragate.kinds.trivial_predictors import most_common_response
from loragate.kinds.registry import KINDS
from loragate.kinds.text_report import TextReport
from loragate.metrics.scores import TextMetrics


class Number(BaseModel):
    value: float


class NumericAnswer(TextReport, CausalKind):
    spec = KINDS.get("numeric_answer")

    def budget(self, task, tier, base):
        return 4, None  # a few tokens; no label list stops a row early

    def score(self, task, predictions) -> TextMetrics:
        max_error = task.card.block("numeric").max_error
        errors = [abs(parsed.value.value - float(gold)) if parsed.valid else max_error
                  for parsed, gold in zip(predictions.parsed, predictions.gold)]
        within = [float(error <= 1) for error in errors]
        n = len(errors)
        return TextMetrics(n=n, values={"mae": sum(errors) / n, "within_one": sum(within) / n},
                           per_example={"mae": errors, "within_one": within},
                           validity_rate=sum(p.valid for p in predictions.parsed) / n,
                           empty_outputs=sum(not out.strip() for out in predictions.outputs), ids=list(predictions.ids),
                           outputs=list(predictions.outputs), references=[[gold] for gold in predictions.gold])

    def constant(self, task, examples):
        return most_common_response(task, examples, "number")

    def subgroups(self, task, examples):
        return {}

    def card_example(self, card, row_id, row, source) -> Example:
        answer = text_value(row, "answer", source, "the gold number")
        fields = prompt_fields(card, row, source)
        return Example(id=row_id, prompt=card.prompt_template.format(**fields),
                       target=card.target_template.format(answer=answer), label=answer, fields=fields,
                       references=(answer,))

    def card_parse(self, card, text) -> ParsedOutput:
        try:
            return ParsedOutput(Number(value=float(text.strip())), None)
        except ValueError:
            return ParsedOutput(None, f"not a number: {text.strip()[:20]!r}")


KIND = NumericAnswer()
'''

CARD = '''\
name: prices
description: the price of an item from its colour and size, as a number
kind: numeric_answer
prompt_template: "price of a {size} {colour} item:"
target_template: " {answer}"
numeric: {max_error: 50}
data: {file: prices.jsonl, split: {test: 0.25, eval: 0.15, seed: 0}}
tiers:
  tiny:
    base_model: tiny
    lora: {r: 8, alpha: 16, target_modules: [q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj]}
    train: {epochs: 6, batch_size: 8, lr: 0.003, max_length: 24}
    eval: {batch_size: 32}
gates:
  min_delta: {mae: 5.0, within_one: 0.3}
  # over the constant, within_one's +0.8 on the test split's 10 distinct items (each twice) is [+0.216, +0.950] on
  # the score interval of right/wrong scores: 10 items can show 0.2, not 0.3
  min_delta_over_trivial: {mae: 5.0, within_one: 0.2}
  max_leakage: null  # ten items, each priced many times: test inputs repeat train inputs by design
'''

PRICES = {"red": 10, "green": 20, "blue": 30, "black": 40, "white": 50}


def write_project(root: Path) -> None:
    """A user's project: the kind's package, a tasks module that imports it (registering the kind), the card and its
    data, and a pyproject that names the tasks directory."""
    (root / "numeric_answer").mkdir()
    (root / "numeric_answer" / "__init__.py").write_text(KIND_INIT)
    (root / "numeric_answer" / "pipeline.py").write_text(KIND_PIPELINE)
    (root / "tasks").mkdir()
    (root / "tasks" / "kinds.py").write_text("import numeric_answer  # noqa: F401  (registers the kind)\n")
    (root / "tasks" / "prices.yaml").write_text(CARD)
    rows = [{"id": f"item-{i}", "colour": colour, "size": size, "answer": price + (5 if size == "large" else 0)}
            for i, (colour, price, size) in enumerate((c, p, s) for _ in range(8) for c, p in PRICES.items()
                                                    for s in ("small", "large"))]
    (root / "tasks" / "prices.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (root / "pyproject.toml").write_text('[tool.loragate]\ntasks = "tasks"\n\n[tool.pytest.ini_options]\n'
                                         'pythonpath = ["."]\n')


@pytest.mark.slow
def test_a_kind_defined_outside_loragate_runs_through_the_whole_gate(tmp_path: Path) -> None:
    write_project(tmp_path)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    result = subprocess.run([sys.executable, "-m", "pytest", "-m", "smoke", "-p", "no:cacheprovider", "-q"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert "prices/tiny: PASS" in out, out[-4000:]
    (report_dir,) = (tmp_path / "reports").iterdir()
    (run,) = json.loads((report_dir / "report.json").read_text())["runs"]
    assert run["task"] == "prices" and run["verdict"] == "PASS"
    tuned, base = run["metrics"]["tuned"]["values"], run["metrics"]["base"]["values"]
    assert set(tuned) == {"mae", "within_one"} and tuned["mae"] < base["mae"] - 5, run["metrics"]
    checks = [gate["check"] for gate in run["gates"]]
    assert {"mae delta", "within_one delta"} <= set(checks), checks  # the card's gates on the kind's metrics
    assert any(check.startswith("mae vs constant number") for check in checks), checks  # the kind's constant
    table = (report_dir / "report.md").read_text()
    rows = [line.split("|")[1].strip() for line in table.splitlines()[:12] if line.startswith("| ")]
    assert rows[1:4] == ["mean absolute error", "within 1", "validity"], table  # the kind's order, then validity
