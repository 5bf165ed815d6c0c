"""Issue 31, cases 3a, 3c, 6d: gate settings that let a constant predictor pass, or fail only after training. A NaN
or infinite threshold is a card error naming the field; leaving min_delta out keeps the trivial-predictor gate (the
kind's default margin), and only `min_delta_over_trivial: {}` turns it off, which the report states; a gated metric
the card's kind does not compute is a card error naming the field, the metric and the kind's metrics."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from loragate.card.overrides import OverrideError, apply_overrides
from loragate.card.settings import GateSettings, TaskCard
from loragate.gates.checks import trivial_gates
from loragate.kinds import KINDS
from loragate.metrics.scores import metrics_from_confusion
from loragate.report.rows import card_notes
from loragate.tasks import get_task
from tests.card.errors import card_error

IRIS = Path(__file__).parents[2] / "loragate" / "tasks" / "iris.yaml"


def iris_with(tmp_path: Path, **gates: Any) -> Path:
    """The iris card with its gates replaced by `gates`, written to tmp_path."""
    card = yaml.safe_load(IRIS.read_text())
    card["gates"] = gates
    path = tmp_path / "iris.yaml"
    path.write_text(yaml.safe_dump(card))
    return path


# ------------------------------------------------------------------------------------------------ 3a: non-finite


def float_fields() -> list[tuple[str, Any]]:
    """Every number of GateSettings as a card would set it: a float field, or a metric -> float map."""
    fields = []
    for name, info in GateSettings.model_fields.items():
        annotation = str(info.annotation)
        if "dict[str, float]" in annotation:
            fields.append((name, "map"))
        elif "float" in annotation:
            fields.append((name, "number"))
    return fields


def test_every_float_field_of_the_gates_is_covered() -> None:
    names = {name for name, _ in float_fields()}
    assert {"min_delta", "floors", "min_delta_over_trivial", "max_subgroup_drop", "min_subgroup_score",
            "min_validity", "max_leakage", "confidence", "curve_rtol"} <= names, names


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(("field", "shape"), float_fields())
def test_a_non_finite_gate_number_is_a_card_error_naming_the_field(tmp_path: Path, field: str, shape: str,
                                                                    value: float) -> None:
    setting, where = ({"accuracy": value}, f"gates.{field}.accuracy") if shape == "map" else (value, f"gates.{field}")
    message = card_error(iris_with(tmp_path, **{"min_delta": {"accuracy": 0.05}, field: setting}))
    assert f"field '{where}': Input should be a finite number" in message, message


def test_a_nan_threshold_set_on_the_command_line_is_refused() -> None:
    with pytest.raises(OverrideError, match=r"--set gates.min_delta.accuracy=nan: field 'gates.min_delta.accuracy': "
                                            r"Input should be a finite number"):
        apply_overrides(get_task("iris").card, ["gates.judge_on=point", "gates.min_delta.accuracy=nan"])


# ---------------------------------------------------------------------------------------- 3c: trivial predictor


def constant_and_trivial() -> tuple[Any, Any]:
    """A tuned model that always answers the majority class 'a': exactly the trivial predictor."""
    constant = metrics_from_confusion([[60, 0], [40, 0]], ["a", "b"])
    return constant, constant


def test_a_card_without_min_delta_still_gates_the_trivial_predictor(tmp_path: Path) -> None:
    card = TaskCard.from_yaml(iris_with(tmp_path))
    assert card.gates.over_trivial() == {"accuracy": 0.01}, "the kind's first metric, a tie is not a pass"
    tuned, trivial = constant_and_trivial()
    results = trivial_gates(card.gates, "majority class 'a'", tuned, trivial)
    assert [r.check for r in results] == ["accuracy vs majority class 'a'"], results
    assert not results[0].passed, "a constant predictor must not pass the gate"


def test_the_default_margin_is_on_a_metric_a_constant_can_be_scored_on() -> None:
    defaults = {spec.name: spec.trivial_margins() for spec in KINDS.entries()}
    assert defaults["generative_classification"] == {"accuracy": 0.01}
    assert defaults["instruct"] == {"rouge1": 0.01}, "a constant response has no perplexity"
    assert defaults["structured_output"] == {"object_exact": 0.01}


def test_turning_the_trivial_gate_off_is_explicit_and_reported(tmp_path: Path) -> None:
    card = TaskCard.from_yaml(iris_with(tmp_path, min_delta_over_trivial={}))
    assert card.gates.over_trivial() == {}
    tuned, trivial = constant_and_trivial()
    assert trivial_gates(card.gates, "majority class 'a'", tuned, trivial) == []
    run = SimpleNamespace(overrides=(), task=SimpleNamespace(card=card), inputs=None)
    assert "trivial predictor not gated: the card sets gates.min_delta_over_trivial: {}" in card_notes(run)


# ------------------------------------------------------------------------------------------ 6d: metric of the kind


@pytest.mark.parametrize(("field", "metric"), [("floors", "object_exact"), ("min_delta", "exact"),
                                               ("min_delta_over_trivial", "perplexity"),
                                               ("max_subgroup_drop", "f1"), ("min_subgroup_score", "rougeL")])
def test_a_gated_metric_the_kind_does_not_compute_is_a_card_error(tmp_path: Path, field: str, metric: str) -> None:
    message = card_error(iris_with(tmp_path, **{field: {metric: 0.5}}))
    assert (f"gates.{field}.{metric}: kind generative_classification does not compute {metric!r}; it computes "
            f"accuracy, macro_precision, macro_recall, macro_f1, weighted_precision, weighted_recall, weighted_f1, "
            f"validity_rate: gate on one of those") in message, message


def test_a_misspelt_metric_suggests_the_kind_s_own() -> None:
    with pytest.raises(OverrideError, match=r"gates.min_delta.acuracy: kind generative_classification does not "
                                            r"compute 'acuracy' \(did you mean 'accuracy'\?\)"):
        apply_overrides(get_task("iris").card, ["gates.min_delta.acuracy=0.1"])


def test_the_validity_rate_every_kind_computes_may_be_gated(tmp_path: Path) -> None:
    card = TaskCard.from_yaml(iris_with(tmp_path, floors={"validity_rate": 0.9, "accuracy": 0.5}))
    assert card.gates.floors == {"validity_rate": 0.9, "accuracy": 0.5}


@pytest.mark.slow
@pytest.mark.parametrize(("override", "line"), [
    ("gates.floors.object_exact=0.5", "*gates.floors.object_exact: kind generative_classification does not compute*"),
    ("gates.min_delta.accuracy=nan", "*field 'gates.min_delta.accuracy': Input should be a finite number*"),
])
def test_the_plugin_refuses_these_gates_at_start_up(gate_dir: pytest.Pytester, override: str, line: str) -> None:
    result = gate_dir.runpytest_subprocess("-p", "no:cacheprovider", "--task", "iris", "--set", override)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()[-2000:]
    result.stderr.fnmatch_lines([line])


def test_a_min_delta_on_perplexity_alone_still_gates_the_trivial_predictor() -> None:
    """A constant response has no perplexity, so a trivial gate on it is 'not compared': the kind's default margin
    is added (review of issue 31, 3c)."""
    card = apply_overrides(get_task("instruct").card, ("gates.min_delta={perplexity: 1.0}",))
    margins = card.gates.over_trivial()
    assert margins["perplexity"] == 1.0 and any(metric != "perplexity" for metric in margins), margins


def test_structured_output_may_gate_outputs_valid_only_once_stripped() -> None:
    from loragate.kinds import KINDS

    assert "lenient_validity_rate" in KINDS.get("structured_output").gated_metrics()
