"""Timing one gated run or pass in-process: its wall time, peak memory and stages, and each adapter's predictions kept
to check against another way of computing them (benchmarks/candidates.py, benchmarks/fleet.py)."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import psutil
import torch

from loragate.run.task_run import TaskRun

T = TypeVar("T")


def measured(call: Callable[[], T]) -> tuple[T, float, int, int | None]:
    """`call`'s result, its wall seconds, the most resident memory the process held meanwhile (bytes, sampled), and
    on CUDA the most GPU memory allocated."""
    process, done = psutil.Process(), threading.Event()
    peak = [process.memory_info().rss]

    def sample() -> None:
        while not done.wait(0.01):
            peak.append(process.memory_info().rss)

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        result = call()
    finally:
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
    gpu = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
    return result, seconds, max([*peak, process.memory_info().rss]), gpu


@dataclass(frozen=True)
class Answers:
    """One candidate's test predictions, kept after its run (and its model) is dropped."""

    outputs: list[str]
    scored: list[str] | None
    logits: torch.Tensor

    @classmethod
    def of(cls, run: TaskRun, base: bool = False) -> Answers:
        """The adapter's predictions, or with `base` the base's."""
        predictions, logits = (run.base_predictions, run.base_logits) if base else (run.tuned_predictions,
                                                                                   run.tuned_logits)
        return cls(list(predictions.outputs), predictions.scored and list(predictions.scored),
                   logits.detach().float().cpu().clone())

    def equals(self, alone: Answers) -> bool:
        """The same outputs, and the same logits bit for bit."""
        return (self.outputs == alone.outputs and self.scored == alone.scored
                and self.logits.shape == alone.logits.shape and torch.equal(self.logits, alone.logits))

    def logit_diff(self, alone: Answers) -> float | None:
        return float((self.logits - alone.logits).abs().max()) if self.logits.shape == alone.logits.shape else None


@dataclass(frozen=True)
class Timed:
    """One timed call: every run's answers and its base's, the run's stages (seconds; what the laps leave out is "judge
    and assemble"), its wall seconds and peak resident memory."""

    answers: dict[str, Answers]
    base_answers: dict[str, Answers]
    stages: dict[str, float]
    seconds: float
    peak_rss: int
    peak_gpu: int | None


def timed(call: Callable[[], dict[str, TaskRun]]) -> Timed:
    runs, seconds, peak, gpu = measured(call)
    stages = dict(next(iter(runs.values())).seconds)
    stages["judge and assemble"] = round(seconds - sum(stages.values()), 3)
    answers = {name: Answers.of(run) for name, run in runs.items()}
    base_answers = {name: Answers.of(run, base=True) for name, run in runs.items()}
    del runs
    gc.collect()  # the runs' models go before the next call: its memory is its own
    return Timed(answers, base_answers, stages, seconds, peak, gpu)


def mib(count: int) -> int | None:
    """Bytes in MiB; None where nothing was counted (no GPU)."""
    return round(count / 2**20) if count else None


def middle(calls: list[Timed]) -> Timed:
    """The call of median time (the upper one of an even count): its stages are the ones to read."""
    return sorted(calls, key=lambda call: call.seconds)[len(calls) // 2]
