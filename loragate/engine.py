"""Batched greedy generation with a KV cache, and next-token logits: the predictions every suite reads.

Prompts are tokenized once, sorted by length into batches (little padding) and left-padded; one prefill, then
one token per step for the whole batch. A row stops at EOS, or as soon as its text can no longer parse as a
label, and the budget defaults to what the longest label needs. A seed-style loop (`model.generate` per
example) spends most of its time in per-call overhead: benchmarks/compare.py measures the difference.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class Generations:
    texts: list[str]  # decoded continuation per prompt, in prompt order, special tokens removed
    prompt_tokens: int
    new_tokens: int  # generated tokens up to and including EOS
    seconds: float
    terminated: list[bool]  # per prompt: the continuation ended with EOS, not at the budget or a label stop


def require_left_padding(tokenizer: PreTrainedTokenizerBase) -> None:
    if tokenizer.padding_side != "left":
        raise ValueError(
            f"tokenizer.padding_side is {tokenizer.padding_side!r}: batched generation with a decoder-only "
            f"model needs left padding, or shorter prompts continue from pad tokens. Set padding_side='left'."
        )


def answer_budget(tokenizer: PreTrainedTokenizerBase, targets: Sequence[str]) -> int:
    """max_new_tokens when the card does not say: the longest target + 1 for EOS, all a correct answer needs.
    Targets are tokenized without special tokens, as training encodes answers."""
    return max(len(tokenizer(target, add_special_tokens=False).input_ids) for target in targets) + 1


def cannot_parse(text: str, labels: Sequence[str]) -> bool:
    """True when no continuation of `text` can parse as one of `labels` (parsing.py: surrounding whitespace is
    ignored, the rest must equal a label). Stopping there keeps every verdict; stopping at a newline would
    not ("setosa\\nmore" is invalid, "setosa\\n" is not)."""
    content = text.lstrip()
    if not content or text.endswith("\ufffd"):  # nothing yet, or half of a multi-byte character
        return False
    return content.rstrip() not in labels and not any(label.startswith(content) for label in labels)


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices sorted by length and cut into batches: similar lengths share a batch, so little is padding."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def left_pad(rows: list[list[int]], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """input_ids, attention_mask and position_ids of left-padded rows. Positions count real tokens only, as
    `generate()` does, so each row computes what it would alone."""
    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        input_ids[index, width - len(row) :] = torch.tensor(row)
        attention[index, width - len(row) :] = 1
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": input_ids.to(device), "attention_mask": attention.to(device),
            "position_ids": positions.to(device)}


@torch.inference_mode()
def greedy(model: torch.nn.Module, batch: dict[str, torch.Tensor], max_new_tokens: int,
           stop: Callable[[list[int]], bool]) -> list[list[int]]:
    """Greedy continuations of one left-padded batch (`left_pad`) with a KV cache. A row stops once
    `stop(its tokens)` holds; the batch once every row has stopped or the budget is spent."""
    out = model(**batch, use_cache=True, logits_to_keep=1)
    attention, positions = batch["attention_mask"], batch["position_ids"][:, -1:]
    tokens: list[list[int]] = [[] for _ in range(len(attention))]
    done = [False] * len(attention)
    for step in range(max_new_tokens):
        chosen = out.logits[:, -1].argmax(-1)
        for row, token in enumerate(chosen.tolist()):
            if not done[row]:
                tokens[row].append(token)
                done[row] = stop(tokens[row])
        if all(done) or step + 1 == max_new_tokens:
            break
        attention = torch.cat([attention, attention.new_ones((len(attention), 1))], dim=1)
        positions = positions + 1
        out = model(input_ids=chosen[:, None], attention_mask=attention, position_ids=positions,
                    past_key_values=out.past_key_values, use_cache=True)
    return tokens


@torch.inference_mode()
def generate(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, prompts: list[str], max_new_tokens: int,
             batch_size: int, labels: Sequence[str] | None = None, progress: bool = False,
             desc: str = "generate") -> Generations:
    """Greedy continuations of `prompts`, in prompt order. A row stops at EOS and, given `labels`, as soon
    as its text can no longer parse as one of them."""
    require_left_padding(tokenizer)
    model.eval()
    device = next(model.parameters()).device
    eos = tokenizer.eos_token_id

    def stop(tokens: list[int]) -> bool:
        return tokens[-1] == eos or (
            labels is not None and cannot_parse(tokenizer.decode(tokens, skip_special_tokens=True), labels))

    encoded = tokenizer(prompts).input_ids if prompts else []
    texts: list[str] = [""] * len(prompts)
    terminated = [False] * len(prompts)
    new_tokens = 0
    started = time.perf_counter()
    batches = length_batches([len(ids) for ids in encoded], batch_size)
    for rows in tqdm(batches, desc=desc, disable=not progress, leave=False):
        batch = left_pad([encoded[row] for row in rows], tokenizer.pad_token_id, device)
        for row, ids in zip(rows, greedy(model, batch, max_new_tokens, stop)):
            new_tokens += len(ids)
            texts[row] = tokenizer.decode(ids, skip_special_tokens=True)
            terminated[row] = bool(ids) and ids[-1] == eos
    return Generations(texts, sum(len(ids) for ids in encoded), new_tokens, time.perf_counter() - started,
                       terminated)


@torch.no_grad()
def next_token_logits(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, prompts: list[str],
                      batch_size: int) -> torch.Tensor:
    """Logits of the first answer token for each prompt, shape (len(prompts), vocab), float32 on CPU."""
    require_left_padding(tokenizer)
    model.eval()
    device = next(model.parameters()).device
    rows = []
    for start in range(0, len(prompts), batch_size):
        enc = tokenizer(prompts[start : start + batch_size], return_tensors="pt", padding=True).to(device)
        positions = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)  # as generate() does under left padding
        rows.append(model(**enc, position_ids=positions).logits[:, -1].float().cpu())
    return torch.cat(rows)
