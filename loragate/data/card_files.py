"""A card-only task's data (the card's `data:` block): rows read from JSONL, CSV, TSV, a JSON list or a Hugging
Face dataset directory, renamed by the card's `columns`, made Examples by the card's kind, and split.

A test file the card names is used as it is. One file (`data.file`, or `--data`) is cut by `data.split`: stratified
by label for kinds with labels, so every split holds each label in the proportions of the whole; a seeded shuffle
otherwise. A CSV or TSV file without a header row is read with `data.header: false` and `data.names`; a row is named
by the file's `data.id` column (default `id` where the file has one), else by its file and line. Every error names
the file (and the row), the card field and the fix, with the closest name where a name is misspelt.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from loragate.card.settings import CardError, DataSettings, SplitFractions, TaskCard
from loragate.card.templates import template_fields
from loragate.data.examples import Example, Splits, csv_records

SUFFIXES = {".jsonl": "jsonl", ".csv": "csv", ".tsv": "tsv", ".json": "json"}
DEFAULT_TEST_SHARE = 0.2  # `--data` on a card that names a test file: the share of the one file cut for test


@dataclass(frozen=True)
class Row:
    """One data row: `id` is its `data.id` column's value, else the file's name and the row's line ("train.csv:12"; a
    JSON list or a dataset: its index, "all.json[3]"), stable across machines; `source` the full path and line, for
    errors."""

    id: str
    source: str
    values: dict[str, object]


MakeExample = Callable[[str, dict[str, object], str], Example]  # (row id, renamed row, source) -> Example


class MissingField(CardError):
    """A row lacks a field the card reads; the file's reader words the fix (it knows whether the file has a
    header)."""

    def __init__(self, source: str, name: str, role: str, columns: list[str]) -> None:
        self.source, self.name, self.role, self.columns = source, name, role, columns
        super().__init__(f"{source}: no field {name!r} ({role}){did_you_mean(name, columns)}; the row has the "
                         f"columns {sorted(columns)}: add the column, or map one with data.columns: {{{name}: "
                         f"<column>}}")


class UnknownLabel(CardError):
    """A row's label value is not one the card lists; the file's reader gathers every such value into one error."""

    def __init__(self, source: str, value: str, labels: list[str]) -> None:
        self.source, self.value = source, value
        super().__init__(f"{source}: label {value!r} is not one of the card's labels {labels}; fix the row, or add "
                         f"the label to the card's labels")


def did_you_mean(name: str, names: Sequence[str]) -> str:
    """" (did you mean 'x'?)" for the closest of `names` to a misspelt `name`, else ""."""
    close = difflib.get_close_matches(name, [str(other) for other in names], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


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


def read_rows(path: Path, fmt: str, field: str, settings: DataSettings) -> list[Row]:
    """Every row of `path` in format `fmt`, as read (no renaming), named by the `data.id` column where there is one;
    `field` names the card field for errors. `data.header` and `data.names` apply to CSV and TSV files: the other
    formats name each row's columns themselves."""
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
        if fmt in ("csv", "tsv"):
            rows = read_delimited(path, text, fmt, settings.names)
        else:
            rows = {"jsonl": read_jsonl, "json": read_json}[fmt](path, text)
    if not rows:
        raise CardError(f"{path}: no data rows ({field}, read as {fmt}); fill the file or point {field} at the "
                        f"file that holds the rows")
    return named_rows(path, rows, settings.id)


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


DELIMITED = {"csv": (",", csv.QUOTE_MINIMAL, "quote a value that holds a comma"),
             "tsv": ("\t", csv.QUOTE_NONE, "a value may not hold a tab")}  # delimiter, quoting, the fix for a row


def read_delimited(path: Path, text: str, fmt: str, names: list[str] | None) -> list[Row]:
    """Rows of a CSV or TSV: its first record is the header, or with `names` (data.header: false) every record is
    data and `names` names the columns. Blank lines are skipped."""
    delimiter, quoting, fix = DELIMITED[fmt]
    records = csv_records(path, io.StringIO(text, newline=""), names, delimiter=delimiter, quoting=quoting)
    if names is None:
        header_line, header = next(records, (1, []))
        repeated = sorted({name for name in header if header.count(name) > 1})
        if repeated:
            raise CardError(f"{path}:{header_line}: the header names {repeated} more than once; give each column "
                            f"its own name")
        width = f"the header names {len(header)}"
    else:
        header, width = names, f"data.names names {len(names)} ({', '.join(names)})"
    rows = []
    for line, cells in records:
        if not cells:
            continue
        if len(cells) != len(header):
            raise CardError(f"{path}:{line}: {len(cells)} fields, {width}; "
                            f"{fix if names is None else 'give data.names one name per column'}")
        rows.append(Row(f"{path.name}:{line}", f"{path}:{line}", dict(zip(header, cells))))
    return rows


def named_rows(path: Path, rows: list[Row], column: str | bool | None) -> list[Row]:
    """`rows` named by their `column` (data.id; default `id` where the first row has one), each id once in the file;
    as they are (file and line) where `column` is false, or None and the file has no `id` column."""
    if column is False or (column is None and "id" not in rows[0].values):
        return rows
    default, column = column is None, column or "id"
    named, seen = [], {}
    for row in rows:
        if column not in row.values and default:  # a JSONL file's rows may differ: the user never named `id`
            raise CardError(f"{row.source}: no column 'id', which the first row ({rows[0].source}) has, so the "
                            f"file's rows are named by it (data.id's default); give this row an id too, or set "
                            f"data.id: false to name rows by their file and line")
        if column not in row.values:
            raise CardError(f"{row.source}: no column {column!r} (data.id){did_you_mean(column, list(row.values))}; "
                            f"the row has the columns {sorted(row.values)}: name the column that identifies rows "
                            f"with data.id")
        row_id = text_value(row.values, column, row.source, "data.id, the row's id")
        if not row_id.strip():
            raise CardError(f"{row.source}: the id column {column!r} is empty; give every row an id (data.id)")
        if row_id in seen:
            raise CardError(f"{path}: the id {row_id!r} (column {column!r}, data.id) names two rows, {seen[row_id]} "
                            f"and {row.source}; give each row its own id, name another column with data.id, or set "
                            f"data.id: false to name rows by their file and line")
        seen[row_id] = row.source
        named.append(replace(row, id=row_id))
    return named


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


def renamed(rows: list[Row], columns: dict[str, str], header: bool) -> list[Row]:
    """Rows whose mapped columns carry the card's field names (`columns`: card field -> the file's column); `header`:
    the file's first line named the columns."""
    out = []
    for row in rows:
        missing = {name: column for name, column in columns.items() if column not in row.values}
        if missing:
            name, column = next(iter(missing.items()))
            raise CardError(missing_column(row.source, f"no column {column!r} (data.columns.{name})", column,
                                           list(row.values), header, f"map {name} to one of them"))
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


def missing_column(source: str, what: str, name: str, columns: list[str], header: bool, fix: str) -> str:
    """The error for a row without the column `name` (`what` says which, `fix` how to map it). Where the file's
    first line was read as its header and reads like data, the fix is data.header: false, never mapping a card
    field onto the first row's values. `columns` in the row's order: that line is quoted as it reads, a list of
    columns sorted."""
    if not header:
        return f"{source}: {what}{did_you_mean(name, columns)}; the row has the columns {sorted(columns)}: {fix}"
    no_header = (f"set data.header: false and data.names: [...], a name for each of its {len(columns)} columns, "
                 f"in order")
    if any(reads_like_data(column) for column in columns):
        return (f"{source}: {what}; the file's first line, read as its header, is {columns}, which reads like data, "
                f"not column names: if the file has no header row, {no_header}")
    return (f"{source}: {what}{did_you_mean(name, columns)}; the header names the columns {sorted(columns)}: {fix} "
            f"(if the first line is data, not a header: {no_header})")


def reads_like_data(cell: str) -> bool:
    """A header cell that no one would name a column: empty, a number, or a phrase of more than four words."""
    try:
        float(cell)
    except ValueError:
        return not cell.strip() or len(cell.split()) > 4
    return True


def examples_of(path: Path, fmt: str, field: str, card: TaskCard, make: MakeExample) -> list[Example]:
    """The file's rows as the kind makes them Examples; every row whose label the card does not list is gathered
    into one error."""
    assert card.data is not None  # a card-only task's card has a data block
    header = fmt in DELIMITED and card.data.names is None
    examples, unknown = [], {}
    for row in renamed(read_rows(path, fmt, field, card.data), card.data.columns, header):
        try:
            examples.append(make(row.id, row.values, row.source))
        except UnknownLabel as exc:
            unknown.setdefault(exc.value, []).append(exc.source)
        except MissingField as exc:
            raise CardError(missing_column(exc.source, f"no field {exc.name!r} ({exc.role})", exc.name, exc.columns,
                                           header, f"add the column, or map one with data.columns: "
                                           f"{{{exc.name}: <column>}}")) from exc
    if unknown:
        raise CardError(unknown_labels(path, unknown, card, matched=len(examples)))
    return examples


def unknown_labels(path: Path, unknown: dict[str, list[str]], card: TaskCard, matched: int) -> str:
    """One error for every label value of `path` the card does not list (value -> the rows holding it)."""
    shown = ", ".join(f"{value!r} ({len(rows)} row{'s' * (len(rows) > 1)}, {'the first ' * (len(rows) > 1)}"
                      f"{path.name}{rows[0].removeprefix(str(path))})" for value, rows in list(unknown.items())[:10])
    more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
    values = card.label_values
    if any(value != name for value, name in values.items()):
        known, fix = f"the card's labels map the data values {list(values)} to {card.labels}", "map these values too"
    else:
        known, fix = f"the card's labels are {card.labels}", "add the values to the card's labels"
        if not matched:  # no value is a label: the data may hold codes that stand for them
            fix += (f"; if the data's values stand for the labels, map each to its label's name: labels: "
                    f"{{{placeholders(list(unknown))}}}")
    return f"{path}: label values the card does not list: {shown}{more}; {known}: fix the rows, or {fix}"


def placeholders(values: list[str]) -> str:
    """The data's values, each mapped to a placeholder: pairing them with the card's labels in order would guess
    which value stands for which label."""
    shown = ", ".join(f"{value}: NAME" for value in sorted(values, key=lambda value: (len(value), value))[:6])
    return shown + (", ..." if len(values) > 6 else "")


def card_splits(card: TaskCard, card_dir: Path, make: MakeExample, stratify: bool) -> Splits:
    """The splits the card's data block names: its test file as it is, eval as named or cut from train, or its one
    file cut by `split`. Paths are relative to `card_dir`."""
    settings = card.data
    assert settings is not None  # a card-only task's card has a data block

    def load(field: str) -> list[Example]:
        path = card_dir / getattr(settings, field)
        return examples_of(path, data_format(path, settings.format, f"data.{field}"), f"data.{field}", card, make)

    if settings.file is not None:
        assert settings.split is not None and settings.split.test is not None  # DataSettings checks it
        return cut_file(load("file"), settings.split, settings.split.test, stratify, f"{card_dir / settings.file}")
    train, test = load("train"), load("test")
    if settings.eval is not None:
        return Splits(train=train, eval=load("eval"), test=test)
    split = settings.split or SplitFractions()
    train, eval_ = cut(train, split.eval, split.seed, stratify, f"{card_dir / settings.train} (data.split.eval)")
    return Splits(train=train, eval=eval_, test=test)


def data_splits(data: Path, card: TaskCard, make: MakeExample, stratify: bool) -> Splits:
    """`--data PATH` instead of the card's files: one file (format by its suffix, a directory is a Hugging Face
    dataset) cut by the card's `split` (test 0.2 where the card names a test file instead), renamed by its
    `columns`."""
    assert card.data is not None  # a card-only task's card has a data block
    split = card.data.split or SplitFractions()
    test_share = split.test if split.test is not None else DEFAULT_TEST_SHARE
    if test_share + split.eval >= 1:
        raise CardError(f"--data {data}: data.split.eval {split.eval} + the test share {test_share} leave no rows "
                        f"for train; lower data.split.eval")
    examples = examples_of(data, data_format(data, None, "--data"), "--data", card, make)
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
        raise MissingField(source, name, role, list(row))  # in the file's order: an error may quote its header
    value = row[name]
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise CardError(f"{source}: field {name!r} ({role}) is {value!r}, not text or a number; fill it in as text")


def prompt_fields(card: TaskCard, row: dict[str, object], source: str) -> dict[str, str]:
    """The fields the card's prompt reads, and its `subgroups` field, as text: what an Example keeps in `fields`."""
    return {name: text_value(row, name, source, role) for name, role in prompt_reads(card.prompt_template,
                                                                                    card.subgroups)}


@lru_cache(maxsize=None)
def prompt_reads(template: str, subgroups: str | None) -> tuple[tuple[str, str], ...]:
    """(field, what reads it) for each field the prompt template reads, then the `subgroups` field: worked out once
    per card, not once per row."""
    names = [*template_fields(template), *([subgroups] if subgroups else [])]
    return tuple((name, "read by prompt_template" if name != subgroups else "named by subgroups")
                 for name in dict.fromkeys(names))


@lru_cache(maxsize=None)
def fields_read(template: str) -> tuple[str, ...]:
    """template_fields, worked out once per template, not once per row."""
    return tuple(template_fields(template))
