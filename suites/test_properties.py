"""Properties that hold for any input, for every gated task: parsing never raises and accepts exactly the label
set, prompts are a pure function of the data. A built-in task's own properties (Iris's binning) are the library's
tests (tests/tasks/), not the gate's: they run only where the task is developed, not in every project.

Each test reads the task as the gate runs it, with the run's --set overrides (GateSession.task, read once per task,
not once per generated input), never the card on disk."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loragate.kinds import KINDS
from loragate.plugin.session import GateSession

pytestmark = pytest.mark.smoke


@settings(max_examples=300)
@given(text=st.text())
def test_parser_never_raises_and_accepts_exactly_the_labels(task_name: str, gate_session: GateSession,
                                                             text: str) -> None:
    task = gate_session.task(task_name)
    parsed = task.parse(text)
    if KINDS.get(task.card.kind).labels:
        assert parsed.valid == (text.strip() in task.card.labels), (text, parsed)
    assert parsed.valid or parsed.reason


@given(label_index=st.integers(0, 2), padding=st.sampled_from(["", " ", "\n", "\t ", "  \n"]))
def test_parser_accepts_every_label_with_surrounding_whitespace(task_name: str, gate_session: GateSession,
                                                                label_index: int, padding: str) -> None:
    task = gate_session.task(task_name)
    if not KINDS.get(task.card.kind).labels:
        pytest.skip(f"{task_name}: {task.card.kind} has no labels")
    label = task.card.labels[label_index % len(task.card.labels)]
    assert task.parse(padding + label + padding).valid


def test_prompts_are_deterministic(task_name: str, gate_session: GateSession) -> None:
    task = gate_session.task(task_name)
    first, second = task.load_splits(), task.load_splits()
    assert first.data_hash() == second.data_hash()
    assert [ex.prompt for ex in first.test] == [ex.prompt for ex in second.test]
