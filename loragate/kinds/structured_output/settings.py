"""The card's `structured:` block, which this kind registers (KindSpec.block)."""

from __future__ import annotations

from pydantic import Field

from loragate.card.settings import Strict


class StructuredSettings(Strict):
    """Structured output: the pydantic model the generated JSON must validate against."""

    output_schema: str = Field(
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="module:Class of a pydantic model; the module is looked up beside the card first (module.py "
        "or package/module.py), then imported from the project",
    )
