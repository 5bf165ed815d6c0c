"""A task that is one YAML card: its `data:` block names the files (loragate.data.card_files reads them) and its kind
turns each row into an Example and parses each output (`Kind.card_example`, `Kind.card_parse`). No Python of the
user's.

A tasks directory registers one per card with a `data:` block (loragate.plugin.discovery). `--data PATH` replaces the
card's files with one file (or a Hugging Face dataset), cut by the card's `split` fractions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from loragate.card.settings import CardError, TaskCard
from loragate.data.card_files import card_splits, data_splits, template_fields
from loragate.data.examples import Example, Splits
from loragate.data.hf_dataset import missing_columns
from loragate.data.parsing import ParsedOutput
from loragate.kinds import KINDS, Kind, kind_of


class CardTask:
    """The Task protocol (loragate.tasks.Task) for a card with a `data:` block."""

    hub_suffix = ".jsonl"

    def __init__(self, card_path: Path) -> None:
        self.card_path = card_path
        self.card = TaskCard.from_yaml(card_path)
        if self.card.data is None:
            raise CardError(f"{card_path}: no data block; a card-only task names its data (data: {{train: ..., test: "
                            f"...}} or data: {{file: ..., split: {{test: 0.2, eval: 0.2}}}}), see docs/tasks.md")

    def kind(self) -> Kind:
        return kind_of(self.card.kind)

    def example(self, row_id: str, row: dict[str, object], source: str) -> Example:
        return self.kind().card_example(self.card, row_id, row, source)

    def load_splits(self, data: Path | None = None) -> Splits:
        """The card's data files, or `data` (one file, cut by the card's split fractions); the splits the start-up
        check read (`check_splits`) where they are the same, once."""
        key = self.loaded_key(data) if CHECKED else None  # the files are hashed only while checked splits wait
        if key in CHECKED:
            return CHECKED.pop(key)
        stratify = KINDS.get(self.card.kind).labels
        if data is not None:
            return data_splits(data, self.card, self.example, stratify)
        return card_splits(self.card, self.card_path.parent, self.example, stratify)

    def check_splits(self, data: Path | None = None) -> None:
        """Read and check the splits now, before any model loads (the plugin's start-up check), and keep them for
        this card's next `load_splits` of the same files and content: a large file is not read twice."""
        key = self.loaded_key(data)
        CHECKED.pop(key, None)
        CHECKED[key] = self.load_splits(data)

    def loaded_key(self, data: Path | None) -> tuple[str, str, str]:
        """What decides the splits: the card (as --set left it), its file, and the content of the files it reads."""
        assert self.card.data is not None  # __init__ checks it
        settings = self.card.data
        names = (settings.file, settings.train, settings.eval, settings.test)
        paths = [Path(data)] if data is not None else [self.card_path.parent / name for name in names if name]
        return self.card.model_dump_json(), str(self.card_path.resolve()), content_digest(paths)

    def write_hub_rows(self, rows: Iterable[dict], columns: list[str], source: str, out: Path) -> None:
        """A Hugging Face dataset's rows as JSONL, as they are; the card's column mapping applies when it is read."""
        assert self.card.data is not None
        read = template_fields(self.card.prompt_template) + template_fields(self.card.target_template)
        missing_columns(columns, [self.card.data.columns.get(name, name) for name in dict.fromkeys(read)], source,
                        self.card.name, "the fields the card's templates read, after data.columns")
        with out.open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")

    def parse(self, text: str) -> ParsedOutput:
        return self.kind().card_parse(self.card, text)

    def ceiling(self, test: list[Example]) -> None:
        """Not knowable from a card: whether an input decides its answer is the data's secret."""
        return None


CHECKED: dict[tuple[str, str, str], Splits] = {}  # splits read by the start-up check, until the run reads them


def content_digest(paths: list[Path]) -> str:
    """sha256 over each path and its bytes (a directory: each file under it, in order); a missing path counts as
    empty (reading it is the error's place)."""
    digest = hashlib.sha256()
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            digest.update(str(file).encode() + b"\0")
            if file.is_file():
                with file.open("rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
    return digest.hexdigest()


class CardTaskEntry:
    """What the task registry holds for a card-only task: `get_task` calls it for a fresh CardTask, and a name
    registered twice names its card file (its repr)."""

    def __init__(self, card_path: Path) -> None:
        self.card_path = card_path

    def __call__(self) -> CardTask:
        return CardTask(self.card_path)

    def __repr__(self) -> str:
        return str(self.card_path)
