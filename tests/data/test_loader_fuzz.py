"""Any file a user points --data at either loads or fails with a ValueError that names it: never another
exception, never a silent empty split. Hypothesis writes malformed rows in each task's real format."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loragate.tasks import get_task

text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)
cell = st.one_of(text, st.sampled_from(["0", "1", "2", "4", "setosa", "World", "Sci/Tech", "", "nan", "5.1"]))
rows = st.lists(st.lists(cell, min_size=0, max_size=6), max_size=25)
records = st.lists(st.dictionaries(st.sampled_from(["instruction", "context", "response", "conversations",
                                                    "question", "answer", "from", "value"]),
                                   st.one_of(text, st.integers(), st.none(),
                                             st.lists(st.dictionaries(st.sampled_from(["from", "value"]), text),
                                                      max_size=3))),
                   max_size=12)

CASES = [("iris", ".csv", ","), ("sst2", ".tsv", "\t"), ("topics", ".csv", ",")]


def load(task_name: str, name: str, content: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(content, encoding="utf-8")
        try:
            splits = get_task(task_name).load_splits(path)
        except ValueError as exc:
            assert str(path) in str(exc) or name in str(exc), f"the error does not name the file: {exc}"
            return
        assert splits.train and splits.test, f"{task_name}: loaded with an empty split"


@pytest.mark.parametrize("task, suffix, separator", CASES)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=rows)
def test_delimited_files_load_or_fail_with_a_named_value_error(task: str, suffix: str, separator: str,
                                                                table: list[list[str]]) -> None:
    header = {"iris": "sepal_length,sepal_width,petal_length,petal_width,species", "sst2": "sentence\tlabel",
              "topics": None}[task]
    lines = ([header] if header else []) + [separator.join(row) for row in table]
    load(task, f"data{suffix}", "\n".join(lines) + "\n")


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(items=records)
def test_json_lines_load_or_fail_with_a_named_value_error(items: list[dict]) -> None:
    content = "".join(json.dumps(item) + "\n" for item in items)
    load("instruct", "data.jsonl", content)
    load("topics", "data.jsonl", content)


@settings(max_examples=60, deadline=None)
@given(document=st.recursive(st.one_of(text, st.integers(), st.none()),
                             lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                     st.dictionaries(st.sampled_from(
                                                         ["data", "paragraphs", "qas", "context", "question", "id",
                                                          "answers", "text", "answer_start", "is_impossible"]),
                                                         inner, max_size=4)),
                             max_leaves=15))
def test_squad_json_loads_or_fails_with_a_named_value_error(document: object) -> None:
    load("squad_v2", "squad.json", json.dumps(document))
