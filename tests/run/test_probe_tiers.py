"""check_probes at start-up asks of a probe task only the tiers the gated card runs (loragate.run.probes)."""

from __future__ import annotations

import pytest

from loragate.card.overrides import apply_overrides
from loragate.run.probes import check_probes
from loragate.tasks import TASKS, get_task


def tiny_only(name: str):
    task = get_task(name)
    task.card = task.card.model_copy(update={"tiers": {"tiny": task.card.tiers["tiny"]}})
    return task


def test_a_tier_the_gated_card_lacks_is_not_asked_of_its_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """With --gpu the plugin checks every tier; a card with the tiny tier alone, probing a task with the tiny tier
    alone, was refused for the probe's missing tiers.full, a tier that never runs."""
    probe = tiny_only("sst2")
    monkeypatch.setitem(TASKS._entries, "sst2_tiny", lambda: probe)
    card = apply_overrides(tiny_only("iris").card, ("retention=[{task: sst2_tiny, metric: accuracy, max_drop: 0.05}]",))
    check_probes(card, ["tiny", "full"])  # no CardError
    with pytest.raises(ValueError, match="sst2_tiny's card has no tiers.full"):
        check_probes(apply_overrides(get_task("iris").card, (
            "retention=[{task: sst2_tiny, metric: accuracy, max_drop: 0.05}]",)), ["tiny", "full"])
