"""The card's `qa:` block, which this kind registers (KindSpec.block)."""

from __future__ import annotations

from pydantic import Field

from loragate.card.settings import Strict


class QASettings(Strict):
    """Extractive QA: how long contexts are windowed, and how long an answer may be."""

    max_length: int = Field(256, gt=16, description="question + context window, in tokens")
    stride: int = Field(64, ge=0, description="tokens shared by consecutive windows of a long context")
    max_answer_tokens: int = Field(30, gt=0, description="longest span considered as an answer")
