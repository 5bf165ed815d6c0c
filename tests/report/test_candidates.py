"""The candidates' ranking (loragate.report.candidates) and its place in report.html: ranked in the metric's direction,
a candidate whose metric is unavailable ranked last as n/a rather than stopping the report of every run, and the
page's verdict as the run's (an outdone candidate under --pick-best does not fail it)."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from loragate.card.options import RunOptions
from loragate.gates.verdict import Verdict
from loragate.metrics.text import MetricUnavailable
from loragate.report.candidates import group_json, group_lines, group_markdown
from loragate.report.writer import RenderedRun, render, write_rendered
from loragate.run.candidates import run_candidates

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = next((ROOT / "adapters" / "iris" / "tiny").glob("*/adapter_model.safetensors")).parent


class Values:
    """A run's tuned metrics, as the ranking reads them: a value, or MetricUnavailable where it is None."""

    def __init__(self, metric: str, value: float | None) -> None:
        self.metric, self.number = metric, value

    def value(self, metric: str) -> float:
        assert metric == self.metric
        if self.number is None:
            raise MetricUnavailable(f"{metric} is unavailable: no text to score")
        return self.number


def run(candidate: str, metric: str, value: float | None, status: str = "PASS") -> SimpleNamespace:
    """A candidate's run of task t/tiny, as the ranking reads it, gated on `metric`."""
    card = SimpleNamespace(name="t", candidates=None, gates=SimpleNamespace(min_delta={metric: 0.0}))
    return SimpleNamespace(candidate=candidate, tier="tiny", task=SimpleNamespace(card=card), adapter_dir=None,
                           tuned_metrics=Values(metric, value), verdict=Verdict(status))


def test_a_lower_is_better_metric_ranks_the_lowest_first() -> None:
    group = group_json([run("high", "perplexity", 9.0, "FAIL"), run("low", "perplexity", 3.0, "FAIL")], False)
    assert [entry["candidate"] for entry in group["ranking"]] == ["low", "high"]


def test_a_candidate_whose_metric_is_unavailable_is_ranked_last_as_n_a() -> None:
    """One candidate that could not compute the ranking metric used to stop the report of every run (the ranking
    raised at the end of the session); it is ranked last, shown as n/a, and not compared with the best."""
    group = group_json([run("none", "accuracy", None, "FAIL"), run("nan", "accuracy", float("nan"), "FAIL"),
                        run("a", "accuracy", 0.5, "FAIL")], False)
    assert [(entry["candidate"], entry["value"]) for entry in group["ranking"]] == [("a", 0.5), ("none", None),
                                                                                    ("nan", None)]
    assert group["best"] is None and group["best_vs_runner_up"] is None
    assert "  2. none  n/a  FAIL" in group_lines(group)
    assert "| 2 | none | n/a | FAIL |" in group_markdown(group)


def rendered(candidate: str, verdict: str) -> RenderedRun:
    name = f"t/tiny[{candidate}]"
    return RenderedRun(task="t", tier="tiny", verdict=verdict, table=f"{name}: {verdict}",
                       json={"task": "t", "tier": "tiny", "candidate": candidate, "verdict": verdict},
                       markdown=f"## {name}\n", html=f"<section><h2>{name}</h2></section>", summary=f"### {name}\n",
                       plots=(), candidate=candidate)


def test_report_html_shows_the_candidates_and_the_run_verdict_under_pick_best(tmp_path: Path) -> None:
    """report.html had no candidates section, and its headline badge said FAIL where --pick-best passed the run."""
    group = {"task": "t", "tier": "tiny", "metric": "accuracy", "pick": "best", "passed": True, "verdict": "PASS",
             "best": "a", "runner_up": "b", "best_vs_runner_up": None, "ship": "a", "failed": ["b"],
             "ranking": [{"candidate": "a", "value": 0.9, "verdict": "PASS", "adapter": None},
                         {"candidate": "b", "value": None, "verdict": "FAIL", "adapter": None}]}
    report = write_rendered([rendered("a", "PASS"), rendered("b", "FAIL")], tmp_path, {"commit": None}, [group])
    page = (report / "report.html").read_text()
    assert '<h1>loragate report <span class="badge pass">PASS</span></h1>' in page
    assert "Candidates t/tiny" in page and "best that passes: a; ship a" in page
    assert '<td class="num">n/a</td><td><span class="badge fail">FAIL</span></td>' in page
    unexcused = write_rendered([rendered("a", "PASS"), rendered("b", "FAIL")], tmp_path / "all", {"commit": None},
                               [{**group, "pick": "all", "passed": False, "verdict": "FAIL", "ship": None}])
    assert '<h1>loragate report <span class="badge fail">FAIL</span></h1>' in (unexcused / "report.html").read_text()


@pytest.mark.slow
def test_each_candidate_writes_its_own_figures(tmp_path: Path) -> None:
    """Two candidates of iris/tiny wrote one iris-tiny-confusion.svg: the second overwrote the first, and report.md
    showed both candidates the second one's confusion matrix."""
    for name in ("a", "b"):
        shutil.copytree(COMMITTED, tmp_path / name)
    options = RunOptions(candidates=(("a", tmp_path / "a"), ("b", tmp_path / "b")), cache=tmp_path / "cache",
                         progress=False)
    runs = [render(run) for run in run_candidates("iris", "tiny", options).values()]
    files = [[plot.file for plot in run.plots] for run in runs]
    assert "iris-tiny-a-confusion.svg" in files[0] and "iris-tiny-b-confusion.svg" in files[1]
    report = write_rendered(runs, tmp_path / "reports", {"commit": None})
    assert (report / "iris-tiny-a-confusion.svg").is_file() and (report / "iris-tiny-b-confusion.svg").is_file()
    assert "iris-tiny-b-confusion.svg" in (report / "report.md").read_text()
