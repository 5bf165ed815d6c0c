"""Evaluation throughput of the tuned model, recorded by pytest-benchmark (examples/s, tokens/s)."""

from __future__ import annotations

import pytest

from loragate.run import generations_of


@pytest.mark.benchmark
def test_evaluation_throughput(task_run, benchmark) -> None:
    prompts = [ex.prompt for ex in task_run.splits.test]
    result = benchmark.pedantic(
        generations_of, args=(task_run.task, task_run.tier, task_run.model, task_run.base.tokenizer, prompts),
        rounds=5, iterations=1, warmup_rounds=1,
    )
    seconds = benchmark.stats.stats.median if benchmark.stats else result.seconds
    benchmark.extra_info.update(
        examples=len(prompts),
        examples_per_s=round(len(prompts) / seconds, 2),
        tokens_per_s=round((result.prompt_tokens + result.new_tokens) / seconds, 2),
        new_tokens_per_s=round(result.new_tokens / seconds, 2),
    )
    assert result.texts == task_run.tuned_predictions.outputs, (
        f"{task_run.name}: re-running evaluation changed outputs: greedy batched generation is not deterministic"
    )
