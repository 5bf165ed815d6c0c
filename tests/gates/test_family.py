"""A run's statistical gates as one family under Holm's step-down, and INCONCLUSIVE as a verdict of its own
(issue 33, points 1 and 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import pytest

from loragate.card.settings import GateSettings
from loragate.gates.checks import MetricDelta, run_gates
from loragate.gates.family import controlled
from loragate.gates.result import NON_INFERIORITY, SUPERIORITY, Comparison, judged_on
from loragate.gates.verdict import CaseTests, judge_case
from loragate.metrics.scores import metrics_from_confusion
from loragate.report.writer import card_gates, junit_properties

ROOT = Path(__file__).resolve().parents[2]


def claim(what: str, p: float, test: str = SUPERIORITY, fail_p: float = 1.0) -> Comparison:
    """A comparison with p-value `p` whose interval [-0.10, +0.05] straddles its margin (-0.05 for a drop); a drop's
    FAIL claim has p-value `fail_p`."""
    margin = -0.05 if test == NON_INFERIORITY else 0.0
    return Comparison(what, test, 0.0, -0.10, 0.05, margin, p, 0.05, 20, 400,
                      fail_p_value=fail_p if test == NON_INFERIORITY else None)


def test_one_of_many_comparisons_passes_alone_but_not_in_the_holm_family() -> None:
    """Raw p 0.01, 0.02, 0.03, 0.04 all pass at 0.05 alone; Holm adjusts them to 0.04, 0.06, 0.06, 0.06: the accuracy
    delta (raw 0.03) fails, the drops of raw 0.02 and 0.04 are not shown under their margin and are INCONCLUSIVE."""
    results = [judged_on("accuracy delta", [claim("accuracy delta", 0.03)], "evidence", warn=False),
               judged_on("per-class regression", [claim("class 'a' accuracy", 0.01, NON_INFERIORITY),
                                                  claim("class 'b' accuracy", 0.02, NON_INFERIORITY),
                                                  claim("class 'c' accuracy", 0.04, NON_INFERIORITY)], "e", warn=False)]
    assert all(r.passed for r in results), "each alone passes"
    delta, drops = controlled(results, GateSettings())
    assert delta.status == "FAIL" and delta.finding.startswith("accuracy delta lower bound -0.100 < required"), \
        delta.finding
    assert "p=0.03, Holm p=0.06 over 4 comparisons" in delta.finding, delta.finding
    assert [c.decisive for c in drops.comparisons] == pytest.approx([0.04, 0.06, 0.06])
    assert drops.status == "INCONCLUSIVE" and "class 'a'" not in drops.finding, drops.finding
    assert drops.finding.startswith("INCONCLUSIVE: class 'b' accuracy +0.000 [-0.100, +0.050] straddles the allowed "
                                    "drop -0.050: n=20 cannot tell"), drops.finding
    assert "about 400 examples (now 20) would decide it" in drops.finding, drops.finding
    assert controlled(controlled(results, GateSettings()), GateSettings()) == [delta, drops], "idempotent"
    assert all(r.passed for r in controlled(results, GateSettings(correction="none"))), "correction: none"


def ab(a_row: list[int], b_row: list[int]):
    return metrics_from_confusion([a_row, b_row], ["a", "b"])


def test_three_deltas_each_shown_alone_are_not_shown_together() -> None:
    """Accuracy 0.6 -> 0.7 on 1000 examples: each of three metrics' lower bound clears +0.08 (raw p about 0.02 < 0.05:
    accuracy's from Tango's score test, 0.020, the recalls' from their bootstrap, 0.025), but a family of three needs
    the smallest below 0.05 / 3 first: under Holm all three fail, under correction: none all pass."""
    base, tuned = ab([300, 200], [200, 300]), ab([400, 100], [200, 300])
    metrics = ("accuracy", "macro_recall", "weighted_recall")
    for correction, passes in (("holm", False), ("none", True)):
        settings = GateSettings(judge_on="lower_bound", correction=correction)
        alone = run_gates([MetricDelta(metric, 0.08, settings) for metric in metrics], tuned, base)
        assert all(r.passed and r.numbers.low >= 0.08 for r in alone), [r.finding for r in alone]
        assert [r.comparisons[0].p_value for r in alone] == pytest.approx([0.020, 0.025, 0.025], abs=0.005)
        family = controlled(alone, settings)
        assert [r.passed for r in family] == [passes] * 3, [r.finding for r in family]
        assert all(r.comparisons[0].family == 3 for r in family)


def declared_drop(what: str, fail_p: float) -> Comparison:
    """A drop whose interval [-0.20, -0.10] lies wholly beyond its margin -0.05, its FAIL claim's raw p `fail_p`."""
    return Comparison(what, NON_INFERIORITY, -0.15, -0.20, -0.10, -0.05, 1.0, 0.05, 50, 400, fail_p_value=fail_p)


def test_a_drop_fails_only_where_its_fail_claim_survives_holm_over_the_familys_fail_claims() -> None:
    """Three drops each shown beyond the margin alone, beside a delta (whose PASS claim is not a FAIL claim): with the
    FAIL claims' raw p 0.001, 0.02, 0.03 Holm over the three adjusts them to 0.003, 0.04, 0.04: all FAIL; with 0.001,
    0.03, 0.04 to 0.003, 0.06, 0.06: two are INCONCLUSIVE, beyond the margin alone but not with their family. Under
    correction: none all three FAIL."""
    def family(*fail_ps: float, correction: str = "holm") -> list:
        drops = [declared_drop(f"class '{k}' accuracy", p) for k, p in zip("abc", fail_ps)]
        results = [judged_on("accuracy delta", [claim("accuracy delta", 0.001)], "e", warn=False),
                   judged_on("per-class regression", drops, "e", warn=False)]
        return controlled(results, GateSettings(correction=correction))[1].comparisons

    assert [c.outcome for c in family(0.001, 0.02, 0.03)] == ["FAIL"] * 3
    judged = family(0.001, 0.03, 0.04)
    assert [c.fail_decisive for c in judged] == pytest.approx([0.003, 0.06, 0.06])
    assert [c.outcome for c in judged] == ["FAIL", "INCONCLUSIVE", "INCONCLUSIVE"]
    assert all(c.fail_family == 3 and c.family == 4 for c in judged), "FAIL claims: a family of their own"
    assert "lies beyond the allowed drop -0.050 alone but not with its family's FAIL claims" in judged[1].finding(), \
        judged[1].finding()
    assert "p(drop > 0.05)=0.001, Holm p=0.003 over 3 FAIL claims" in judged[0].finding(), judged[0].finding()
    assert judged[0].shown() == pytest.approx((0.001, 0.003, 3)), "the report's p cell shows the FAIL claim"
    assert [c.outcome for c in family(0.001, 0.03, 0.04, correction="none")] == ["FAIL"] * 3


def test_a_non_inferiority_comparison_without_a_fail_claim_is_refused() -> None:
    with pytest.raises(ValueError, match="needs fail_p_value"):
        Comparison("class 'a' accuracy", NON_INFERIORITY, 0.0, -0.1, 0.1, -0.05, 0.5, 0.05, 20, 400)


def test_deltas_judged_on_the_point_and_deterministic_checks_stay_out_of_the_family() -> None:
    base, tuned = ab([300, 200], [200, 300]), ab([400, 100], [200, 300])
    on_point = run_gates([MetricDelta("accuracy", 0.05, GateSettings())], tuned, base)
    assert on_point[0].comparisons == () and "(judged on the point, not in the family)" in on_point[0].evidence
    assert controlled(on_point, GateSettings()) == on_point


def test_an_inconclusive_gate_fails_the_run_by_default_and_passes_under_warn_with_the_word_shown() -> None:
    drop = [claim("class 'a' accuracy", 0.2, NON_INFERIORITY)]
    failing = controlled([judged_on("per-class regression", drop, "e", warn=False)], GateSettings())
    assert failing[0].status == "INCONCLUSIVE" and not failing[0].passed and failing[0].word == "INCONCLUSIVE"
    verdict = judge_case([], None, undecided=[f"per-class regression: {failing[0].finding}"])
    assert verdict.status == "INCONCLUSIVE" and not verdict.passed and verdict.line == "INCONCLUSIVE"
    warned = controlled(failing, GateSettings(inconclusive="warn"))[0]
    assert warned.passed and warned.warned and warned.status == "INCONCLUSIVE", warned
    verdict = judge_case([], None, warned=["per-class regression"])
    assert verdict.passed and verdict.line == ("PASS with INCONCLUSIVE gates (gates.inconclusive: warn): per-class "
                                               "regression")
    assert judge_case(["validity: 9 of 10"], None, undecided=["per-class regression: ..."]).status == "FAIL", \
        "a FAIL beside it decides"


def test_a_gate_test_that_failed_only_undecided_makes_the_case_inconclusive_not_failed() -> None:
    ids = [f"suites/test_quality.py::test_{i}[iris-tiny]" for i in range(2)]
    tests = CaseTests(collected=ids, outcomes={ids[0]: "passed"})
    tests.record(ids[1], "inconclusive")
    tests.record(ids[1], "passed")  # its teardown does not clear it
    assert tests.inconclusive() == [ids[1]] and tests.failed() == []
    assert judge_case([], tests).status == "INCONCLUSIVE"
    tests.record(ids[1], "failed")
    assert judge_case([], tests).status == "FAIL", "a failure in another phase is a failure"


def test_the_junit_properties_say_inconclusive() -> None:
    undecided = controlled([judged_on("accuracy vs baseline", [claim("accuracy delta", 0.4, NON_INFERIORITY)], "e",
                                      warn=False)], GateSettings())
    card = SimpleNamespace(name="iris", gates=GateSettings(), tier=lambda tier: SimpleNamespace(
        eval=SimpleNamespace(sampling=None)))
    run = SimpleNamespace(gates=undecided, task=SimpleNamespace(card=card), tier="tiny",
                          tuned_metrics=SimpleNamespace(unavailable={}), candidate="")
    assert card_gates(run) == "INCONCLUSIVE"
    properties = dict(junit_properties(run))
    assert properties["loragate.card_gates"] == "INCONCLUSIVE"
    assert properties["loragate.inconclusive.accuracy vs baseline"].startswith("INCONCLUSIVE: accuracy delta")


def perfect_release(tmp_path: Path) -> Path:
    """The last release's report.json, right on every Iris test example: the committed adapter (29 of 30) is 0.033
    worse, a drop 30 examples cannot place on either side of max_regression's 0.02."""
    from loragate.tasks import get_task

    splits = get_task("iris").load_splits()
    rows = [{"id": ex.id, "gold": ex.label, "base": None, "tuned": ex.label, "base_output": "",
             "tuned_output": ex.label} for ex in splits.test]
    path = tmp_path / "last-release.json"
    path.write_text(json.dumps({"runs": [{"task": "iris", "tier": "tiny", "data_hash": splits.data_hash(),
                                          "predictions": rows}]}))
    return path


def gate(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """The whole Iris gate (a case whose gate tests did not all run is PARTIAL), about 15 s on a 2-core CPU."""
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-m", "smoke", "--task", "iris",
                           *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})


@pytest.mark.slow
def test_a_regression_the_split_cannot_decide_is_inconclusive_everywhere_and_warn_lets_it_pass(tmp_path: Path) -> None:
    """The committed Iris adapter against a perfect last release: exit 1 with INCONCLUSIVE in the table, every report
    file and the JUnit XML, naming the interval and the size that would decide it; the raw and adjusted p-values are
    shown; with --set gates.inconclusive=warn the run passes, saying so. The trivial gate is left out
    (min_delta_over_trivial: {}): with the release's two comparisons the family is 9, in which Iris's accuracy over
    the majority class (p=0.03 on 12 distinct inputs) does not hold under Holm (0.09) and would FAIL the run, hiding
    the verdict this test is about."""
    baseline, junit, reports = perfect_release(tmp_path), tmp_path / "junit.xml", tmp_path / "reports"
    result = gate(tmp_path, f"--baseline-report={baseline}", "--set", "gates.min_delta_over_trivial={}",
                  f"--junitxml={junit}", f"--report-dir={reports}")
    out = result.stdout
    assert result.returncode == 1, out[-3000:] + result.stderr[-2000:]
    assert "iris/tiny: INCONCLUSIVE with gates changed by --set: gates.min_delta_over_trivial={}  base" in out, \
        out[-3000:]
    assert "gate INCONCLUSIVE accuracy vs baseline: INCONCLUSIVE: accuracy delta -0.033 [" in out, out[-3000:]
    assert "straddles the allowed drop -0.020: n=30 cannot tell" in out and "examples (now 30) would decide it" in out
    assert "Holm p=" in out and "comparisons judged together, Holm's step-down at alpha 0.05" in out, out[-3000:]
    assert "FAILED suites/test_quality.py::test_no_regression_against_the_last_release[iris-tiny]" in out
    suite = ET.parse(junit).getroot().find("testsuite")
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["loragate.verdict.iris.tiny"] == "INCONCLUSIVE" and properties["loragate.gate"] == \
        "INCONCLUSIVE" and properties["loragate.card_gates"] == "INCONCLUSIVE", properties
    (folder,) = reports.iterdir()
    run = json.loads((folder / "report.json").read_text())["runs"][0]
    assert run["verdict"] == "INCONCLUSIVE" and not run["passed"]
    regression = next(g for g in run["gates"] if g["check"] == "accuracy vs baseline")
    (comparison,) = regression["comparisons"]
    assert regression["status"] == "INCONCLUSIVE" and comparison["outcome"] == "INCONCLUSIVE"
    assert comparison["family"] == 7 and comparison["adjusted"] >= comparison["p_value"] and comparison["needed"] > 30
    summary = (folder / "summary.md").read_text()
    assert "### iris/tiny: INCONCLUSIVE" in summary and "| **INCONCLUSIVE** |" in summary, summary
    assert "p / adjusted p (family)" in summary and "- **INCONCLUSIVE** accuracy vs baseline" in summary, summary
    assert "- INCONCLUSIVE accuracy vs baseline: INCONCLUSIVE" in (folder / "report.md").read_text()
    assert '<span class="badge inconclusive">INCONCLUSIVE</span>' in (folder / "report.html").read_text()

    warned = gate(tmp_path, f"--baseline-report={baseline}", "--set", "gates.min_delta_over_trivial={}", "--set",
                  "gates.inconclusive=warn", f"--report-dir={tmp_path / 'warned'}")
    assert warned.returncode == 0, warned.stdout[-3000:] + warned.stderr[-2000:]
    assert ("iris/tiny: PASS with INCONCLUSIVE gates (gates.inconclusive: warn): accuracy vs baseline, macro_f1 vs "
            "baseline with gates changed by --set: gates.min_delta_over_trivial={}, gates.inconclusive=warn") in \
        warned.stdout, warned.stdout[-3000:]
    assert "gate INCONCLUSIVE accuracy vs baseline" in warned.stdout


def test_a_retention_probe_drop_the_split_cannot_decide_is_inconclusive() -> None:
    """A probe task's drop is non-inferiority as every drop is: 0.9 -> 0.8 on 10 examples straddles -0.05."""
    from loragate.gates.retention import probe_drop

    result = probe_drop("sst2", "accuracy", 0.05, GateSettings()).judge(ab([8, 2], [0, 0]), ab([9, 1], [0, 0]))
    assert result.status == "INCONCLUSIVE", result.finding
    assert result.finding.startswith("INCONCLUSIVE: sst2 accuracy delta -0.100 ["), result.finding


def test_a_check_under_warn_reports_no_failure_for_a_drop_it_cannot_decide() -> None:
    from loragate.gates.per_key import KeyDrop
    from loragate.kinds.labels import class_scores

    base, tuned = ab([10, 0], [0, 10]), ab([9, 1], [0, 10])  # class a 1.0 -> 0.9 of 10: straddles -0.05
    assert KeyDrop("class", "accuracy", 0.05, class_scores).fails(tuned, base).startswith("INCONCLUSIVE")
    warn = GateSettings(inconclusive="warn")
    assert KeyDrop("class", "accuracy", 0.05, class_scores, settings=warn).fails(tuned, base) is None
    result = KeyDrop("class", "accuracy", 0.05, class_scores, settings=warn).judge(tuned, base)
    assert result.passed and result.word == "INCONCLUSIVE" and result.finding.startswith("INCONCLUSIVE: class 'a'")
