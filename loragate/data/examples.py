"""Examples and splits, and the hash that ties an adapter to the exact data it saw."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO


@dataclass(frozen=True)
class Example:
    """One prompt with its gold answer; `fields` holds the values the prompt was built from."""

    id: str
    prompt: str
    target: str
    label: str
    fields: dict[str, str] = field(default_factory=dict)
    references: tuple[str, ...] = ()  # every acceptable answer, for text metrics (QA: () = unanswerable)


@dataclass(frozen=True)
class Splits:
    train: list[Example]
    eval: list[Example]
    test: list[Example]

    def data_hash(self) -> str:
        """sha256 over every split's ids, prompts, targets, references and QA passages (`fields["context"]`): any
        change to data, bins or template changes it."""
        payload = {
            name: [[ex.id, ex.prompt, ex.target, *([list(ex.references)] if ex.references else []),
                    *([ex.fields["context"]] if ex.fields.get("context") else [])]
                   for ex in getattr(self, name)]
            for name in ("train", "eval", "test")
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def leaked(self) -> list[str]:
        """Ids of test examples whose input also appears in train: a model that memorised train would score them
        without having learned the task."""
        return also_in(self.test, self.train)

    def texts(self) -> list[str]:
        """All prompt and target text, for training a tiny tokenizer on the task's own words."""
        return [ex.prompt + ex.target for split in (self.train, self.eval, self.test) for ex in split]

    def to_json(self) -> dict[str, list[dict]]:
        return {name: [asdict(ex) for ex in getattr(self, name)] for name in ("train", "eval", "test")}


def input_key(ex: Example) -> str:
    """What the model is asked, for finding repeats: the prompt and the fields, case and spacing ignored."""
    return " ".join(" ".join([ex.prompt, *ex.fields.values()]).lower().split())


def also_in(examples: list[Example], other: list[Example]) -> list[str]:
    """Ids of `examples` whose input (input_key) also appears in `other`."""
    seen = {input_key(ex) for ex in other}
    return [ex.id for ex in examples if input_key(ex) in seen]


def input_groups(examples: list[Example]) -> tuple[int, ...]:
    """Per example, the index of its input (input_key) among the distinct inputs in first-seen order: rows with
    one index ask the model the same thing, so a paired bootstrap resamples them together."""
    index: dict[str, int] = {}
    return tuple(index.setdefault(input_key(ex), len(index)) for ex in examples)


def field_subgroups(examples: list[Example], name: str) -> dict[str, list[int]]:
    """Rows of `examples` by the value of their field `name` ("domain=news": [0, 3, ...]), in first-seen order.
    An example without the field is an error naming it and the fields it has."""
    groups: dict[str, list[int]] = {}
    for row, ex in enumerate(examples):
        if name not in ex.fields:
            raise ValueError(f"subgroups: example {ex.id} has no field {name!r}; its fields are "
                             f"{sorted(ex.fields)}: name one of them in the card's `subgroups`")
        groups.setdefault(f"{name}={ex.fields[name]}", []).append(row)
    return groups


def stratified_split(rows: list, labels: list[str], classes: list[str], test_fraction: float,
                     eval_fraction_of_rest: float, seed: int, min_per_class: int, source: object,
                     noun: str = "label") -> tuple[list, list, list]:
    """(train, eval, test) rows, each split holding every class in the proportions of the whole: `test_fraction`
    of the rows for test, then `eval_fraction_of_rest` of the rest for eval. A class with fewer than
    `min_per_class` rows is an error naming `source`: it could not reach every split."""
    from sklearn.model_selection import train_test_split  # loads sklearn: not at pytest start-up

    too_few = {c: labels.count(c) for c in classes if labels.count(c) < min_per_class}
    if too_few:
        raise ValueError(f"{source}: too few rows of {too_few} to give every split each {noun}; "
                         f"add at least {min_per_class} rows per {noun}")
    rest, test, rest_labels, _ = train_test_split(rows, labels, test_size=test_fraction, stratify=labels,
                                                  random_state=seed)
    train, eval_ = train_test_split(rest, test_size=eval_fraction_of_rest, stratify=rest_labels, random_state=seed)
    return train, eval_, test


def csv_records(path: Path, handle: TextIO, names: Sequence[str] | None = None, delimiter: str = ",",
                quoting: int = csv.QUOTE_MINIMAL) -> Iterator[tuple[int, list[str]]]:
    """(line, cells) of each CSV record, `line` where the record starts (a quoted field may span lines); a blank
    line is a record of no cells. `names` label the columns in errors; None: the first record is the header and
    labels them. csv's own errors (a field over its size limit) name neither file nor line nor field: these do.
    A TSV is `delimiter="\t", quoting=csv.QUOTE_NONE`: a quote is text there, and a tab always splits a field."""
    record: list[str] = []  # the physical lines of the record being read

    def lines() -> Iterator[str]:
        for line in handle:
            record.append(line)
            yield line

    reader = csv.reader(lines(), delimiter=delimiter, quoting=quoting)
    while True:
        start = reader.line_num + 1
        record.clear()
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ValueError(f"{path}:{start}: {csv_problem(exc, ''.join(record), names or [])}") from exc
        if names is None:
            names = cells
        yield start, cells


def csv_problem(error: csv.Error, text: str, names: Sequence[str]) -> str:
    """What went wrong in a record csv refused, naming the field: a field over csv's size limit is found by reading
    the record's text again with the limit lifted."""
    limit = csv.field_size_limit()
    if "field larger than field limit" not in str(error):
        return f"not valid CSV ({error})"
    csv.field_size_limit(1 << 30)
    try:
        cells = next(csv.reader(io.StringIO(text)), [])
    finally:
        csv.field_size_limit(limit)
    index = next((i for i, cell in enumerate(cells) if len(cell) > limit), max(len(cells) - 1, 0))
    name = f" ({names[index]})" if index < len(names) else ""
    return (f"field {index + 1}{name} is longer than csv's limit of {limit} characters; a quote left open makes the "
            f"rest of the file one field: close the quote, or shorten the field")
