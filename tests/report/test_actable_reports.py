"""Every report file of a real run (issue 32, points 4 and 6): the input of each wrong or invalid tuned output beside
its outputs and gold (whole in report.json), the data the run read and its hash, throughput as one explained figure,
a fall in perplexity coloured as the gain it is, and gates changed by --set named in every verdict line."""

from __future__ import annotations

import html
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from loragate.report.examples import example_input
from loragate.report.writer import render, write_report
from loragate.run.task_run import TaskRun
from tests.report.conftest import MALICIOUS


def files(report_dir: Path) -> dict[str, str]:
    return {name: (report_dir / name).read_text() for name in ("report.md", "report.html", "summary.md")}


@pytest.mark.slow
def test_each_wrong_or_invalid_output_is_shown_with_its_input(hostile_run: TaskRun, tmp_path: Path) -> None:
    report_dir = write_report([hostile_run], tmp_path)
    text = files(report_dir)
    first = hostile_run.splits.test[0]  # its tuned output is the markup: it did not parse
    shown = "\n".join(f"{name}: {value}" for name, value in example_input(first, hostile_run.task.card.prompt_template)
                      .items())
    assert shown.startswith("sepal_length: ")
    assert f"- `{first.id}`: did not parse: " in text["report.md"]
    assert f"  - input: `{shown.replace(chr(10), ' ⏎ ')}`\n  - gold: `{first.label}`\n" in text["report.md"]
    assert f"  - tuned: `{MALICIOUS!r}`" in text["report.md"]
    assert f"<td>{'<br>'.join(html.escape(line) for line in shown.split(chr(10)))}</td><td>{first.label}</td>" \
        in text["report.html"]
    wrong = [i for i, gold, p in zip(hostile_run.tuned_predictions.ids, hostile_run.tuned_metrics.gold,
                                     hostile_run.tuned_metrics.predicted) if p is not None and p != gold]
    for example_id in wrong:
        assert f"- `{example_id}`: wrong (accuracy)" in text["report.md"]
    (run,) = json.loads((report_dir / "report.json").read_text())["runs"]
    assert run["predictions"][0]["input"] == {name: first.fields[name] for name in
                                              ("sepal_length", "sepal_width", "petal_length", "petal_width")}


@pytest.mark.slow
def test_the_data_and_throughput_are_named_in_every_report(hostile_run: TaskRun, tmp_path: Path) -> None:
    report_dir = write_report([hostile_run], tmp_path)
    text = files(report_dir)
    data_hash = hostile_run.splits.data_hash()
    line = f"data: the task module's own data (loragate.tasks.iris) (data hash {data_hash[:12]})"
    for name in ("report.md", "summary.md"):
        assert line in text[name], name
    assert html.escape(line.removeprefix("data: ")) in text["report.html"]
    (run,) = json.loads((report_dir / "report.json").read_text())["runs"]
    assert run["data"] == {"sources": ["the task module's own data (loragate.tasks.iris)"], "hash": data_hash}
    figures = run["throughput"]
    assert figures["base"]["examples"] == figures["tuned"]["examples"] == 30
    assert figures["tuned_over_base"] == pytest.approx(figures["tuned"]["examples_per_s"]
                                                       / figures["base"]["examples_per_s"], rel=1e-3)
    assert figures["measured"].startswith("the run's own prediction passes over the 30 test examples")
    for name in ("report.md", "report.html"):
        assert re.search(r"base: [\d.]+ examples/s, \d+ tokens/s \(30 in [\d.]+ s\)", text[name]), name
        assert "tuned / base: " in text[name] and "test_evaluation_throughput" in text[name], name


@pytest.mark.slow
def test_a_fall_in_perplexity_is_coloured_as_a_gain(instruct_run: TaskRun) -> None:
    page = render(instruct_run).html
    base, tuned = (m.value("perplexity") for m in (instruct_run.base_metrics, instruct_run.tuned_metrics))
    assert tuned < base
    assert f'<td>perplexity</td><td class="num">{base:.3f}</td><td class="num">{tuned:.3f}</td><td class="num">' \
           f'<span class="better">{tuned - base:+.3f}</span></td>' in page


@pytest.mark.slow
def test_gates_changed_by_set_are_named_by_every_verdict_line(two_runs: tuple[TaskRun, TaskRun],
                                                              tmp_path: Path) -> None:
    """`--set gates.min_field_score=0` turned a FAIL into "All 6 gates passed", marked by a note alone."""
    run = replace(two_runs[0], overrides=("tiers.tiny.train.epochs=5", "gates.min_validity=0.5"))
    line = "iris/tiny: PASS with gates changed by --set: gates.min_validity=0.5"
    assert render(run).table.startswith(line)
    report_dir = write_report([run], tmp_path)
    text = files(report_dir)
    assert f"## {line}" in text["report.md"] and f"### {line}" in text["summary.md"]
    assert "gates passed, under gates changed by --set: gates.min_validity=0.5." in text["summary.md"]
    assert html.escape("PASS with gates changed by --set: gates.min_validity=0.5") in text["report.html"]
    (entry,) = json.loads((report_dir / "report.json").read_text())["runs"]
    assert entry["verdict"] == "PASS" and entry["gates_overridden"] == ["gates.min_validity=0.5"]
