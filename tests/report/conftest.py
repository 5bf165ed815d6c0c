"""The runs the report tests render, made once per session: two_runs trains the tiny Iris adapter twice with one
seed, hostile_run gives it a tuned output that is markup, instruct_run gates the committed instruct adapter."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from loragate.card.options import RunOptions
from loragate.gates.checks import run_gates
from loragate.kinds import card_checks
from loragate.run.steps import score
from loragate.run.task_run import TaskRun, run_task

MALICIOUS = "<script>alert(1)</script>"


@pytest.fixture(scope="session")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[TaskRun, TaskRun]:
    """The tiny Iris adapter trained twice, same seed, into two fresh stores (about 2 s each)."""
    tmp = tmp_path_factory.mktemp("determinism")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures start before the autouse one-thread fixture
    try:
        return tuple(run_task("iris", "tiny", RunOptions(store_root=tmp / name / "adapters", cache=tmp / "cache",
                                                         retrain=True, progress=False))
                     for name in ("first", "second"))
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def hostile_run(two_runs) -> TaskRun:
    """The first run with one tuned output replaced by markup: it does not parse, so validity fails."""
    run = two_runs[0]
    outputs = [MALICIOUS, *run.tuned_predictions.outputs[1:]]
    tuned = replace(run.tuned_predictions, outputs=outputs, parsed=[run.task.parse(text) for text in outputs])
    metrics = score(run.task, tuned)
    return replace(run, tuned_predictions=tuned, tuned_metrics=metrics,
                   gates=run_gates(card_checks(run.task.card), metrics, run.base_metrics))


@pytest.fixture(scope="session")
def instruct_run(tmp_path_factory: pytest.TempPathFactory) -> TaskRun:
    """The committed tiny instruct adapter, gated once: a text task's report."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run_task("instruct", "tiny", RunOptions(cache=tmp_path_factory.mktemp("cache"), progress=False))
    finally:
        torch.set_num_threads(threads)
