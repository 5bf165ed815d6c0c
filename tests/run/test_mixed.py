"""Issue 34, point 2: every candidate adapter predicted in one pass of mixed-adapter batches (loragate.run.mixed) gives,
for each candidate, exactly what steps.predict and steps.probe_of give with that adapter alone: for every built-in
kind (generative classification with label scoring, encoder heads with their own modules_to_save, QA spans with each
candidate's own threshold, instruct with its reference NLL, structured output), free and constrained, greedy and
sampled. The candidates are the committed adapter and copies with lora_B scaled or zeroed, so their answers differ."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file

from loragate.card.options import RunOptions
from loragate.card.overrides import apply_overrides
from loragate.data.examples import Example, Splits
from loragate.data.task import Task
from loragate.inference import engine
from loragate.inference.mixed_batches import BASE, MixedAdapters, row_adapters
from loragate.inference.predictions import Predictions, constant_predictions
from loragate.models.bases import LoadedBase
from loragate.run import mixed
from loragate.run.decoding_modes import task_constraint
from loragate.run.mixed import candidate_probe_logits, predict_candidates
from loragate.run.steps import predict, probe_of
from loragate.run.task_run import load_inputs
from loragate.tasks import get_task
from loragate.tasks.card_task import CardTask

ROOT = Path(__file__).resolve().parents[2]
ORDERS = ROOT / "examples" / "json_extraction"
TIER = "tiny"
SCALES = {"tiny": 1.0, "halved": 0.5, "zeroed": 0.0}  # each candidate: the committed adapter with lora_B times this
ALONE = mixed.alone


@dataclass
class Candidates:
    """One task's candidates loaded onto its one base, and its splits."""

    task: Task
    splits: Splits
    base: LoadedBase
    model: PeftModel
    names: list[str]


def scaled_copy(adapter: Path, out: Path, scale: float) -> Path:
    shutil.copytree(adapter, out)
    weights = load_file(out / "adapter_model.safetensors")
    save_file({key: value * scale if "lora_B" in key else value for key, value in weights.items()},
              out / "adapter_model.safetensors")
    return out


def load_candidates(model: torch.nn.Module, adapters: dict[str, Path]) -> PeftModel:
    """Every adapter on the one base under its own name, as the candidate run loads them: the first with
    from_pretrained, the others with load_adapter; the first is left active."""
    (first, directory), *others = adapters.items()
    peft_model = PeftModel.from_pretrained(model, directory, adapter_name=first, is_trainable=False)
    for name, other in others:
        peft_model.load_adapter(other, adapter_name=name, is_trainable=False)
    peft_model.eval()
    return peft_model


def candidates_of(task: Task, store: Path, out: Path, scales: dict[str, float] = SCALES,
                  with_base: bool = True) -> Candidates:
    """`task`'s committed tiny adapter (the one entry under `store`) and its scaled copies on the tier's base."""
    (committed,) = [entry for entry in (store / task.card.name / TIER).iterdir() if entry.is_dir()]
    options = RunOptions(cache=ROOT / ".loragate", progress=False)
    splits, base, _ = load_inputs(task, TIER, options)
    adapters = {name: committed if scale == 1.0 else scaled_copy(committed, out / name, scale)
                for name, scale in scales.items()}
    model = load_candidates(base.model, adapters)
    return Candidates(task, splits, base, model, [*adapters, *([BASE] if with_base else [])])


@contextmanager
def only(model: PeftModel, name: str) -> Iterator[None]:
    """`model` with adapter `name` alone active (none for __base__), then as it was, requires_grad included (peft's
    set_adapter and the end of disable_adapter make the active adapter trainable)."""
    active, grads = model.active_adapter, [parameter.requires_grad for parameter in model.parameters()]
    try:
        if name == BASE:
            with model.disable_adapter():
                yield
        else:
            model.set_adapter(name)
            yield
    finally:
        model.set_adapter(active)
        for parameter, grad in zip(model.parameters(), grads, strict=True):
            parameter.requires_grad_(grad)


def assert_same(got: Predictions, alone: Predictions, name: str) -> None:
    """Every field but the seconds (a mixed candidate's are its share of the pass) equal, logits bit for bit."""
    for field in fields(Predictions):
        left, right = getattr(got, field.name), getattr(alone, field.name)
        if field.name == "seconds":
            continue
        if field.name == "generations" and right is not None:
            left, right = ((g.texts, g.terminated, g.prompt_tokens, g.new_tokens, g.row_new_tokens)
                           for g in (left, right))
        same = torch.equal(left, right) if isinstance(right, torch.Tensor) else left == right
        assert same, f"candidate {name}: {field.name} differs from the adapter's own prediction"


@pytest.fixture(autouse=True)
def mixed_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every built-in kind batches candidates mixed: falling back to one at a time would hide a call site that names
    no row's adapter."""
    def refused(*args: object) -> None:
        raise AssertionError("the mixed pass fell back to predicting one candidate at a time")

    monkeypatch.setattr(mixed, "alone", refused)


def check_pass(run: Candidates, examples: list[Example] | None = None, calibration: list[Example] | None = None,
               constrained: bool = False) -> dict[str, Predictions]:
    """The mixed predictions and probes of every candidate equal its own, alone; the active adapter is left as it
    was; the candidates' answers differ (a mix-up of rows would show)."""
    examples = run.splits.test if examples is None else examples
    calibration = run.splits.eval if calibration is None else calibration
    constraint = task_constraint(run.task.card) if constrained else None
    active = run.model.active_adapter
    got = predict_candidates(run.task, TIER, run.model, run.base, examples, run.names, False, "mixed", calibration,
                             constraint)
    assert run.model.active_adapter == active
    probes = candidate_probe_logits(run.task, TIER, run.model, run.base, examples, run.names, got)
    assert list(got) == list(probes) == run.names
    for name in run.names:
        with only(run.model, name):
            alone = predict(run.task, run.model, run.base, examples, TIER, False, name, calibration, constraint)
            probe = probe_of(run.task, TIER, run.model, run.base, examples, alone)
        assert_same(got[name], alone, name)
        assert torch.equal(probes[name], probe), f"candidate {name}: probe logits differ from its own"
    assert len({tuple(predictions.outputs) for predictions in got.values()}) > 1, "the candidates answer alike"
    return got


def builtin(name: str, *overrides: str) -> Task:
    task = get_task(name)
    task.card = apply_overrides(task.card, overrides)
    return task


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Candidates:
    return candidates_of(builtin("iris"), ROOT / "adapters", tmp_path_factory.mktemp("iris"))


@pytest.mark.slow
def test_generative_classification_generation_and_label_scoring_are_each_candidates_own(iris: Candidates) -> None:
    got = check_pass(iris)
    assert got["tiny"].scored is not None, "iris decodes by label scoring"


@pytest.mark.slow
def test_constrained_labels_are_each_candidates_own(iris: Candidates) -> None:
    check_pass(iris, constrained=True)


@pytest.mark.slow
def test_sampled_rows_draw_each_candidates_own_samples_with_the_examples_seeds(iris: Candidates) -> None:
    """k samples of each example, each from the generator of (seed, example, sample): a candidate's samples are
    those it draws alone, under the grammar too."""
    sampled = get_task("iris")
    sampled.card = apply_overrides(iris.task.card, ("tiers.tiny.eval.decode=generate",
                                                    "tiers.tiny.eval.sampling={temperature: 3.0, samples: 3, seed: 1}"))
    run = Candidates(sampled, iris.splits, iris.base, iris.model, iris.names)
    for constrained in (False, True):
        got = check_pass(run, constrained=constrained)
        outputs = got["tiny"].outputs
        assert len(outputs) == 3 * len(iris.splits.test) and got["tiny"].ids[:3] == [iris.splits.test[0].id] * 3
        assert any(len(set(outputs[row:row + 3])) > 1 for row in range(0, len(outputs), 3)), "no sample differed"


@pytest.mark.slow
def test_candidates_of_other_ranks_and_target_modules_mix(tmp_path: Path) -> None:
    """PEFT's mixed forward leaves a layer alone for the rows of an adapter that does not target it, as that adapter
    alone does: r 4 on q_proj and v_proj beside the committed r 8 on every linear, each gives its own answers."""
    _, bare, _ = load_inputs(builtin("iris"), TIER, RunOptions(cache=ROOT / ".loragate", progress=False))
    odd = get_peft_model(bare.model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                task_type="CAUSAL_LM"))
    generator = torch.Generator().manual_seed(0)
    for name, parameter in odd.named_parameters():
        if "lora_B" in name:
            parameter.data = torch.randn(parameter.shape, generator=generator)
    odd.save_pretrained(tmp_path / "odd")
    run = candidates_of(builtin("iris"), ROOT / "adapters", tmp_path, {"tiny": 1.0})
    run.model.load_adapter(tmp_path / "odd", adapter_name="odd", is_trainable=False)
    run.names = ["tiny", "odd", BASE]
    got = check_pass(run)
    assert got["odd"].outputs not in (got["tiny"].outputs, got[BASE].outputs)


@pytest.mark.slow
def test_sst2_generative_labels_are_each_candidates_own(tmp_path: Path) -> None:
    check_pass(candidates_of(builtin("sst2"), ROOT / "adapters", tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["topics", "sst2_encoder"])
def test_encoder_heads_saved_with_each_adapter_give_each_candidates_logits(name: str, tmp_path: Path) -> None:
    """sequence classification: each candidate's own head (modules_to_save) reads its rows; its logits are the
    probe."""
    run = candidates_of(builtin(name), ROOT / "adapters", tmp_path)
    got = check_pass(run)
    assert got["tiny"].logits is not None


@pytest.mark.slow
def test_qa_spans_with_each_candidates_own_threshold(tmp_path: Path) -> None:
    """extractive QA: each candidate chooses its own no-answer threshold on the eval split."""
    run = candidates_of(builtin("squad_v2"), ROOT / "adapters", tmp_path, {"tiny": 1.0, "halved": 0.5})
    got = check_pass(run, run.splits.test[:40], run.splits.eval[:40])
    assert len({predictions.threshold for predictions in got.values()}) > 1, "the candidates chose one threshold"


@pytest.mark.slow
def test_instruct_responses_and_reference_nll_are_each_candidates_own(tmp_path: Path) -> None:
    got = check_pass(candidates_of(builtin("instruct"), ROOT / "adapters", tmp_path))
    assert got["tiny"].nll != got["halved"].nll


@pytest.mark.slow
@pytest.mark.parametrize("constrained", [False, True])
def test_structured_output_free_and_constrained_is_each_candidates_own(constrained: bool, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ORDERS))  # the card's output_schema: order_schema:Order
    run = candidates_of(CardTask(ORDERS / "tasks" / "orders.yaml"), ORDERS / "adapters", tmp_path)
    check_pass(run, constrained=constrained)


class OutOfMemoryAbove:
    """A kind whose prediction runs out of memory above `fits` examples a batch; each row answers with its adapter."""

    def __init__(self, fits: int):
        self.fits, self.sizes = fits, []

    def predict(self, task: Task, model: MixedAdapters, base: None, examples: list[Example], tier: str,
                progress: bool, desc: str, calibration: object, batch_size: int) -> Predictions:
        self.sizes.append(batch_size)
        if batch_size > self.fits:
            raise torch.OutOfMemoryError("CUDA out of memory")
        names = row_adapters(model, range(len(examples)))["adapter_names"]
        return constant_predictions(examples, [f"{ex.id} {name}" for ex, name in zip(examples, names)], task.parse)


def test_out_of_memory_halves_the_examples_a_batch_as_for_one_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    """The iris card's eval batch of 32 examples, each once per candidate, halved until 8 fit; at 1 the error names the
    candidates."""
    task, examples = builtin("iris"), [Example(id=f"e{i}", prompt="p", target=" setosa", label="setosa")
                                       for i in range(3)]
    kind = OutOfMemoryAbove(8)
    monkeypatch.setattr(mixed, "kind", lambda task: kind)
    with pytest.warns(UserWarning) as caught:
        got = predict_candidates(task, TIER, object(), None, examples, ["a", "b"], False, "tuned iris/tiny")
    assert kind.sizes == [32, 16, 8]
    assert [str(w.message) for w in caught] == [
        "tuned iris/tiny: out of memory at eval batch size 32 x 2 candidates; retrying at 16",
        "tuned iris/tiny: out of memory at eval batch size 16 x 2 candidates; retrying at 8"]
    assert {name: (p.outputs, p.batch_size, p.card_batch_size) for name, p in got.items()} == {
        name: ([f"e{i} {name}" for i in range(3)], 8, 32) for name in ("a", "b")}
    monkeypatch.setattr(mixed, "kind", lambda task: OutOfMemoryAbove(0))
    with pytest.warns(UserWarning), pytest.raises(RuntimeError, match=r"^tuned iris/tiny: out of memory even at eval "
                                                  r"batch size 1, one example for each of 2 candidates \(card: 32\); "
                                                  r"gate fewer candidates in one run"):
        predict_candidates(task, TIER, object(), None, examples, ["a", "b"], False, "tuned iris/tiny")


@pytest.mark.slow
def test_a_kind_that_names_no_rows_adapter_predicts_each_candidate_alone(iris: Candidates,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A project's kind calling the model without row_adapters would answer every row with the active adapter; it is
    refused (UnmixedCall) and each candidate predicted and probed alone, the active adapter and every parameter's
    requires_grad left as they were."""
    monkeypatch.setattr(mixed, "alone", ALONE)
    monkeypatch.setattr(engine, "row_adapters", lambda model, rows: {})
    grads = [parameter.requires_grad for parameter in iris.model.parameters()]
    with pytest.warns(UserWarning, match=r"the generative_classification kind cannot batch candidates mixed \(a batch "
                                         r"call on 4 mixed adapters names no row's adapter"):
        check_pass(iris)
    assert [parameter.requires_grad for parameter in iris.model.parameters()] == grads
