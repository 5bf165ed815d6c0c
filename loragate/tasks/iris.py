"""Iris from text: four measurements binned into low/medium/high words, answer the species.

The bins are the seed's. They leave gaps (petal length 2.1-3.0, petal width 0.6-1.0) and stop at the
data's range, so `bin_value` is made total: a value in a gap or out of range goes to the nearest bin.
"""

from __future__ import annotations

import csv
import math
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from loragate.card.settings import TaskCard
from loragate.card.templates import fill
from loragate.data.examples import Example, Splits, csv_records, stratified_split
from loragate.data.hf_dataset import missing_columns
from loragate.data.parsing import ParsedOutput, parse_label
from loragate.tasks import CARDS_DIR, TASKS

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
COLUMNS = (*FEATURES, "species")
LEVELS = ("low", "medium", "high")
# feature -> (lo, hi) per level, in LEVELS order; a value on a shared edge belongs to the upper bin.
BINS: dict[str, tuple[tuple[float, float], ...]] = {
    "sepal_length": ((4.3, 5.4), (5.4, 6.3), (6.3, 7.9)),
    "sepal_width": ((2.0, 2.7), (2.7, 3.3), (3.3, 4.4)),
    "petal_length": ((1.0, 2.1), (3.0, 5.0), (5.0, 7.0)),
    "petal_width": ((0.1, 0.6), (1.0, 1.6), (1.6, 2.5)),
}
# 150 bundled rows -> 90 train / 30 eval / 30 test (10 per species in test); a user's file splits 60/20/20
TEST_FRACTION = 0.2
EVAL_FRACTION_OF_REST = 0.25
SPLIT_SEED = 0
MIN_PER_SPECIES = 5  # so the 60/20/20 stratified split puts each species in train, eval and test


class IrisAnswer(BaseModel):
    species: Literal["setosa", "versicolor", "virginica"]


def bin_value(feature: str, value: float) -> str:
    """The level of `value`: inside a bin [lo, hi) (the top bin includes hi), else the nearest bin; NaN is an error."""
    if math.isnan(value):
        raise ValueError(f"{feature}: {value} is not a measurement")
    bins = BINS[feature]
    if value < bins[0][0]:
        return LEVELS[0]
    if value > bins[-1][1]:  # decided here: +inf is infinitely far from every bin, so distances cannot rank it
        return LEVELS[-1]
    for level, (lo, hi) in zip(LEVELS, bins):
        if lo <= value < hi or (level == LEVELS[-1] and value == hi):
            return level
    distances = [max(lo - value, value - hi, 0.0) for lo, hi in bins]
    return LEVELS[distances.index(min(distances))]


def make_example(row_id: str, measurements: dict[str, float], species: str, card: TaskCard) -> Example:
    fields = {feature: bin_value(feature, measurements[feature]) for feature in FEATURES}
    return Example(
        id=row_id,
        prompt=fill(card.prompt_template, fields, "prompt_template"),
        target=fill(card.target_template, {"label": species}, "target_template"),
        label=species,
        fields=fields,
    )


def read_csv(path: Path, labels: list[str]) -> list[tuple[str, dict[str, float], str]]:
    """Rows of a CSV with header sepal_length,sepal_width,petal_length,petal_width,species."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:  # -sig: a BOM is not part of the header
            rows = _read_rows(path, csv_records(path, handle), labels)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from exc
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the Iris CSV: {exc.strerror}") from exc
    if not rows:
        raise ValueError(f"{path}: no data rows under the header; the Iris CSV needs rows of every species")
    return rows


def _read_rows(path: Path, records: Iterator[tuple[int, list[str]]],
               labels: list[str]) -> list[tuple[str, dict[str, float], str]]:
    header_line, header = next(records, (1, []))
    missing = [name for name in COLUMNS if name not in header]
    if missing:
        raise ValueError(f"{path}: header lacks {missing}; expected {', '.join(COLUMNS)}")
    unread = [name for name in header if name not in COLUMNS]
    if unread:
        warnings.warn(f"{path}:{header_line}: columns {unread} are not read; the Iris task reads {', '.join(COLUMNS)}",
                      stacklevel=2)
    rows = []
    for index, (line, cells) in enumerate(record for record in records if record[1]):  # skip blank lines
        if len(cells) != len(header):
            raise ValueError(f"{path}:{line}: {len(cells)} fields, the header names {len(header)}; quote a value that "
                             f"holds a comma, or add the missing ones")
        row = dict(zip(header, cells))
        if row["species"] not in labels:
            raise ValueError(f"{path}:{line}: species {row['species']!r} is not one of {', '.join(labels)}")
        measurements = {}
        for feature in FEATURES:
            try:
                measurements[feature] = float(row[feature])
            except ValueError as exc:
                raise ValueError(f"{path}:{line}: {feature} {row[feature]!r} is not a number; write the measurement "
                                 f"in cm, like 5.1") from exc
        bad = [feature for feature, value in measurements.items() if not math.isfinite(value)]
        if bad:
            raise ValueError(f"{path}:{line}: {', '.join(bad)} is not a finite number: "
                             f"{', '.join(row[feature] for feature in bad)}")
        rows.append((f"iris-{index}", measurements, row["species"]))
    return rows


def bundled_rows(labels: list[str]) -> list[tuple[str, dict[str, float], str]]:
    """scikit-learn's bundled copy of the 150 Iris rows: no download."""
    from sklearn.datasets import load_iris  # loads sklearn: not at pytest start-up

    iris = load_iris()
    return [
        (f"iris-{i}", dict(zip(FEATURES, map(float, iris.data[i]))), labels[int(iris.target[i])])
        for i in range(len(iris.target))
    ]


class IrisTask:
    def __init__(self) -> None:
        self.card = TaskCard.from_yaml(CARDS_DIR / "iris.yaml")

    hub_suffix = ".csv"

    def write_hub_rows(self, rows: Iterable[dict], columns: list[str], source: str, out: Path) -> None:
        """The Kaggle layout on the hub (scikit-learn/iris): SepalLengthCm ... PetalWidthCm, Species
        "Iris-setosa"; or this task's own column names."""
        kaggle = {"SepalLengthCm": "sepal_length", "SepalWidthCm": "sepal_width", "PetalLengthCm": "petal_length",
                  "PetalWidthCm": "petal_width", "Species": "species"}
        names = kaggle if "Species" in columns else {name: name for name in COLUMNS}
        missing_columns(columns, names, source, "iris", "four measurements in cm and the species")
        with out.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(COLUMNS))
            writer.writeheader()
            for row in rows:
                record = {ours: row[theirs] for theirs, ours in names.items()}
                writer.writerow({**record, "species": str(record["species"]).removeprefix("Iris-")})

    def load_splits(self, data: Path | None = None) -> Splits:
        """Stratified 90/30/30 (10 per species in test on the bundled data)."""
        rows = read_csv(data, self.card.labels) if data else bundled_rows(self.card.labels)
        train, eval_, test = stratified_split(rows, [row[2] for row in rows], self.card.labels, TEST_FRACTION,
                                              EVAL_FRACTION_OF_REST, SPLIT_SEED, MIN_PER_SPECIES, data, "species")
        build = lambda part: [make_example(*row, card=self.card) for row in part]  # noqa: E731
        return Splits(train=build(train), eval=build(eval_), test=build(test))

    def parse(self, text: str) -> ParsedOutput:
        return parse_label(text, self.card.labels, IrisAnswer, "species")

    def ceiling(self, test: list[Example]) -> float:
        """Best accuracy any classifier of the binned features can reach here: the majority species
        of each distinct binned row, counted on the test split itself."""
        by_bins: dict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
        for ex in test:
            by_bins[tuple(ex.fields[f] for f in FEATURES)][ex.label] += 1
        return sum(counts.most_common(1)[0][1] for counts in by_bins.values()) / len(test)


TASKS.register("iris", IrisTask)
