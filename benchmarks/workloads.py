"""What benchmarks/compare.py and benchmarks/test_speed.py measure: models, data, contenders, timing.

Every model is built offline (a seeded Llama with a BPE tokenizer trained on the benchmark's own text); the
data is Iris from scikit-learn's bundled copy. Contenders of one workload run on the same model and data,
alternating within each round, so machine noise hits them alike and their medians can be compared.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from loragate.card.settings import TinyBase, TrainSettings
from loragate.data.examples import Example
from loragate.inference.engine import left_pad, length_batches, stops
from loragate.models.bases import LoadedBase, load_causal, tiny_base_dir
from loragate.tasks import get_task
from loragate.training.lora import attach_lora, encode_all, train_lora

# tiny: the Iris card's tiny base (about 0.4M parameters); small: the size of the probe (about 7M);
# 100m and 1b: Llamas for GPU measurements (at batch 8 on an H100, 100m is bound by per-kernel overhead)
SIZES: dict[str, TinyBase] = {
    "tiny": get_task("iris").card.tier("tiny").tiny_base,
    "small": TinyBase(hidden_size=256, intermediate_size=768, num_hidden_layers=8, num_attention_heads=4,
                      vocab_size=512, initializer_range=0.02),
    "100m": TinyBase(hidden_size=1024, intermediate_size=2816, num_hidden_layers=8, num_attention_heads=16,
                     vocab_size=1024, max_position_embeddings=512, initializer_range=0.02),
    "1b": TinyBase(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=16,
                   vocab_size=1024, max_position_embeddings=512, initializer_range=0.02),
}
TRAIN_MAX_LENGTH = 128  # what `batching: max` pads to, as the seed padded every example
# words of the free-text preamble that gives the training data varied lengths (Iris prompts are all ~14 tokens)
PREAMBLE_WORDS = ("the", "flower", "was", "picked", "near", "a", "river", "in", "early", "summer", "petals",
                  "looked", "pale", "and", "the", "stem", "was", "long", "collector", "noted", "wind", "rain",
                  "meadow", "garden", "bright", "morning", "evening", "soil", "wet", "dry", "leaves", "green")


@dataclass(frozen=True)
class Data:
    rows: list[Example]  # all 150 Iris rows: what generation, scoring and the gate's kind of eval loss run on
    tune: list[Example]  # the Iris train split, to give the generation benchmark a model that answers
    train: list[Example]  # Iris train rows with preambles of varied length, for the training benchmark
    eval: list[Example]  # Iris eval rows with preambles: the eval loss that training contenders must agree on


def with_preamble(example: Example, variant: int, seed: int) -> Example:
    """`example` behind a deterministic free-text preamble of 0 to 80 words."""
    rng = random.Random(f"{seed}-{example.id}-{variant}")
    words = " ".join(rng.choice(PREAMBLE_WORDS) for _ in range(rng.randint(0, 80)))
    return Example(id=f"{example.id}-v{variant}", prompt=f"Note: {words}. {example.prompt}", target=example.target,
                   label=example.label, fields=example.fields)


def load_data(train_variants: int = 3, seed: int = 0) -> Data:
    splits = get_task("iris").load_splits()
    rows = splits.train + splits.eval + splits.test
    return Data(
        rows=rows,
        tune=splits.train,
        train=[with_preamble(ex, v, seed) for v in range(train_variants) for ex in splits.train],
        eval=[with_preamble(ex, v, seed) for v in range(2) for ex in splits.eval],
    )


def build_base(size: str, data: Data, device: str, dtype: torch.dtype, cache: Path) -> LoadedBase:
    """The `size` Llama with a tokenizer trained on all of the benchmark's text, built once into `cache`."""
    texts = [ex.prompt + ex.target for ex in data.rows + data.train + data.eval]
    path = tiny_base_dir(cache, f"bench-{size}", SIZES[size], texts)
    return load_causal(str(path), device, dtype, display_name=f"bench-{size}")


def tuned_model(base: LoadedBase, data: Data, epochs: int = 4) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """The base with the Iris card's tiny LoRA, trained briefly so it answers with labels and EOS, and the
    LoRA weights it started from (each training contender starts from them)."""
    card = get_task("iris").card.tier("tiny")
    model = attach_lora(base.model, card.lora, card.train.seed)
    init = lora_state(model)
    settings = card.train.model_copy(update={"epochs": epochs, "max_length": TRAIN_MAX_LENGTH})  # the card: auto
    train_lora(model, base.tokenizer, data.tune, data.tune[:8], settings, progress=False)
    return model, init


def train_settings(batching: str, epochs: int, batch_size: int, lr: float, seed: int,
                   tokens_per_batch: int | None = None) -> TrainSettings:
    return TrainSettings(batching=batching, epochs=epochs, batch_size=batch_size, lr=lr,
                         max_length=TRAIN_MAX_LENGTH, seed=seed, tokens_per_batch=tokens_per_batch)


def packed_budget(lengths: list[int], batch_size: int) -> int:
    """A packed micro-batch's token budget: enough rows of TRAIN_MAX_LENGTH for `batch_size` examples of mean length,
    as the other contenders' batches hold, so all of them take about as many optimizer steps per epoch."""
    return math.ceil(batch_size * statistics.mean(lengths) / TRAIN_MAX_LENGTH) * TRAIN_MAX_LENGTH


@torch.no_grad()
def naive_generate(model: torch.nn.Module, tokenizer, prompts: list[str], max_new_tokens: int) -> list[str]:
    """The seeds' evaluation loop: one `model.generate` call per example."""
    model.eval()
    device = next(model.parameters()).device
    texts = []
    for prompt in prompts:
        enc = tokenizer(prompt, return_tensors="pt").to(device)
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        texts.append(tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True))
    return texts


@torch.no_grad()
def hf_batched_generate(model: torch.nn.Module, tokenizer, prompts: list[str], max_new_tokens: int,
                        batch_size: int) -> list[str]:
    """The previous engine: length-sorted, left-padded batches through `model.generate`."""
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    texts = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        enc = tokenizer([prompts[i] for i in rows], return_tensors="pt", padding=True).to(device)
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        for row, ids in zip(rows, out[:, enc["input_ids"].shape[1] :].tolist()):
            if tokenizer.eos_token_id in ids:
                ids = ids[: ids.index(tokenizer.eos_token_id) + 1]
            texts[row] = tokenizer.decode(ids, skip_special_tokens=True)
    return texts


@torch.inference_mode()
def hand_loop_generate(model: torch.nn.Module, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int,
                       labels: list[str]) -> list[str]:
    """The previous engine: length-sorted, left-padded batches decoded by a hand-written greedy loop over the
    KV cache, a row stopping at EOS or once its text can no longer parse as a label
    (`loragate.inference.engine.stops`)."""
    model.eval()
    device = next(model.parameters()).device
    encoded = tokenizer(prompts).input_ids
    texts = [""] * len(prompts)
    for rows in length_batches([len(ids) for ids in encoded], batch_size):
        batch = left_pad([encoded[row] for row in rows], tokenizer.pad_token_id, device)
        out = model(**batch, use_cache=True, logits_to_keep=1)
        attention, positions = batch["attention_mask"], batch["position_ids"][:, -1:]
        tokens: list[list[int]] = [[] for _ in rows]
        done = [False] * len(rows)
        for step in range(max_new_tokens):
            chosen = out.logits[:, -1].argmax(-1)
            for row, token in enumerate(chosen.tolist()):
                if not done[row]:
                    tokens[row].append(token)
                    done[row] = stops(tokenizer, tokens[row], labels)
            if all(done) or step + 1 == max_new_tokens:
                break
            attention = torch.cat([attention, attention.new_ones((len(rows), 1))], dim=1)
            positions = positions + 1
            out = model(input_ids=chosen[:, None], attention_mask=attention, position_ids=positions, cache=out.cache,
                        use_cache=True)
        for row, ids in zip(rows, tokens):
            texts[row] = tokenizer.decode(ids, skip_special_tokens=True)
    return texts


@dataclass
class Timings:
    seconds: dict[str, list[float]] = field(default_factory=dict)
    results: dict[str, list[object]] = field(default_factory=dict)  # each timed round's result

    def median(self, name: str) -> float:
        return statistics.median(self.seconds[name])


def alternate(contenders: dict[str, Callable[[int], object]], rounds: int, warmup: bool = True) -> Timings:
    """Call every contender with the round's number once per round, the order rotating each round, after an
    untimed warm-up round (round -1) if `warmup`; CUDA work is waited for before a clock is read."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    names = list(contenders)
    timings = Timings({name: [] for name in names}, {name: [] for name in names})
    for round_ in range(-1 if warmup else 0, rounds):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            sync()
            started = time.perf_counter()
            result = contenders[name](round_)
            sync()
            if round_ >= 0:
                timings.seconds[name].append(time.perf_counter() - started)
                timings.results[name].append(result)
    return timings


def reset_lora(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Put the LoRA weights back to `state`, so every training contender starts from the same init."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in state:
                param.copy_(state[name])


def lora_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def linear_flops_per_token(model: torch.nn.Module) -> tuple[int, int]:
    """(frozen, LoRA) weights that multiply each token: every Linear weight (the tied LM head once, the
    embedding lookup not at all), split into the frozen base weights and the LoRA A and B matrices."""
    frozen = lora = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            if ".lora_A." in name or ".lora_B." in name:
                lora += module.weight.numel()
            else:
                frozen += module.weight.numel()
    return frozen, lora


def training_flops(model: torch.nn.Module, lengths: list[int], layers: int, hidden: int) -> float:
    """Model FLOPs of one epoch over examples of `lengths` (padding excluded): 4 x frozen weights per token
    (forward, and backward to the activations), 6 x LoRA weights (their gradients too), and attention at
    12 x layers x hidden x sequence length per token (PaLM's accounting, no causal halving)."""
    frozen, lora = linear_flops_per_token(model)
    tokens = sum(lengths)
    return (4 * frozen + 6 * lora) * tokens + 12 * layers * hidden * sum(n * n for n in lengths)


def real_lengths(tokenizer, examples: list[Example]) -> list[int]:
    return [len(ids) for ids, _ in encode_all(tokenizer, examples, TRAIN_MAX_LENGTH)]
