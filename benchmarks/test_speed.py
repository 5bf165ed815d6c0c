"""Speed benchmarks, short enough for CI: each times loragate's fast path with pytest-benchmark while the
slow way it replaces runs by hand before every round (the two alternate, so noise hits both alike).

They assert correctness (same predictions, same losses) and record the speed ratios in extra_info. A speed
floor is asserted only far below what was measured (engine ~10x naive, floor 2x; engine ~0.9-1.1x the previous
hand-written loop, floor 0.5x, where the loop would be worth keeping again; grouped ~1.9x pad-to-max, floor 1.2x;
batched eval loss ~4.7x batch 1, floor 1.5x; constrained decoding ~0.75x free, floor 0.25x), so a noisy machine
does not fail them. `python -m benchmarks.compare` (and `benchmarks.constrained`) measures the same workloads with
more rounds.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import pytest

from benchmarks.compare import TRAIN_CONTENDERS, labels_of
from benchmarks.workloads import (
    TRAIN_MAX_LENGTH,
    hand_loop_generate,
    hf_batched_generate,
    lora_state,
    naive_generate,
    reset_lora,
    train_settings,
)
from loragate.inference.engine import answer_budget, generate
from loragate.inference.grammar import one_of, one_of_budget
from loragate.inference.label_scoring import label_log_likelihoods, likeliest
from loragate.tasks import get_task
from loragate.training.lora import eval_loss, train_lora

ROUNDS = 3
CARD = get_task("iris").card
TARGETS = [CARD.target_template.format(label=label) for label in CARD.labels]


class Race:
    """Seconds and last result of each contender."""

    def __init__(self, benchmark, fast: str, contenders: dict[str, Callable[[], object]], rounds: int = ROUNDS):
        self.seconds: dict[str, list[float]] = {name: [] for name in contenders}
        self.results: dict[str, object] = {}

        def timed(name: str) -> object:
            started = time.perf_counter()
            self.results[name] = contenders[name]()
            self.seconds[name].append(time.perf_counter() - started)
            return self.results[name]

        def slow_ones() -> None:
            for name in contenders:
                if name != fast:
                    timed(name)

        benchmark.pedantic(timed, args=(fast,), setup=slow_ones, rounds=rounds, iterations=1)
        self.benchmark, self.fast = benchmark, fast

    def ratio(self, slow: str) -> float:
        """How many times faster `fast` ran than `slow` (medians), recorded in the benchmark's extra_info."""
        value = statistics.median(self.seconds[slow]) / statistics.median(self.seconds[self.fast])
        self.benchmark.extra_info[f"x_vs_{slow.replace(' ', '_')}"] = round(value, 2)
        return value


@pytest.mark.benchmark(group="generation")
def test_engine_vs_per_example_generate(benchmark, bench, data) -> None:
    base, model, _ = bench
    prompts = [ex.prompt for ex in data.rows]
    budget = answer_budget(base.tokenizer, TARGETS)
    race = Race(benchmark, "engine", {
        "engine": lambda: generate(model, base.tokenizer, prompts, budget, 32, labels=CARD.labels).texts,
        "naive": lambda: naive_generate(model, base.tokenizer, prompts, budget),
        "batched generate": lambda: hf_batched_generate(model, base.tokenizer, prompts, budget, 32),
        "hand loop": lambda: hand_loop_generate(model, base.tokenizer, prompts, budget, 32, CARD.labels),
    })
    engine, naive = race.results["engine"], race.results["naive"]
    assert labels_of(engine) == labels_of(naive), "the engine's predictions differ from per-example generate"
    assert all(b.startswith(a) for a, b in zip(engine, naive)), "an engine output is not a prefix of generate's"
    assert engine == race.results["hand loop"], "the engine's texts differ from the previous hand-written loop's"
    benchmark.extra_info["examples"] = len(prompts)
    race.ratio("batched generate")
    assert race.ratio("hand loop") > 0.5, f"engine only {race.ratio('hand loop'):.2f}x the hand-written loop (~1x)"
    assert race.ratio("naive") > 2, f"engine only {race.ratio('naive'):.1f}x per-example generate (measured ~10x)"


@pytest.mark.benchmark(group="generation")
def test_label_scoring_vs_engine(benchmark, bench, data) -> None:
    base, model, _ = bench
    prompts = [ex.prompt for ex in data.rows]
    budget = answer_budget(base.tokenizer, TARGETS)
    race = Race(benchmark, "scoring", {
        "scoring": lambda: likeliest(label_log_likelihoods(model, base.tokenizer, prompts, TARGETS, 32), CARD.labels),
        "engine": lambda: generate(model, base.tokenizer, prompts, budget, 32, labels=CARD.labels).texts,
    })
    generated, scored = labels_of(race.results["engine"]), race.results["scoring"]
    valid = [i for i, label in enumerate(generated) if label is not None]
    assert len(valid) >= 0.9 * len(prompts), f"only {len(valid)} of {len(prompts)} tuned outputs parse"
    differ = [(i, generated[i], scored[i]) for i in valid if generated[i] != scored[i]]
    assert not differ, f"scored label != generated label (single-token labels: the first token decides): {differ[:3]}"
    race.ratio("engine")


@pytest.mark.benchmark(group="training")
def test_length_grouped_training_vs_padding(benchmark, bench, data) -> None:
    base, model, init = bench
    tuned = lora_state(model)  # put back at the end: later tests generate with the shared tuned model

    def train(batching: str):
        reset_lora(model, init)
        return train_lora(model, base.tokenizer, data.train, data.eval, train_settings(batching, 1, 8, 1e-3, 0),
                          progress=False)

    race = Race(benchmark, "grouped", {batching: (lambda b=batching: train(b)) for batching in TRAIN_CONTENDERS})
    grouped, dynamic, padded = (race.results[b] for b in ("grouped", "dynamic", "max"))
    assert grouped.tokens == dynamic.tokens == padded.tokens, "contenders trained on different tokens"
    gap = max(abs(a - b) / b for a, b in zip(dynamic.loss_curve, padded.loss_curve))
    assert gap <= 1e-5, f"padding to {TRAIN_MAX_LENGTH} changed the loss curve by {gap:.2e} (same batches, same order)"
    assert grouped.positions < dynamic.positions < padded.positions
    packed = race.results["packed"]
    assert packed.tokens == dynamic.tokens and packed.positions < dynamic.positions, "packing padded as much as dynamic"
    for name, result in race.results.items():
        benchmark.extra_info[f"padding_share_{name}"] = round(1 - result.tokens / result.positions, 3)
        benchmark.extra_info[f"eval_loss_{name}"] = round(result.eval_loss, 5)
    race.ratio("dynamic")
    reset_lora(model, tuned)
    assert race.ratio("max") > 1.2, f"grouped only {race.ratio('max'):.2f}x pad-to-max tokens/s (measured ~2x)"


@pytest.mark.benchmark(group="validation loss")
def test_batched_validation_loss_vs_batch_1(benchmark, bench, data) -> None:
    base, model, _ = bench
    race = Race(benchmark, "batched", {
        "batched": lambda: eval_loss(model, base.tokenizer, data.rows, TRAIN_MAX_LENGTH, batch_size=32),
        "batch 1": lambda: eval_loss(model, base.tokenizer, data.rows, TRAIN_MAX_LENGTH, batch_size=1),
    })
    batched, one = race.results["batched"], race.results["batch 1"]
    assert abs(batched - one) <= 1e-5, f"batched eval loss {batched} != batch-1 {one}"
    assert race.ratio("batch 1") > 1.5, f"batched only {race.ratio('batch 1'):.1f}x batch 1 (measured ~4x)"


@pytest.mark.benchmark(group="constrained decoding")
def test_constrained_vs_free_generation(benchmark, bench, data) -> None:
    """The tuned model's free answers are labels, so under `one_of` it must say the same: the time is the cost."""
    base, model, _ = bench
    prompts = [ex.prompt for ex in data.rows]
    budget, constraint = one_of_budget(TARGETS), one_of(TARGETS)
    race = Race(benchmark, "constrained", {
        "constrained": lambda: generate(model, base.tokenizer, prompts, budget, 32, labels=CARD.labels,
                                        constraint=constraint).texts,
        "free": lambda: generate(model, base.tokenizer, prompts, budget, 32, labels=CARD.labels).texts,
    })
    free, constrained = race.results["free"], race.results["constrained"]
    answered = [i for i, text in enumerate(free) if text.strip() in CARD.labels]
    assert len(answered) >= 0.9 * len(prompts), f"only {len(answered)} of {len(prompts)} free outputs are labels"
    differ = [(i, free[i], constrained[i]) for i in answered if free[i] != constrained[i]]
    assert not differ, f"the constraint changed answers that were already labels: {differ[:3]}"
    ratio = race.ratio("free")  # free seconds / constrained seconds: the constrained throughput relative to free
    print(f"constrained decoding: {ratio:.2f}x free throughput ({len(prompts)} Iris prompts, batch 32)")
    assert ratio > 0.25, f"constrained decoding only {ratio:.2f}x free throughput (measured ~0.75x)"
