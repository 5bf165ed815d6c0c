"""Batched, greedy, left-padded generation and logits: the predictions every suite reads."""

from __future__ import annotations

import time
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


def require_left_padding(tokenizer: PreTrainedTokenizerBase) -> None:
    if tokenizer.padding_side != "left":
        raise ValueError(
            f"tokenizer.padding_side is {tokenizer.padding_side!r}: batched generation with a decoder-only "
            f"model needs left padding, or shorter prompts continue from pad tokens. Set padding_side='left'."
        )


@torch.no_grad()
def generate(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, prompts: list[str], max_new_tokens: int,
             batch_size: int, progress: bool = False, desc: str = "generate") -> Generations:
    """Greedy continuations of `prompts`, batched by length so little padding is computed."""
    require_left_padding(tokenizer)
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    texts: list[str] = [""] * len(prompts)
    prompt_tokens = new_tokens = 0
    started = time.perf_counter()
    for start in tqdm(range(0, len(order), batch_size), desc=desc, disable=not progress, leave=False):
        rows = order[start : start + batch_size]
        enc = tokenizer([prompts[i] for i in rows], return_tensors="pt", padding=True).to(device)
        out = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        continuation = out[:, enc["input_ids"].shape[1] :]
        prompt_tokens += int(enc["attention_mask"].sum())
        for row, ids in zip(rows, continuation.tolist()):
            if tokenizer.eos_token_id in ids:
                ids = ids[: ids.index(tokenizer.eos_token_id) + 1]
            new_tokens += len(ids)
            texts[row] = tokenizer.decode(ids, skip_special_tokens=True)
    return Generations(texts, prompt_tokens, new_tokens, time.perf_counter() - started)


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
