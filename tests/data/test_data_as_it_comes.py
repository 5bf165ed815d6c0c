"""Files as they come: a CSV/TSV without a header row (`data.header: false`, `data.names`), numeric labels and labels
named by a mapping (`labels: {1: World}`), label values the card does not list gathered into one error, and the data's
own id column naming the rows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from loragate.card.settings import CardError, DataSettings, TaskCard
from loragate.tasks.card_task import CardTask
from tests.data.test_card_files import TIER

TOPICS = {1: "World", 2: "Sports", 3: "Business"}
HEADERLESS = {"header": False, "names": ["topic", "title", "description"], "columns": {"label": "topic"}}


def news_card(directory: Path, data: dict, labels: object = TOPICS, **fields: object) -> Path:
    """An AG News-like card: the prompt reads a title and a description, the gold is the row's topic."""
    path = directory / "news.yaml"
    path.write_text(yaml.safe_dump({
        "name": "news", "description": "The topic of a news item.", "kind": "generative_classification",
        "labels": labels, "prompt_template": "{title}. {description}\nTopic:", "tiers": {"tiny": TIER}, "gates": {},
        "data": data, **fields}, sort_keys=False))
    return path


def news_rows(n_per_topic: int, sep: str = ",") -> str:
    """AG News's distribution: class index, title, description; no header row."""
    quote = '"' if sep == "," else ""  # a TSV never quotes
    return "".join(f"{index}{sep}Title {i} of {index}{sep}{quote}Text {i}, about topic {index}{quote}\n"
                   for i in range(n_per_topic) for index in TOPICS)


def load_error(card: Path) -> str:
    with pytest.raises(CardError) as raised:
        CardTask(card).load_splits()
    return str(raised.value)


def test_a_headerless_csv_is_read_with_names_and_its_numeric_labels_by_their_names(tmp_path: Path) -> None:
    (tmp_path / "news.csv").write_text(news_rows(10))
    splits = CardTask(news_card(tmp_path, {"file": "news.csv", "split": {"test": 0.2}, **HEADERLESS})).load_splits()
    examples = splits.train + splits.eval + splits.test
    assert len(examples) == 30, "the first line is data, not a header"
    first = min(examples, key=lambda ex: int(ex.id.split(":")[1]))
    assert first.id == "news.csv:1" and first.label == "World" and first.target == " World"
    assert first.prompt == "Title 0 of 1. Text 0, about topic 1\nTopic:"
    assert sorted({ex.label for ex in examples}) == ["Business", "Sports", "World"]


def test_a_headerless_tsv_is_read_with_names_too(tmp_path: Path) -> None:
    (tmp_path / "news.tsv").write_text(news_rows(10, sep="\t"))
    splits = CardTask(news_card(tmp_path, {"file": "news.tsv", "split": {"test": 0.2}, **HEADERLESS})).load_splits()
    assert {ex.label for ex in splits.test} == set(TOPICS.values())


def test_names_whose_count_differs_from_the_row_name_both(tmp_path: Path) -> None:
    (tmp_path / "news.csv").write_text(news_rows(10))
    data = {"file": "news.csv", "split": {"test": 0.2}, **HEADERLESS, "names": ["topic", "title"]}
    assert load_error(news_card(tmp_path, data)) == (
        f"{tmp_path / 'news.csv'}:1: 3 fields, data.names names 2 (topic, title); give data.names one name per column")


@pytest.mark.parametrize(("data", "expected"), [
    ({"names": ["topic", "title", "description"]}, "data.names names the columns of a file without a header row: add "
                                                   "data.header: false"),
    ({"header": False}, "data.header: false needs the columns' names: add data.names"),
    ({"header": False, "names": ["a", "b", "a"]}, "data.names repeats ['a']: give each column its own name"),
])
def test_header_and_names_go_together(tmp_path: Path, data: dict, expected: str) -> None:
    path = news_card(tmp_path, {"file": "news.csv", "split": {"test": 0.2}, **data})
    with pytest.raises(CardError, match=r"field 'data'") as raised:
        TaskCard.from_yaml(path)
    assert expected in str(raised.value)


def test_a_first_row_of_data_read_as_a_header_is_never_offered_as_columns_to_map(tmp_path: Path) -> None:
    """The file has no header; the card forgot `header: false`. Mapping `label` onto the first row's '1' would
    silently lose that row: the error points at data.header and data.names only."""
    (tmp_path / "news.csv").write_text(news_rows(10))
    message = load_error(news_card(tmp_path, {"file": "news.csv", "split": {"test": 0.2},
                                              "columns": {"label": "topic"}}))
    assert message == (f"{tmp_path / 'news.csv'}:2: no column 'topic' (data.columns.label); the file's first line, "
                       f"read as its header, is ['1', 'Title 0 of 1', 'Text 0, about topic 1'], which reads like "
                       f"data, not column names: if the file has no header row, set data.header: false and "
                       f"data.names: [...], a name for each of its 3 columns, in order")
    assert "map label to" not in message


def test_header_and_names_apply_to_csv_and_tsv_only(tmp_path: Path) -> None:
    """`--data` in another format than the card's headerless CSV: a JSONL row names its own columns."""
    card = news_card(tmp_path, {"file": "news.csv", "split": {"test": 0.2}, **HEADERLESS})
    records = [{"topic": index, "title": f"T{i}", "description": f"D{i} {index}"}
               for i in range(10) for index in TOPICS]
    (tmp_path / "other.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    splits = CardTask(card).load_splits(tmp_path / "other.jsonl")
    assert {ex.label for ex in splits.test} == set(TOPICS.values()), "JSON's number 1 is the data value '1'"


@pytest.mark.parametrize("labels", [[1, 2, 3], ["1", "2", "3"]])
def test_numeric_labels_need_no_quotes(tmp_path: Path, labels: list) -> None:
    (tmp_path / "news.csv").write_text(news_rows(10))
    splits = CardTask(news_card(tmp_path, {"file": "news.csv", "split": {"test": 0.2}, **HEADERLESS},
                                labels=labels)).load_splits()
    assert {ex.label for ex in splits.test} == {"1", "2", "3"} and splits.test[0].target in (" 1", " 2", " 3")


@pytest.mark.parametrize("kind", ["generative_classification", "sequence_classification"])
def test_both_label_kinds_read_values_and_parse_names(tmp_path: Path, kind: str) -> None:
    (tmp_path / "news.csv").write_text(news_rows(10))
    task = CardTask(news_card(tmp_path, {"file": "news.csv", "split": {"test": 0.2}, **HEADERLESS}, kind=kind))
    assert {ex.label for ex in task.load_splits().test} == set(TOPICS.values())
    assert task.parse(" Sports\n").value.label == "Sports"
    assert not task.parse("2").valid, "the data's value is not an answer: the name is"


def test_values_outside_a_label_mapping_are_listed_with_the_mapping(tmp_path: Path) -> None:
    (tmp_path / "news.csv").write_text(news_rows(10) + "4,Title,Text\n")
    message = load_error(news_card(tmp_path, {"file": "news.csv", "split": {"test": 0.2}, **HEADERLESS}))
    assert message == (f"{tmp_path / 'news.csv'}: label values the card does not list: '4' (1 row, news.csv:31); the "
                       f"card's labels map the data values ['1', '2', '3'] to ['World', 'Sports', 'Business']: fix the "
                       f"rows, or map these values too")


def test_data_values_that_stand_for_the_labels_are_told_to_map_them(tmp_path: Path) -> None:
    (tmp_path / "news.csv").write_text(news_rows(10))
    message = load_error(news_card(tmp_path, {"file": "news.csv", "split": {"test": 0.2}, **HEADERLESS},
                                   labels=["World", "Sports", "Business"]))
    assert message.endswith("the card's labels are ['World', 'Sports', 'Business']: fix the rows, or add the values to "
                            "the card's labels; if the data's values stand for the labels, map each to its label's "
                            "name: labels: {1: NAME, 2: NAME, 3: NAME}"), message
    assert "1: World" not in message, "pairing the values with the labels in order would guess their meaning"
    assert "'1' (10 rows, the first news.csv:1), '2' (10 rows, the first news.csv:2)" in message


# ------------------------------------------------------------------------------------------------------------ ids


def write_ids(path: Path, ids: list[str], column: str = "id") -> None:
    path.write_text(f"{column},topic,title,description\n" + "".join(
        f"{row_id},{index},Title {n},Text {n}\n" for n, (row_id, index) in enumerate(zip(ids, [1, 2, 3] * 10))))


def test_an_id_column_names_the_examples(tmp_path: Path) -> None:
    write_ids(tmp_path / "news.csv", [f"n-{i}" for i in range(30)])
    card = news_card(tmp_path, {"file": "news.csv", "split": {"test": 0.2}, "columns": {"label": "topic"}})
    splits = CardTask(card).load_splits()
    ids = {ex.id for ex in splits.train + splits.eval + splits.test}
    assert ids == {f"n-{i}" for i in range(30)}, "a column named id names the rows by default"
    write_ids(tmp_path / "news.csv", [f"n-{i}" for i in range(30)], column="key")
    named = CardTask(news_card(tmp_path, {"file": "news.csv", "split": {"test": 0.2}, "columns": {"label": "topic"},
                                          "id": "key"})).load_splits()
    assert {ex.id for ex in named.test} <= {f"n-{i}" for i in range(30)}
    unnamed = CardTask(news_card(tmp_path, {"file": "news.csv", "split": {"test": 0.2},
                                            "columns": {"label": "topic"}})).load_splits()
    assert all(ex.id.startswith("news.csv:") for ex in unnamed.test), "no id column: the file and line"


def test_a_duplicate_id_names_both_rows(tmp_path: Path) -> None:
    ids = [f"n-{i}" for i in range(30)]
    ids[20] = "n-4"
    write_ids(tmp_path / "news.csv", ids)
    message = load_error(news_card(tmp_path, {"file": "news.csv", "split": {"test": 0.2},
                                              "columns": {"label": "topic"}}))
    assert message == (f"{tmp_path / 'news.csv'}: the id 'n-4' (column 'id', data.id) names two rows, "
                       f"{tmp_path / 'news.csv'}:6 and {tmp_path / 'news.csv'}:22; give each row its own id, name "
                       f"another column with data.id, or set data.id: false to name rows by their file and line")
    lines = CardTask(news_card(tmp_path, {"file": "news.csv", "split": {"test": 0.2}, "columns": {"label": "topic"},
                                          "id": False})).load_splits()
    assert all(ex.id.startswith("news.csv:") for ex in lines.test), "data.id: false"


def test_a_jsonl_row_without_the_first_rows_id_is_named_with_where_the_default_came_from(tmp_path: Path) -> None:
    """JSONL rows may differ: the first row's `id` made `id` the default id column, which the user never named."""
    rows = [{"id": f"n-{i}", "topic": index, "title": f"Title {i}", "description": f"Text {i}"}
            for i, index in enumerate([1, 2, 3] * 10)]
    del rows[4]["id"]
    (tmp_path / "news.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    data = {"file": "news.jsonl", "split": {"test": 0.2}, "columns": {"label": "topic"}}
    message = load_error(news_card(tmp_path, data))
    jsonl = tmp_path / "news.jsonl"
    assert message == (f"{jsonl}:5: no column 'id', which the first row ({jsonl}:1) has, so the file's rows are "
                       f"named by it (data.id's default); give this row an id too, or set data.id: false to name rows "
                       f"by their file and line"), message
    lines = CardTask(news_card(tmp_path, {**data, "id": False})).load_splits()
    assert all(ex.id.startswith("news.jsonl:") for ex in lines.test), "data.id: false, as the error says"


def test_a_misspelt_id_column_is_named_with_the_closest(tmp_path: Path) -> None:
    write_ids(tmp_path / "news.csv", [f"n-{i}" for i in range(30)], column="key")
    message = load_error(news_card(tmp_path, {"file": "news.csv", "split": {"test": 0.2},
                                              "columns": {"label": "topic"}, "id": "kye"}))
    assert message.startswith(f"{tmp_path / 'news.csv'}:2: no column 'kye' (data.id) (did you mean 'key'?); "), message


def test_errors_after_an_id_column_still_name_the_file_and_line(tmp_path: Path) -> None:
    write_ids(tmp_path / "news.csv", [f"n-{i}" for i in range(30)])
    message = load_error(news_card(tmp_path, {"file": "news.csv", "split": {"test": 0.2},
                                              "columns": {"label": "topic"}},
                                   prompt_template="{titel}\nTopic:"))
    assert message.startswith(f"{tmp_path / 'news.csv'}:2: no field 'titel' (read by prompt_template) (did you mean "
                              f"'title'?); the header names the columns"), message


def test_every_data_field_has_a_row_in_docs_tasks() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "tasks.md").read_text()
    table = re.search(r"^\| `data` field \| meaning \|\n(.*?)\n\n", doc, re.M | re.S)
    assert table, "docs/tasks.md has no `data` field table"
    rows = {name.split(".")[0] for line in table.group(1).splitlines()
            for name in re.findall(r"`([a-z_.]+)`", line.split(" | ")[0])}
    assert rows == set(DataSettings.model_fields), rows ^ set(DataSettings.model_fields)


def test_the_docs_ag_news_card_reads_ag_news_as_distributed(tmp_path: Path) -> None:
    """docs/tasks.md's AG News snippet, as written, on rows in AG News's own quoting."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "tasks.md").read_text()
    snippet = re.search(r"AG News as distributed.*?```yaml\n(.*?)```", doc, re.S)
    assert snippet, "docs/tasks.md has no AG News card"
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.csv").write_text("".join(
        f'"{index}","Title {i} of {index}","Reuters - text {i}, about {index}"\n' for i in range(20)
        for index in range(1, 5)))
    (tmp_path / "tasks").mkdir()
    card = {"name": "ag_news", "description": "The topic of a news item.", "kind": "generative_classification",
            **yaml.safe_load(snippet.group(1)), "tiers": {"tiny": TIER}, "gates": {}}
    (tmp_path / "tasks" / "ag_news.yaml").write_text(yaml.safe_dump(card))
    splits = CardTask(tmp_path / "tasks" / "ag_news.yaml").load_splits()
    assert len(splits.train) + len(splits.eval) + len(splits.test) == 80
    assert {ex.label for ex in splits.test} == {"World", "Sports", "Business", "Sci/Tech"}
    assert splits.test[0].prompt.endswith("\nTopic:") and ". Reuters - text" in splits.test[0].prompt
