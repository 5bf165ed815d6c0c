"""SST-2: the generated reviews (deterministic, balanced, unique, decided by negation and contrast), the
240/80/80 split, and GLUE's TSV format with an error naming file, line and fix for each bad input."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from loragate.data.examples import Splits
from loragate.gates.checks import run_gates
from loragate.kinds import card_checks
from loragate.metrics.scores import classification_metrics
from loragate.tasks import get_task
from loragate.tasks.sst2 import NEGATIVE, NEGATORS, POSITIVE, Sst2Task, generate_rows

FLIP = {"positive": "negative", "negative": "positive"}


@pytest.fixture(scope="module")
def sst2() -> Sst2Task:
    return get_task("sst2")


@pytest.fixture(scope="module")
def sst2_splits(sst2: Sst2Task) -> Splits:
    return sst2.load_splits()


def polarity(adjective: str) -> str:
    return "positive" if adjective in POSITIVE else "negative"


def predicates(sentence: str) -> list[tuple[str, bool]]:
    """Each adjective of a generated review with whether a negator stands right before it."""
    words = sentence.replace(",", "").split()
    return [(word, " ".join(words[:i]).endswith(NEGATORS))
            for i, word in enumerate(words) if word in POSITIVE + NEGATIVE]


def reads_the_rule(sentence: str) -> str:
    """The generator's rule: the last predicate decides, negation flips it."""
    adjective, negated = predicates(sentence)[-1]
    return FLIP[polarity(adjective)] if negated else polarity(adjective)


def ignores_negation(sentence: str) -> str:
    return polarity(predicates(sentence)[-1][0])


def ignores_contrast(sentence: str) -> str:
    adjective, negated = predicates(sentence)[0]
    return FLIP[polarity(adjective)] if negated else polarity(adjective)


def test_generator_is_deterministic_and_seeded() -> None:
    assert generate_rows() == generate_rows()
    assert generate_rows(seed=1) != generate_rows(seed=0)


def test_generated_reviews_are_balanced_unique_and_labelled_by_the_rule() -> None:
    rows = generate_rows()
    assert Counter(label for _, _, label in rows) == {"positive": 200, "negative": 200}
    assert [row_id for row_id, _, _ in rows] == [f"sst2-{n}" for n in range(400)]
    sentences = [sentence for _, sentence, _ in rows]
    assert len(set(sentences)) == len(sentences), "a generated review repeats"
    wrong = [(sentence, label) for _, sentence, label in rows if reads_the_rule(sentence) != label]
    assert not wrong, f"labels that do not follow the last predicate and its negation: {wrong[:3]}"


def test_every_adjective_decides_both_labels() -> None:
    """Negation matters: each adjective is the deciding word of positive and of negative reviews."""
    labels_of: dict[str, set[str]] = {}
    for _, sentence, label in generate_rows():
        labels_of.setdefault(predicates(sentence)[-1][0], set()).add(label)
    one_sided = {adjective: labels for adjective, labels in labels_of.items() if len(labels) < 2}
    assert set(labels_of) == set(POSITIVE + NEGATIVE), sorted(set(POSITIVE + NEGATIVE) - set(labels_of))
    assert not one_sided, f"adjectives that decide only one label: {one_sided}"


@pytest.mark.parametrize("reader", [ignores_negation, ignores_contrast])
def test_the_card_fails_a_model_that_reads_words_not_structure(sst2: Sst2Task, sst2_splits: Splits, reader) -> None:
    """Against the tiny base (no valid output), a lexical reader clears min_delta but not the per-class floor."""
    test = sst2_splits.test
    gold = [ex.label for ex in test]
    base = classification_metrics(gold, [None] * len(test), sst2.card.labels, [""] * len(test))
    predicted = [reader(ex.fields["sentence"]) for ex in test]
    tuned = classification_metrics(gold, predicted, sst2.card.labels, predicted)
    failed = {r.check: r.finding for r in run_gates(card_checks(sst2.card), tuned, base) if not r.passed}
    assert "per-class floor" in failed, f"{reader.__name__} (accuracy {tuned.accuracy:.3f}) passed the gate"


def test_splits_are_240_80_80_disjoint_and_stratified(sst2_splits: Splits) -> None:
    sizes = {name: len(getattr(sst2_splits, name)) for name in ("train", "eval", "test")}
    assert sizes == {"train": 240, "eval": 80, "test": 80}, sizes
    ids = [{ex.id for ex in getattr(sst2_splits, name)} for name in ("train", "eval", "test")]
    assert sum(map(len, ids)) == 400 and len(set().union(*ids)) == 400, "ids repeat within or across splits"
    for name, per_label in (("train", 120), ("eval", 40), ("test", 40)):
        counts = Counter(ex.label for ex in getattr(sst2_splits, name))
        assert counts == {"positive": per_label, "negative": per_label}, (name, counts)


def test_prompt_and_target(sst2_splits: Splits) -> None:
    example = sst2_splits.test[0]
    assert example.prompt == f"Review: {example.fields['sentence']}\nSentiment:", example.prompt
    assert example.target == f" {example.label}", example.target


def test_parse_and_ceiling(sst2: Sst2Task, sst2_splits: Splits) -> None:
    assert sst2.parse(" negative\n").valid
    assert "case-sensitive" in (sst2.parse("Positive").reason or "")
    assert sst2.ceiling(sst2_splits.test) is None


def write_tsv(path: Path, rows: list[str], header: str = "sentence\tlabel") -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def both_labels(times: int) -> list[str]:
    return [f"review {i} is {word}\t{label}" for i in range(times) for word, label in (("fine", "1"), ("poor", "0"))]


def test_a_glue_tsv_splits_60_20_20(tmp_path: Path, sst2: Sst2Task) -> None:
    splits = sst2.load_splits(write_tsv(tmp_path / "train.tsv", both_labels(10)))
    assert (len(splits.train), len(splits.eval), len(splits.test)) == (12, 4, 4)
    for name in ("train", "eval", "test"):
        assert Counter(ex.label for ex in getattr(splits, name)) == Counter(
            {"positive": len(getattr(splits, name)) // 2, "negative": len(getattr(splits, name)) // 2}), name
    by_id = {ex.id: ex for name in ("train", "eval", "test") for ex in getattr(splits, name)}
    assert by_id["sst2-0"].fields == {"sentence": "review 0 is fine"} and by_id["sst2-0"].label == "positive"
    assert by_id["sst2-1"].label == "negative"


def test_columns_by_name_with_bom_crlf_and_blank_lines(tmp_path: Path, sst2: Sst2Task) -> None:
    path = tmp_path / "dev.tsv"
    lines = ["idx\tlabel\tsentence"] + [f"{i}\t{i % 2}\treview {i} " for i in range(10)] + [""]
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines[:5] + [""] + lines[5:]).encode())
    splits = sst2.load_splits(path)
    examples = {ex.id: ex for name in ("train", "eval", "test") for ex in getattr(splits, name)}
    assert len(examples) == 10
    assert examples["sst2-3"].fields == {"sentence": "review 3"} and examples["sst2-3"].label == "positive"


@pytest.mark.parametrize("bad_row, message", [
    ("review\t2", "label '2' is not 0 (negative) or 1 (positive)"),
    ("review\tpositive", "label 'positive' is not 0 (negative) or 1 (positive)"),
    (" \t1", "empty sentence; remove the row or fill in its review text"),
    ("review\t1\textra", "3 tab-separated fields, the header has 2"),
    ("review", "1 tab-separated fields, the header has 2"),
])
def test_bad_rows_name_file_and_line(tmp_path: Path, sst2: Sst2Task, bad_row: str, message: str) -> None:
    path = write_tsv(tmp_path / "train.tsv", [*both_labels(5), bad_row])
    with pytest.raises(ValueError) as caught:
        sst2.load_splits(path)
    assert f"{path}:12: {message}" in str(caught.value), f"expected '{path}:12: {message}' in: {caught.value}"


@pytest.mark.parametrize("header, missing", [
    ("sentence", "['label']"),
    ("index\tsentence", "['label']"),  # GLUE's test.tsv
    ("text\tlabel", "['sentence']"),
])
def test_header_lacking_a_column_is_named(tmp_path: Path, sst2: Sst2Task, header: str, missing: str) -> None:
    path = write_tsv(tmp_path / "test.tsv", ["0\treview"], header=header)
    with pytest.raises(ValueError, match="expected the columns sentence<TAB>label") as caught:
        sst2.load_splits(path)
    assert f"{path}:1: header lacks {missing}" in str(caught.value), caught.value


def test_not_utf8_names_the_line(tmp_path: Path, sst2: Sst2Task) -> None:
    path = tmp_path / "latin1.tsv"
    path.write_bytes("sentence\tlabel\nfine\t1\nna\xefve\t0\n".encode("latin-1"))
    with pytest.raises(ValueError, match=f"{path}:3: not UTF-8 text .*; save it as UTF-8"):
        sst2.load_splits(path)


@pytest.mark.parametrize("make, message", [
    (lambda path: write_tsv(path, []), "no data rows under the header"),
    (lambda path: path, "cannot read the SST-2 TSV"),
])
def test_unusable_files_are_named(tmp_path: Path, sst2: Sst2Task, make, message: str) -> None:
    path = make(tmp_path / "data.tsv")
    with pytest.raises(ValueError, match=message) as caught:
        sst2.load_splits(path)
    assert str(path) in str(caught.value)


def test_too_few_rows_of_a_label_is_an_error_not_an_empty_split(tmp_path: Path, sst2: Sst2Task) -> None:
    rows = [row for row in both_labels(6) if row.endswith("1")] + ["bad\t0"] * 4
    path = write_tsv(tmp_path / "few.tsv", rows)
    with pytest.raises(ValueError, match=r"too few rows of \{'negative': 4\}.*add at least 5 rows per label") as caught:
        sst2.load_splits(path)
    assert str(path) in str(caught.value)
