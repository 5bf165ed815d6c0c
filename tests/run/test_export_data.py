"""`python -m loragate export-data`: the splits the gate runs on, exactly (after --data, --set, the chat template and
the cut to train.max_length), as JSONL, with format.md's tokenization claims true of the tokenizer and of training,
for built-in and project tasks; a mistake is one line. tests/project/test_byo_adapter.py trains on an export with
plain peft and gates the adapter."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from loragate.__main__ import main
from loragate.card.options import RunOptions
from loragate.run.export_data import gate_data
from loragate.run.steps import load_task
from loragate.run.task_run import load_inputs
from loragate.tasks import TASKS

ROOT = Path(__file__).resolve().parents[2]
CHAT = ("chat_template=true",)
CUT = ("tiers.tiny.train.max_length=12", "tiers.tiny.train.truncation=left")


def export(out: Path, *args: str) -> list[Path]:
    main(["export-data", "--out", str(out), *args])
    return sorted(out.iterdir())


def rows(out: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in (out / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The directory export-data runs in (its .loragate/ cache and a relative --out land here), and TASKS as it is,
    restored after the test: a project task registered here does not outlive it (tests/plugin/test_discovery.py)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(TASKS, "_entries", dict(TASKS._entries))
    return tmp_path


@pytest.mark.parametrize("overrides", [(), CHAT, CUT], ids=["plain", "chat_template", "truncation"])
def test_the_exported_splits_are_those_the_gate_runs_on(project: Path, overrides: tuple[str, ...]) -> None:
    """The run's own load_inputs, with the real base loaded, gives the same examples as the export's steps with the
    tokenizer alone; the rows written are those examples."""
    options = RunOptions(overrides=overrides, cache=project / ".loragate", progress=False)
    exported = gate_data("iris", "tiny", options)
    gated = load_task("iris", options)
    splits, _, inputs = load_inputs(gated, "tiny", options)  # run_task's own step, the base's weights loaded
    assert exported.splits == splits and exported.inputs == inputs
    assert exported.task.card.tier("tiny").train.max_length == gated.card.tier("tiny").train.max_length
    export(project / "out", "--task", "iris", *(arg for value in overrides for arg in ("--set", value)))
    for name in ("train", "eval", "test"):
        assert rows(project / "out", name) == [
            {"id": ex.id, "prompt": ex.prompt, "target": ex.target, "label": ex.label, "fields": ex.fields}
            for ex in getattr(splits, name)]
    if overrides == CHAT:
        assert all(row["prompt"].startswith("<|user|>\nSepal length:") for row in rows(project / "out", "test"))
    if overrides == CUT:
        assert inputs.truncated["train"] > 0 and not rows(project / "out", "train")[0]["prompt"].startswith("Sepal")


def test_format_md_states_what_the_tokenizer_and_training_do(project: Path) -> None:
    from transformers import AutoTokenizer

    from loragate.training.lora import IGNORE, encode_all

    written = export(project / "out", "--task", "iris", "--tier", "tiny")
    assert [path.name for path in written] == ["base", "eval.jsonl", "format.md", "test.jsonl", "train.jsonl"]
    text = (project / "out" / "format.md").read_text()
    tokenizer = AutoTokenizer.from_pretrained(project / "out" / "base")
    first = rows(project / "out", "train")[0]
    bos, bos_id = re.search(r"BOS `(.+?)` \(id (\d+)\) is added first", text).groups()
    prompt = tokenizer(first["prompt"]).input_ids
    assert (tokenizer.convert_ids_to_tokens(prompt[0]), prompt[0]) == (bos, int(bos_id))
    eos, eos_id = re.search(r"then EOS `(.+?)` \(id (\d+)\)", text).groups()
    ((ids, labels),) = encode_all(tokenizer, [load_task("iris", RunOptions()).load_splits().train[0]], 64)
    assert (tokenizer.convert_ids_to_tokens(labels[-1]), labels[-1]) == (eos, int(eos_id)), "training ends with EOS"
    assert prompt[-1] != tokenizer.eos_token_id and "nothing is added after it" in text
    target = tokenizer(first["target"], add_special_tokens=False).input_ids
    counts = re.search(r"has (\d+) prompt tokens, then the target's (\d+) and EOS: (\d+) with loss", text).groups()
    assert tuple(map(int, counts)) == (len(prompt), len(target), sum(label != IGNORE for label in labels))
    assert ids == prompt + target + [tokenizer.eos_token_id], "prompt and target are tokenized apart, then EOS"
    assert "**Chat template**: none" in text
    longest = max(len(tokenizer(row["prompt"]).input_ids) for split in ("train", "eval", "test")
                  for row in rows(project / "out", split))
    assert f"`train.max_length` {longest + 2} tokens" in text  # + the longest label's one token and EOS
    assert f"pytest -m smoke --task iris --base-model={project / 'out' / 'base'} --adapter=" in text


def test_a_chat_card_s_format_md_says_the_prompts_hold_the_template(project: Path) -> None:
    export(project / "out", "--task", "iris", "--set", "chat_template=true")
    text = (project / "out" / "format.md").read_text()
    assert "already rendered with the base tokenizer's chat template" in text and "none: the prompt" not in text
    assert f"--base-model={project / 'out' / 'base'} --set=chat_template=true --adapter=" in text, \
        "the gate must be asked for the chat-formatted prompts too"
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(project / "out" / "base").chat_template, "the tiny base has the template"


def test_a_project_s_card_task_and_a_data_file(project: Path) -> None:
    shutil.copytree(ROOT / "examples" / "csv_classification", project / "tickets",
                    ignore=shutil.ignore_patterns("adapters", "reports", ".loragate"))
    export(project / "by_dir", "--task", "tickets", "--task-dir", str(project / "tickets" / "tasks"))
    test = rows(project / "by_dir", "test")
    assert len(test) == 60 and test[0]["id"].startswith("test.csv:") and test[0]["prompt"].startswith("Ticket: ")
    iris = project / "iris.csv"
    with iris.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sepal_length", "sepal_width", "petal_length", "petal_width", "species"])
        for index in range(50):
            writer.writerow([5.0, 3.0, 1.5 + index % 3, 0.2, ["setosa", "versicolor", "virginica"][index % 3]])
    export(project / "by_data", "--task", "iris", "--data", str(iris))
    assert [len(rows(project / "by_data", name)) for name in ("train", "eval", "test")] == [30, 10, 10]
    assert f" --data={iris} --adapter=" in (project / "by_data" / "format.md").read_text()


def test_a_project_directory_s_configured_tasks(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(ROOT / "examples" / "csv_classification", project / "tickets",
                    ignore=shutil.ignore_patterns("adapters", "reports", ".loragate"))
    monkeypatch.chdir(project / "tickets")  # [tool.loragate] tasks = "tasks"
    export(Path("out"), "--task", "tickets")
    assert len(rows(project / "tickets" / "out", "train")) == 144


def test_an_encoder_task_exports_its_rows_and_says_no_text_is_generated(project: Path) -> None:
    export(project / "out", "--task", "topics")
    text = (project / "out" / "format.md").read_text()
    assert "an encoder with a new head" in text and "starts with `[CLS]` and ends with `[SEP]`" in text
    assert not (project / "out" / "base").exists(), "only the tiny tier's base is written"
    assert {row["label"] for row in rows(project / "out", "test")} <= set(load_task("topics", RunOptions()).card.labels)


@pytest.mark.parametrize(("args", "message"), [
    (["--task", "irsi"], "--task: unknown task 'irsi'.*did you mean 'iris'"),
    (["--task", "iris", "--set", "tiers.tiny.train.lr=fast"], "--set tiers.tiny.train.lr=fast.*lr"),
    (["--task", "iris", "--set", "lr"], "--set: .*lr"),
    (["--task", "iris", "--set", 'prompt_template="{petal}"'], "prompt_template '{petal}' reads {petal}"),
    (["--task", "topics", "--set", "chat_template=true"], "chat_template: kind sequence_classification"),
    (["--task", "iris", "--data", "no-such-file.csv"], "--data: 'no-such-file.csv' is neither an existing file"),
    (["--task", "iris", "--data", "bad.csv"], "bad.csv:2: species 'rose' is not one of"),
    (["--task", "iris", "--base-model", "./no-such-dir"], "--base-model: ./no-such-dir: no such directory"),
])
def test_a_mistake_is_one_line_naming_the_flag_and_exit_4(project: Path, capsys: pytest.CaptureFixture[str],
                                                          args: list[str], message: str) -> None:
    """Exit 4 and one line, as the gate's usage errors: it was argparse's error, its usage line and exit 2."""
    (project / "bad.csv").write_text("sepal_length,sepal_width,petal_length,petal_width,species\n"
                                     "5.1,3.5,1.4,0.2,rose\n")
    assert main(["export-data", "--out", "out", *args]) == 4
    error = capsys.readouterr().err
    assert len(error.splitlines()) == 1 and error.startswith("python -m loragate export-data: error: "), error
    assert re.search(message, error, re.IGNORECASE), error
    assert not (project / "out").exists(), "nothing is written after a mistake"


def test_argparse_s_own_usage_errors_keep_its_usage_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["export-data", "--task", "iris"])
    assert exit_info.value.code == 2 and "the following arguments are required: --out" in capsys.readouterr().err


@pytest.mark.slow
def test_python_m_loragate_exits_4_with_one_line(tmp_path: Path) -> None:
    """The command as a user runs it: the exit status the shell sees."""
    done = subprocess.run([sys.executable, "-m", "loragate", "export-data", "--task", "irsi", "--out", "out"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 4 and len(done.stderr.splitlines()) == 1, done.stderr
    assert "error: --task: Unknown task 'irsi'. Did you mean 'iris'?" in done.stderr and not (tmp_path / "out").exists()


def test_the_cli_loads_no_torch_until_it_exports() -> None:
    """`python -m loragate --help`, or a mistyped flag, answers at once: torch loads only for an export."""
    check = "import sys, loragate.__main__; assert 'torch' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", check], check=True)


def test_a_base_other_than_tiny_is_read_for_its_tokenizer_alone(project: Path) -> None:
    """--base-model (or a full tier's hub base): the rows are fitted with its tokenizer and config; its weights are
    never read, so a directory without them exports all the same, and format.md's command names it."""
    export(project / "tiny", "--task", "iris")
    shutil.copytree(project / "tiny" / "base", project / "no_weights", ignore=shutil.ignore_patterns("*.safetensors"))
    written = export(project / "full", "--task", "iris", "--tier", "full", "--base-model", str(project / "no_weights"))
    assert [path.name for path in written] == ["eval.jsonl", "format.md", "test.jsonl", "train.jsonl"]
    assert rows(project / "full", "test") == rows(project / "tiny", "test")  # the same tokenizer fits them alike
    text = (project / "full" / "format.md").read_text()
    assert f"pytest -m full --gpu --task iris --base-model={project / 'no_weights'} --adapter=" in text
    assert "`train.max_length` 256 tokens (prompt + answer; the card's number" in text
