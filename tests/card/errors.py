"""The card tests' one way to read a card that must be refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from loragate.card.settings import CardError, TaskCard


def card_error(path: Path) -> str:
    """The CardError message of reading the card at `path` (the test fails if it reads)."""
    with pytest.raises(CardError) as raised:
        TaskCard.from_yaml(path)
    return str(raised.value)
