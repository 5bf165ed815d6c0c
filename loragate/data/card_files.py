"""A card-only task's data (the card's `data:` block): rows read from JSONL, CSV, TSV, a JSON list or a Hugging
Face dataset directory, renamed by the card's `columns`, made Examples by the card's kind, and split.

A test file the card names is used as it is. One file (`data.file`, or `--data`) is cut by `data.split`: stratified
by label for kinds with labels, so every split holds each label in the proportions of the whole; a seeded shuffle
otherwise. Every error names the file (and the row), the card field and the fix.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loragate.card.settings import CardError, DataSettings, SplitFractions, TaskCard
from loragate.card.templates import template_fields
from loragate.data.examples import Example, Splits, csv_records

SUFFIXES = {".jsonl": "jsonl", ".csv": "csv", ".tsv": "tsv", ".json": "json"}
DEFAULT_TEST_SHARE = 0.2  # `--data` on a card that names a test file: the share of the one file cut for test


@dataclass(frozen=True)
class Row:
    """One data row: `id` is the file's name and the row's line ("train.csv:12"; a JSON list or a dataset: its
    index, "all.json[3]"), stable across machines; `source` the full path and line, for errors."""

    id: str
    source: str
    values: dict[str, object]


MakeExample = Callable[[str, dict[str, object], str], Example]  # (row id, renamed row, source) -> Example


def data_format(path: Path, declared: str | None, field: str) -> str:
    """The format of `path`: the card's `data.format`, else a directory is `hf` and a file is told by its suffix."""
    if declared is not None:
        return declared
    if path.is_dir():
        return "hf"
    if path.suffix.lower() in SUFFIXES:
        return SUFFIXES[path.suffix.lower()]
    raise CardError(f"{field}: cannot tell the format of {path} from its suffix {path.suffix!r}; name the file "
                    f"*.jsonl, *.csv, *.tsv or *.json, or set data.format (jsonl, csv, tsv, json, hf)")


def read_rows(path: Path, fmt: str, field: str) -> list[Row]:
    """Every row of `path` in format `fmt`, as read (no renaming); `field` names the card field for errors."""
    if not path.exists():
        raise CardError(f"{field}: {path} does not exist; paths in a card's data block are relative to the card "
                        f"file")
    if fmt == "hf":
        rows = read_dataset(path, field)
    elif path.is_dir():
        raise CardError(f"{field}: {path} is a directory, read as {fmt}; a directory is a Hugging Face dataset "
                        f"(data.format: hf, or leave data.format out)")
    else:
        text = read_text(path)
        rows = {"jsonl": read_jsonl, "json": read_json, "csv": read_csv, "tsv": read_tsv}[fmt](path, text)
    if not rows:
        raise CardError(f"{path}: no data rows ({field}, read as {fmt}); fill the file or point {field} at the "
                        f"file that holds the rows")
    return rows


def read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")  # -sig: a BOM is not part of the first row
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise CardError(f"{path}:{line}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from exc


def record(path: Path, where: str, row_id: str, value: object) -> Row:
    if not isinstance(value, dict):
        raise CardError(f"{where}: a {type(value).__name__}, not an object; each row is a JSON object of "
                        f"column: value")
    return Row(row_id, where, value)


def read_jsonl(path: Path, text: str) -> list[Row]:
    rows = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CardError(f"{path}:{number}: not valid JSON ({exc.msg}, column {exc.colno}); each line of a JSONL "
                            f"file must be one complete JSON object") from exc
        rows.append(record(path, f"{path}:{number}", f"{path.name}:{number}", value))
    return rows


def read_json(path: Path, text: str) -> list[Row]:
    try:
        values = json.loads(text) if text.strip() else []
    except json.JSONDecodeError as exc:
        raise CardError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}, column {exc.colno}); a .json data file is "
                        f"one list of objects (or name it .jsonl: one object per line)") from exc
    if not isinstance(values, list):
        raise CardError(f"{path}: a JSON {type(values).__name__}, not a list; a .json data file is one list of "
                        f"objects, [{{column: value}}, ...]")
    return [record(path, f"{path}[{index}]", f"{path.name}[{index}]", value) for index, value in enumerate(values)]


def read_csv(path: Path, text: str) -> list[Row]:
    return read_delimited(path, text, ",", csv.QUOTE_MINIMAL, "quote a value that holds a comma")


def read_tsv(path: Path, text: str) -> list[Row]:
    return read_delimited(path, text, "\t", csv.QUOTE_NONE, "a value may not hold a tab")


def read_delimited(path: Path, text: str, delimiter: str, quoting: int, fix: str) -> list[Row]:
    """Rows of a CSV or TSV whose first record is the header; blank lines are skipped."""
    records = csv_records(path, io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    header_line, header = next(records, (1, []))
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise CardError(f"{path}:{header_line}: the header names {repeated} more than once; give each column its "
                        f"own name")
    rows = []
    for line, cells in records:
        if not cells:
            continue
        if len(cells) != len(header):
            raise CardError(f"{path}:{line}: {len(cells)} fields, the header names {len(header)}; {fix}")
        rows.append(Row(f"{path.name}:{line}", f"{path}:{line}", dict(zip(header, cells))))
    return rows


def read_dataset(path: Path, field: str) -> list[Row]:
    """A dataset saved with `Dataset.save_to_disk`; a DatasetDict's directory names its splits for the card."""
    from datasets import Dataset, load_from_disk  # loads pyarrow and pandas: not at pytest start-up

    try:
        dataset = load_from_disk(str(path))
    except FileNotFoundError as exc:
        raise CardError(f"{field}: {path} is not a dataset saved with save_to_disk ({exc}); save it with "
                        f"datasets' save_to_disk, or point {field} at a JSONL, CSV, TSV or JSON file") from exc
    if not isinstance(dataset, Dataset):
        splits = sorted(dataset)
        raise CardError(f"{field}: {path} holds the splits {splits}; name one split's directory per card field, "
                        f"e.g. data: {{train: {path.name}/{splits[0]}, test: {path.name}/{splits[-1]}}}")
    return [Row(f"{path.name}[{index}]", f"{path}[{index}]", dict(value)) for index, value in enumerate(dataset)]


def renamed(rows: list[Row], columns: dict[str, str]) -> list[Row]:
    """Rows whose mapped columns carry the card's field names (`columns`: card field -> the file's column)."""
    out = []
    for row in rows:
        missing = {name: column for name, column in columns.items() if column not in row.values}
        if missing:
            name, column = next(iter(missing.items()))
            raise CardError(f"{row.source}: no column {column!r} (data.columns.{name}); the row has the columns "
                            f"{sorted(row.values)}: map {name} to one of them")
        sources = set(columns.values())
        values = {key: value for key, value in row.values.items() if key not in sources}
        values.update({name: row.values[column] for name, column in columns.items()})
        out.append(Row(row.id, row.source, values))
    return out


def cut(examples: list[Example], share: float, seed: int, stratify: bool, what: str) -> tuple[list[Example],
                                                                                              list[Example]]:
    """(kept, cut off): `share` of `examples` cut off, stratified by label or, without labels, a seeded shuffle.
    `what` names the rows and the share for errors."""
    if stratify:
        from sklearn.model_selection import train_test_split  # loads sklearn: not at pytest start-up

        counts = Counter(ex.label for ex in examples)
        needed = max(2, math.ceil(round(1 / share, 9)))  # so the cut gets at least one row of every label
        too_few = {label: n for label, n in counts.items() if n < needed}
        if too_few:
            raise CardError(f"{what}: too few rows of {too_few} to cut a share of {share} stratified by label; add "
                            f"rows (at least {needed} per label) or raise the share")
        n_kept = len(examples) - math.ceil(round(share * len(examples), 9))  # as train_test_split counts them
        if n_kept < len(counts):
            raise CardError(f"{what}: a share of {share} of {len(examples)} rows cuts off all but {n_kept}, fewer than "
                            f"the {len(counts)} labels the rows left must each hold once; lower the share (at most "
                            f"{(len(examples) - len(counts)) / len(examples):.3g} here) or add rows")
        kept, cut_off = train_test_split(examples, test_size=share, stratify=[ex.label for ex in examples],
                                         random_state=seed)
        return kept, cut_off
    n_cut = max(1, round(len(examples) * share))
    if n_cut >= len(examples):
        raise CardError(f"{what}: a share of {share} of {len(examples)} rows cuts off all of them and keeps none; "
                        f"lower the share or add rows")
    order = list(examples)
    random.Random(seed).shuffle(order)
    return order[n_cut:], order[:n_cut]


def examples_of(path: Path, fmt: str, field: str, settings: DataSettings, make: MakeExample) -> list[Example]:
    return [make(row.id, row.values, row.source) for row in renamed(read_rows(path, fmt, field), settings.columns)]


def card_splits(settings: DataSettings, card_dir: Path, make: MakeExample, stratify: bool) -> Splits:
    """The splits the card's data block names: its test file as it is, eval as named or cut from train, or its one
    file cut by `split`. Paths are relative to `card_dir`."""
    def load(field: str) -> list[Example]:
        path = card_dir / getattr(settings, field)
        return examples_of(path, data_format(path, settings.format, f"data.{field}"), f"data.{field}", settings, make)

    if settings.file is not None:
        assert settings.split is not None and settings.split.test is not None  # DataSettings checks it
        return cut_file(load("file"), settings.split, settings.split.test, stratify, f"{card_dir / settings.file}")
    train, test = load("train"), load("test")
    if settings.eval is not None:
        return Splits(train=train, eval=load("eval"), test=test)
    split = settings.split or SplitFractions()
    train, eval_ = cut(train, split.eval, split.seed, stratify, f"{card_dir / settings.train} (data.split.eval)")
    return Splits(train=train, eval=eval_, test=test)


def data_splits(data: Path, settings: DataSettings, make: MakeExample, stratify: bool) -> Splits:
    """`--data PATH` instead of the card's files: one file (format by its suffix, a directory is a Hugging Face
    dataset) cut by the card's `split` (test 0.2 where the card names a test file instead), renamed by its
    `columns`."""
    split = settings.split or SplitFractions()
    test_share = split.test if split.test is not None else DEFAULT_TEST_SHARE
    if test_share + split.eval >= 1:
        raise CardError(f"--data {data}: data.split.eval {split.eval} + the test share {test_share} leave no rows "
                        f"for train; lower data.split.eval")
    examples = examples_of(data, data_format(data, None, "--data"), "--data", settings, make)
    return cut_file(examples, split, test_share, stratify, f"--data {data}")


def cut_file(examples: list[Example], split: SplitFractions, test_share: float, stratify: bool,
             source: str) -> Splits:
    """One file's examples cut into test (`test_share` of all), eval (`split.eval` of all) and train (the rest)."""
    rest, test = cut(examples, test_share, split.seed, stratify, f"{source} (data.split.test)")
    share = split.eval / (1 - test_share)  # of the rows the test cut left
    train, eval_ = cut(rest, share, split.seed, stratify,
                       f"{source} (data.split.eval {split.eval} of all rows, {share:.3g} of those data.split.test "
                       f"{test_share} left)")
    return Splits(train=train, eval=eval_, test=test)


def text_value(row: dict[str, object], name: str, source: str, role: str) -> str:
    """Row field `name` as text (a number is written as it reads); `role` says what the card uses it for."""
    if name not in row:
        raise CardError(f"{source}: no field {name!r} ({role}); the row has the columns {sorted(row)}: add the "
                        f"column, or map one with data.columns: {{{name}: <column>}}")
    value = row[name]
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise CardError(f"{source}: field {name!r} ({role}) is {value!r}, not text or a number; fill it in as text")


def prompt_fields(card: TaskCard, row: dict[str, object], source: str) -> dict[str, str]:
    """The fields the card's prompt reads, and its `subgroups` field, as text: what an Example keeps in `fields`."""
    names = template_fields(card.prompt_template) + ([card.subgroups] if card.subgroups else [])
    return {name: text_value(row, name, source, "read by prompt_template" if name != card.subgroups else
                             "named by subgroups") for name in dict.fromkeys(names)}
