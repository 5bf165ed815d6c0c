"""Issue 34, point 1: a card's sweep trained (loragate.run.sweep). Each variant's adapter is stored under its own key
and reused by the next run; the base is left bare after each, for the encoder's head too."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from loragate.card.options import RunOptions
from loragate.models.bases import fingerprint
from loragate.models.parameters import expected_lora_parameters
from loragate.progress import Progress, reporting
from loragate.run.steps import load_task
from loragate.run.sweep import sweep_adapters
from loragate.run.task_run import load_inputs

SWEEP = "candidates={variants: [{name: r2, set: {lora.r: 2}}, {name: r4, set: {lora.r: 4}}]}"


class Lines:
    """A terminal that keeps the lines a run writes."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def line(self, text: str) -> None:
        self.lines.append(text)

    def width(self) -> int:
        return 200


def wrapped(model) -> list[str]:
    """What of peft is left on a model: its LoRA layers and modules_to_save copies."""
    return [name for name, _ in model.named_modules() if "lora_" in name or "modules_to_save" in name
            or name.endswith("original_module")]


@pytest.mark.slow
def test_a_sweep_trains_each_variant_once_under_its_own_key_and_leaves_the_base_bare(tmp_path: Path) -> None:
    options = RunOptions(store_root=tmp_path / "adapters", cache=tmp_path / "cache", progress=False,
                         overrides=("tiers.tiny.train.epochs=2", SWEEP))
    task = load_task("iris", options)
    splits, base, inputs = load_inputs(task, "tiny", options)
    loaded = fingerprint(base.model)
    terminal = Lines()
    with reporting(Progress(terminal, "lines")):
        first = sweep_adapters(task, "tiny", base, splits, options, inputs)

    assert [adapter.name for adapter in first] == ["r2", "r4"]
    assert all(adapter.trained is not None for adapter in first), "a variant was not trained"
    assert [adapter.manifest.lora["r"] for adapter in first] == [2, 4]
    assert first[0].directory != first[1].directory, "two variants were stored under one key"
    assert sorted(path.name for path in (tmp_path / "adapters" / "iris" / "tiny").iterdir()
                  if not path.name.startswith(".")) == sorted(adapter.directory.name for adapter in first)
    targets = task.card.tier("tiny").lora.target_modules
    assert [adapter.expected_parameters for adapter in first] == \
        [expected_lora_parameters(base.model, r, targets) for r in (2, 4)]
    assert fingerprint(base.model) == base.fingerprint == loaded, "the sweep left the base's weights changed"
    assert wrapped(base.model) == [] and not hasattr(base.model, "peft_config"), wrapped(base.model)[:3]
    assert [line.split(" in ")[0] for line in terminal.lines if "candidate" in line] == \
        ["candidate r2 (1/2) ready", "candidate r4 (2/2) ready"], terminal.lines

    again = sweep_adapters(task, "tiny", base, splits, options, inputs)
    assert [adapter.trained for adapter in again] == [None, None], "a re-run trained a stored variant again"
    assert [adapter.directory for adapter in again] == [adapter.directory for adapter in first]
    assert fingerprint(base.model) == loaded and wrapped(base.model) == []

    retrained = sweep_adapters(task, "tiny", base, splits, replace(options, retrain=True), inputs)
    assert all(adapter.trained is not None for adapter in retrained), "--retrain reused a stored variant"


@pytest.mark.slow
def test_an_encoder_variant_leaves_the_base_and_its_own_head_unwrapped(tmp_path: Path) -> None:
    """peft's unload() leaves the trained copy of a modules_to_save head in the base's place: the next candidate
    would wrap a base whose head is another candidate's."""
    options = RunOptions(store_root=tmp_path / "adapters", cache=tmp_path / "cache", progress=False,
                         overrides=("tiers.tiny.train.epochs=1",
                                    "candidates={variants: [{name: r2, set: {lora.r: 2}}]}"))
    task = load_task("sst2_encoder", options)
    splits, base, inputs = load_inputs(task, "tiny", options)
    head = {name: tensor.clone() for name, tensor in base.model.classifier.state_dict().items()}
    [adapter] = sweep_adapters(task, "tiny", base, splits, options, inputs)
    assert adapter.trained is not None and adapter.manifest.lora["modules_to_save"] == ["classifier"]
    assert wrapped(base.model) == [], wrapped(base.model)[:3]
    assert all(tensor.equal(head[name]) for name, tensor in base.model.classifier.state_dict().items()), \
        "the base's head is the trained one"
    assert fingerprint(base.model) == base.fingerprint
