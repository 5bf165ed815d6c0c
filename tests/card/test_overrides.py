"""Card overrides (`--set path.to.key=value`): parsing, the card model's errors naming the --set, the adapter key,
and the overrides in the manifest, the table and every report of a real run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from loragate.card.options import RunOptions
from loragate.card.overrides import OverrideError, apply_overrides, parse_override
from loragate.report.rows import text_table
from loragate.report.writer import write_report
from loragate.run.steps import load_task
from loragate.run.task_run import TaskRun, run_task
from loragate.store.adapters import adapter_key, read_manifest
from loragate.tasks import get_task
from train_fixtures import main as train_fixtures_main

COMMITTED_IRIS = Path(__file__).parents[2] / "adapters" / "iris" / "tiny"


def test_values_are_read_as_yaml() -> None:
    assert parse_override("tiers.tiny.train.lr=1.0e-3") == (["tiers", "tiny", "train", "lr"], 0.001)
    assert parse_override("gates.max_leakage=null") == (["gates", "max_leakage"], None)
    assert parse_override("a.b=[q_proj, v_proj]") == (["a", "b"], ["q_proj", "v_proj"])
    assert parse_override("a=true") == (["a"], True)


def test_overrides_change_the_card_and_only_what_they_name() -> None:
    card = get_task("iris").card
    changed = apply_overrides(card, ["tiers.tiny.train.lr=1e-3", "gates.min_delta.accuracy=0.1",
                                     "tiers.tiny.lora.target_modules=[q_proj, v_proj]",
                                     "tiers.tiny.train.gradient_checkpointing=true", "gates.max_class_drop=0"])
    tiny = changed.tier("tiny")
    # "1e-3" is a YAML string: pydantic reads it
    assert tiny.train.lr == 1e-3 and tiny.train.gradient_checkpointing is True
    assert tiny.lora.target_modules == ["q_proj", "v_proj"]
    assert changed.gates.min_delta == {"accuracy": 0.1, "macro_f1": 0.05}
    assert changed.gates.max_class_drop == 0.0
    untouched = changed.model_copy(update={"tiers": card.tiers, "gates": card.gates})
    assert untouched == card
    assert apply_overrides(card, []) is card
    assert changed.path == card.path, "a card's files (data, output schema) stay relative to its own file"


@pytest.mark.parametrize("override, message", [
    ("tiers.tiny.train.lr=-1",
     "--set tiers.tiny.train.lr=-1: field 'tiers.tiny.train.lr': Input should be greater than 0"),
    ("tiers.tiny.train.lrr=1",
     "--set tiers.tiny.train.lrr=1: field 'tiers.tiny.train.lrr': Extra inputs are not permitted"),
    ("tiers.tiny.train.max_length=0",
     "field 'tiers.tiny.train.max_length': Value error, 0 is neither a positive number"),
    ("tiers.tiny.train.truncation=middle", "field 'tiers.tiny.train.truncation': Input should be 'refuse', 'left' or"),
    ("tiers.huge.train.lr=1", "--set tiers.huge.train.lr=1: the card has no 'tiers.huge'; tiers holds full, tiny"),
    ("labels.setosa=1", "'labels' is a value (['setosa', 'versicolor', 'virginica']), not a block of keys"),
    ("kind=regression", "field 'kind': Value error, Unknown task kind 'regression'"),
    ("tiers.tiny.train.lr", "--set tiers.tiny.train.lr: write it as path.to.key=value"),
    ("tiers..lr=1", "write it as path.to.key=value"),
    ("tiers.tiny.train.lr=[1", "the value '[1' is not YAML"),
    ("prompt_template=Species: {species}", "Input should be a valid string (the value read as YAML: {'Species': "
                                           "{'species': None}}; quote it to pass a string)"),
])
def test_a_bad_override_names_the_set_the_field_and_the_problem(override: str, message: str) -> None:
    with pytest.raises(OverrideError) as error:
        apply_overrides(get_task("iris").card, [override])
    assert message in str(error.value)


def test_of_several_overrides_the_error_names_the_one_at_fault() -> None:
    with pytest.raises(OverrideError) as error:
        apply_overrides(get_task("iris").card, ["tiers.tiny.train.lr=1e-3", "gates.min_validity=2"])
    assert "--set gates.min_validity=2: field 'gates.min_validity'" in str(error.value)
    assert "--set tiers.tiny.train.lr" not in str(error.value)


def test_truncation_does_not_apply_to_a_kind_that_windows_its_inputs() -> None:
    with pytest.raises(OverrideError, match=r"tiers.tiny.train.truncation: kind extractive_qa reads long inputs in "
                                            r"strided windows \(qa.max_length, qa.stride\)"):
        apply_overrides(get_task("squad_v2").card, ["tiers.tiny.train.truncation=left"])


def key_of(overrides: list[str]) -> str:
    """The iris tiny adapter's key under `overrides`, from the card and data they give (the base held fixed)."""
    task = load_task("iris", RunOptions(overrides=tuple(overrides)))
    settings = task.card.tier("tiny")
    return adapter_key("f" * 64, task.load_splits().data_hash(), settings.lora, settings.train)


def test_what_decides_the_weights_changes_the_key_and_a_gate_does_not() -> None:
    plain = key_of([])
    assert key_of(["gates.min_delta.accuracy=0.5", "tiers.tiny.eval.batch_size=4"]) == plain
    for weights in (["tiers.tiny.train.lr=1e-3"], ["tiers.tiny.lora.r=4"], ["tiers.tiny.train.truncation=left"],
                    ["prompt_template='Petals {petal_length} {petal_width}. Species:'"],
                    ["target_template=' = {label}'"]):
        assert key_of(weights) != plain, f"{weights} left the key unchanged"


def test_train_fixtures_refuses_a_bad_override_before_loading_anything(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        train_fixtures_main(["--task", "iris", "--set", "tiers.tiny.train.epochs=0"])
    assert exit_.value.code == 2
    assert "--set tiers.tiny.train.epochs=0: field 'tiers.tiny.train.epochs'" in capsys.readouterr().err


OVERRIDES = ("tiers.tiny.train.epochs=4", "tiers.tiny.train.max_length=14", "tiers.tiny.train.truncation=left",
             "gates.min_delta.accuracy=0.95")


@pytest.fixture(scope="module")
def overridden_run(tmp_path_factory: pytest.TempPathFactory) -> TaskRun:
    """The tiny Iris adapter trained under four overrides, one of them cutting prompts (about 3 s)."""
    tmp = tmp_path_factory.mktemp("overrides")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures start before the autouse one-thread fixture
    try:
        return run_task("iris", "tiny", RunOptions(store_root=tmp / "adapters", cache=tmp / "cache", progress=False,
                                                   overrides=OVERRIDES))
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_an_overridden_run_trains_under_its_own_key_and_its_manifest_records_the_overrides(
        overridden_run: TaskRun) -> None:
    run = overridden_run
    assert run.trained is not None and run.task.card.tier("tiny").train.epochs == 4
    assert run.manifest is not None and run.manifest.key not in {path.name for path in COMMITTED_IRIS.iterdir()}
    manifest = read_manifest(run.adapter_dir, run.manifest.key)
    assert manifest.overrides == list(OVERRIDES)
    assert manifest.train["max_length"] == 14 and manifest.train["truncation"] == "left"
    assert manifest.inputs == run.inputs.to_json()
    assert manifest.inputs["truncated"]["train"] == 90, manifest.inputs  # every Iris example takes 16 tokens


@pytest.mark.slow
def test_the_test_split_is_evaluated_on_prompts_cut_as_the_training_prompts_were(overridden_run: TaskRun) -> None:
    original = get_task("iris").load_splits()
    for split in ("train", "test"):
        for before, after in zip(getattr(original, split), getattr(overridden_run.splits, split)):
            assert before.id == after.id and before.prompt.endswith(after.prompt) and after.prompt != before.prompt


@pytest.mark.slow
def test_the_gates_read_the_overridden_threshold(overridden_run: TaskRun) -> None:
    (accuracy,) = [gate for gate in overridden_run.gates if gate.check == "accuracy delta"]
    assert accuracy.numbers.required == 0.95
    assert not accuracy.passed and "< required +0.950" in accuracy.finding


@pytest.mark.slow
def test_the_table_and_every_report_show_the_overrides_and_the_cut_prompts(overridden_run: TaskRun,
                                                                           tmp_path: Path) -> None:
    sets = " ".join(f"--set {text}" for text in OVERRIDES)
    cut = ("train.max_length 14 (the card's); truncation left: prompts cut in 90 of 90 train, 30 of 30 eval, "
           "30 of 30 test")
    table = text_table(overridden_run)
    assert f"note: card overrides: {sets}" in table and f"note: inputs: {cut}" in table
    report = write_report([overridden_run], tmp_path)
    (entry,) = json.loads((report / "report.json").read_text())["runs"]
    assert entry["overrides"] == list(OVERRIDES)
    assert entry["inputs"]["truncated"] == {"train": 90, "eval": 30, "test": 30}
    for name in ("report.md", "report.html", "summary.md"):
        text = (report / name).read_text()
        assert "card overrides: --set tiers.tiny.train.epochs=4" in text and "truncation left" in text, name


@pytest.mark.slow
def test_the_plugin_refuses_a_bad_override_at_start_naming_the_set(gate_dir: pytest.Pytester) -> None:
    result = gate_dir.runpytest_subprocess("-p", "no:cacheprovider", "--task", "iris", "--set",
                                           "tiers.tiny.train.lr=-1", "--set", "gates.min_delta.accuracy=0.1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--set tiers.tiny.train.lr=-1: field 'tiers.tiny.train.lr': Input should be "
                                 "greater than 0*"])
    malformed = gate_dir.runpytest_subprocess("-p", "no:cacheprovider", "--set", "lr")
    assert malformed.ret == pytest.ExitCode.USAGE_ERROR
    malformed.stderr.fnmatch_lines(["*argument --set: --set lr: write it as path.to.key=value*"])


@pytest.mark.slow
def test_the_plugin_hands_the_overrides_to_the_run(gate_dir: pytest.Pytester) -> None:
    gate_dir.makepyfile(test_options="""
from loragate.plugin.hooks import gate_session

def test_options(pytestconfig):
    print("OVERRIDES=" + repr(gate_session(pytestconfig).options.overrides))
""")
    result = gate_dir.runpytest_subprocess("-p", "no:cacheprovider", "-s", "--task", "iris", "--set",
                                           "tiers.tiny.train.lr=1e-3", "--set=gates.min_delta.accuracy=0.1")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*OVERRIDES=('tiers.tiny.train.lr=1e-3', 'gates.min_delta.accuracy=0.1')"])
