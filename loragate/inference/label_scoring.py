"""Label scoring: how likely the model finds each label's answer after each prompt, without a decode loop.

For a classification card the question is which label the model prefers, and scoring answers it in two
batched forward passes per batch: the left-padded prompts once, with a KV cache; then the cache repeated once
per label and every label's answer tokens in one pass. Each prompt is computed once, not once per label.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase

from loragate.inference.engine import left_pad, length_batches, require_left_padding
from loragate.inference.mixed_batches import candidates, row_adapters


def answer_ids(tokenizer: PreTrainedTokenizerBase, target: str) -> list[int]:
    """A target's tokens as training encodes the answer: without special tokens, then EOS. EOS belongs to the
    score, so a label that is a prefix of another ('yes', 'yes please') is not favoured for being short."""
    return tokenizer(target, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]


@torch.inference_mode()
def label_log_likelihoods(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, prompts: list[str],
                          targets: Sequence[str], batch_size: int) -> torch.Tensor:
    """log P(answer_ids(target) | prompt), summed over the answer's tokens: (len(prompts), len(targets)),
    float32 on CPU; `batch_size` prompts a batch, each once per candidate of a mixed model."""
    require_left_padding(tokenizer)
    model.eval()
    device = next(model.parameters()).device
    answers = [answer_ids(tokenizer, target) for target in targets]
    width = max(len(answer) - 1 for answer in answers)  # tokens fed after the prompt: all but the last
    fed = torch.full((len(answers), width), tokenizer.pad_token_id, dtype=torch.long)
    read = torch.zeros((len(answers), width), dtype=torch.long)  # the token each fed position predicts
    fed_mask = torch.zeros((len(answers), width), dtype=torch.long)
    for index, answer in enumerate(answers):
        fed[index, : len(answer) - 1] = torch.tensor(answer[:-1])
        read[index, : len(answer) - 1] = torch.tensor(answer[1:])
        fed_mask[index, : len(answer) - 1] = 1
    fed, read, fed_mask = fed.to(device), read.to(device), fed_mask.to(device)
    first = torch.tensor([answer[0] for answer in answers], device=device)
    steps, count = torch.arange(width, device=device), len(answers)
    encoded = tokenizer(prompts).input_ids if prompts else []
    scores = torch.empty((len(prompts), count))
    for rows in length_batches([len(ids) for ids in encoded], batch_size * candidates(model)):
        batch = left_pad([encoded[row] for row in rows], tokenizer.pad_token_id, device)
        out = model(**batch, use_cache=True, logits_to_keep=1, **row_adapters(model, rows))
        head = out.logits[:, -1].float().log_softmax(-1)[:, first]  # (rows, labels): each answer's first token
        cache = out.cache
        cache.batch_repeat_interleave(count)  # prompt r, label j -> row r * count + j
        attention = torch.cat([batch["attention_mask"].repeat_interleave(count, 0), fed_mask.repeat(len(rows), 1)], 1)
        start = batch["position_ids"][:, -1:].repeat_interleave(count, 0) + 1
        adapters = row_adapters(model, [row for row in rows for _ in answers])  # prompt r, label j -> its row's
        logits = model(input_ids=fed.repeat(len(rows), 1), attention_mask=attention, position_ids=start + steps,
                       cache=cache, use_cache=True, **adapters).logits
        tail = logits.float().log_softmax(-1).gather(-1, read.repeat(len(rows), 1)[..., None])[..., 0]
        tail = torch.where(fed_mask.repeat(len(rows), 1).bool(), tail, 0.0).sum(-1).view(len(rows), count)
        scores[rows] = (head + tail).cpu()
    return scores


def likeliest(scores: torch.Tensor, labels: Sequence[str]) -> list[str]:
    """The highest-scoring label of each row (the first of a tie)."""
    return [labels[index] for index in scores.argmax(-1).tolist()]
