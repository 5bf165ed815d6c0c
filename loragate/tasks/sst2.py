"""SST-2-style sentiment, generative: a short movie review in, `positive` or `negative` out.

The shipped data is generated here, seeded, from phrase templates; no text comes from the real SST-2. Every
adjective appears under both labels: negation ("not bad", "far from clever") flips a predicate, and in a
contrast ("good but slow", "dull at first, yet truly moving", "although ..., ...") the last clause decides.
So a model that reads words and ignores negation or contrast lands near chance, and the card's per-class floor
fails it. `--data PATH` reads GLUE's SST-2 TSV instead (header `sentence<TAB>label`, 0 negative, 1 positive).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from loragate.card.settings import TaskCard
from loragate.card.templates import fill
from loragate.data.examples import Example, Splits, stratified_split
from loragate.data.hf_dataset import missing_columns
from loragate.data.parsing import ParsedOutput, parse_label
from loragate.tasks import CARDS_DIR, TASKS

# Few enough words for the tiny tier to learn with LoRA from 240 reviews (with 20 adjectives it stayed near chance)
SUBJECTS = ("the film", "this sequel", "the cast", "the script", "the plot", "the ending")
POSITIVE = ("good", "great", "funny", "moving", "clever", "charming", "gripping", "fresh")
NEGATIVE = ("bad", "dull", "boring", "slow", "flat", "silly", "clumsy", "tedious")
INTENSIFIERS = ("", "very ", "really ", "truly ")
NEGATORS = ("not", "hardly", "far from")
# {s}: a subject, {p}: a predicate; the last {p} decides the label and every earlier one has the other polarity
TEMPLATES = (
    "{s1} is {p1}",
    "{s1} is {p0} but {p1}",
    "{s1} is {p0} at first, yet {p1}",
    "{s0} is {p0}, but {s1} is {p1}",
    "although {s0} is {p0}, {s1} is {p1}",
)
GLUE_LABELS = {"0": "negative", "1": "positive"}
PER_LABEL = 200  # 400 generated reviews -> 240 train / 80 eval / 80 test (40 per label in test)
GENERATOR_SEED = 0
TEST_FRACTION = 0.2
EVAL_FRACTION_OF_REST = 0.25
SPLIT_SEED = 0
MIN_PER_LABEL = 5  # so the 60/20/20 stratified split puts each label in train, eval and test


class SentimentAnswer(BaseModel):
    sentiment: Literal["positive", "negative"]


def predicate(rng: random.Random, label: str) -> str:
    """A predicate of polarity `label`: half plain ("truly moving"), half a negated opposite ("not bad")."""
    if rng.random() < 0.5:
        return rng.choice(INTENSIFIERS) + rng.choice(POSITIVE if label == "positive" else NEGATIVE)
    return f"{rng.choice(NEGATORS)} {rng.choice(NEGATIVE if label == 'positive' else POSITIVE)}"


def generate_rows(per_label: int = PER_LABEL, seed: int = GENERATOR_SEED) -> list[tuple[str, str, str]]:
    """`per_label` unique reviews of each label as (id, sentence, label), alternating labels: seeded, so the
    same arguments give the same rows."""
    rng = random.Random(seed)
    seen: set[str] = set()
    rows: list[tuple[str, str, str]] = []
    for index in range(2 * per_label):
        label = ("positive", "negative")[index % 2]
        other = "negative" if label == "positive" else "positive"
        while True:  # ~10^5 reviews per label are possible, so a repeat is rare
            s0, s1 = rng.sample(SUBJECTS, 2)
            sentence = rng.choice(TEMPLATES).format(s0=s0, s1=s1, p0=predicate(rng, other), p1=predicate(rng, label))
            if sentence not in seen:
                break
        seen.add(sentence)
        rows.append((f"sst2-{index}", sentence, label))
    return rows


def read_tsv(path: Path) -> list[tuple[str, str, str]]:
    """Rows of a GLUE SST-2 TSV (header `sentence<TAB>label`, labels 0/1) as (id, sentence, label)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the SST-2 TSV: {exc.strerror}") from exc
    try:
        text = raw.decode("utf-8-sig")  # -sig: a BOM is not part of the header
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from exc
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    header = lines[0].split("\t")
    missing = [name for name in ("sentence", "label") if name not in header]
    if missing:
        raise ValueError(f"{path}:1: header lacks {missing}; expected the columns sentence<TAB>label as in GLUE's "
                         f"SST-2 train.tsv or dev.tsv (GLUE's test.tsv has no labels)")
    column, label_column = header.index("sentence"), header.index("label")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != len(header):
            raise ValueError(f"{path}:{number}: {len(cells)} tab-separated fields, the header has {len(header)}; "
                             f"a sentence may not contain a tab")
        sentence, label = cells[column].strip(), cells[label_column].strip()
        if label not in GLUE_LABELS:
            raise ValueError(f"{path}:{number}: label {label!r} is not 0 (negative) or 1 (positive)")
        if not sentence:
            raise ValueError(f"{path}:{number}: empty sentence; remove the row or fill in its review text")
        rows.append((f"sst2-{len(rows)}", sentence, GLUE_LABELS[label]))
    if not rows:
        raise ValueError(f"{path}: no data rows under the header; the SST-2 TSV needs rows of both labels")
    return rows


class Sst2Task:
    """The generative variant: the tiny causal base writes the label."""

    card_file = "sst2.yaml"

    def __init__(self) -> None:
        self.card = TaskCard.from_yaml(CARDS_DIR / self.card_file)

    hub_suffix = ".tsv"

    def write_hub_rows(self, rows: Iterable[dict], columns: list[str], source: str, out: Path) -> None:
        """The hub's layout (stanfordnlp/sst2, as GLUE): `sentence`, `label` 0 negative / 1 positive."""
        missing_columns(columns, ("sentence", "label"), source, "sst2", "sentence text, label 0/1 as in GLUE")
        with out.open("w", encoding="utf-8") as handle:
            handle.write("sentence\tlabel\n")
            for row in rows:
                handle.write(f"{' '.join(str(row['sentence']).split())}\t{row['label']}\n")  # a tab would split it

    def load_splits(self, data: Path | None = None) -> Splits:
        """Stratified 60/20/20 (240/80/80 on the generated data, 40 per label in test)."""
        rows = read_tsv(data) if data else generate_rows()
        train, eval_, test = stratified_split(rows, [row[2] for row in rows], self.card.labels, TEST_FRACTION,
                                              EVAL_FRACTION_OF_REST, SPLIT_SEED, MIN_PER_LABEL, data)
        build = lambda part: [self.example(*row) for row in part]  # noqa: E731
        return Splits(train=build(train), eval=build(eval_), test=build(test))

    def example(self, row_id: str, sentence: str, label: str) -> Example:
        return Example(
            id=row_id,
            prompt=fill(self.card.prompt_template, {"sentence": sentence}, "prompt_template"),
            target=fill(self.card.target_template, {"label": label}, "target_template"),
            label=label,
            fields={"sentence": sentence},
        )

    def parse(self, text: str) -> ParsedOutput:
        return parse_label(text, self.card.labels, SentimentAnswer, "sentiment")

    def ceiling(self, test: list[Example]) -> None:
        """Not knowable: whether a review's label follows from its text is a judgement, not a count."""
        return None


class Sst2EncoderTask(Sst2Task):
    """The sequence-classification variant: the same data and loader, MiniLM with a trained head."""

    card_file = "sst2_encoder.yaml"


TASKS.register("sst2", Sst2Task)
TASKS.register("sst2_encoder", Sst2EncoderTask)
