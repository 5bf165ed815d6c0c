"""Free and constrained decoding in the gate (issue #19): the card's eval.constrain is what the gates read, the other
mode is reported; a tuned model valid only under the grammar fails a free-decoding card naming the gap; a kind or
schema that cannot be constrained is refused before any model loads; a real run shows both modes side by side."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from loragate.card.options import OptionError, RunOptions
from loragate.card.settings import TaskCard
from loragate.data.examples import Example
from loragate.gates.result import GateResult
from loragate.inference.predictions import Predictions, constant_predictions
from loragate.plugin.startup import require_constrainable
from loragate.report.rows import text_table
from loragate.report.writer import write_report
from loragate.run.adapter import CanaryFailed, run_canary
from loragate.run.decoding_modes import CONSTRAINED, FREE, name_the_gap
from loragate.run.judging import Judged, judge_predictions
from loragate.run.task_run import run_task
from loragate.tasks import get_task

REPO = Path(__file__).parents[2]
N = 300


def iris_examples() -> list[Example]:
    labels = get_task("iris").card.labels
    return [Example(id=f"ex-{i}", prompt=f"flower {i}", target=f" {labels[i % 3]}", label=labels[i % 3])
            for i in range(N)]


def outputs(examples: list[Example], texts: list[str]) -> Predictions:
    return constant_predictions(examples, texts, get_task("iris").parse)


def failures(judged: Judged) -> dict[str, str]:
    return {r.check: r.finding for r in judged.gates if not r.passed}


def valid_only_under_the_grammar() -> tuple[list[Example], Predictions, Predictions, tuple[Predictions, Predictions]]:
    """A base that says "setosa" to everything, free and constrained; a tuned model right on every example under
    the grammar whose free text parses on one example in ten (the label, then chatter)."""
    examples = iris_examples()
    base = outputs(examples, ["setosa"] * N)
    tuned_free = outputs(examples, [ex.label if i % 10 == 0 else f"{ex.label}, I think"
                                    for i, ex in enumerate(examples)])
    tuned_constrained = outputs(examples, [ex.label for ex in examples])
    return examples, base, tuned_free, (base, tuned_constrained)


def test_valid_only_under_the_grammar_fails_a_free_decoding_card_naming_the_gap() -> None:
    examples, base, tuned_free, constrained = valid_only_under_the_grammar()
    judged = judge_predictions(get_task("iris"), examples, base, tuned_free, constrained, FREE)
    finding = failures(judged).get("validity", "")
    assert finding.startswith("validity rate 0.100 < required 1.000"), failures(judged)
    assert ("validity 0.100 free vs 1.000 constrained, floor 1.000: only the constrained outputs reach the floor; "
            "deploy the adapter with constrained decoding") in finding, finding
    assert judged.gated.mode == FREE and judged.tuned_metrics.validity_rate == pytest.approx(0.1)
    assert judged.reported is not None and judged.reported.mode == CONSTRAINED
    assert judged.reported.tuned_metrics.accuracy == 1.0


def test_the_same_predictions_pass_a_card_that_declares_constrained_decoding() -> None:
    examples, base, tuned_free, constrained = valid_only_under_the_grammar()
    judged = judge_predictions(get_task("iris"), examples, base, tuned_free, constrained, CONSTRAINED)
    assert failures(judged) == {}, failures(judged)
    assert judged.gated.mode == CONSTRAINED and judged.tuned_metrics.accuracy == 1.0
    assert judged.reported is not None and judged.reported.tuned_metrics.validity_rate == pytest.approx(0.1)


def test_without_constrained_predictions_the_validity_finding_names_no_gap() -> None:
    examples, base, tuned_free, _ = valid_only_under_the_grammar()
    judged = judge_predictions(get_task("iris"), examples, base, tuned_free)
    assert "constrained" not in failures(judged)["validity"] and judged.reported is None and not judged.mode_deltas
    with pytest.raises(ValueError, match="declares constrained decoding, but only free predictions"):
        judge_predictions(get_task("iris"), examples, base, tuned_free, None, CONSTRAINED)


def test_a_gap_the_grammar_does_not_close_is_named_without_blaming_the_free_outputs_alone() -> None:
    examples, base, tuned_free, _ = valid_only_under_the_grammar()
    half = outputs(examples, [ex.label if i % 2 else "none" for i, ex in enumerate(examples)])  # "none": no label
    judged = judge_predictions(get_task("iris"), examples, base, tuned_free, (base, half), FREE)
    finding = failures(judged)["validity"]
    assert finding.endswith("validity 0.100 free vs 0.500 constrained, floor 1.000: the constrained outputs miss the "
                            "floor too"), finding


@pytest.mark.parametrize(("free", "constrained", "holds"), [(0.93, 0.998, True), (0.93, 0.94, False),
                                                              (0.0, 0.95, True)])
def test_the_gap_finding_states_its_numbers_and_claims_the_floor_only_where_it_holds(free: float, constrained: float,
                                                                                      holds: bool) -> None:
    """Issue 32, point 5: "valid only under the grammar" was printed for 0.93 free vs 0.998 constrained, rounded to
    "0.93 free vs 1.00"; now the three numbers the claim compares are printed as the gate prints its own."""
    failed, other = GateResult("validity", "validity rate ..."), GateResult("accuracy", "accuracy ...")
    (named, untouched) = name_the_gap([failed, other], SimpleNamespace(validity_rate=free),
                                      SimpleNamespace(validity_rate=constrained), 0.95)
    numbers = f"validity {free:.3f} free vs {constrained:.3f} constrained, floor 0.950"
    assert named.finding.startswith(f"validity rate ...; {numbers}"), named.finding
    assert ("only the constrained outputs reach the floor" in named.finding) is holds, named.finding
    assert ("miss the floor too" in named.finding) is not holds, named.finding
    assert "valid only under the grammar" not in named.finding and untouched == other
    assert name_the_gap([GateResult("validity", None)], SimpleNamespace(validity_rate=free),
                        SimpleNamespace(validity_rate=constrained), 0.95) == [GateResult("validity", None)]


def test_paired_deltas_free_to_constrained_for_the_gated_metrics() -> None:
    examples, base, tuned_free, constrained = valid_only_under_the_grammar()
    judged = judge_predictions(get_task("iris"), examples, base, tuned_free, constrained, FREE)
    deltas = {row.metric: row for row in judged.mode_deltas}
    assert list(deltas) == ["validity_rate", "accuracy", "macro_f1"]
    assert deltas["validity_rate"].delta == pytest.approx(0.9) and deltas["validity_rate"].low is None
    accuracy = deltas["accuracy"]
    assert (accuracy.free, accuracy.constrained) == (pytest.approx(0.1), 1.0)
    assert accuracy.low is not None and 0.8 < accuracy.low <= 0.9 <= accuracy.high <= 0.95, accuracy


def test_a_kind_that_generates_no_label_or_json_is_refused_naming_task_and_kind() -> None:
    card = get_task("sst2_encoder").card
    with pytest.raises(OptionError, match=r"task sst2_encoder: .* sst2_encoder is a sequence_classification task"):
        require_constrainable([card], True)
    require_constrainable([card], False)  # the card decodes free: nothing to check
    with pytest.raises(OptionError, match="sequence_classification"):
        run_task("sst2_encoder", "tiny", RunOptions(constrain=True, progress=False))  # before any model loads


def unenforceable_card(tmp_path: Path, constrain: str) -> TaskCard:
    """A structured card whose schema has a set field: JSON Schema's uniqueItems, which llguidance refuses."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    (tmp_path / "tagged.py").write_text("from pydantic import BaseModel\n"
                                        "class Tagged(BaseModel):\n    tags: set[str]\n")
    (tmp_path / "card.yaml").write_text(f"""
name: tagged
description: tags as a set
kind: structured_output
structured: {{output_schema: "tagged:Tagged"}}
prompt_template: "Text: {{text}}\\nTags:"
target_template: " {{output}}"
data: {{file: rows.jsonl, split: {{test: 0.2, eval: 0.2, seed: 0}}}}
tiers:
  tiny:
    base_model: tiny
    lora: {{r: 4, alpha: 8, target_modules: [q_proj]}}
    train: {{epochs: 1, batch_size: 8, lr: 1.0e-3}}
    eval: {{constrain: {constrain}}}
gates: {{min_delta: {{object_exact: 0.1}}}}
""")
    return TaskCard.from_yaml(tmp_path / "card.yaml")


def test_a_schema_llguidance_cannot_enforce_is_refused_at_start_up_with_its_reason(tmp_path: Path) -> None:
    declared = unenforceable_card(tmp_path, "schema")
    with pytest.raises(OptionError, match=r"task tagged: constrained decoding refused: JSON of Tagged: llguidance "
                                          r"cannot enforce it: .*uniqueItems"):
        require_constrainable([declared], False)
    free = unenforceable_card(tmp_path, "none")
    require_constrainable([free], False)  # decoded free only: the schema is never compiled
    with pytest.raises(OptionError, match="uniqueItems"):
        require_constrainable([free], True)


CONSTRAIN_TEST = """
from loragate.plugin.hooks import gate_session

def test_constrain(pytestconfig):
    print("CONSTRAIN", gate_session(pytestconfig).options.constrain)
"""


@pytest.mark.slow
def test_the_constrain_option_is_checked_at_start_up_and_reaches_the_run(pytester: pytest.Pytester,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_constrain=CONSTRAIN_TEST)
    refused = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--constrain", "--task", "sst2_encoder")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR, refused.stdout.str()
    refused.stderr.fnmatch_lines(
        ["ERROR: task sst2_encoder: constrained decoding * is a sequence_classification task*"])
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s", "--constrain", "--task", "iris")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.stdout.fnmatch_lines(["*CONSTRAIN True*"])


@pytest.fixture(scope="module")
def iris_both_ways(tmp_path_factory: pytest.TempPathFactory):
    """Iris with its committed tiny adapter (copied: a key mismatch must not train into the repository), decoded
    free and under one_of."""
    tmp = tmp_path_factory.mktemp("constrained")
    shutil.copytree(REPO / "adapters" / "iris", tmp / "adapters" / "iris")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures start before the autouse one-thread fixture
    try:
        return run_task("iris", "tiny", RunOptions(store_root=tmp / "adapters", cache=REPO / ".loragate",
                                                   constrain=True, progress=False))
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_a_real_run_with_constrain_shows_both_modes_in_the_table_and_report(iris_both_ways, tmp_path: Path) -> None:
    run = iris_both_ways
    assert run.trained is None, "the committed adapter was loaded, not trained"
    assert run.decoding == FREE and run.reported is not None and run.reported.mode == CONSTRAINED
    constrained = run.reported
    assert constrained.base_metrics.validity_rate == 1.0 and constrained.tuned_metrics.validity_rate == 1.0
    assert run.base_metrics.validity_rate < 1.0, "the untuned base writes free text that is no label"
    assert all(output.strip() in run.task.card.labels for output in constrained.base_predictions.outputs)
    assert "Free vs constrained decoding (one of 3 targets; the gates read free)" in text_table(run)
    report = write_report([run], tmp_path)
    (entry,) = json.loads((report / "report.json").read_text())["runs"]
    block = entry["constrained"]
    assert entry["decoding"] == "free" and block["gated"] == "free" and block["constraint"] == "one of 3 targets"
    assert block["constrained"]["base"]["validity_rate"] == 1.0
    assert block["free"]["tuned"]["accuracy"] == pytest.approx(run.tuned_metrics.accuracy)
    assert [row["metric"] for row in block["tuned_deltas"]] == ["validity_rate", "accuracy", "macro_f1"]
    assert len(block["reported_outputs"]) == run.tuned_metrics.n
    for name in ("report.md", "report.html"):
        text = (report / name).read_text()
        assert "Free vs constrained decoding (one of 3 targets; the gates read free)" in text, name
        assert "tuned free (gated)" in text and "tuned constrained" in text, name


@pytest.mark.slow
def test_the_canary_reads_outputs_in_the_tiny_tier_s_declared_decoding(tmp_path: Path) -> None:
    """An iris tiny tier that cannot learn writes free text that is no label; declared constrained, its outputs are
    labels, so the canary judges no parse failure (only, where it did not fall, the loss)."""
    task = get_task("iris")
    tiny = task.card.tiers["tiny"]
    frozen = tiny.model_copy(update={"train": tiny.train.model_copy(update={"lr": 1e-12, "epochs": 1}),
                                     "eval": tiny.eval.model_copy(update={"constrain": "schema"})})
    task.card = task.card.model_copy(update={"tiers": {**task.card.tiers, "tiny": frozen}})
    options = RunOptions(store_root=tmp_path / "adapters", cache=tmp_path / "cache", progress=False)
    try:
        run_canary(task, task.load_splits(), options)
    except CanaryFailed as exc:
        assert "do not parse" not in str(exc), exc


@pytest.mark.slow
def test_a_card_declaring_schema_gates_the_constrained_outputs_and_reports_the_free_ones(tmp_path: Path) -> None:
    """--set tiers.tiny.eval.constrain=schema (eval settings stay out of the adapter key: the committed adapter
    loads): the run's predictions and gates are the constrained ones, the free ones are reported, and the throughput
    suite's re-prediction decodes under the grammar too."""
    shutil.copytree(REPO / "adapters" / "iris", tmp_path / "adapters" / "iris")
    run = run_task("iris", "tiny", RunOptions(store_root=tmp_path / "adapters", cache=REPO / ".loragate",
                                              overrides=("tiers.tiny.eval.constrain=schema",), progress=False))
    assert run.trained is None and run.decoding == CONSTRAINED
    assert run.reported is not None and run.reported.mode == FREE and run.reported.base_metrics.validity_rate < 1.0
    assert run.base_metrics.validity_rate == 1.0, "the base's constrained outputs are labels, and they are gated"
    assert "Free vs constrained decoding (one of 3 targets; the gates read constrained)" in text_table(run)
    assert "base constrained (gated)" in text_table(run)
    assert run.predict(run.model).outputs == run.tuned_predictions.outputs
