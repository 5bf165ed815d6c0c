"""Every mistake in a task's data or schema at start-up: `pytest -m smoke` in a user's project reads each selected
task's data and imports its schema before any model loads, and a misspelt column, template field, schema module or
class is one line with the closest name and exit 4, not a traceback under every gate test."""

from __future__ import annotations

import csv
import json
import sys

import pytest
import yaml

from loragate.tasks import CARDS_DIR

USAGE_ERROR = pytest.ExitCode.USAGE_ERROR  # 4
TIER = {"base_model": "tiny", "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj"]},
        "train": {"epochs": 1, "batch_size": 4, "lr": 1e-3}}
TEAMS = ["billing", "technical", "shipping"]
SCHEMA = """
from pydantic import BaseModel


class Order(BaseModel):
    item: str
    quantity: int
"""


def project(pytester: pytest.Pytester, card: dict) -> None:
    """A project whose tasks directory holds `card` (a card-only task) beside its data: tickets.csv (message, team)
    and orders.jsonl (text, output)."""
    pytester.path.joinpath("pyproject.toml").write_text('[tool.loragate]\ntasks = "tasks"\n')
    tasks = pytester.mkdir("tasks")
    with (tasks / "tickets.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["message", "team"])
        writer.writerows([f"ticket {i} about {team}", team] for i in range(10) for team in TEAMS)
    (tasks / "orders.jsonl").write_text("".join(
        json.dumps({"text": f"{n} x mug {i}", "output": {"item": f"mug {i}", "quantity": n}}) + "\n"
        for i in range(10) for n in (1, 2, 3)))
    (tasks / "order_schema.py").write_text(SCHEMA)
    (tasks / f"{card['name']}.yaml").write_text(yaml.safe_dump(card))


def tickets(**fields: object) -> dict:
    return {"name": "tickets", "description": "Route a ticket.", "kind": "generative_classification",
            "labels": TEAMS, "prompt_template": "Ticket: {text}\nTeam:", "tiers": {"tiny": TIER}, "gates": {},
            "data": {"file": "tickets.csv", "split": {"test": 0.2}, "columns": {"text": "message", "label": "team"}},
            **fields}


def orders(schema: str) -> dict:
    return {"name": "orders", "description": "An order.", "kind": "structured_output",
            "structured": {"output_schema": schema}, "prompt_template": "Message: {text}\nOrder:",
            "target_template": " {output}", "tiers": {"tiny": TIER}, "gates": {},
            "data": {"file": "orders.jsonl", "split": {"test": 0.2}}}


def usage_error(pytester: pytest.Pytester, *args: str) -> str:
    """The one line a `pytest -m smoke` run stopped with as collection started, before any model loaded."""
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-m", "smoke", *args)
    output = result.stdout.str()[-3000:] + result.stderr.str()[-3000:]
    assert result.ret == USAGE_ERROR, output
    errors = [line for line in result.errlines if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("ERROR: "), output
    assert " collected " not in result.stdout.str() and "Traceback" not in output
    assert not (pytester.path / ".loragate" / "bases").exists() and not (pytester.path / "reports").exists(), output
    return errors[0]


@pytest.mark.slow
def test_a_misspelt_column_is_one_line_at_start_up(gate_dir: pytest.Pytester) -> None:
    project(gate_dir, tickets(data={"file": "tickets.csv", "split": {"test": 0.2},
                                    "columns": {"text": "mesage", "label": "team"}}))
    line = usage_error(gate_dir)
    assert line.startswith(f"ERROR: task tickets: {gate_dir.path / 'tasks' / 'tickets.csv'}:2: no column 'mesage' "
                           f"(data.columns.text) (did you mean 'message'?); the header names the columns "
                           f"['message', 'team']: map text to one of them"), line


@pytest.mark.slow
def test_a_misspelt_template_field_is_one_line_at_start_up(gate_dir: pytest.Pytester) -> None:
    project(gate_dir, tickets(prompt_template="Ticket: {txet}\nTeam:"))
    line = usage_error(gate_dir)
    assert line.startswith(f"ERROR: task tickets: {gate_dir.path / 'tasks' / 'tickets.csv'}:2: no field 'txet' (read "
                           f"by prompt_template) (did you mean 'text'?)"), line


@pytest.mark.slow
def test_a_misspelt_schema_module_is_one_line_at_start_up(gate_dir: pytest.Pytester) -> None:
    project(gate_dir, orders("order_schem:Order"))
    line = usage_error(gate_dir)
    assert line.startswith("ERROR: task orders: structured.output_schema 'order_schem:Order': "), line
    assert "module 'order_schem' is not importable (No module named 'order_schem') (did you mean 'order_schema'?); " \
           "put order_schem.py beside the card" in line, line


@pytest.mark.slow
def test_a_misspelt_schema_class_is_one_line_at_start_up(gate_dir: pytest.Pytester) -> None:
    project(gate_dir, orders("order_schema:Ordr"))
    line = usage_error(gate_dir)
    assert line.startswith("ERROR: task orders: structured.output_schema 'order_schema:Ordr': order_schema.Ordr is "
                           "missing (did you mean 'Order'?); name a pydantic BaseModel subclass defined in "), line


@pytest.mark.slow
def test_data_replaces_the_card_files_in_the_start_up_check(gate_dir: pytest.Pytester) -> None:
    """The card's own file is fine; the --data file's unknown label stops the run, naming that file."""
    project(gate_dir, tickets())
    other = gate_dir.path / "other.csv"
    other.write_text("message,team\n" + "".join(f"ticket {i},{team}\n" for i in range(10) for team in TEAMS)
                     + "ticket x,sales\n")
    line = usage_error(gate_dir, "--task", "tickets", f"--data={other}")
    assert line == (f"ERROR: task tickets: {other}: label values the card does not list: 'sales' (1 row, "
                    f"other.csv:32); the card's labels are {TEAMS}: fix the rows, or add the values to the card's "
                    f"labels"), line


@pytest.mark.slow
def test_a_run_that_selects_no_gate_test_reads_no_data(gate_dir: pytest.Pytester) -> None:
    """A project's own unit tests (`pytest`, no -m smoke) run whatever its task's data holds."""
    project(gate_dir, tickets(prompt_template="Ticket: {txet}\nTeam:"))
    gate_dir.makepyfile(test_own="def test_own():\n    assert True\n")
    result = gate_dir.runpytest_subprocess("-p", "no:cacheprovider", "test_own.py")
    result.assert_outcomes(passed=1)


@pytest.mark.slow
def test_a_built_in_tasks_data_file_is_checked_at_start_up(gate_dir: pytest.Pytester) -> None:
    """A task module's own loader: its ValueError for a bad --data file is the one line too."""
    data = gate_dir.path / "iris.csv"
    data.write_text("sepal_length,sepal_width,petal_length,petal_width,species\n5.1,3.5,1.4,0.2,rose\n")
    line = usage_error(gate_dir, "--task", "iris", f"--data={data}")
    assert line.startswith(f"ERROR: task iris: {data}:2: species 'rose' is not one of setosa, versicolor, "
                           f"virginica"), line


@pytest.mark.slow
@pytest.mark.parametrize("task, override, start", [
    ("iris", 'prompt_template="Flower: {petal}"', "ERROR: task iris: prompt_template 'Flower: {petal}' reads {petal} "
     "(did you mean {petal_width} or {petal_length}?)"),
    ("sst2", 'target_template=" {sentiment}"', "ERROR: task sst2: target_template ' {sentiment}' reads {sentiment}, "
     "a field this task's examples do not have; they have {label}"),
])
def test_a_built_in_tasks_template_field_it_lacks_is_one_line_at_start_up(gate_dir: pytest.Pytester, task: str,
                                                                           override: str, start: str) -> None:
    """A built-in task module fills the templates itself: a --set template reading a field its examples lack was a
    KeyError traceback under every gate test; now the one line naming the card field and the fields there are."""
    line = usage_error(gate_dir, "--task", task, "--set", override)
    assert line.startswith(start), line


@pytest.mark.slow
def test_a_chat_template_card_on_a_base_without_a_template_is_one_line_at_start_up(gate_dir: pytest.Pytester) -> None:
    """It was a ChatTemplateError traceback once the base loaded, under the first gate test, then one line per test."""
    base = gate_dir.mkdir("base")
    saved = gate_dir.run(sys.executable, "-c", "import sys; from loragate.models.bases import train_tokenizer; "
                         "train_tokenizer(['a flower', 'a sepal'], 64).save_pretrained(sys.argv[1])",
                         str(base))  # in a subprocess: it loads torch (tests/plugin/conftest.py)
    assert saved.ret == 0, saved.stderr.str()
    (base / "config.json").write_text('{"model_type": "llama"}')
    line = usage_error(gate_dir, "--task", "iris", "--set", "chat_template=true", f"--base-model={base}")
    assert line == (f"ERROR: task iris: --base-model {str(base.resolve())!r}: its tokenizer has no chat template, and "
                    f"the card's prompts go through one (chat_template: true). Fix: use the model's instruct/chat "
                    f"variant (e.g. meta-llama/Llama-3.2-1B-Instruct, not meta-llama/Llama-3.2-1B), or save the "
                    f"tokenizer with a chat_template (loragate.models.chat.TINY_CHAT_TEMPLATE is a minimal one), or "
                    f"remove chat_template from the card"), line


BUGGY_TASK = """
from pathlib import Path

from loragate.card.settings import TaskCard
from loragate.tasks import TASKS
from loragate.tasks.iris import IrisTask


class BuggyTask(IrisTask):
    def __init__(self) -> None:
        self.card = TaskCard.from_yaml(Path(__file__).with_name("buggy.yaml"))

    def load_splits(self, data=None):
        return {}["a bug of the task module"]


TASKS.register("buggy", BuggyTask)
"""


@pytest.mark.slow
def test_a_task_modules_own_exception_is_left_to_the_run(gate_dir: pytest.Pytester) -> None:
    """A project's task module whose loader has a bug (a KeyError, not the ValueError of a data mistake): raised at
    start-up it was pytest's INTERNALERROR; the run raises it as the case's error, with its traceback."""
    gate_dir.path.joinpath("pyproject.toml").write_text('[tool.loragate]\ntasks = "tasks"\n')
    tasks = gate_dir.mkdir("tasks")
    card = (CARDS_DIR / "iris.yaml").read_text()
    (tasks / "buggy.yaml").write_text(card.replace("\nname: iris\n", "\nname: buggy\n"))
    (tasks / "buggy.py").write_text(BUGGY_TASK)
    result = gate_dir.runpytest_subprocess("-p", "no:cacheprovider", "-m", "smoke", "--task", "buggy", "-k",
                                           "parameters")
    output = result.stdout.str()[-3000:] + result.stderr.str()[-3000:]
    assert result.ret == pytest.ExitCode.TESTS_FAILED and "INTERNALERROR" not in output, output
    assert "KeyError: 'a bug of the task module'" in result.stdout.str(), output


@pytest.mark.slow
def test_collect_only_reads_no_data_and_xdist_checks_once(gate_dir: pytest.Pytester) -> None:
    """--collect-only runs no model, so it reads no data; under -n 2 the controller checks, the workers do not."""
    project(gate_dir, tickets(prompt_template="Ticket: {txet}\nTeam:"))
    collected = gate_dir.runpytest_subprocess("-p", "no:cacheprovider", "-m", "smoke", "--collect-only", "-q")
    assert collected.ret == pytest.ExitCode.OK, collected.stdout.str()[-3000:] + collected.stderr.str()[-3000:]
    spread = gate_dir.runpytest_subprocess("-p", "no:cacheprovider", "-m", "smoke", "-n", "2")
    errors = [line for line in spread.errlines if line.startswith("ERROR: ")]
    assert spread.ret == USAGE_ERROR and len(errors) == 1, spread.stdout.str()[-3000:] + spread.stderr.str()[-3000:]
    assert errors[0].startswith("ERROR: task tickets: ") and "no field 'txet'" in errors[0], errors
