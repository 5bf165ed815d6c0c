"""Evaluation throughput of the tuned model, recorded by pytest-benchmark (examples/s, tokens/s)."""

from __future__ import annotations

import pytest

from loragate.engine import generate


@pytest.mark.benchmark
def test_evaluation_throughput(task_run, benchmark) -> None:
    prompts = [ex.prompt for ex in task_run.splits.test]
    settings = task_run.task.card.tier(task_run.tier).eval
    result = benchmark.pedantic(
        generate, args=(task_run.model, task_run.base.tokenizer, prompts, settings.max_new_tokens, settings.batch_size),
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
