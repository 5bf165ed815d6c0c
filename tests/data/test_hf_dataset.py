"""--data as a Hugging Face dataset (loragate.data.hf_dataset): each task's hub layout, read by `datasets.load_dataset`
from a local directory (the same call a hub id takes), becomes the task's own file format and the same splits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loragate.card.options import RunOptions
from loragate.card.settings import CardError
from loragate.plugin.options import parse_data
from loragate.run.steps import load_splits
from loragate.tasks import get_task
from loragate.tasks.card_task import CardTask
from loragate.tasks.instruct import generate_pairs
from loragate.tasks.iris import bundled_rows
from loragate.tasks.squad_v2 import generate_rows as squad_rows
from loragate.tasks.sst2 import generate_rows as sst2_rows
from loragate.tasks.topics import AG_NEWS_CLASSES
from loragate.tasks.topics import generate_rows as topic_rows
from tests.data.test_card_files import MAPPING, write_card
from tests.data.test_card_files import rows as tickets

IRIS_KAGGLE = ("SepalLengthCm", "SepalWidthCm", "PetalLengthCm", "PetalWidthCm")


def dataset_dir(root: Path, rows: list[dict]) -> Path:
    """A directory as a hub dataset repository holds it: its train split as JSON lines."""
    root.mkdir(parents=True)
    (root / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return root


def splits_from(tmp_path: Path, task_name: str, rows: list[dict]):
    data = dataset_dir(tmp_path / f"{task_name}-dataset", rows)
    return load_splits(get_task(task_name), RunOptions(data=data, cache=tmp_path / "cache", progress=False))


def test_sst2_in_glue_layout_gives_the_shipped_splits_exactly(tmp_path: Path) -> None:
    rows = [{"idx": i, "sentence": sentence, "label": int(label == "positive")}
            for i, (_, sentence, label) in enumerate(sst2_rows())]
    splits = splits_from(tmp_path, "sst2", rows)
    assert splits.data_hash() == get_task("sst2").load_splits().data_hash()
    written = list((tmp_path / "cache" / "data").iterdir())
    assert [p.suffix for p in written] == [".tsv"], f"one file in the task's format, no temp files: {written}"


def test_iris_in_the_kaggle_layout_gives_the_shipped_splits_exactly(tmp_path: Path) -> None:
    rows = [{"Id": i + 1, **dict(zip(IRIS_KAGGLE, features.values())), "Species": f"Iris-{species}"}
            for i, (_, features, species) in enumerate(bundled_rows(["setosa", "versicolor", "virginica"]))]
    assert splits_from(tmp_path, "iris", rows).data_hash() == get_task("iris").load_splits().data_hash()


def test_squad_v2_flat_rows_regroup_into_the_shipped_splits(tmp_path: Path) -> None:
    generated = squad_rows()
    passages = list(dict.fromkeys(row.context for row in generated))  # in order: one title per passage
    rows = [{"id": row.id, "title": f"passage {passages.index(row.context)}", "context": row.context,
             "question": row.question, "answers": {"text": [text for text, _ in row.answers],
                                                   "answer_start": [start for _, start in row.answers]}}
            for row in generated]
    splits = splits_from(tmp_path, "squad_v2", rows)
    shipped = get_task("squad_v2").load_splits()
    assert splits.data_hash() == shipped.data_hash()
    assert sum(not ex.references for ex in splits.test) == sum(not ex.references for ex in shipped.test) > 0, \
        "unanswerable questions must stay unanswerable"


def test_ag_news_on_the_hub_keeps_every_row_and_its_topic(tmp_path: Path) -> None:
    """The hub's AG News has one `text` (title and description joined) and labels 0-3."""
    index = {topic: int(number) - 1 for number, topic in AG_NEWS_CLASSES.items()}
    source = topic_rows()
    rows = [{"text": f"{title} {description}", "label": index[topic]} for _, title, description, topic in source]
    splits = splits_from(tmp_path, "topics", rows)
    examples = splits.train + splits.eval + splits.test
    assert len(examples) == len(source)
    by_text = {f"{title} {description}": topic for _, title, description, topic in source}
    assert all(ex.label == by_text[ex.fields["description"]] for ex in examples), "a row changed topic"


def test_dolly_and_sharegpt_layouts_both_load(tmp_path: Path) -> None:
    pairs = generate_pairs()
    dolly = [{"instruction": p.instruction, "context": "", "response": p.response, "category": "open_qa"}
             for p in pairs]
    sharegpt = [{"conversations": [{"from": "human", "value": p.instruction}, {"from": "gpt", "value": p.response}],
                 "source": "generated", "score": 5.0} for p in pairs]
    responses = {p.response for p in pairs}
    for name, rows in (("dolly", dolly), ("sharegpt", sharegpt)):
        splits = splits_from(tmp_path / name, "instruct", rows)
        examples = splits.train + splits.eval + splits.test
        assert len(examples) == len(pairs) and {ex.target for ex in examples} == responses, name


def test_a_dataset_without_the_columns_the_task_reads_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"--data .*sst2-dataset: the dataset has columns \['text', 'stars'\], "
                                         r"the sst2 task reads \['sentence', 'label'\]"):
        splits_from(tmp_path, "sst2", [{"text": "fine", "stars": 4}] * 20)
    assert not [p for p in (tmp_path / "cache" / "data").iterdir()], "a failed conversion left a file"


def test_a_directory_that_is_not_a_dataset_names_the_fix(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"cannot read it as a Hugging Face dataset .*Fix: a hub id needs the network"):
        load_splits(get_task("sst2"), RunOptions(data=tmp_path / "empty", cache=tmp_path / "cache", progress=False))


def test_data_option_takes_a_file_a_directory_or_a_hub_id(tmp_path: Path) -> None:
    import argparse

    (tmp_path / "train.tsv").write_text("sentence\tlabel\n")
    assert parse_data(str(tmp_path / "train.tsv")) == tmp_path / "train.tsv"
    assert parse_data(str(tmp_path)) == tmp_path
    assert parse_data("stanfordnlp/sst2") == "stanfordnlp/sst2"
    with pytest.raises(argparse.ArgumentTypeError, match="neither an existing file or directory nor a hub dataset id"):
        parse_data("missing.tsv")


def test_a_misspelt_column_of_a_dataset_names_the_closest_one(tmp_path: Path) -> None:
    """A built-in task's column and a card's mapped column (data.columns text: body) alike."""
    with pytest.raises(ValueError, match=r"the sst2 task reads \['sentence'\] too \(did you mean 'sentense' for "
                                         r"'sentence'\?\)"):
        splits_from(tmp_path / "sst2", "sst2", [{"sentense": "fine", "label": 1}] * 20)
    card = write_card(tmp_path / "tasks", {"file": "all.csv", "split": {"test": 0.2}, "columns": MAPPING})
    data = dataset_dir(tmp_path / "tickets-dataset", [{"bodY": row["body"], "team": row["team"]} for row in tickets(5)])
    with pytest.raises(ValueError, match=r"the dataset has columns \['bodY', 'team'\], the tickets task reads "
                                         r"\['body'\] too \(did you mean 'bodY' for 'body'\?\)"):
        load_splits(CardTask(card), RunOptions(data=data, cache=tmp_path / "cache", progress=False))


def test_a_card_s_dataset_directory_without_a_mapped_column_names_the_closest_one(tmp_path: Path) -> None:
    """data.file naming a directory saved with save_to_disk: read by the card's own reader."""
    from datasets import Dataset

    Dataset.from_list([{"bodY": row["body"], "team": row["team"]} for row in tickets(5)]).save_to_disk(
        str(tmp_path / "tickets"))
    with pytest.raises(CardError, match=r"tickets\[0\]: no column 'body' \(data.columns.text\) \(did you mean "
                                        r"'bodY'\?\)"):
        CardTask(write_card(tmp_path, {"file": "tickets", "split": {"test": 0.2}, "columns": MAPPING})).load_splits()
