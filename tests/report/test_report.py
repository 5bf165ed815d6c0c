"""Reports: the figures are well-formed SVG, report.html is one self-contained file that escapes model output and
shows every gate, summary.md carries the gated metrics, the JUnit XML gets the numbers, and the same seed on
CPU gives the same adapter bytes and the same report numbers."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import re
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from xml.etree import ElementTree

import pytest

from loragate.card.options import RunOptions
from loragate.gates.checks import Subgroup, checks_from, run_gates
from loragate.metrics import plots
from loragate.plugin.hooks import SESSION, pytest_runtest_teardown, pytest_terminal_summary
from loragate.plugin.session import GateSession
from loragate.report.writer import render, write_report
from loragate.run.task_run import TaskRun
from tests.report.conftest import MALICIOUS

LABELS = ["setosa", "versicolor", "virginica"]
SVG = "{http://www.w3.org/2000/svg}"


def svg_texts(svg: str) -> list[str]:
    """Every text an SVG draws, after parsing it as XML: a malformed figure raises."""
    root = ElementTree.fromstring(svg)
    assert root.tag == f"{SVG}svg" and float(root.get("width")) > 100 and float(root.get("height")) > 100
    return [element.text for element in root.iter(f"{SVG}text")]


def test_confusion_svg_writes_every_count_and_each_panels_accuracy() -> None:
    svg = plots.confusion_svg(LABELS, {"base": [[0, 0, 0, 10], [0, 0, 0, 10], [0, 0, 0, 10]],
                                       "tuned": [[10, 0, 0, 0], [0, 10, 0, 0], [0, 1, 9, 0]]})
    texts = svg_texts(svg)
    assert "base: accuracy 0.000 (0/30)" in texts and "tuned: accuracy 0.967 (29/30)" in texts
    assert texts.count("10") == 5 and texts.count("9") == 1 and texts.count("<invalid>") == 2
    assert texts.count("setosa") == 4  # a row and a column label in each panel
    root = ElementTree.fromstring(svg)
    assert float(root.get("width")) > float(root.get("height"))  # side by side


def test_confusion_svg_refuses_a_matrix_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"tuned: confusion matrix has shape 3x3,3,3; expected 3 rows"):
        plots.confusion_svg(LABELS, {"tuned": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]})


def test_per_class_svg_draws_each_bar_its_value_and_the_floor() -> None:
    svg = plots.per_class_svg(["a", "b"], {"base": {"a": 0.0, "b": 0.5}, "tuned": {"a": 1.0, "b": 0.9}},
                              {"a": 3, "b": 4}, floor=0.5)
    texts = svg_texts(svg)
    assert {"0.00", "0.50", "1.00", "0.90", "a (n=3)", "b (n=4)", "floor 0.50", "base", "tuned"} <= set(texts)
    assert svg.count('stroke-dasharray') == 2  # the floor and its legend entry


def test_figures_escape_what_users_name() -> None:
    labels = [MALICIOUS, "b&c\x1b"]  # and a control character, which XML forbids even escaped
    figures = [plots.confusion_svg(labels, {"tuned": [[1, 0, 0], [0, 1, 0]]}),
               plots.per_class_svg(labels, {"tuned": {MALICIOUS: 1.0, labels[1]: 0.5}}, {MALICIOUS: 1, labels[1]: 1})]
    for svg in figures:
        assert MALICIOUS not in svg and "<script" not in svg
        assert any(text.startswith(MALICIOUS) for text in svg_texts(svg))


@pytest.mark.parametrize(("curve", "eval_loss"), [([5.3, 0.4, 0.01], 0.03), ([2.0, 1.9], None), ([0.7], float("nan")),
                                                  ([1.2, float("nan"), 0.9, float("inf"), 0.8], 0.85)])
def test_loss_svg_is_well_formed_and_the_same_data_gives_the_same_text(curve: list[float],
                                                                        eval_loss: float | None) -> None:
    svg = plots.loss_svg(curve, eval_loss)
    texts = svg_texts(svg)
    assert f"training loss, {len(curve)} steps" in texts
    assert ("eval loss" in svg) == (eval_loss is not None and math.isfinite(eval_loss))
    assert "nan" not in svg.replace("eval loss nan", "") and "inf" not in svg
    assert plots.loss_svg(curve, eval_loss) == svg


def test_loss_svg_scales_a_decade_logarithmically_with_perplexity_on_the_right() -> None:
    texts = svg_texts(plots.loss_svg([5.3, 0.4, 0.01], 0.03))
    assert {"0.01", "0.1", "1"} <= set(texts)  # log ticks
    assert {"1.01", "1.1", "2", "10", "100"} <= set(texts)  # perplexities at exp(loss)
    linear = svg_texts(plots.loss_svg([2.0, 1.9, 1.5]))
    assert "1.6" in linear and "0.01" not in linear


def drawn_inside(svg: str) -> bool:
    """Every text's anchor inside the figure, with room for a slanted or centred label to reach no further left
    than 0 or right than the width (estimated from the text's length, as plots.text_width does)."""
    root = ElementTree.fromstring(svg)
    width = float(root.get("width"))
    for element in root.iter(f"{SVG}text"):
        x, size, anchor = float(element.get("x")), float(element.get("font-size")), element.get("text-anchor")
        extent = plots.text_width(element.text, size) * (plots.COS_35 if element.get("transform") else 1)
        low, high = {"start": (x, x + extent), "end": (x - extent, x),
                     "middle": (x - extent / 2, x + extent / 2)}[anchor]
        if "rotate(-90" in (element.get("transform") or "") or "rotate(90" in (element.get("transform") or ""):
            low, high = x - size, x + size
        if low < -1 or high > width + 1:
            return False
    return True


def test_titles_and_slanted_names_stay_inside_the_figure() -> None:
    labels = ["positive", "negative"]
    matrix = [[400, 36, 0], [40, 396, 0]]
    assert drawn_inside(plots.confusion_svg(labels, {"base": matrix, "baseline": matrix, "tuned": matrix}))
    names = ["billing_and_payments", *(f"class {i}" for i in range(7))]
    assert drawn_inside(plots.per_class_svg(names, {"tuned": {name: 0.5 for name in names}},
                                            {name: 120 for name in names}))


def test_a_flat_loss_curve_is_drawn_flat() -> None:
    root = ElementTree.fromstring(plots.loss_svg([1.0, 1.0 + 1e-12]))
    (line,) = root.iter(f"{SVG}polyline")
    heights = [float(point.split(",")[1]) for point in line.get("points").split()]
    assert max(heights) - min(heights) < 1


def test_loss_svg_shows_the_eval_curve() -> None:
    svg = plots.loss_svg([3.0, 2.0, 1.0, 0.5], eval_curve=[[2, 1.5], [4, 0.7]])
    assert svg.count("<circle") == 2 and "eval loss (last) 0.7000 (perplexity 2.014)" in svg_texts(svg)


def test_loss_svg_refuses_an_empty_curve() -> None:
    with pytest.raises(ValueError, match="loss_curve is empty"):
        plots.loss_svg([])


def report_numbers(report_dir: Path) -> dict:
    """Everything in report.json that the seed decides: not timings, not where the adapter was written."""
    (run,) = json.loads((report_dir / "report.json").read_text())["runs"]
    seeded = ("passed", "base", "data_hash", "ceiling", "metrics", "gated", "gates", "invalid_tuned_outputs",
              "predictions")
    return {key: run[key] for key in seeded} | {"adapter_sha256": run["adapter"]["sha256"]}


@pytest.mark.slow
def test_the_same_seed_gives_the_same_adapter_and_report_numbers(two_runs, tmp_path: Path) -> None:
    first, second = two_runs
    assert first.trained is not None and second.trained is not None
    assert first.adapter_dir != second.adapter_dir
    files = [hashlib.sha256((run.adapter_dir / "adapter_model.safetensors").read_bytes()).hexdigest()
             for run in two_runs]
    assert files[0] == files[1] == first.manifest.adapter_sha256 == second.manifest.adapter_sha256
    assert first.manifest.loss_curve == second.manifest.loss_curve
    numbers = [report_numbers(write_report([run], tmp_path / name)) for run, name in zip(two_runs, ("a", "b"))]
    assert numbers[0] == numbers[1]
    assert numbers[0]["metrics"]["tuned"]["accuracy"] > 0.5  # a trained adapter, not two identical failures


@pytest.fixture(scope="module")
def hostile_report(hostile_run: TaskRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report([hostile_run], tmp_path_factory.mktemp("reports"))


@pytest.mark.slow
def test_report_dir_holds_every_file(hostile_report: Path) -> None:
    assert sorted(p.name for p in hostile_report.iterdir()) == [
        "iris-tiny-confusion.svg", "iris-tiny-loss.svg", "iris-tiny-per-class.svg",
        "rendered.json", "report.html", "report.json", "report.md", "summary.md"]
    assert not [p for p in hostile_report.parent.iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.slow
def test_html_is_self_contained_and_embeds_the_figures(hostile_report: Path) -> None:
    page = (hostile_report / "report.html").read_text()
    assert not re.search(r"""(?:src|href|action)\s*=\s*["']?\s*(?:[a-z]+:)?//""", page, re.I), "external reference"
    assert "url(" not in page and "@import" not in page and "<link" not in page and "<script" not in page
    sources = re.findall(r'<img src="([^"]*)"', page)
    assert len(sources) == len(list(hostile_report.glob("*.svg"))) == 3
    embedded = []
    for source in sources:
        assert source.startswith("data:image/svg+xml;base64,")
        embedded.append(base64.b64decode(source.split(",", 1)[1], validate=True).decode())
        svg_texts(embedded[-1])
    assert sorted(embedded) == sorted(p.read_text() for p in hostile_report.glob("*.svg"))


@pytest.mark.slow
def test_html_escapes_model_output(hostile_report: Path) -> None:
    page = (hostile_report / "report.html").read_text()
    assert MALICIOUS not in page
    assert html.escape(repr(MALICIOUS)) in page  # shown, as text, in the invalid-outputs table


@pytest.mark.slow
def test_html_shows_every_gate_and_the_verdict(hostile_run: TaskRun, hostile_report: Path) -> None:
    page = (hostile_report / "report.html").read_text()
    assert not hostile_run.passed
    for result in hostile_run.gates:
        assert f"<td>{html.escape(result.check)}</td>" in page
        if result.finding or result.evidence:
            assert html.escape(result.finding or result.evidence) in page
    assert "validity rate 0.967 &lt; required 1.000" in page
    assert hostile_run.base.fingerprint[:12] in page and "FAIL" in page


@pytest.mark.slow
def test_summary_md_has_the_gated_metrics_table(hostile_report: Path) -> None:
    summary = (hostile_report / "summary.md").read_text()
    assert "### iris/tiny: FAIL" in summary
    assert "| gate | reference | tuned | delta | CI | required | p / adjusted p (family) | result |" in summary
    assert re.search(r"^\| accuracy delta \| 0\.000 \| 0\.\d{3} \| \+0\.\d{3} \| 95% \[\+0\.\d{3}, \+\d\.\d{3}\] \| "
                     r"CI lower bound >= \+0\.050 \| [\d.e-]+ / [\d.e-]+ \(\d+\) \| PASS \|$", summary, re.M), summary
    assert "- **FAIL** validity: validity rate 0.967 < required 1.000" in summary


@pytest.mark.slow
def test_report_json_carries_every_prediction(hostile_run: TaskRun, hostile_report: Path) -> None:
    (run,) = json.loads((hostile_report / "report.json").read_text())["runs"]
    predictions = run["predictions"]
    assert [p["id"] for p in predictions] == hostile_run.tuned_predictions.ids
    assert predictions[0]["tuned"] is None and predictions[0]["tuned_output"] == MALICIOUS
    assert all(p["base"] is None for p in predictions)  # the tiny base never answers a label
    assert sum(p["tuned"] == p["gold"] for p in predictions) == round(hostile_run.tuned_metrics.accuracy * 30)


def fake_config(run: TaskRun, report_dir: Path) -> SimpleNamespace:
    session = GateSession(RunOptions(), ["iris"], report_dir)
    session.runs[("iris", "tiny")] = run
    return SimpleNamespace(stash={SESSION: session})


@pytest.mark.slow
def test_gate_tests_get_junit_properties(hostile_run: TaskRun, tmp_path: Path) -> None:
    config = fake_config(hostile_run, tmp_path)
    gate_test = SimpleNamespace(config=config, callspec=SimpleNamespace(params={"gate_case": ("iris", "tiny")}),
                                user_properties=[])
    plain_test = SimpleNamespace(config=config, user_properties=[])
    pytest_runtest_teardown(gate_test)
    pytest_runtest_teardown(plain_test)
    properties = dict(gate_test.user_properties)
    assert plain_test.user_properties == []
    assert properties["loragate.task"] == "iris" and properties["loragate.tier"] == "tiny"
    assert properties["loragate.card_gates"] == "FAIL"
    accuracy = hostile_run.tuned_metrics.accuracy
    assert properties["loragate.accuracy.tuned"] == round(accuracy, 6)
    assert properties["loragate.accuracy.delta"] == round(accuracy - hostile_run.base_metrics.accuracy, 6)
    assert {"loragate.macro_f1.base", "loragate.macro_f1.tuned", "loragate.macro_f1.delta"} <= properties.keys()


@pytest.mark.slow
def test_summary_is_appended_to_the_github_step_summary(hostile_run: TaskRun, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    step_summary = tmp_path / "step_summary.md"
    step_summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    written: list[str] = []
    terminal = SimpleNamespace(section=lambda title: written.append(title), write_line=written.append)
    pytest_terminal_summary(terminal, fake_config(hostile_run, tmp_path / "reports"))
    (report,) = (tmp_path / "reports").iterdir()
    assert step_summary.read_text() == "earlier step\n" + (report / "summary.md").read_text()
    assert f"report: {report / 'report.md'}" in written


@pytest.mark.slow
def test_a_text_task_report_shows_its_metrics_samples_and_eval_curve(instruct_run: TaskRun, tmp_path: Path) -> None:
    report_dir = write_report([instruct_run], tmp_path)
    assert sorted(p.name for p in report_dir.iterdir()) == [
        "instruct-tiny-loss.svg", "rendered.json", "report.html", "report.json", "report.md", "summary.md"]
    (run,) = json.loads((report_dir / "report.json").read_text())["runs"]
    first = run["predictions"][0]
    assert first["references"] == list(instruct_run.splits.test[0].references)
    assert {"base_rougeL", "tuned_rougeL", "base_perplexity", "tuned_perplexity"} <= set(first)
    assert run["metrics"]["tuned"]["values"]["perplexity"] < run["metrics"]["base"]["values"]["perplexity"]
    page = (report_dir / "report.html").read_text()
    assert "Tuned answers, worst perplexity first (60)" in page
    assert html.escape(repr(instruct_run.tuned_predictions.outputs[0])) in page
    summary = (report_dir / "summary.md").read_text()
    assert "| perplexity delta |" in summary and "| rougeL delta |" in summary, summary


def without_meteor(metrics, reason: str):
    """`metrics` as a machine without WordNet computes them: METEOR unavailable, with the reason."""
    values = {k: v for k, v in metrics.values.items() if k != "meteor"}
    per_example = {k: v for k, v in metrics.per_example.items() if k != "meteor"}
    return replace(metrics, values=values, per_example=per_example, unavailable={"meteor": reason})


@pytest.mark.slow
def test_an_unavailable_metric_is_shown_with_its_reason_by_every_renderer(instruct_run: TaskRun,
                                                                          tmp_path: Path) -> None:
    """The fresh-machine crash: METEOR n/a made report.html raise, and no task got a report. Every renderer
    shows it as unavailable with the reason, and a gate on it fails saying why instead of raising."""
    reason = "METEOR needs WordNet's synonyms <none here>"
    base, tuned = (without_meteor(m, reason) for m in (instruct_run.base_metrics, instruct_run.tuned_metrics))
    card = instruct_run.task.card
    gates = card.gates.model_copy(update={"min_delta": {**card.gates.min_delta, "meteor": 0.05}})
    run = replace(instruct_run, base_metrics=base, tuned_metrics=tuned,
                  gates=run_gates(checks_from(gates), tuned, base),
                  task=SimpleNamespace(card=card.model_copy(update={"gates": gates})))
    (meteor_gate,) = [g for g in run.gates if g.check == "meteor delta"]
    assert not meteor_gate.passed and "meteor is unavailable: METEOR needs WordNet" in meteor_gate.finding
    report_dir = write_report([run], tmp_path)
    table = render(run).table
    assert re.search(r"METEOR\s+n/a\s+n/a\s+n/a", table) and f"note: METEOR unavailable: {reason}" in table
    for name in ("report.md", "summary.md"):
        assert f"METEOR unavailable: {reason}" in (report_dir / name).read_text(), name
    page = (report_dir / "report.html").read_text()
    assert html.escape(f"METEOR unavailable: {reason}") in page and "<td>METEOR</td>" in page
    (entry,) = json.loads((report_dir / "report.json").read_text())["runs"]
    assert entry["metrics"]["tuned"]["unavailable"] == {"meteor": reason}
    assert f"METEOR unavailable: {reason}" in entry["notes"]
    config = fake_config(run, tmp_path)
    test = SimpleNamespace(config=config, callspec=SimpleNamespace(params={"gate_case": ("iris", "tiny")}),
                           user_properties=[])
    pytest_runtest_teardown(test)
    assert dict(test.user_properties)["loragate.meteor.unavailable"] == reason


@pytest.mark.slow
def test_one_run_that_cannot_be_rendered_costs_neither_the_others_nor_the_verdict(
        hostile_run: TaskRun, instruct_run: TaskRun, tmp_path: Path) -> None:
    broken = replace(instruct_run, tuned_predictions=replace(instruct_run.tuned_predictions, ids=["other"]))
    session = GateSession(RunOptions(), ["iris", "instruct"], tmp_path / "reports")
    session.runs[("iris", "tiny")] = hostile_run
    session.runs[("instruct", "tiny")] = broken
    finished = session.finish()
    assert finished.report is not None
    names = [run["task"] for run in json.loads((finished.report / "report.json").read_text())["runs"]]
    assert names == ["iris", "instruct"]
    (error,) = finished.errors
    assert error.startswith("instruct/tiny: FAIL  its report could not be rendered: ValueError")
    assert "instruct/tiny: FAIL" in (finished.report / "summary.md").read_text()


@pytest.mark.slow
def test_a_report_that_cannot_be_written_is_an_error_after_the_tables(hostile_run: TaskRun, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    session = GateSession(RunOptions(), ["iris"], blocker / "reports")
    session.runs[("iris", "tiny")] = hostile_run
    finished = session.finish()
    assert finished.report is None and len(finished.runs) == 1
    (error,) = finished.errors
    assert f"the report could not be written to {blocker / 'reports'}" in error


@pytest.mark.slow
def test_the_trivial_predictor_and_subgroups_are_in_every_table(instruct_run: TaskRun, tmp_path: Path) -> None:
    """The constant predictor's numbers sit under base and tuned, and each subgroup has its rows, in the terminal
    table, report.md, summary.md and report.json."""
    run = replace(instruct_run, subgroups=[Subgroup("domain=geo", instruct_run.tuned_metrics.n,
                                                    instruct_run.base_metrics, instruct_run.tuned_metrics)])
    rouge = run.constant_metrics.value("rougeL")
    line = f"trivial predictor, {run.constant.name}: ROUGE-L {rouge:.3f}"
    table = render(run).table
    assert line in table and "perplexity" not in line, table
    base_rouge = run.base_metrics.value("rougeL")
    assert re.search(rf"domain=geo \(n={run.tuned_metrics.n}\): ROUGE-L\s+{base_rouge:.3f}", table)
    report_dir = write_report([run], tmp_path)
    for name in ("report.md", "summary.md"):
        assert line in (report_dir / name).read_text(), name
    (entry,) = json.loads((report_dir / "report.json").read_text())["runs"]
    assert entry["trivial_predictor"]["name"] == run.constant.name
    assert entry["trivial_predictor"]["metrics"]["rougeL"] == pytest.approx(rouge)
    assert [g["name"] for g in entry["subgroups"]] == ["domain=geo"]
