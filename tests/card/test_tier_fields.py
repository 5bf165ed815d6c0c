"""Issue 32, point 7: the tier fields (`tiny_base`, `lora`, `train`, `eval`, `pooling`, `base_model`) were only in the
cards and a table elsewhere; docs/tasks.md now has one table per block, and this test fails when a field of a block's
pydantic model has no row there, or a row names no field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from loragate.card.settings import EvalSettings, LoraSettings, TierSettings, TinyBase, TrainSettings

DOC = Path(__file__).resolve().parents[2] / "docs" / "tasks.md"
BLOCKS = {"tiers.<tier>": TierSettings, "tiny_base": TinyBase, "lora": LoraSettings, "train": TrainSettings,
          "eval": EvalSettings}


def documented(doc: str, block: str) -> list[str]:
    """The fields in the first column of the table under `### \\`block\\`` in the tier-fields section."""
    section = re.search(r"^## Tier fields.*?(?=^## )", doc, re.M | re.S)
    assert section, "docs/tasks.md has no '## Tier fields' section"
    under = re.search(rf"^### `{re.escape(block)}`\n(.*?)(?=^#)", section.group(0), re.M | re.S)
    assert under, f"docs/tasks.md's tier-fields section has no '### `{block}`' table"
    return re.findall(r"^\| `([a-z_]+)` \|", under.group(1), re.M)


@pytest.mark.parametrize("block", list(BLOCKS))
def test_every_tier_field_has_a_row_in_docs_tasks(block: str) -> None:
    model: type[BaseModel] = BLOCKS[block]
    rows = documented(DOC.read_text(), block)
    assert not set(model.model_fields) - set(rows), f"{model.__name__} fields missing from docs/tasks.md's " \
        f"`{block}` table: {sorted(set(model.model_fields) - set(rows))}"
    assert not set(rows) - set(model.model_fields), f"docs/tasks.md's `{block}` table names fields " \
        f"{model.__name__} does not have: {sorted(set(rows) - set(model.model_fields))}"

