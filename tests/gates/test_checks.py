"""Every gate check just inside and just outside its threshold, and the checks a card's gates make."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from loragate.card.settings import GateSettings
from loragate.gates.checks import MetricDelta, Validity, checks_from, run_gates
from loragate.gates.per_key import KeyDrop, KeyFloor
from loragate.gates.result import GateResult
from loragate.kinds.labels import class_scores
from loragate.metrics.scores import INVALID, metrics_from_confusion

IRIS = ["setosa", "versicolor", "virginica"]


def ab(a_row: list[int], b_row: list[int], invalid: tuple[int, int] = (0, 0)):
    """Metrics of a two-class confusion [[a->a, a->b], [b->a, b->b]] plus unparsed outputs per gold class."""
    return metrics_from_confusion([[*a_row, invalid[0]], [*b_row, invalid[1]]], ["a", "b"])


def test_metric_delta_boundary() -> None:
    # accuracy 600/1000 -> 700/1000: 0.7 - 0.6 < 0.1 in floats; n large enough that +0.1 is detectable
    base, tuned = ab([300, 200], [200, 300]), ab([400, 100], [200, 300])
    assert MetricDelta("accuracy", 0.1).fails(tuned, base) is None, "a delta of exactly 0.1 must meet 0.1"
    finding = MetricDelta("accuracy", 0.2).fails(tuned, base)
    expected = "accuracy delta +0.100 < required +0.200 (base 0.600, tuned 0.700, n=1000, 95% CI ["
    assert finding.startswith(expected), finding
    assert "McNemar p=" in finding and "MDE" in finding, finding
    assert MetricDelta("accuracy", 0.0).fails(base, tuned) is not None, "a worse tuned model must fail a 0 delta"


def test_metric_delta_on_a_split_too_small_is_not_a_pass() -> None:
    base, tuned = ab([3, 2], [2, 3]), ab([4, 1], [2, 3])  # 6/10 -> 7/10: +0.1 observed, but n=10
    finding = MetricDelta("accuracy", 0.1).fails(tuned, base)
    assert finding is not None and "n=10 is too small to detect it" in finding, finding


def test_metric_delta_judged_on_the_lower_bound() -> None:
    base, tuned = ab([300, 200], [200, 300]), ab([400, 100], [200, 300])  # +0.1, 95% CI about [+0.08, +0.12]
    lower = GateSettings(judge_on="lower_bound")
    assert MetricDelta("accuracy", 0.05, lower).fails(tuned, base) is None
    finding = MetricDelta("accuracy", 0.1, lower).fails(tuned, base)
    assert finding is not None and finding.startswith("accuracy delta lower bound +0.0"), finding


def test_a_class_drop_is_judged_on_its_own_paired_interval() -> None:
    """Non-inferiority per class (issue 33, point 2): a drop shown under the tolerance passes, one shown beyond it
    fails, one whose interval straddles it is INCONCLUSIVE, naming the size that would decide it."""
    base = ab([100, 0], [0, 100])
    small = KeyDrop("class", "accuracy", 0.1, class_scores).judge(ab([98, 2], [0, 100]), base)  # -0.02 of 100
    assert small.passed and small.status == "ok", small.finding
    big = KeyDrop("class", "accuracy", 0.1, class_scores).judge(ab([60, 40], [0, 100]), base)  # -0.40 of 100
    assert big.status == "FAIL" and not big.passed, big
    assert big.finding.startswith("class 'a' accuracy lower bound -0.") and "a drop of more than 0.100 is shown" in \
        big.finding, big.finding
    few = KeyDrop("class", "accuracy", 0.05, class_scores).judge(ab([9, 1], [0, 10]), ab([10, 0], [0, 10]))
    assert few.status == "INCONCLUSIVE" and not few.passed and few.inconclusive, few
    assert few.finding.startswith("INCONCLUSIVE: class 'a' accuracy -0.100 [-0.404, +0.205] straddles the allowed "
                                  "drop -0.050: n=10 cannot tell"), few.finding
    assert re.search(r"about \d+ examples \(now 10\) would decide it", few.finding), few.finding


def test_an_unchanged_class_is_not_shown_undropped_at_a_zero_tolerance() -> None:
    """A zero tolerance claims no drop at all, which a sample where nothing changed cannot show (the percentile
    bootstrap passed it: none of its resamples drops): INCONCLUSIVE. A class whose gain is shown passes it."""
    base, tuned = ab([7, 3], [5, 5]), ab([9, 1], [5, 5])  # class a 0.7 -> 0.9 (not shown on 10), b unchanged
    result = KeyDrop("class", "accuracy", 0.0, class_scores).judge(tuned, base)
    assert [c.outcome for c in result.comparisons] == ["INCONCLUSIVE", "INCONCLUSIVE"], result.finding
    assert "INCONCLUSIVE: class 'b' accuracy +0.000 [-0.278, +0.278]" in result.finding, result.finding
    gained = ab([100, 0], [50, 50]), ab([100, 0], [10, 90])  # class b 0.5 -> 0.9 of 100, class a unchanged of 100
    result = KeyDrop("class", "accuracy", 0.0, class_scores).judge(gained[1], gained[0])
    assert [c.outcome for c in result.comparisons] == ["INCONCLUSIVE", "PASS"], result.finding


def test_class_floor_boundary() -> None:
    tuned = ab([10, 0], [3, 7])  # class b 7/10
    assert KeyFloor("class", "accuracy", 0.7, class_scores).fails(tuned, tuned) is None, \
        "7/10 must reach a floor of 0.7"
    finding = KeyFloor("class", "accuracy", 0.8, class_scores).fails(tuned, tuned)
    assert finding == "class 'b' accuracy 0.700 < floor 0.800 (base 0.700, n=10)", finding


def test_validity_boundary() -> None:
    base, tuned = ab([5, 0], [0, 5]), ab([4, 0], [0, 5], invalid=(1, 0))  # 9 of 10 parse
    assert tuned.confusion[0][-1] == 1 and tuned.labels == ["a", "b"] and INVALID not in tuned.labels
    assert Validity(0.9).fails(tuned, base) is None, "9/10 must meet 0.9"
    finding = Validity(0.95).fails(tuned, base)
    assert finding == "validity rate 0.900 < required 0.950 (1 of 10 outputs did not parse; base 1.000)", finding


def test_checks_from_card_gates_on_the_seed() -> None:
    base = metrics_from_confusion([[10, 0, 0], [10, 0, 0], [10, 0, 0]], IRIS)
    tuned = metrics_from_confusion([[9, 1, 0], [0, 10, 0], [2, 8, 0]], IRIS)
    gates = GateSettings(min_delta={"accuracy": 0.05, "macro_f1": 0.05}, max_class_drop=0.05,
                         min_class_accuracy=0.5, min_validity=1.0)
    checks = checks_from(gates, [KeyDrop("class", "accuracy", gates.max_class_drop, class_scores),
                                 KeyFloor("class", "accuracy", gates.min_class_accuracy, class_scores)])
    results = {r.check: r for r in run_gates(checks, tuned, base)}
    failed = sorted(name for name, r in results.items() if not r.passed)
    assert failed == ["per-class floor", "per-class regression"], {n: r.finding for n, r in results.items()}
    assert "INCONCLUSIVE: class 'setosa' accuracy -0.100 [" in results["per-class regression"].finding
    assert "class 'virginica' accuracy 0.000 < floor 0.500 (base 0.000, n=10)" in results["per-class floor"].finding


def test_checks_from_rejects_an_unknown_metric() -> None:
    with pytest.raises(ValueError) as caught:
        checks_from(GateSettings(min_delta={"macro_f2": 0.1}))
    message = str(caught.value)
    assert message.startswith("gates.min_delta: Unknown metric 'macro_f2'.") and "Did you mean 'macro_f1'" in message, \
        message


def test_text_metric_gates_pair_per_example_scores_and_pooled_bleu() -> None:
    """Instruct metrics: ROUGE-L and perplexity deltas from per-example scores, corpus BLEU from pooled counts;
    each interval is around the full-split delta and a worse tuned model fails with the metric named."""
    from loragate.kinds.instruct.metrics import instruct_metrics
    references = [f"the capital of land {i} is town {i}" for i in range(30)]
    good = list(references)
    bad = [f"capital {i}" for i in range(30)]
    ids, ones = [f"ex-{i}" for i in range(30)], [True] * 30

    def metrics(outputs: list[str], nll: float):
        return instruct_metrics(ids, outputs, references, ones, ones, [nll * 8] * 30, [8] * 30)

    base, tuned = metrics(bad, 2.0), metrics(good, 0.5)
    settings = GateSettings(bootstrap_resamples=2000)
    for metric in ("rougeL", "bleu", "perplexity"):
        check = MetricDelta(metric, 0.1, settings)
        delta, interval, _ = check.judged(tuned, base)
        assert interval.low <= delta <= interval.high and delta > 0.1, (metric, delta, interval)
        assert check.fails(tuned, base) is None, metric
        assert f"{metric} delta" in (check.fails(base, tuned) or ""), metric
    assert tuned.value("bleu") == pytest.approx(100.0) and tuned.value("perplexity") == pytest.approx(math.exp(0.5))


def test_exact_match_evidence_carries_the_exact_mcnemar_p_value() -> None:
    from loragate.kinds.extractive_qa.metrics import qa_metrics
    from loragate.metrics.stats import mcnemar_exact

    references = [[f"answer {i}"] for i in range(20)]
    ids, valid = [f"q-{i}" for i in range(20)], [True] * 20
    base = qa_metrics(ids, ["x"] * 20, references, valid)
    tuned = qa_metrics(ids, [f"answer {i}" if i < 15 else "x" for i in range(20)], references, valid)
    _, _, evidence = MetricDelta("exact", 0.1, GateSettings(bootstrap_resamples=2000)).judged(tuned, base)
    expected = mcnemar_exact(np.zeros(20, dtype=bool), np.arange(20) < 15).p_value
    assert f"McNemar p={expected:.2g}" in evidence, evidence


def test_a_regression_against_the_last_release_is_judged_on_the_lower_bound_with_a_default_margin() -> None:
    """Non-inferiority: a 0.01 drop shown to be under 0.02 passes; a 0.018 drop whose interval reaches past -0.02
    is INCONCLUSIVE on the bound (issue 33, point 2: it was a FAIL), also on a card judging min_delta on the point
    (which read 'is not evidence of +-0.020'); a drop shown beyond 0.02 fails."""
    from loragate.card.settings import REGRESSION_MARGIN
    from loragate.gates.checks import regression_checks

    baseline = ab([500, 0], [0, 500])
    gates = GateSettings(min_delta={"accuracy": 0.05, "macro_f1": 0.05}, judge_on="point", bootstrap_resamples=2000)
    assert REGRESSION_MARGIN == 0.02 and gates.regression_margins() == {"accuracy": 0.02, "macro_f1": 0.02}
    checks = regression_checks(gates)
    assert [check.name for check in checks] == ["accuracy vs baseline", "macro_f1 vs baseline"]
    small = {r.check: r for r in run_gates(checks, ab([490, 10], [0, 500]), baseline)}
    assert all(r.passed for r in small.values()), {n: r.finding for n, r in small.items()}
    assert small["accuracy vs baseline"].numbers.judged_on == "lower_bound"
    assert small["accuracy vs baseline"].numbers.required == -0.02
    near = {r.check: r for r in run_gates(checks, ab([482, 18], [0, 500]), baseline)}
    finding = near["accuracy vs baseline"].finding
    assert near["accuracy vs baseline"].status == "INCONCLUSIVE", finding
    assert finding.startswith("INCONCLUSIVE: accuracy delta -0.018 [-0.0") and "straddles the allowed drop -0.020" in \
        finding and "(baseline 1.000, tuned 0.982" in finding, finding
    far = {r.check: r for r in run_gates(checks, ab([450, 50], [0, 500]), baseline)}["accuracy vs baseline"]
    assert far.status == "FAIL" and far.finding.startswith("accuracy delta lower bound -0.0"), far.finding


def test_max_regression_is_set_per_metric_and_names_only_metrics_the_kind_computes() -> None:
    from loragate.card.settings import TaskCard
    from loragate.gates.checks import regression_checks
    from loragate.tasks import get_task

    gates = GateSettings(min_delta={"accuracy": 0.05, "macro_f1": 0.05}, max_regression={"accuracy": 0.1})
    assert gates.regression_margins() == {"accuracy": 0.1, "macro_f1": 0.02}
    assert GateSettings(min_delta={"accuracy": 0.05}, max_regression=0.0).regression_margins() == {"accuracy": 0.0}
    extra = GateSettings(min_delta={"accuracy": 0.05}, max_regression={"macro_f1": 0.03})
    assert [(c.name, c.min_delta) for c in regression_checks(extra)] == [("accuracy vs baseline", -0.02),
                                                                         ("macro_f1 vs baseline", -0.03)]
    card = get_task("iris").card.model_dump()
    for bad, message in (({"acuracy": 0.1}, "gates.max_regression.acuracy: kind generative_classification does "
                                            "not compute 'acuracy' (did you mean 'accuracy'?)"),
                         ({"accuracy": -0.1}, "greater than or equal to 0"), (-0.1, "greater than or equal to 0")):
        card["gates"]["max_regression"] = bad
        with pytest.raises(ValueError, match=re.escape(message)):
            TaskCard.model_validate(card)


def test_a_curve_no_manifest_records_is_skipped_with_its_reason_never_ok() -> None:
    from loragate.gates.checks import curve_gates

    (result,) = curve_gates(GateSettings(), None, None)
    assert result.passed and result.skipped and result.status == "skipped", result
    assert result.evidence == ("not compared: the adapter under test and the baseline adapter have no loragate "
                               "manifest with a loss curve (trained elsewhere)"), result.evidence
    assert GateResult("x", None).status == "ok" and GateResult("x", "worse").status == "FAIL"


def test_the_leakage_finding_against_an_adapter_trained_elsewhere_says_it_may_not_have_seen_train() -> None:
    from loragate.gates.checks import leakage_gate

    own = leakage_gate(["a", "b"], 10, 0.0)
    assert own.finding.startswith("2 of 10 test inputs also in train (20.0% > allowed 0.0%): a, b; remove them from "
                                  "train or test"), own.finding
    external = leakage_gate(["a", "b"], 10, 0.0, external=True)
    assert external.finding.startswith("2 of 10 test inputs also in the card's train split, which an adapter trained "
                                       "elsewhere may never have seen (20.0% > allowed 0.0%): a, b; if the adapter "
                                       "was trained on them"), external.finding
