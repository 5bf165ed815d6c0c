"""A card-only task's `data` block: which files hold its rows, how they are read and how they are cut."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, StrictBool, model_validator

from loragate.card.strict import Strict

DataFormat = Literal["jsonl", "csv", "tsv", "json", "hf"]


class SplitFractions(Strict):
    """How a card's data file is cut: shares of all its rows (a test file the card names is never cut)."""

    test: float | None = Field(
        None, gt=0, lt=1, description="share of the file's rows for test; only with data.file (a named test file is "
        "used as it is)"
    )
    eval: float = Field(0.2, gt=0, lt=1, description="share of the rows for eval (of data.file, or of data.train)")
    seed: int = Field(0, description="same seed, same cut")


class DataSettings(Strict):
    """A card-only task's data: one file cut by `split`, or train and test files (and eval, else cut from train).
    Paths are relative to the card file; a directory is a Hugging Face dataset saved with `save_to_disk`."""

    file: str | None = Field(None, description="one file holding every row, cut into train/eval/test by `split`")
    train: str | None = None
    eval: str | None = Field(None, description="optional: without it, split.eval of the train rows become eval")
    test: str | None = Field(None, description="used as it is, never re-split")
    split: SplitFractions | None = None
    format: DataFormat | None = Field(
        None, description="jsonl, csv, tsv, json (a list of objects) or hf; default: told by each path's suffix, a "
        "directory is hf"
    )
    columns: dict[str, str] = Field(
        default_factory=dict, description="card field -> the file's column holding it (e.g. label: category)"
    )
    header: StrictBool = Field(True, description="CSV/TSV: the first row names the columns; false: every row is data "
                               "and `names` names the columns")
    names: list[str] | None = Field(None, description="with header: false, each column's name, in the file's order")
    id: str | Literal[False] | None = Field(
        None, description="the file's column whose value names each row in reports and errors (unique within a file); "
        "default: a column named `id` where the file has one, else the file's name and the row's line; false: the "
        "file's name and the row's line always")

    @model_validator(mode="after")
    def names_without_header(self) -> DataSettings:
        if self.header and self.names is not None:
            raise ValueError("data.names names the columns of a file without a header row: add data.header: false, "
                             "or rename a header's columns with data.columns")
        if not self.header and not self.names:
            raise ValueError("data.header: false needs the columns' names: add data.names: [label, title, ...], one "
                             "per column, in the file's order")
        repeated = sorted({name for name in self.names or [] if self.names.count(name) > 1})
        if repeated:
            raise ValueError(f"data.names repeats {repeated}: give each column its own name")
        return self

    @model_validator(mode="after")
    def one_layout(self) -> DataSettings:
        named = [name for name in ("train", "eval", "test") if getattr(self, name) is not None]
        if self.file is not None:
            if named:
                raise ValueError(f"data names both 'file' and {named}: give one file to cut (file + split) or the "
                                 f"split files (train, test, optionally eval), not both")
            if self.split is None or self.split.test is None:
                raise ValueError("data.file needs the shares to cut it: add split: {test: 0.2, eval: 0.2, seed: 0}")
            if self.split.test + self.split.eval >= 1:
                raise ValueError(f"data.split: test {self.split.test} + eval {self.split.eval} leave no rows for "
                                 f"train; make their sum less than 1")
            return self
        if self.train is None or self.test is None:
            raise ValueError("data needs either 'file' (with split: {test: 0.2, eval: 0.2}) or both 'train' and "
                             "'test' (eval optional)")
        if self.split is not None and self.split.test is not None:
            raise ValueError("data.split.test: the test file data.test is used as it is, never re-split; remove "
                             "split.test")
        if self.eval is not None and self.split is not None:
            raise ValueError("data.split: every split is a named file, so nothing is cut; remove split")
        return self
