"""The card's `structured:` block, which this kind registers (KindSpec.block)."""

from __future__ import annotations

from pydantic import Field

from loragate.card.settings import Strict


class StructuredSettings(Strict):
    """Structured output: the pydantic model the generated JSON must validate against, and which of its list fields
    compare in any order."""

    output_schema: str = Field(
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="module:Class of a pydantic model; the module is looked up beside the card first (module.py "
        "or package/module.py), then imported from the project",
    )
    unordered_fields: list[str] = Field(
        default_factory=list,
        description="list fields, by path (tags, location.codes, items[].tags), whose items compare in any order "
        "(as multisets) for exact match and F1; every other list compares in order, as the schema's list is "
        "ordered, and a set[...] or frozenset[...] field in any order. Checked against the schema at start-up",
    )
