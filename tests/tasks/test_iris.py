"""Iris: the seed's bins, the 90/30/30 split, the ceiling, and CSV input in the task's real format."""

from __future__ import annotations

import csv
import math
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loragate.data.examples import Example, csv_problem
from loragate.gates.checks import run_gates
from loragate.kinds import card_checks
from loragate.metrics.scores import metrics_from_confusion
from loragate.tasks import get_task
from loragate.tasks.iris import BINS, FEATURES, LEVELS, bin_value, bundled_rows

HEADER = [*FEATURES, "species"]


@pytest.mark.parametrize("feature, value, level", [
    ("sepal_length", 4.3, "low"),
    ("sepal_length", 5.39, "low"),
    ("sepal_length", 5.4, "medium"),  # a shared edge belongs to the upper bin
    ("sepal_length", 6.3, "high"),
    ("sepal_length", 7.9, "high"),  # the top bin includes its upper edge
    ("petal_length", 2.5, "low"),  # gap 2.1-3.0: 0.4 from low, 0.5 from medium
    ("petal_length", 2.6, "medium"),  # 0.5 from low, 0.4 from medium
    ("petal_width", 0.9, "medium"),  # gap 0.6-1.0
    ("sepal_width", 1.0, "low"),  # below the range
    ("sepal_width", 9.0, "high"),  # above the range
    ("petal_width", math.inf, "high"),
    ("petal_width", -math.inf, "low"),
])
def test_bin_value(feature: str, value: float, level: str) -> None:
    assert bin_value(feature, value) == level, f"bin_value({feature!r}, {value}) = {bin_value(feature, value)!r}"


def test_bin_value_refuses_nan() -> None:
    with pytest.raises(ValueError, match="petal_width: nan is not a measurement"):
        bin_value("petal_width", math.nan)


def test_splits_are_90_30_30_disjoint_and_stratified(iris_splits) -> None:
    sizes = {name: len(getattr(iris_splits, name)) for name in ("train", "eval", "test")}
    assert sizes == {"train": 90, "eval": 30, "test": 30}, sizes
    ids = [set(ex.id for ex in getattr(iris_splits, name)) for name in ("train", "eval", "test")]
    assert sum(map(len, ids)) == 150 and len(set().union(*ids)) == 150, "ids repeat within or across splits"
    per_species = Counter(ex.label for ex in iris_splits.test)
    assert per_species == {"setosa": 10, "versicolor": 10, "virginica": 10}, per_species


def test_prompt_shows_the_binned_words(iris_splits) -> None:
    example = iris_splits.test[0]
    assert set(example.fields.values()) <= set(LEVELS), example.fields
    assert example.prompt.startswith(f"Sepal length: {example.fields['sepal_length']}. "), example.prompt
    assert example.target == f" {example.label}", example.target


def example(i: int, levels: tuple[str, ...], label: str) -> Example:
    return Example(id=f"ex-{i}", prompt="p", target=f" {label}", label=label, fields=dict(zip(FEATURES, levels)))


def test_ceiling_counts_the_majority_of_each_binned_row(iris) -> None:
    same, other = ("low",) * 4, ("high",) * 4
    test = [example(0, same, "setosa"), example(1, same, "versicolor"),  # indistinguishable: one can be right
            example(2, other, "virginica"), example(3, other, "virginica")]
    assert iris.ceiling(test) == pytest.approx(3 / 4), f"ceiling {iris.ceiling(test)} != 3/4"
    assert iris.ceiling(test[2:]) == 1.0, "distinct rows with one species each should give a ceiling of 1"


def write_csv(path: Path, rows: list[list[str]], blank_after: int | None = None) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for i, row in enumerate(rows):
            writer.writerow(row)
            if i == blank_after:
                handle.write("\n")
    return path


GOOD = ["5.1", "3.5", "1.4", "0.2", "setosa"]


@pytest.mark.parametrize("bad_row, message", [
    (["5.1", "3.5", "1.4", "0.2", "Setosa"], "species 'Setosa' is not one of setosa, versicolor, virginica"),
    (["5.1", "wide", "1.4", "0.2", "setosa"], "sepal_width 'wide' is not a number"),
    (["5.1", "3.5", "1.4", "", "setosa"], "petal_width '' is not a number"),
    (["5.1", "3.5", "1.4", "0.2", "setosa", "extra"], "6 fields, the header names 5"),
    (["5.1", "3.5", "1.4", "setosa"], "4 fields, the header names 5"),
    (["5.1", "3.5", "nan", "0.2", "setosa"], "petal_length is not a finite number: nan"),
    (["inf", "3.5", "1.4", "0.2", "setosa"], "sepal_length is not a finite number: inf"),
])
def test_read_csv_error_names_file_and_line(tmp_path: Path, iris, bad_row: list[str], message: str) -> None:
    path = write_csv(tmp_path / "iris.csv", [GOOD, GOOD, bad_row])
    with pytest.raises(ValueError) as caught:
        iris.load_splits(data=path)
    assert f"{path}:4: {message}" in str(caught.value), f"expected '{path}:4: {message}' in: {caught.value}"


def test_a_field_over_the_csv_limit_names_file_line_and_field(tmp_path: Path, iris) -> None:
    """csv's own error is `_csv.Error: field larger than field limit (131072)`, naming nothing."""
    path = write_csv(tmp_path / "iris.csv", [GOOD, ["5.1", "3.5", "1.4", "0.2", "x" * (csv.field_size_limit() + 1)]])
    with pytest.raises(ValueError, match=rf"{path}:3: field 5 \(species\) is longer than csv's limit of "
                                         rf"{csv.field_size_limit()} characters; a quote left open"):
        iris.load_splits(data=path)


def test_other_csv_errors_are_named_too() -> None:
    """Python 3.10's csv refuses a NUL byte; whatever else csv raises is reported with its own words."""
    assert csv_problem(csv.Error("line contains NUL"), "5.1,\0", HEADER) == "not valid CSV (line contains NUL)"


def test_a_quote_left_open_is_named_where_its_record_starts(tmp_path: Path, iris) -> None:
    path = tmp_path / "iris.csv"
    row = ",".join(GOOD) + "\n"
    path.write_text(",".join(HEADER) + "\n" + row + '5.1,3.5,1.4,0.2,"setosa\n' + row * (csv.field_size_limit() // 10))
    with pytest.raises(ValueError, match=rf"{path}:3: field 5 \(species\) is longer than csv's limit"):
        iris.load_splits(data=path)


def test_columns_the_task_does_not_read_are_a_stated_warning(tmp_path: Path, iris) -> None:
    path = tmp_path / "iris.csv"
    rows = every_species(5)
    path.write_text("\n".join(",".join(row) for row in [["Id", *HEADER]] + [[str(i), *r] for i, r in enumerate(rows)]))
    with pytest.warns(UserWarning, match=rf"{path}:1: columns \['Id'\] are not read"):
        splits = iris.load_splits(data=path)
    assert len(splits.test) == 3


def test_read_csv_line_number_counts_blank_lines(tmp_path: Path, iris) -> None:
    path = write_csv(tmp_path / "iris.csv", [GOOD, GOOD, ["5.1", "3.5", "1.4", "0.2", "rose"]], blank_after=0)
    with pytest.raises(ValueError, match=f"{path}:5: species 'rose'"):  # header, good, blank, good, bad
        iris.load_splits(data=path)


def test_read_csv_names_missing_columns(tmp_path: Path, iris) -> None:
    path = tmp_path / "iris.csv"
    path.write_text("sepal_length,sepal_width,petal_length,species\n5.1,3.5,1.4,setosa\n")
    with pytest.raises(ValueError, match=rf"{path}: header lacks \['petal_width'\]"):
        iris.load_splits(data=path)


def test_csv_round_trip_gives_the_bundled_splits(tmp_path: Path, iris, iris_splits) -> None:
    rows = [[repr(m[f]) for f in FEATURES] + [species] for _, m, species in bundled_rows(iris.card.labels)]
    from_csv = iris.load_splits(data=write_csv(tmp_path / "iris.csv", rows))
    for name in ("train", "eval", "test"):
        got, want = getattr(from_csv, name), getattr(iris_splits, name)
        assert got == want, f"{name}: CSV split differs from bundled, first ids {[e.id for e in got[:3]]} " \
                            f"vs {[e.id for e in want[:3]]}"
    assert from_csv.data_hash() == iris_splits.data_hash()


def every_species(times: int) -> list[list[str]]:
    return [["5.1", "3.5", "1.4", "0.2", species] for species in ("setosa", "versicolor", "virginica")] * times


def test_a_users_file_splits_60_20_20_by_fraction(tmp_path: Path, iris) -> None:
    splits = iris.load_splits(write_csv(tmp_path / "small.csv", every_species(10)))  # 30 rows, not 150
    assert (len(splits.train), len(splits.eval), len(splits.test)) == (18, 6, 6)
    for name in ("train", "eval", "test"):
        assert {ex.label for ex in getattr(splits, name)} == {"setosa", "versicolor", "virginica"}, name


def test_a_bom_is_not_part_of_the_header(tmp_path: Path, iris) -> None:
    path = write_csv(tmp_path / "bom.csv", every_species(5))
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert len(iris.load_splits(path).test) == 3


@pytest.mark.parametrize("content, message", [
    (",".join(HEADER) + "\n", "no data rows under the header"),
    ((",".join(HEADER) + "\n5.1,3.5,1.4,0.2,set\xf6sa\n").encode("latin-1"), "not UTF-8 text"),
    (None, "cannot read the Iris CSV"),
])
def test_unusable_files_are_named(tmp_path: Path, iris, content, message: str) -> None:
    path = tmp_path / "data.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=message) as error:
        iris.load_splits(path)
    assert str(path) in str(error.value)


def test_too_few_rows_of_a_species_is_an_error_not_an_empty_split(tmp_path: Path, iris) -> None:
    rows = [row for row in every_species(6) if row[-1] != "virginica"] + [["6.5", "3.0", "5.5", "2.0", "virginica"]] * 2
    with pytest.raises(ValueError, match=r"too few rows of \{'virginica': 2\}"):
        iris.load_splits(write_csv(tmp_path / "few.csv", rows))


finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6)


@given(feature=st.sampled_from(sorted(BINS)), value=finite)
def test_binning_is_total(feature: str, value: float) -> None:
    assert bin_value(feature, value) in LEVELS


@given(feature=st.sampled_from(sorted(BINS)), a=finite, b=finite)
def test_binning_is_monotone(feature: str, a: float, b: float) -> None:
    low, high = min(a, b), max(a, b)
    assert LEVELS.index(bin_value(feature, low)) <= LEVELS.index(bin_value(feature, high))


def test_gate_fails_the_seed_iris_result() -> None:
    """The seed reported 33.3% -> 63.3% and called it a success; the gate must refuse it."""
    card = get_task("iris").card
    base = metrics_from_confusion([[10, 0, 0], [10, 0, 0], [10, 0, 0]], card.labels)  # all setosa
    tuned = metrics_from_confusion([[9, 1, 0], [0, 10, 0], [2, 8, 0]], card.labels)
    assert round(base.accuracy, 3) == 0.333 and round(tuned.accuracy, 3) == 0.633
    failed = [r.finding for r in run_gates(card_checks(card), tuned, base) if not r.passed]
    report = "\n".join(f or "" for f in failed)
    assert failed, "the seed's iris result passed the gate"
    assert "'virginica' accuracy 0.000 < floor" in report, report
    # setosa 1.0 -> 0.9 of 10 is within the card's max_class_drop 0.5 (iris.yaml: the least 3 to 6 distinct inputs a
    # species can decide); --set max_class_drop=0.05 asks what 10 rows cannot tell
    strict = card.model_copy(update={"gates": card.gates.model_copy(update={"max_class_drop": 0.05})})
    report = "\n".join(r.finding or "" for r in run_gates(card_checks(strict), tuned, base))
    assert "INCONCLUSIVE: class 'setosa' accuracy -0.100 [" in report, report
