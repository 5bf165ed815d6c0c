"""The card's `instruct:` block, which this kind registers (KindSpec.block)."""

from __future__ import annotations

from pydantic import Field

from loragate.card.settings import Strict


class InstructSettings(Strict):
    """Instruction tuning: the validation curve while training, and what a --data file contributes."""

    eval_every: int = Field(50, gt=0, description="optimizer steps between val loss (and perplexity) points")
    max_examples: int = Field(1000, gt=0, description="rows kept from a --data file (seeded shuffle)")
