"""The registry's did-you-mean, and a second entry of one name naming both files."""

from __future__ import annotations

import pytest

from loragate.registry import Registry
from loragate.tasks import CARDS_DIR


def test_registry_suggests_close_names_and_lists_all() -> None:
    registry: Registry[int] = Registry("metric")
    for name in ("accuracy", "macro_f1", "weighted_f1"):
        registry.register(name, 1)
    with pytest.raises(KeyError) as caught:
        registry.get("acuracy")
    message = caught.value.args[0]
    assert "Unknown metric 'acuracy'" in message, message
    assert "Did you mean 'accuracy'?" in message, message
    assert "Available: accuracy, macro_f1, weighted_f1" in message, message
    assert "Did you mean" not in registry.unknown_message("zzzzzz"), "no hint expected for a name close to nothing"


def test_registry_refuses_a_second_entry_of_the_same_name_naming_both_files() -> None:
    from loragate.tasks.iris import IrisTask
    from loragate.tasks.sst2 import Sst2Task

    registry: Registry[type] = Registry("task")
    registry.register("iris", IrisTask)
    with pytest.raises(ValueError) as raised:
        registry.register("iris", Sst2Task)
    message = str(raised.value)
    assert message.startswith("task 'iris' is registered twice: by ") and message.endswith("; rename one of them")
    assert str(CARDS_DIR / "iris.py") in message and str(CARDS_DIR / "sst2.py") in message, message
    assert registry.get("iris") is IrisTask, "the first registration must be kept"
