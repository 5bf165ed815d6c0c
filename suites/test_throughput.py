"""Evaluation throughput of the tuned model, recorded by pytest-benchmark (examples/s, tokens/s).

This times the tuned prediction pass again, after the run's own passes; the reports show the run's own base and
tuned figures and their ratio (loragate.report.throughput), and this one beside them as the benchmark's. Its
extra_info carries the run's own tuned figure too (`run_examples_per_s`), so either table shows which is which."""

from __future__ import annotations

import pytest

from loragate.report.throughput import pass_speed


@pytest.mark.benchmark
def test_evaluation_throughput(task_run, benchmark) -> None:
    # no warm-up round: the run's own base and tuned predictions have already warmed the same code and weights.
    # One round on the tiny tier: a CPU's shared-machine noise (about 25%) dwarfs what more rounds would settle, and
    # each round is a whole test split (squad_v2's three took 12 s of the smoke gate); the full tier keeps three.
    rounds = 3 if task_run.tier == "full" else 1
    result = benchmark.pedantic(task_run.predict, args=(task_run.model,), rounds=rounds, iterations=1, warmup_rounds=0)
    seconds = benchmark.stats.stats.median if benchmark.stats else result.seconds
    task_run.benchmark_seconds = seconds  # the reports show it beside the run's own passes, named as the benchmark's
    examples = len(result.ids)
    run_speed = pass_speed(task_run.tuned_predictions).examples_per_s  # None where the run's pass was not timed
    benchmark.extra_info.update(examples=examples, examples_per_s=round(examples / seconds, 2),
                                run_examples_per_s=None if run_speed is None else round(run_speed, 2))
    if result.generations is not None:
        tokens = result.generations.prompt_tokens + result.generations.new_tokens
        benchmark.extra_info.update(tokens_per_s=round(tokens / seconds, 2),
                                    new_tokens_per_s=round(result.generations.new_tokens / seconds, 2))
    assert result.outputs == task_run.tuned_predictions.outputs, (
        f"{task_run.name}: re-running evaluation changed outputs: batched prediction is not deterministic"
    )
