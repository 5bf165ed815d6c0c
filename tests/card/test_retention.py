"""A card's `retention:` block (loragate.card.retention): a probe is told apart by its key, and a mistake in one names
its field."""

from __future__ import annotations

from pathlib import Path

import pytest

from loragate.card.overrides import OverrideError, apply_overrides
from loragate.card.retention import TaskProbe, TextProbe
from loragate.tasks import get_task


def with_retention(value: str):
    return apply_overrides(get_task("iris").card, (f"retention={value}",))


def test_probes_are_read_by_their_key() -> None:
    card = with_retention("[{task: sst2, metric: accuracy, max_drop: 0.05}, {text_file: data/general.txt, "
                          "max_rise: 0.1}]")
    assert card.retention == [TaskProbe(task="sst2", metric="accuracy", max_drop=0.05),
                              TextProbe(text_file=Path("data/general.txt"), max_rise=0.1)]
    assert [probe.label for probe in card.retention] == ["sst2", "data/general.txt"]
    assert get_task("iris").card.retention == [], "a card without the block has no probes"


@pytest.mark.parametrize(("value", "message"), [
    ("[{metric: accuracy}]", "field 'retention.0': a retention probe names another task ({task: NAME"),
    ("[{task: sst2, max_drop: 0.05}]", "field 'retention.0.task.metric': Field required"),
    ("[{task: sst2, metric: accuracy, max_drop: -0.1}]", "field 'retention.0.task.max_drop': Input should be greater"),
    ("[{text_file: a.txt, max_rise: 0}]", "field 'retention.0.text.max_rise': Input should be greater than 0"),
    ("[{text_file: a.txt, max_rise: 0.05, metric: accuracy}]", "field 'retention.0.text.metric': Extra inputs"),
])
def test_a_wrong_probe_names_its_field(value: str, message: str) -> None:
    with pytest.raises(OverrideError) as caught:
        with_retention(value)
    assert message in str(caught.value), str(caught.value)
