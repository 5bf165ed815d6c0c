"""What a kind does where it has nothing of its own to add: the splits as they are, no extra gates, nothing extra
in the manifest, any adapter accepted. Causal and encoder kinds start from here."""

from __future__ import annotations

from pathlib import Path

from loragate.card import GateSettings
from loragate.data import Splits
from loragate.gates import Check
from loragate.models import LoadedBase
from loragate.tasks import Task


class KindDefaults:
    def for_base(self, task: Task, splits: Splits, base: LoadedBase) -> Splits:
        return splits

    def checks(self, gates: GateSettings) -> list[Check]:
        return []

    def manifest_facts(self, base: LoadedBase) -> dict:
        return {}

    def check_adapter(self, task: Task, base: LoadedBase, adapter_dir: Path) -> None:
        return None
