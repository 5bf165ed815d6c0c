"""The Retention section's cells (loragate.report.retention): each requirement names what its gate judged."""

from __future__ import annotations

from loragate.gates.result import DeltaNumbers
from loragate.report.retention import delta_cells


def numbers(judged_on: str) -> DeltaNumbers:
    return DeltaNumbers("accuracy", 0.5, 0.7, 0.2, 0.1, 0.3, 0.95, 0.05, judged_on)


def test_a_target_delta_judged_on_the_point_says_so() -> None:
    """A card's min_delta judged on the observed delta (judge_on: point, the default) was shown as a requirement on
    the interval's lower bound."""
    assert delta_cells(numbers("point"))[-1] == "delta >= +0.050"


def test_a_delta_judged_on_the_bound_names_the_bound() -> None:
    assert delta_cells(numbers("lower_bound"))[-1] == "lower bound >= +0.050"


def test_a_probe_left_inconclusive_under_warn_shows_the_word() -> None:
    """`gates.inconclusive: warn` lets the run pass with every report showing INCONCLUSIVE; the Retention section and
    report.json's retention showed such a probe as PASS."""
    from types import SimpleNamespace

    from loragate.gates.result import GateResult
    from loragate.report.retention import retention_json, retention_rows
    from loragate.run.retention import ProbeResult

    gate = GateResult("retention general.txt: perplexity", "the split cannot decide it", inconclusive=True,
                      warned=True)
    run = SimpleNamespace(retention=[ProbeResult("general.txt", "text", 40, gate)])
    assert gate.passed
    assert retention_rows(run)[0][-1] == "INCONCLUSIVE"
    assert retention_json(run)[0]["status"] == "INCONCLUSIVE"
