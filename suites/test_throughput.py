"""Evaluation throughput of the tuned model, recorded by pytest-benchmark (examples/s, tokens/s)."""

from __future__ import annotations

import pytest


@pytest.mark.benchmark
def test_evaluation_throughput(task_run, benchmark) -> None:
    # no warm-up round: the run's own base and tuned predictions have already warmed the same code and weights.
    # One round on the tiny tier: a CPU's shared-machine noise (about 25%) dwarfs what more rounds would settle, and
    # each round is a whole test split (squad_v2's three took 12 s of the smoke gate); the full tier keeps three.
    rounds = 3 if task_run.tier == "full" else 1
    result = benchmark.pedantic(task_run.predict, args=(task_run.model,), rounds=rounds, iterations=1, warmup_rounds=0)
    seconds = benchmark.stats.stats.median if benchmark.stats else result.seconds
    benchmark.extra_info.update(examples=len(result.ids), examples_per_s=round(len(result.ids) / seconds, 2))
    if result.generations is not None:
        tokens = result.generations.prompt_tokens + result.generations.new_tokens
        benchmark.extra_info.update(tokens_per_s=round(tokens / seconds, 2),
                                    new_tokens_per_s=round(result.generations.new_tokens / seconds, 2))
    assert result.outputs == task_run.tuned_predictions.outputs, (
        f"{task_run.name}: re-running evaluation changed outputs: batched prediction is not deterministic"
    )
