"""Batched greedy generation (or seeded sampling, loragate.inference.sampling) and next-token logits: the
predictions every suite reads.

Prompts are tokenized once, sorted by length into batches (little padding) and left-padded; each batch goes
through `model.generate` (greedy, KV cache) with `RowStop`, which stops a row at EOS or as soon as its text can
no longer parse as a label; the budget defaults to what the longest label needs. Given a `Constraint`
(constrain.py), a logits processor lets each row emit only what its grammar allows next. A hand-written decode loop
was at most 1.25x faster on CPU (0.95-1.25x, docs/speed-generation.md), short of the 1.5x that would pay for
keeping one. A seed-style loop (`model.generate` per example) spends most of its time in per-call overhead:
benchmarks/compare.py measures all three.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from transformers import LogitsProcessorList, PreTrainedTokenizerBase, StoppingCriteria, StoppingCriteriaList

from loragate.card.sampling import SamplingSettings
from loragate.inference.grammar import CompiledConstraint, Constraint
from loragate.inference.mixed_batches import candidates, interleave, row_adapters, split_rows
from loragate.inference.sampling import RowSampler, sample_positions
from loragate.progress import SILENT, reporter


@dataclass(frozen=True)
class Generations:
    texts: list[str]  # decoded continuation per prompt, in prompt order, special tokens removed
    prompt_tokens: int
    new_tokens: int  # generated tokens up to and including EOS
    seconds: float
    terminated: list[bool]  # per prompt: the continuation ended with EOS, not at the budget or a label stop
    row_new_tokens: list[int] = field(default_factory=list)  # per prompt: a mixed model's candidates count their own


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


def stops(tokenizer: PreTrainedTokenizerBase, tokens: list[int], labels: Sequence[str] | None) -> bool:
    """A row's new `tokens` end it: the last is EOS or, given `labels`, their text can no longer parse as one."""
    return tokens[-1] == tokenizer.eos_token_id or (
        labels is not None and cannot_parse(tokenizer.decode(tokens, skip_special_tokens=True), labels))


class RowStop(StoppingCriteria):
    """`model.generate`'s stop with one flag per row (`stops`). Remembers how many new tokens each row had when
    it stopped; generate pads a stopped row after that."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, labels: Sequence[str] | None, prompt_width: int,
                 rows: int):
        self.tokenizer, self.labels, self.prompt_width = tokenizer, labels, prompt_width
        self.lengths: list[int | None] = [None] * rows  # None: still running

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor | None, **kwargs) -> torch.BoolTensor:
        for row, tokens in enumerate(input_ids[:, self.prompt_width :].tolist()):
            if self.lengths[row] is None and stops(self.tokenizer, tokens, self.labels):
                self.lengths[row] = len(tokens)
        return torch.tensor([length is not None for length in self.lengths], device=input_ids.device)


def greedy(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, rows: list[list[int]], max_new_tokens: int,
           labels: Sequence[str] | None, constraint: CompiledConstraint | None = None,
           sampler: RowSampler | None = None, adapters: dict[str, list[str]] | None = None) -> list[list[int]]:
    """The new tokens of each of `rows` (prompt token ids, one batch), up to and including the one that
    stopped it (`RowStop`), else `max_new_tokens` of them; under `constraint` only what its grammar allows; with
    `sampler` (one generator per row), the token it draws instead of the likeliest; `adapters`: each row's adapter
    (loragate.inference.mixed_batches.row_adapters)."""
    batch = left_pad(rows, tokenizer.pad_token_id, next(model.parameters()).device)
    width = batch["input_ids"].shape[1]
    stop = RowStop(tokenizer, labels, width, len(rows))
    processors = constraint.logits_processors(len(rows), width) if constraint is not None else LogitsProcessorList()
    if sampler is not None:
        processors.append(sampler)  # last: it samples among what the grammar allows
    out = model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, stopping_criteria=StoppingCriteriaList([stop]),
                         logits_processor=processors, **(adapters or {}))
    return [tokens[:length] for tokens, length in zip(out[:, width:].tolist(), stop.lengths)]


@torch.inference_mode()
def generate(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, prompts: list[str], max_new_tokens: int,
             batch_size: int, labels: Sequence[str] | None = None, progress: bool = False,
             constraint: Constraint | None = None, sampling: SamplingSettings | None = None) -> Generations:
    """Greedy continuations of `prompts`, in prompt order. A row stops at EOS and, given `labels`, as soon
    as its text can no longer parse as one of them. Given `constraint`, every token is one its grammar allows
    (the time to read the tokenizer's vocabulary for it is counted in `seconds`). Given `sampling`, `prompts` hold
    k copies of each example's prompt in a row (loragate.inference.sampling.repeat_samples) and row r is sample r % k
    of example r // k, drawn with its own seeded generator, so no batch changes it. A mixed model
    (loragate.inference.mixed_batches) answers `prompts` as they are laid out for it, `batch_size` of its split's
    prompts a batch, each once per candidate. With `progress`, each batch's examples are counted as steps of the
    current phase (loragate.progress)."""
    require_left_padding(tokenizer)
    model.eval()
    eos = tokenizer.eos_token_id
    encoded = tokenizer(prompts).input_ids if prompts else []
    texts: list[str] = [""] * len(prompts)
    terminated = [False] * len(prompts)
    row_new_tokens = [0] * len(prompts)
    started = time.perf_counter()
    compiled = CompiledConstraint(constraint, tokenizer) if constraint is not None else None
    positions = None if sampling is None else interleave(
        sample_positions(split_rows(model, prompts)[0], sampling.samples), candidates(model))
    counter = (reporter() if progress else SILENT).steps(len(prompts), "examples")
    for rows in length_batches([len(ids) for ids in encoded], batch_size * candidates(model)):
        batch = [encoded[row] for row in rows]
        sampler = RowSampler(sampling, [positions[row] for row in rows]) if positions is not None else None
        for row, ids in zip(rows, greedy(model, tokenizer, batch, max_new_tokens, labels, compiled, sampler,
                                         row_adapters(model, rows))):
            row_new_tokens[row] = len(ids)
            texts[row] = tokenizer.decode(ids, skip_special_tokens=True)
            terminated[row] = bool(ids) and ids[-1] == eos
        counter.advance(len(rows))
    return Generations(texts, sum(len(ids) for ids in encoded), sum(row_new_tokens), time.perf_counter() - started,
                       terminated, row_new_tokens)


@torch.no_grad()
def next_token_logits(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, prompts: list[str],
                      batch_size: int) -> torch.Tensor:
    """Logits of the first answer token for each prompt, shape (len(prompts), vocab), float32 on CPU; `batch_size`
    prompts a batch, each once per candidate of a mixed model."""
    require_left_padding(tokenizer)
    model.eval()
    device = next(model.parameters()).device
    rows = []
    size = batch_size * candidates(model)
    for start in range(0, len(prompts), size):
        enc = tokenizer(prompts[start : start + size], return_tensors="pt", padding=True).to(device)
        positions = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)  # as generate() does under left padding
        adapters = row_adapters(model, range(start, min(start + size, len(prompts))))
        rows.append(model(**enc, position_ids=positions, **adapters).logits[:, -1].float().cpu())
    return torch.cat(rows)
