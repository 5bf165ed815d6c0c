"""Card-only tasks: the card's `data:` block read in every format, renamed by its column mapping and split (a named
test file as it is, one file stratified by label or shuffled), each bad input an error naming the file, the field and
the fix; and a tasks directory's cards registered as tasks."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loragate.card.settings import CardError, TaskCard
from loragate.plugin.discovery import DiscoveryError, load_task_dir
from loragate.tasks import TASKS, get_task
from loragate.tasks.card_task import CardTask

LABELS = ["billing", "technical", "shipping"]
TIER = {"base_model": "tiny", "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj"]},
        "train": {"epochs": 1, "batch_size": 4, "lr": 1e-3}}


def card(data: dict, name: str = "tickets", **fields: object) -> dict:
    """A card-only classification card reading `text` and `label`, with `data` as its data block."""
    return {"name": name, "description": "Route a ticket.", "kind": "generative_classification", "labels": LABELS,
            "prompt_template": "Ticket: {text}\nTeam:", "tiers": {"tiny": TIER}, "gates": {}, "data": data, **fields}


def write_card(directory: Path, data: dict, name: str = "tickets", **fields: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(card(data, name, **fields)))
    return path


def rows(n_per_label: int, start: int = 0) -> list[dict[str, str]]:
    """`n_per_label` tickets of each label, labels interleaved, under the file's own column names."""
    return [{"body": f"ticket {start + i} about {label} number {i}", "team": label}
            for i in range(n_per_label) for label in LABELS]


def write_csv(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    return path


def write_tsv(path: Path, records: list[dict]) -> Path:
    """A TSV as spreadsheets write it: a quote is text, never quoting."""
    lines = ["\t".join(records[0]), *("\t".join(record.values()) for record in records)]
    path.write_text("".join(line + "\n" for line in lines))
    return path


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


MAPPING = {"text": "body", "label": "team"}


def test_a_named_test_file_is_used_as_it_is_and_eval_is_cut_from_train_by_label(tmp_path: Path) -> None:
    write_csv(tmp_path / "data" / "train.csv", rows(20))
    test_rows = rows(4, start=100)
    write_csv(tmp_path / "data" / "test.csv", test_rows)
    path = write_card(tmp_path / "tasks", {"train": "../data/train.csv", "test": "../data/test.csv",
                                           "split": {"eval": 0.25, "seed": 1}, "columns": MAPPING})
    splits = CardTask(path).load_splits()
    assert [ex.fields["text"] for ex in splits.test] == [row["body"] for row in test_rows], "in file order, all rows"
    assert [ex.id for ex in splits.test][:2] == ["test.csv:2", "test.csv:3"]
    assert splits.test[0].prompt == f"Ticket: {test_rows[0]['body']}\nTeam:" and splits.test[0].target == " billing"
    assert Counter(ex.label for ex in splits.eval) == {label: 5 for label in LABELS}, "a quarter of each label"
    assert Counter(ex.label for ex in splits.train) == {label: 15 for label in LABELS}
    assert {ex.id for ex in splits.train}.isdisjoint(ex.id for ex in splits.eval)


def test_an_eval_file_is_used_as_it_is_too(tmp_path: Path) -> None:
    for name, n in (("train", 6), ("eval", 2), ("test", 3)):
        write_csv(tmp_path / f"{name}.csv", rows(n, start=100 * n))
    path = write_card(tmp_path, {"train": "train.csv", "eval": "eval.csv", "test": "test.csv", "columns": MAPPING})
    splits = CardTask(path).load_splits()
    assert (len(splits.train), len(splits.eval), len(splits.test)) == (18, 6, 9)


def test_one_file_is_cut_by_the_card_fractions_stratified_by_label_and_seeded(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "all.jsonl", rows(20))
    data = {"file": "all.jsonl", "split": {"test": 0.2, "eval": 0.2, "seed": 0}, "columns": MAPPING}
    splits = CardTask(write_card(tmp_path, data)).load_splits()
    for part, per_label in ((splits.train, 12), (splits.eval, 4), (splits.test, 4)):
        assert Counter(ex.label for ex in part) == {label: per_label for label in LABELS}
    again = CardTask(write_card(tmp_path, data)).load_splits()
    assert again.data_hash() == splits.data_hash(), "same seed, same cut"
    other = CardTask(write_card(tmp_path, {**data, "split": {"test": 0.2, "eval": 0.2, "seed": 1}})).load_splits()
    assert {ex.id for ex in other.test} != {ex.id for ex in splits.test}, "another seed, another cut"


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "json", "hf"])
def test_every_format_gives_the_same_examples(tmp_path: Path, fmt: str) -> None:
    records = rows(5)
    records[0] = {**records[0], "body": 'a "quoted" word, a comma'}
    if fmt == "csv":
        write_csv(tmp_path / "train.csv", records)
        write_csv(tmp_path / "test.csv", records[:3])
    elif fmt == "tsv":
        write_tsv(tmp_path / "train.tsv", records)
        write_tsv(tmp_path / "test.tsv", records[:3])
    elif fmt == "jsonl":
        write_jsonl(tmp_path / "train.jsonl", records)
        write_jsonl(tmp_path / "test.jsonl", records[:3])
    elif fmt == "json":
        (tmp_path / "train.json").write_text(json.dumps(records))
        (tmp_path / "test.json").write_text(json.dumps(records[:3]))
    else:
        from datasets import Dataset

        Dataset.from_list(records).save_to_disk(str(tmp_path / "train.hf"))
        Dataset.from_list(records[:3]).save_to_disk(str(tmp_path / "test.hf"))
    path = write_card(tmp_path, {"train": f"train.{fmt}", "test": f"test.{fmt}", "columns": MAPPING})
    splits = CardTask(path).load_splits()
    assert [ex.fields["text"] for ex in splits.test] == [row["body"] for row in records[:3]]
    assert [ex.label for ex in splits.test] == [row["team"] for row in records[:3]]
    assert len(splits.train) + len(splits.eval) == len(records)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.text(), min_size=3, max_size=3))
def test_any_text_round_trips_through_a_csv_file(tmp_path: Path, texts: list[str]) -> None:
    """Quotes, commas, line breaks of every kind (CR, U+2028), BOM-like characters: a cell csv wrote is the text the
    prompt gets."""
    records = [{"body": text, "team": label} for text, label in zip(texts, LABELS)]
    write_csv(tmp_path / "train.csv", rows(5))
    write_csv(tmp_path / "test.csv", records)
    path = write_card(tmp_path, {"train": "train.csv", "test": "test.csv", "columns": MAPPING})
    assert [ex.fields["text"] for ex in CardTask(path).load_splits().test] == texts


def test_the_format_can_be_named_when_the_suffix_does_not_tell_it(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "train.txt", rows(5))
    write_jsonl(tmp_path / "test.txt", rows(1))
    data = {"train": "train.txt", "test": "test.txt", "columns": MAPPING}
    with pytest.raises(CardError, match=r"data\.train: cannot tell the format of .*train\.txt from its suffix '\.txt'; "
                                        r"name the file \*\.jsonl, .* or set data\.format"):
        CardTask(write_card(tmp_path, data)).load_splits()
    assert len(CardTask(write_card(tmp_path, {**data, "format": "jsonl"})).load_splits().test) == 3


def test_data_replaces_the_card_files_with_one_file_cut_by_the_card_fractions(tmp_path: Path) -> None:
    write_csv(tmp_path / "train.csv", rows(2))
    write_csv(tmp_path / "test.csv", rows(1))
    path = write_card(tmp_path, {"train": "train.csv", "test": "test.csv", "split": {"eval": 0.2}, "columns": MAPPING})
    other = write_csv(tmp_path / "elsewhere" / "all.csv", rows(10, start=50))
    splits = CardTask(path).load_splits(other)
    assert (len(splits.train), len(splits.eval), len(splits.test)) == (18, 6, 6), "test 0.2 by default, eval 0.2"
    assert all(ex.id.startswith("all.csv:") for ex in splits.train + splits.eval + splits.test)


def test_a_kind_without_labels_is_cut_by_a_seeded_shuffle(tmp_path: Path) -> None:
    records = [{"question": f"What is {i} plus one?", "answer": f"{i + 1}"} for i in range(20)]
    write_jsonl(tmp_path / "all.jsonl", records)
    path = write_card(tmp_path, {"file": "all.jsonl", "split": {"test": 0.25, "eval": 0.25},
                                 "columns": {"instruction": "question", "response": "answer"}},
                      kind="instruct", labels=[], prompt_template="{instruction}", target_template="{response}",
                      instruct={})
    splits = CardTask(path).load_splits()
    assert (len(splits.train), len(splits.eval), len(splits.test)) == (10, 5, 5)
    first = splits.test[0]
    assert first.references == (first.target,) and first.fields["instruction"] in first.prompt
    assert CardTask(path).parse("  an answer ").valid and not CardTask(path).parse(" ").valid


@pytest.mark.parametrize("kind", ["generative_classification", "sequence_classification"])
def test_the_label_parser_accepts_exactly_the_card_labels(tmp_path: Path, kind: str) -> None:
    write_jsonl(tmp_path / "all.jsonl", rows(5))
    task = CardTask(write_card(tmp_path, {"file": "all.jsonl", "split": {"test": 0.2}, "columns": MAPPING}, kind=kind))
    assert len(task.load_splits().test) == 3
    assert task.parse(" shipping\n").value.label == "shipping"
    assert task.parse("Shipping").reason == ("unknown label 'Shipping' (labels are case-sensitive: did you mean "
                                             "'shipping'?); expected one of billing, technical, shipping")


# ------------------------------------------------------------------------------------------------------- errors


def load_error(tmp_path: Path, data: dict, **fields: object) -> str:
    with pytest.raises(CardError) as raised:
        CardTask(write_card(tmp_path, data, **fields)).load_splits()
    return str(raised.value)


def test_a_missing_column_lists_the_columns_the_file_has(tmp_path: Path) -> None:
    write_csv(tmp_path / "all.csv", rows(5))
    message = load_error(tmp_path, {"file": "all.csv", "split": {"test": 0.2}, "columns": {"text": "message",
                                                                                           "label": "team"}})
    no_header = ("(if the first line is data, not a header: set data.header: false and data.names: [...], a name for "
                 "each of its 2 columns, in order)")
    assert message == (f"{tmp_path / 'all.csv'}:2: no column 'message' (data.columns.text); the header names the "
                       f"columns ['body', 'team']: map text to one of them {no_header}")
    unmapped = load_error(tmp_path, {"file": "all.csv", "split": {"test": 0.2}, "columns": {"label": "team"}})
    assert unmapped == (f"{tmp_path / 'all.csv'}:2: no field 'text' (read by prompt_template); the header names the "
                        f"columns ['body', 'label']: add the column, or map one with data.columns: {{text: <column>}} "
                        f"{no_header}")
    write_jsonl(tmp_path / "all.jsonl", rows(5))
    misspelt = load_error(tmp_path, {"file": "all.jsonl", "split": {"test": 0.2}, "columns": {"text": "bdy",
                                                                                             "label": "team"}})
    assert misspelt == (f"{tmp_path / 'all.jsonl'}:1: no column 'bdy' (data.columns.text) (did you mean 'body'?); "
                        f"the row has the columns ['body', 'team']: map text to one of them")


def test_unknown_labels_are_listed_with_their_rows_and_the_card_labels(tmp_path: Path) -> None:
    records = rows(5)
    records[3] = {**records[3], "team": "sales"}
    records[7] = records[9] = {**records[7], "team": "Billing"}
    write_csv(tmp_path / "all.csv", records)
    message = load_error(tmp_path, {"file": "all.csv", "split": {"test": 0.2}, "columns": MAPPING})
    assert message == (f"{tmp_path / 'all.csv'}: label values the card does not list: 'sales' (1 row, all.csv:5), "
                       f"'Billing' (2 rows, the first all.csv:9); the card's labels are {LABELS}: fix the rows, or add "
                       f"the values to the card's labels")


def test_a_label_kind_target_reads_only_the_label(tmp_path: Path) -> None:
    write_csv(tmp_path / "all.csv", rows(5))
    message = load_error(tmp_path, {"file": "all.csv", "split": {"test": 0.2}, "columns": MAPPING},
                         target_template=" {team}: {label}")
    assert message == ("task 'tickets': target_template ' {team}: {label}' reads ['team']; a label kind's target reads "
                       "only {label}, e.g. \" {label}\"")


@pytest.mark.parametrize("content", ["", "body,team\n", "body,team\n\n\n"])
def test_an_empty_file_is_an_error_naming_it_and_the_field(tmp_path: Path, content: str) -> None:
    write_csv(tmp_path / "train.csv", rows(5))
    (tmp_path / "test.csv").write_text(content)
    message = load_error(tmp_path, {"train": "train.csv", "test": "test.csv", "columns": MAPPING})
    assert message.startswith(f"{tmp_path / 'test.csv'}: no data rows (data.test, read as csv); fill the file"), message


def test_a_missing_file_names_the_field_and_that_paths_are_relative_to_the_card(tmp_path: Path) -> None:
    write_csv(tmp_path / "train.csv", rows(5))
    message = load_error(tmp_path, {"train": "train.csv", "test": "nope.csv", "columns": MAPPING})
    assert message == (f"data.test: {tmp_path / 'nope.csv'} does not exist; paths in a card's data block are relative "
                       f"to the card file")


def test_malformed_rows_name_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text('{"body": "a", "team": "billing"}\n{"body": "b", "team"\n')
    write_tsv(tmp_path / "test.tsv", rows(2))
    with (tmp_path / "test.tsv").open("a") as handle:
        handle.write("a tab\tinside\tbilling\n")
    assert load_error(tmp_path, {"train": "train.jsonl", "test": "test.tsv", "columns": MAPPING}).startswith(
        f"{tmp_path / 'train.jsonl'}:2: not valid JSON (Expecting ':' delimiter, column 21); each line")
    write_jsonl(tmp_path / "train.jsonl", rows(5))
    assert load_error(tmp_path, {"train": "train.jsonl", "test": "test.tsv", "columns": MAPPING}) == (
        f"{tmp_path / 'test.tsv'}:8: 3 fields, the header names 2; a value may not hold a tab")
    (tmp_path / "test.json").write_text('{"body": "a"}')
    assert load_error(tmp_path, {"train": "train.jsonl", "test": "test.json", "columns": MAPPING}).startswith(
        f"{tmp_path / 'test.json'}: a JSON dict, not a list")


def test_too_few_rows_of_a_label_to_stratify_names_the_file_and_the_share(tmp_path: Path) -> None:
    records = rows(6)[:-1]  # one 'shipping' row short: 5 of it
    write_csv(tmp_path / "all.csv", records)
    message = load_error(tmp_path, {"file": "all.csv", "split": {"test": 0.1, "eval": 0.2}, "columns": MAPPING})
    assert message == (f"{tmp_path / 'all.csv'} (data.split.test): too few rows of {{'billing': 6, 'technical': 6, "
                       f"'shipping': 5}} to cut a share of 0.1 stratified by label; add rows (at least 10 per label) "
                       f"or raise the share")


@pytest.mark.parametrize(("data", "expected"), [
    ({"file": "all.csv", "split": {"test": 0.5, "eval": 0.5}},
     "data.split: test 0.5 + eval 0.5 leave no rows for train; make their sum less than 1"),
    ({"file": "all.csv"}, "data.file needs the shares to cut it: add split: {test: 0.2, eval: 0.2, seed: 0}"),
    ({"file": "all.csv", "split": {"test": 1.5}}, "field 'data.split.test': Input should be less than 1"),
    ({"train": "train.csv", "test": "test.csv", "split": {"test": 0.2}},
     "data.split.test: the test file data.test is used as it is, never re-split; remove split.test"),
    ({"train": "train.csv"}, "data needs either 'file' (with split: {test: 0.2, eval: 0.2}) or both 'train' and "
                             "'test' (eval optional)"),
    ({"file": "all.csv", "test": "test.csv", "split": {"test": 0.2}}, "data names both 'file' and ['test']"),
    ({"file": "all.csv", "split": {"test": 0.2}, "colums": {}}, "field 'data.colums': Extra inputs are not permitted"),
])
def test_a_bad_data_block_names_the_card_and_the_field(tmp_path: Path, data: dict, expected: str) -> None:
    path = write_card(tmp_path, data)
    with pytest.raises(CardError) as raised:
        TaskCard.from_yaml(path)
    assert str(raised.value).startswith(f"{path}: ") and expected in str(raised.value), str(raised.value)


def test_a_dataset_dict_directory_asks_for_one_split_per_field(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    DatasetDict({"train": Dataset.from_list(rows(3)), "test": Dataset.from_list(rows(1))}).save_to_disk(
        str(tmp_path / "tickets"))
    message = load_error(tmp_path, {"file": "tickets", "split": {"test": 0.2}, "columns": MAPPING})
    assert message == (f"data.file: {tmp_path / 'tickets'} holds the splits ['test', 'train']; name one split's "
                       f"directory per card field, e.g. data: {{train: tickets/test, test: tickets/train}}")


def test_a_kind_without_card_hooks_asks_for_a_task_module(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "all.jsonl", [{"question": f"q{i}", "context": "c", "label": ""} for i in range(10)])
    message = load_error(tmp_path, {"file": "all.jsonl", "split": {"test": 0.2}}, kind="extractive_qa", labels=[],
                         prompt_template="{question}", qa={})
    assert message == ("task 'tickets': kind extractive_qa cannot be defined by a card alone (its data block): write "
                       "a task module that loads its splits and parses its outputs (docs/tasks.md, \"Adding a task\"), "
                       "and drop the card's data block")


def test_hub_rows_are_written_as_jsonl_after_checking_the_mapped_columns(tmp_path: Path) -> None:
    write_csv(tmp_path / "all.csv", rows(5))
    task = CardTask(write_card(tmp_path, {"file": "all.csv", "split": {"test": 0.2}, "columns": MAPPING}))
    with pytest.raises(ValueError, match=r"--data org/x: the dataset has columns \['text', 'team'\], the tickets task "
                                         r"reads \['body'\] too"):
        task.write_hub_rows([], ["text", "team"], "org/x", tmp_path / "out.jsonl")
    task.write_hub_rows(rows(5), ["body", "team"], "org/x", tmp_path / "out.jsonl")
    assert len(task.load_splits(tmp_path / "out.jsonl").test) == 3


# ---------------------------------------------------------------------------------------------------- discovery


@pytest.fixture
def tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    """TASKS as it is, restored after the test: what the test registers does not outlive it."""
    monkeypatch.setattr(TASKS, "_entries", dict(TASKS._entries))


def test_a_tasks_directory_registers_each_card_with_a_data_block(tmp_path: Path, tasks: None) -> None:
    write_csv(tmp_path / "all.csv", rows(5))
    write_card(tmp_path, {"file": "all.csv", "split": {"test": 0.2}, "columns": MAPPING}, name="tickets")
    moduled = write_card(tmp_path, {"file": "all.csv", "split": {"test": 0.2}}, name="moduled")
    moduled.with_suffix(".py").write_text("")  # the module beside it loads it (here: does not)
    (tmp_path / "plain.yml").write_text(yaml.safe_dump({k: v for k, v in card({}, "plain").items() if k != "data"}))
    load_task_dir(tmp_path, "--task-dir")
    assert "tickets" in TASKS and "moduled" not in TASKS and "plain" not in TASKS
    assert get_task("tickets").card.name == "tickets" and len(get_task("tickets").load_splits().test) == 3
    load_task_dir(tmp_path, "--task-dir")  # an in-process pytest run loads it again: no duplicate


def test_a_broken_card_stops_discovery_naming_the_file(tmp_path: Path, tasks: None) -> None:
    path = write_card(tmp_path, {"file": "all.csv", "split": {"test": 0.2}}, labels=["one"])
    with pytest.raises(DiscoveryError, match=rf"^{path}: field '': Value error, kind generative_classification "
                                             rf"needs at least two labels"):
        load_task_dir(tmp_path, "--task-dir")
    path.write_text("name: [unclosed\n")
    with pytest.raises(DiscoveryError, match=rf"^{path}: cannot read the card: "):
        load_task_dir(tmp_path, "--task-dir")


def test_two_cards_with_one_name_are_an_error_naming_both_files(tmp_path: Path, tasks: None) -> None:
    first = write_card(tmp_path, {"file": "all.csv", "split": {"test": 0.2}}, name="tickets")
    second = tmp_path / "tickets_copy.yaml"
    second.write_text(first.read_text())
    with pytest.raises(DiscoveryError) as raised:
        load_task_dir(tmp_path, "--task-dir")
    assert str(raised.value) == (f"{second}: cannot register the card-only task: task 'tickets' is registered twice: "
                                 f"by {first} and by {second}; rename one of them")
