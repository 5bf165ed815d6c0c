"""A fleet (issue 34, point 4): many tasks, one adapter each (one per customer), on one shared base, gated in one pass:
the base loaded once, every adapter on the one model, the tasks' generations in shared batches, each task judged as it
is alone."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
import torch

from loragate.card.options import RunOptions
from loragate.card.settings import TinyBase
from loragate.inference import engine
from loragate.inference.shared_batches import SharedBatches
from loragate.models.bases import build_tiny_causal
from loragate.models.parameters import lora_parameters
from loragate.plugin.session import GateSession
from loragate.run import candidates as candidates_module
from loragate.run.candidates import run_pass
from loragate.run.task_run import run_task
from loragate.tasks import TASKS
from loragate.tasks.card_task import CardTaskEntry
from tests.plugin.test_candidates import gate

CUSTOMERS = 32
WORDS = ["apple", "stone", "river", "cloud", "lamp", "grass", "iron", "sand"]
TEAMS = ["north", "south", "east", "west"]
CARD = """name: {name}
description: Route an item to its team, one customer of a fleet.
kind: generative_classification
labels: {labels}
prompt_template: "Item: {{text}}\\nTeam:"
target_template: " {{label}}"
data:
  train: ../data/{name}/train.csv
  test: ../data/{name}/test.csv
  split: {{eval: 0.25, seed: 0}}
  columns: {{text: text, label: team}}
tiers:
  tiny:
    base_model: {base}
    lora: {{r: 2, alpha: 4, dropout: 0.0, target_modules: [q_proj, v_proj]}}
    train: {{epochs: 1, batch_size: 8, grad_accum: 1, lr: 3.0e-3, max_length: auto, seed: 0}}
    eval: {{batch_size: 16}}
gates:
  min_delta: {{accuracy: 0.0}}
"""


def write_fleet(root: Path, customers: int) -> list[str]:
    """A project of `customers` card-only tasks under root/tasks (each routing items to two of four teams by its own
    rule, its data under root/data/<name>), whose cards name one tiny base built here from all their text; their
    names."""
    rng = random.Random(34)
    base, names, texts = root / "base", [], []
    (root / "tasks").mkdir()
    for number in range(customers):
        name = f"customer{number:02d}"
        teams = rng.sample(TEAMS, 2)
        rule = {word: rng.choice(teams) for word in WORDS}
        (root / "data" / name).mkdir(parents=True)
        for split, count in (("train", 24), ("test", 8)):
            items = [f"{rng.choice(WORDS)} {rng.choice(WORDS)} {index}" for index in range(count)]
            rows = [f"{split}-{index},{item},{rule[item.split()[0]]}" for index, item in enumerate(items)]
            (root / "data" / name / f"{split}.csv").write_text("\n".join(["id,text,team", *rows]) + "\n")
            texts += [f"Item: {item}\nTeam: {rule[item.split()[0]]}" for item in items]
        (root / "tasks" / f"{name}.yaml").write_text(CARD.format(name=name, labels=teams, base=base))
        names.append(name)
    build_tiny_causal(TinyBase(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                               vocab_size=128, seed=0), texts, base)
    return names


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("fleet")
    return root, write_fleet(root, CUSTOMERS)


@pytest.fixture
def registered(fleet: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    root, names = fleet
    monkeypatch.setattr(TASKS, "_entries", dict(TASKS._entries))
    for name in names:
        TASKS.register(name, CardTaskEntry(root / "tasks" / f"{name}.yaml"))
    return names


def test_tasks_whose_cards_name_one_base_are_one_pass(registered: list[str], tmp_path: Path) -> None:
    """The session computes them together; a task on its own tiny base, or an encoder, is a pass of its own."""
    session = GateSession(RunOptions(), [*registered[:3], "iris", "sst2_encoder"], tmp_path)
    assert session.pass_of(registered[1], "tiny") == registered[:3]
    assert session.pass_of("iris", "tiny") == ["iris"] and session.pass_of("sst2_encoder", "tiny") == ["sst2_encoder"]
    assert GateSession(RunOptions(base_model="other"), registered[:3], tmp_path).pass_of(registered[0], "tiny") == [
        registered[0]]


@pytest.mark.slow
def test_thirty_two_customers_share_one_base_load_and_one_model(registered: list[str], tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    loads, passes = [], []
    load = candidates_module.prepare_base
    monkeypatch.setattr(candidates_module, "prepare_base", lambda *args: loads.append(args[0]) or load(*args))

    class Recorded(SharedBatches):
        def __init__(self, model: torch.nn.Module):
            super().__init__(model)
            passes.append(self)

    monkeypatch.setattr(candidates_module, "SharedBatches", Recorded)
    options = RunOptions(store_root=tmp_path / "adapters", cache=tmp_path / "cache", progress=False)
    runs = run_pass(registered, "tiny", options)
    assert len(loads) == 1, "the base is loaded once for the whole fleet"
    assert [max(max(groups, default=0) for groups in shared.rounds) for shared in passes] == [CUSTOMERS] * 2, \
        "the base's and the adapters' generations: each batch shared by every customer, whose prompts differ"
    every = [runs[name][""] for name in registered]
    assert len({id(run.base) for run in every}) == 1 and len({id(run.model) for run in every}) == 1
    assert len({run.adapter_dir for run in every}) == CUSTOMERS  # each customer's own adapter, stored under its key
    model = every[0].model
    assert len(model.peft_config) == CUSTOMERS
    for run in (every[0], every[-1]):  # each activates its own adapter, and counts only its LoRA parameters
        run.activate()
        assert model.active_adapter == run.adapter_name and lora_parameters(model) == run.expected_lora_parameters
    for name in (registered[0], registered[17]):  # the same answers as the task gated alone, from the same store
        alone = run_task(name, "tiny", options)
        assert alone.tuned_predictions.outputs == runs[name][""].tuned_predictions.outputs, name
        assert torch.equal(alone.base_logits, runs[name][""].base_logits), name


@pytest.mark.slow
def test_a_fleet_project_is_gated_in_one_pass_by_pytest(fleet: tuple[Path, list[str]], tmp_path: Path) -> None:
    """Three customers of a project's tasks directory: one base load in the progress, three tables, one verdict each."""
    root, names = fleet
    (tmp_path / "tasks").mkdir()
    for name in names[:3]:
        shutil.copy(root / "tasks" / f"{name}.yaml", tmp_path / "tasks")
        shutil.copytree(root / "data" / name, tmp_path / "data" / name)
    (tmp_path / "pyproject.toml").write_text('[tool.loragate]\ntasks = "tasks"\n')
    result = gate(tmp_path)
    out = result.stdout
    assert out.count("loaded base") == 1, out[-3000:]
    assert all(f"{name}/tiny: " in out for name in names[:3]), out[-3000:]


def break_for(monkeypatch: pytest.MonkeyPatch, step: str, task: str, what: str, task_of) -> None:
    """run_pass's `step` raising "<task>'s <what>" for `task` (named by task_of(its first argument)) alone."""
    works = getattr(candidates_module, step)

    def broken(first, *args):
        if task_of(first) == task:
            raise RuntimeError(f"{task}'s {what}")
        return works(first, *args)

    monkeypatch.setattr(candidates_module, step, broken)


@pytest.mark.slow
def test_a_fleet_task_that_fails_is_its_own_outcome_and_the_others_are_gated(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """One customer's missing data, another's predictions that raise, a third's retention probes that raise: those
    tasks' outcomes are their errors, the fourth is gated as alone; a task alone still raises."""
    names = write_fleet(tmp_path, 4)
    monkeypatch.setattr(TASKS, "_entries", dict(TASKS._entries))
    for name in names:
        TASKS.register(name, CardTaskEntry(tmp_path / "tasks" / f"{name}.yaml"))
    (tmp_path / "data" / names[0] / "test.csv").unlink()
    break_for(monkeypatch, "candidate_outputs", names[1], "predictions broke", lambda member: member.name)
    break_for(monkeypatch, "base_probes", names[3], "retention probe broke", lambda card: card.name)
    options = RunOptions(store_root=tmp_path / "adapters", cache=tmp_path / "cache", progress=False)
    outcomes = run_pass(names, "tiny", options)
    assert list(outcomes) == names
    assert isinstance(outcomes[names[0]], Exception) and "test.csv" in str(outcomes[names[0]]), outcomes[names[0]]
    assert isinstance(outcomes[names[1]], RuntimeError) and "predictions broke" in str(outcomes[names[1]])
    assert isinstance(outcomes[names[3]], RuntimeError) and "probe broke" in str(outcomes[names[3]])
    gated = outcomes[names[2]][""]
    assert gated.tuned_predictions.outputs == run_task(names[2], "tiny", options).tuned_predictions.outputs
    with pytest.raises(RuntimeError, match="predictions broke"):
        run_pass([names[1]], "tiny", options)


def test_the_session_raises_a_fleet_tasks_own_failure_and_serves_the_others(registered: list[str], tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    failure = RuntimeError("customer01's adapter broke")
    served = object()
    monkeypatch.setattr(candidates_module, "run_pass", lambda names, tier, options: {
        name: failure if name == registered[1] else {"": served} for name in names})
    session = GateSession(RunOptions(), registered[:3], tmp_path)
    with pytest.raises(RuntimeError, match="adapter broke"):
        session.run(registered[1], "tiny")
    assert session.failures == {(registered[1], "tiny", ""): failure}
    assert set(session.runs) == {(registered[0], "tiny", ""), (registered[2], "tiny", "")}


@pytest.mark.slow
def test_a_fleet_task_whose_kind_cannot_name_rows_adapters_is_predicted_on_its_own(
        registered: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its calls are refused while the others share the model (it would set the active adapter under their rows), and
    it is predicted after them, one candidate at a time: the same answers as alone."""
    monkeypatch.setattr(engine, "row_adapters", lambda model, rows: {})
    options = RunOptions(store_root=tmp_path / "adapters", cache=tmp_path / "cache", progress=False)
    with pytest.warns(UserWarning, match="cannot batch candidates mixed"):
        runs = run_pass(registered[:3], "tiny", options)
    for name in registered[:3]:
        assert runs[name][""].tuned_predictions.outputs == run_task(name, "tiny", options).tuned_predictions.outputs
