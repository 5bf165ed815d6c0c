"""Session fixtures of the speed benchmarks: the Iris card's tiny base with a tokenizer trained on the
benchmark's text, built offline into a temp dir, and a briefly tuned LoRA on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from benchmarks.workloads import Data, build_base, load_data, tuned_model
from loragate.models.bases import LoadedBase


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Timings on a shared 2-core machine: an OpenMP team of 2 next to another process runs far slower than
    one thread. Restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def data() -> Data:
    return load_data(train_variants=1)


@pytest.fixture(scope="session")
def bench(tmp_path_factory: pytest.TempPathFactory, data: Data) -> tuple[LoadedBase, torch.nn.Module, dict]:
    """(base, tuned peft model, the LoRA weights it started from)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # session fixtures are set up before the autouse one
    try:
        base = build_base("tiny", data, "cpu", torch.float32, tmp_path_factory.mktemp("cache"))
        model, init = tuned_model(base, data)
    finally:
        torch.set_num_threads(threads)
    return base, model, init
