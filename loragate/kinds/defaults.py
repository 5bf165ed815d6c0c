"""What a kind does where it has nothing of its own to add: the splits as they are, no extra gates, nothing extra
in the manifest, any adapter accepted, and no card-only tasks. Causal and encoder kinds start from here."""

from __future__ import annotations

from pathlib import Path

from loragate.card.settings import CardError, GateSettings, TaskCard
from loragate.data.examples import Example, Splits
from loragate.data.parsing import ParsedOutput
from loragate.data.task import Task
from loragate.gates.checks import Check
from loragate.models.bases import LoadedBase


class KindDefaults:
    def for_base(self, task: Task, splits: Splits, base: LoadedBase) -> Splits:
        return splits

    def checks(self, gates: GateSettings) -> list[Check]:
        return []

    def manifest_facts(self, base: LoadedBase) -> dict:
        return {}

    def check_adapter(self, task: Task, base: LoadedBase, adapter_dir: Path) -> None:
        return None

    def card_example(self, card: TaskCard, row_id: str, row: dict[str, object], source: str) -> Example:
        raise card_only(card)

    def card_parse(self, card: TaskCard, text: str) -> ParsedOutput:
        raise card_only(card)


def card_only(card: TaskCard) -> CardError:
    """The error of a kind without card hooks: its tasks need a module."""
    return CardError(f"task {card.name!r}: kind {card.kind} cannot be defined by a card alone (its data block): "
                     f"write a task module that loads its splits and parses its outputs (docs/tasks.md, "
                     f"\"Adding a task\"), and drop the card's data block")
