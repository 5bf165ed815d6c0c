"""A card's sweep (`candidates.variants`, loragate.card.candidates) trained: each variant's card gets its adapter as any
card does (loragate.run.adapter.prepare_adapter: the store's entry for its own key, else trained and stored under the
store's lock; --retrain trains again), which is then taken off the base. The base is left as it was loaded, for the
next variant and for the run that gates the candidates together (loragate.run.candidates) on that one base.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path

from loragate.card.candidates import variant_card
from loragate.card.options import RunOptions
from loragate.card.settings import Tier
from loragate.data.examples import Splits
from loragate.data.task import Task
from loragate.data.truncation import InputFit
from loragate.models.bases import LoadedBase
from loragate.progress import reporter
from loragate.run.adapter import bare_base, expected_lora_count, prepare_adapter
from loragate.store.adapters import Manifest
from loragate.training.lora import TrainResult


@dataclass(frozen=True)
class SweptAdapter:
    """One variant's adapter, in the store and off the base."""

    name: str  # the variant's
    directory: Path  # the store's entry
    manifest: Manifest | None  # the entry's (a store entry always has one)
    trained: TrainResult | None  # None where the store had it
    expected_parameters: int  # the LoRA parameters its r and target modules imply, counted on the bare base


def sweep_adapters(task: Task, tier: Tier, base: LoadedBase, splits: Splits, options: RunOptions,
                   inputs: InputFit | None) -> list[SweptAdapter]:
    """Each variant of `task`'s card at `tier`, in the card's order, stored and off `base` (left bit-identical,
    checked). `splits` and `inputs` are the run's, fitted to the card's max_length, which no variant changes.
    --adapter plays no part: the sweep trains from the card (the run gates given adapters beside it)."""
    variants = task.card.candidates.variants if task.card.candidates is not None else []
    own = replace(options, adapter=None)
    swept = []
    for number, variant in enumerate(variants, 1):
        candidate = copy.copy(task)  # the task's data and parser, the variant's card
        candidate.card = variant_card(task.card, tier, variant)
        expected = expected_lora_count(candidate, tier, own, base.model)
        counted = f"{variant.name} ({number}/{len(variants)})"
        with reporter().phase(f"train candidate {counted}", f"candidate {counted} ready"):
            model, directory, manifest, trained = prepare_adapter(candidate, tier, base, splits, own, inputs)
        base.model = bare_base(model, base, f"candidate {variant.name}")
        swept.append(SweptAdapter(variant.name, directory, manifest, trained, expected))
    return swept
