"""Topics: the generated news items, the split, and the AG News CSV and seed JSONL formats."""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import pytest

from loragate.tasks import get_task
from loragate.tasks.topics import COMPANIES, COUNTRIES, generate_rows


@pytest.fixture(scope="module")
def topics():
    return get_task("topics")


def test_generated_rows_are_deterministic_unique_and_balanced() -> None:
    rows = generate_rows()
    assert rows == generate_rows(), "same seed gave other rows"
    assert len({(title, text) for _, title, text, _ in rows}) == len(rows), "rows repeat"
    assert Counter(row[3] for row in rows) == {"World": 100, "Sports": 100, "Business": 100, "Sci/Tech": 100}


def test_names_are_shared_across_topics_so_names_alone_do_not_decide() -> None:
    rows = generate_rows()
    for name in (COUNTRIES[0], COMPANIES[0]):
        topics = {topic for _, title, text, topic in rows if re.search(re.escape(name), f"{title} {text}")}
        assert len(topics) >= 2, f"{name!r} appears only under {topics}"


def test_splits_are_disjoint_and_stratified(topics) -> None:
    splits = topics.load_splits()
    assert (len(splits.train), len(splits.eval), len(splits.test)) == (256, 64, 80)
    ids = [{ex.id for ex in part} for part in (splits.train, splits.eval, splits.test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2]), "an example is in two splits"
    assert Counter(ex.label for ex in splits.test) == {label: 20 for label in topics.card.labels}


def ag_news(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "train.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_ag_news_csv_maps_class_indices_to_topics(tmp_path: Path, topics) -> None:
    lines = [f'"{index}","Title {index} {i}","Text, with a comma {i}"' for index in "1234" for i in range(6)]
    splits = topics.load_splits(ag_news(tmp_path, lines))
    every = splits.train + splits.eval + splits.test
    assert len(every) == 24 and Counter(ex.label for ex in every) == {label: 6 for label in topics.card.labels}
    example = next(ex for ex in every if ex.fields["title"] == "Title 4 0")
    assert example.label == "Sci/Tech" and example.prompt == "Title 4 0. Text, with a comma 0"


@pytest.mark.parametrize("line, message", [
    ('"5","t","d"', r":1: class index '5' is not 1-4"),
    ('"1","t"', r":1: 2 columns; AG News rows are class index, title, description"),
])
def test_ag_news_csv_errors_name_the_line_and_the_fix(tmp_path: Path, topics, line: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        topics.load_splits(ag_news(tmp_path, [line]))


def test_ag_news_errors_name_the_line_a_multi_line_record_starts_on(tmp_path: Path, topics) -> None:
    path = ag_news(tmp_path, ['"1","t","line one\nline two"', '"7","t","d"'])
    with pytest.raises(ValueError, match=rf"{path}:3: class index '7'"):
        topics.load_splits(path)


def test_an_ag_news_field_over_the_csv_limit_names_file_line_and_field(tmp_path: Path, topics) -> None:
    path = ag_news(tmp_path, ['"1","t","d"', '"2","t","' + "x" * (csv.field_size_limit() + 1) + '"'])
    with pytest.raises(ValueError, match=rf"{path}:2: field 3 \(description\) is longer than csv's limit"):
        topics.load_splits(path)


def test_too_few_rows_of_a_topic_is_an_error(tmp_path: Path, topics) -> None:
    lines = [f'"{index}","t{index}{i}","d"' for index in "123" for i in range(6)] + ['"4","t","d"']
    with pytest.raises(ValueError, match=r"too few rows of \{'Sci/Tech': 1\}"):
        topics.load_splits(ag_news(tmp_path, lines))


def test_seed_jsonl_reads_question_and_answer(tmp_path: Path, topics) -> None:
    path = tmp_path / "topics.jsonl"
    path.write_text("".join(f'{{"question": "item {label} {i}", "answer": "{label}"}}\n'
                            for label in topics.card.labels for i in range(5)), encoding="utf-8")
    splits = topics.load_splits(path)
    assert {ex.prompt for ex in splits.test} <= {f"item {label} {i}." for label in topics.card.labels for i in range(5)}
    path.write_text('{"question": "q", "answer": "Politics"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"topics.jsonl:1: answer 'Politics' is not one of World, Sports"):
        topics.load_splits(path)
    path.write_text('{"text": "q"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"topics.jsonl:1: expected a JSON object with 'question' and 'answer'"):
        topics.load_splits(path)
