"""Issue 31, cases 4b and 4c: test rows repeated four times passed as n=240, and a test row copied into the
training file could land in the eval split, both unreported. Repeated inputs within the test split and across
splits are gate findings that fail by default; a card allows them with `gates.max_leakage: null` (Iris, whose
binned prompts repeat by design) and the counts are then reported, not gated."""

from __future__ import annotations

from types import SimpleNamespace

from loragate.data.examples import Example, Splits
from loragate.gates.duplicates import duplicate_gates
from loragate.inference.predictions import constant_predictions
from loragate.run.task_run import judge_run
from loragate.tasks import get_task


def example(i: int, split: str, copy: int = 0) -> Example:
    label = ["negative", "positive"][i % 2]
    return Example(id=f"{split}-{i}-{copy}", prompt=f"Review {i}", target=label, label=label)


def splits(test: list[Example], train: list[Example] | None = None, eval_: list[Example] | None = None) -> Splits:
    return Splits(train=train or [example(i, "train") for i in range(1000, 1100)],
                  eval=eval_ or [example(i, "eval") for i in range(2000, 2020)], test=test)


def findings(data: Splits, max_share: float | None = 0.0) -> dict[str, str | None]:
    return {r.check: r.finding for r in duplicate_gates(data, max_share)}


def test_test_rows_repeated_four_times_fail_naming_the_distinct_count() -> None:
    test = [example(i, "test", copy) for copy in range(4) for i in range(60)]
    found = findings(splits(test))
    assert "180 of 240 test rows repeat another test row's input (60 distinct inputs)" in \
        (found["duplicated test inputs"] or ""), found
    assert "test-0-1" in found["duplicated test inputs"], found


def test_a_test_row_copied_into_train_that_lands_in_eval_fails_naming_it() -> None:
    test = [example(i, "test") for i in range(60)]
    eval_ = [example(i, "eval") for i in range(2000, 2019)] + [example(7, "eval")]  # test-7's input, in eval
    found = findings(splits(test, eval_=eval_))
    assert found["duplicated test inputs"] is None, found
    assert "1 of 60 test inputs also in eval" in (found["cross-split duplicates"] or ""), found
    assert "test inputs also in eval: test-7-0" in found["cross-split duplicates"], found


def test_an_eval_input_also_in_train_fails() -> None:
    eval_ = [example(i, "eval") for i in range(2000, 2019)] + [example(1003, "eval")]
    found = findings(splits([example(i, "test") for i in range(60)], eval_=eval_))
    assert "eval inputs also in train: eval-1003-0" in (found["cross-split duplicates"] or ""), found


def test_distinct_inputs_pass_and_case_and_spacing_do_not_hide_a_repeat() -> None:
    test = [example(i, "test") for i in range(60)]
    assert set(findings(splits(test)).values()) == {None}
    shouting = Example(id="test-loud", prompt="  REVIEW   3 ", target="positive", label="positive")
    assert findings(splits([*test, shouting]))["duplicated test inputs"] is not None


def test_a_card_that_allows_repeats_reports_them_without_gating_and_a_share_is_a_limit() -> None:
    test = [example(i, "test", copy) for copy in range(2) for i in range(10)]
    allowed = duplicate_gates(splits(test), None)
    assert all(r.passed for r in allowed), allowed
    assert "10 of 20 test rows repeat" in allowed[0].evidence and "not gated" in allowed[0].evidence
    assert findings(splits(test), 0.5)["duplicated test inputs"] is None
    assert findings(splits(test), 0.4)["duplicated test inputs"] is not None


def test_the_built_in_iris_card_allows_its_binned_repeats_and_passes() -> None:
    iris = get_task("iris")
    assert iris.card.gates.max_leakage is None
    results = duplicate_gates(iris.load_splits(), iris.card.gates.max_leakage)
    assert all(r.passed for r in results), results
    assert "18 of 30 test rows repeat" in results[0].evidence, results[0].evidence


def test_the_run_gates_repeated_test_inputs() -> None:
    """judge_run, the run's own gating step, with constructed predictions (no model)."""
    task = get_task("sst2")
    test = [example(i, "test", copy) for copy in range(4) for i in range(60)]
    data = splits(test)
    right = constant_predictions(test, [ex.label for ex in test], task.parse)
    outputs = SimpleNamespace(predictions=right, constrained=None)
    judged = judge_run(task, "tiny", "sst2", data, SimpleNamespace(baseline_report=None, adapter=None), "free", outputs,
                       outputs, None, None)
    found = {r.check: r.finding for r in judged.gates}
    assert "180 of 240 test rows repeat" in (found.get("duplicated test inputs") or ""), found
    assert found.get("cross-split duplicates", "missing") is None, found
