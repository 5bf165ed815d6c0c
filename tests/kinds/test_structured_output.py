"""The structured-output kind: strict vs lenient validity, field scores (lists in order), pooled F1 intervals,
per-field gates, and the degenerate adapters the gate must fail (one constant object, one field always wrong,
valid only once a code fence is stripped)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict

from loragate.card.settings import CardError, GateSettings
from loragate.gates.checks import MetricDelta, run_gates
from loragate.gates.per_key import KeyDrop, KeyFloor
from loragate.kinds.structured_output.checks import field_scores
from loragate.kinds.structured_output.fields import field_counts, field_layout
from loragate.kinds.structured_output.schema import load_schema, location, parse_object
from loragate.kinds.structured_output.scoring import macro_f1, micro_f1, structured_metrics
from loragate.metrics.scores import with_input_groups


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    qty: int
    tags: list[str]


GOLD = Item(name="mug", qty=2, tags=["gift", "fragile"]).model_dump_json()


def test_strict_validity_accepts_only_the_whole_output_as_json() -> None:
    assert parse_object(GOLD, Item).valid
    assert parse_object(f"  {GOLD}\n", Item).valid, "surrounding whitespace is still the whole output"
    fenced = parse_object(f"```json\n{GOLD}\n```", Item)
    assert not fenced.valid and fenced.lenient and "code fence" in fenced.reason
    chatty = parse_object(f"Sure! Here it is: {GOLD} Anything else?", Item)
    assert not chatty.valid and chatty.lenient and "text around" in chatty.reason
    broken = parse_object('{"name": "mug", "qty": "two", "tags": []}', Item)
    assert not broken.valid and not broken.lenient
    assert [(e.loc, e.type) for e in broken.errors] == [("qty", "int_parsing")], broken.errors
    assert parse_object("", Item).reason.startswith("empty output")
    assert [(e.loc, e.type) for e in parse_object("nope", Item).errors] == [("(root)", "json_invalid")]


def test_error_locations_read_as_paths() -> None:
    assert location(()) == "(root)"
    assert location(("items", 0, "qty")) == "items[0].qty"


def test_unordered_list_fields_compare_as_multisets() -> None:
    unordered = frozenset({"tags"})
    assert field_counts(["a", "b", "b"], ["b", "a", "b"], "tags", unordered) == (3, 0, 0)
    assert field_counts(["a", "b"], ["a", "c", "c"], "tags", unordered) == (1, 2, 1)
    assert field_counts("x", "y", "name", unordered) == (0, 1, 1)
    assert field_counts(None, None, "name", unordered) == (0, 0, 0)


def score(outputs: list[str], gold: list[str] | None = None):
    gold = gold or [GOLD] * len(outputs)
    return structured_metrics([f"e{i}" for i in range(len(outputs))], gold, [parse_object(o, Item) for o in outputs],
                              outputs, field_layout(Item))


def test_field_scores_and_pooled_f1() -> None:
    same = Item(name="mug", qty=2, tags=["gift", "fragile"]).model_dump_json()
    wrong_qty = Item(name="mug", qty=3, tags=["gift"]).model_dump_json()
    metrics = score([same, wrong_qty, "not json"])
    assert metrics.object_exact == pytest.approx(1 / 3)
    assert metrics.field_exact == {"name": pytest.approx(2 / 3), "qty": pytest.approx(1 / 3),
                                   "tags": pytest.approx(1 / 3)}
    # tp/fp/fn: name 2/0/1, qty 1/1/2, tags 3/0/3 -> micro 2*6/(12+1+6); macro mean(4/5, 2/5, 6/9)
    assert metrics.field_micro_f1 == pytest.approx(12 / 19)
    assert metrics.field_macro_f1 == pytest.approx((4 / 5 + 2 / 5 + 6 / 9) / 3)
    assert metrics.validity_rate == pytest.approx(2 / 3)
    assert metrics.schema_errors == {"(root)": {"json_invalid": 1}}
    pooled = np.array(metrics.counts, dtype=float).sum(axis=0)
    assert micro_f1(pooled) == pytest.approx(metrics.field_micro_f1) and macro_f1(pooled[None])[0] == \
        pytest.approx(metrics.field_macro_f1), "the bootstrap statistic recomputes the reported value"


def test_a_pooled_f1_delta_has_an_interval_around_it() -> None:
    base = score(["{}"] * 30)
    tuned = score([GOLD] * 25 + ["{}"] * 5)
    interval = tuned.paired_interval(base, "field_micro_f1", 2000, 0.95, 0)
    assert interval.low <= interval.delta <= interval.high and interval.delta == pytest.approx(
        tuned.field_micro_f1 - base.field_micro_f1)
    assert interval.low > 0.5


@pytest.mark.parametrize("metric", ["object_exact", "field_micro_f1"])
def test_repeated_inputs_are_resampled_together(metric: str) -> None:
    """Rows of one input resampled as one (issue 31, 4b): 10 outputs repeated 4 times give the interval of the 10."""
    outputs = [GOLD] * 6 + ["{}"] * 4
    distinct = score(outputs).paired_interval(score(["{}"] * 10), metric, 2000, 0.95, 0)
    groups = tuple(range(10)) * 4
    tuned, base = (with_input_groups(score(rows * 4), groups) for rows in (outputs, ["{}"] * 10))
    naive = score(outputs * 4).paired_interval(score(["{}"] * 40), metric, 2000, 0.95, 0)
    clustered = tuned.paired_interval(base, metric, 2000, 0.95, 0)
    assert naive.high - naive.low < 0.7 * (distinct.high - distinct.low), "the naive interval should be narrower"
    assert (clustered.low, clustered.high) == pytest.approx((distinct.low, distinct.high), abs=1e-12), clustered
    assert "input_groups" not in tuned.to_json(), "how intervals resample is not a result for report.json"


def one_field_wrong(n: int) -> list[str]:
    return [Item(name="mug", qty=9, tags=["gift", "fragile"]).model_dump_json()] * n


@pytest.mark.parametrize("n", [30, 400])
def test_valid_json_with_one_field_always_wrong_fails_naming_the_field(n: int) -> None:
    base, tuned = score(["{}"] * n), score(one_field_wrong(n))
    assert tuned.validity_rate == 1.0 and tuned.field_micro_f1 == pytest.approx(0.75)  # 3 of 4 items right
    results = run_gates([KeyDrop("field", "exact match", 0.05, field_scores),
                         KeyFloor("field", "exact match", 0.8, field_scores)], tuned, base)
    floor = next(r for r in results if r.check == "per-field floor")
    assert floor.finding and "field 'qty' exact match 0.000 < floor 0.800" in floor.finding, floor.finding
    assert "'name'" not in floor.finding


def test_a_field_that_loses_exact_matches_against_base_fails() -> None:
    base, tuned = score([GOLD] * 20), score([GOLD] * 10 + one_field_wrong(10))
    finding = KeyDrop("field", "exact match", 0.05, field_scores).fails(tuned, base)
    assert finding.startswith("field 'qty' exact match lower bound -0.701 < required -0.050, and so is its upper "
                              "bound -0.258: a drop of more than 0.050 is shown (delta -0.500, n=20, base 1.000, "
                              "tuned 0.500"), finding


def test_valid_only_once_a_fence_is_stripped_fails_validity_and_every_metric() -> None:
    from loragate.gates.checks import Validity

    tuned = score([f"```json\n{GOLD}\n```"] * 40)
    assert tuned.validity_rate == 0 and tuned.lenient_validity_rate == 1 and tuned.object_exact == 0
    finding = Validity(0.95).fails(tuned, score(["{}"] * 40))
    assert finding == ("validity rate 0.000 < required 0.950 (40 of 40 outputs did not parse, 40 of them valid only "
                       "once a code fence or prose is stripped; base 0.000)"), finding


def test_sub_rows_show_each_field_and_each_schema_error() -> None:
    base, tuned = score(["nope", "{}"]), score([GOLD, GOLD])
    fields = tuned.sub_rows("object_exact", base)
    assert [row[0] for row in fields] == ["field 'name' exact", "field 'qty' exact", "field 'tags' exact"]
    errors = tuned.sub_rows("validity_rate", base)
    assert ("error at name: missing", "0.500", "0.000", "-0.500") in errors, errors
    assert ("error at (root): json_invalid", "0.500", "0.000", "-0.500") in errors, errors


def test_the_schema_module_is_found_beside_the_card_or_at_the_project_root(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    (tmp_path / "tasks").mkdir()
    (tmp_path / "shop_schema.py").write_text("from pydantic import BaseModel\nclass Order(BaseModel):\n    n: int\n")
    assert load_schema("shop_schema:Order", tmp_path / "tasks", "t").model_validate({"n": 1}).n == 1
    with pytest.raises(CardError, match=r"shop_schema\.Nope is missing; name a pydantic BaseModel"):
        load_schema("shop_schema:Nope", tmp_path / "tasks", "t")
    with pytest.raises(CardError, match=r"module 'no_such_schema_mod' is not importable .* put no_such_schema_mod\.py"):
        load_schema("no_such_schema_mod:Order", tmp_path / "tasks", "t")


@pytest.mark.slow
@pytest.mark.parametrize("n", [30, 400])
def test_always_the_same_object_fails_against_the_constant_predictor(n: int) -> None:
    """An adapter that learned the most common object beats a base that writes nothing valid, by a lot; the trivial
    predictor (that same object for every example) is where it fails, at any split size."""
    from loragate.gates.checks import trivial_gates

    other = Item(name="lamp", qty=1, tags=[]).model_dump_json()
    gold = [GOLD] * (n // 3) + [other] * (n - n // 3)
    base, tuned, trivial = score(["{}"] * n, gold), score([other] * n, gold), score([other] * n, gold)
    settings = GateSettings(min_delta={"object_exact": 0.1, "field_micro_f1": 0.1}, judge_on="lower_bound")
    assert all(r.passed for r in run_gates([MetricDelta(m, v, settings) for m, v in settings.min_delta.items()],
                                           tuned, base)), "over base alone it would pass"
    results = trivial_gates(settings, f"constant object {other}", tuned, trivial)
    assert [r.passed for r in results] == [False, False]
    assert results[0].finding and "object_exact" in results[0].finding and "constant object" in results[0].finding
