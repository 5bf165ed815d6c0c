"""Shared, session-scoped offline models for the unit tests: built once into a temp dir, never from the hub.

torch, transformers and the modules that load them are imported inside the fixtures, on first use: a run of the
folders that need no model (tests/project, tests/gates, ...) never pays for importing them."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from loragate.card.overrides import apply_overrides
from loragate.data.examples import Splits
from loragate.tasks import get_task
from loragate.tasks.iris import IrisTask

if TYPE_CHECKING:
    from loragate.models.bases import LoadedBase


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """The tiny model gains nothing from a second thread, and an OpenMP team of 2 on a 2-core machine that
    another process is using runs up to 100x slower. Restored after, so nothing outside tests/ is affected."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """One thread for every test once torch is loaded. Under `pytest tests` it is loaded by collection already (the
    modules that use it import it); where no collected module did, the test runs as it would without the fixture."""
    if "torch" not in sys.modules:
        yield
        return
    with one_torch_thread():
        yield


@pytest.fixture(scope="session")
def iris() -> IrisTask:
    """The Iris task with the tiny tier's max_length as a number (64, room for every shipped example), as the
    library's tests that train straight from the card need; the card says `auto`, which a run resolves."""
    task = get_task("iris")
    task.card = apply_overrides(task.card, ("tiers.tiny.train.max_length=64",))
    return task


@pytest.fixture(scope="session")
def iris_splits(iris: IrisTask) -> Splits:
    return iris.load_splits()


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory, iris: IrisTask, iris_splits: Splits) -> Path:
    """The iris card's tiny base (save_pretrained layout), built offline once per session."""
    from loragate.models.bases import tiny_base_dir

    cache = tmp_path_factory.mktemp("cache")
    return tiny_base_dir(cache, "iris", iris.card.tier("tiny").tiny_base, iris_splits.texts())


@pytest.fixture
def fresh_base(tiny_dir: Path) -> LoadedBase:
    """A newly loaded, unwrapped base: attach_lora wraps in place, so tests that adapt one get their own."""
    import torch

    from loragate.models.bases import load_causal

    return load_causal(str(tiny_dir), "cpu", torch.float32)


@pytest.fixture(scope="session")
def tuned(tiny_dir: Path, iris: IrisTask, iris_splits: Splits):
    """(base, peft model) trained with the card's tiny settings but 4 epochs, enough to answer all three species
    (~0.5 s on an idle 2-core machine); tests must not modify it."""
    import torch

    from loragate.models.bases import load_causal
    from loragate.training.lora import attach_lora, train_lora

    base = load_causal(str(tiny_dir), "cpu", torch.float32)
    settings = iris.card.tier("tiny")
    model = attach_lora(base.model, settings.lora, settings.train.seed)
    with one_torch_thread():  # session fixtures are set up before the autouse one
        train_lora(model, base.tokenizer, iris_splits.train, iris_splits.eval,
                   settings.train.model_copy(update={"epochs": 4}), progress=False)
    return base, model


pytest_plugins = ["pytester"]  # tests/plugin runs pytest in subprocesses, as a user would


@pytest.fixture
def gate_dir(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A user's directory: its own ini (so rootdir is here), and plugin autoload left on (the plugin loads by its
    entry point, as in a project that installs loragate)."""
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    pytester.makeini("[pytest]\n")
    return pytester
