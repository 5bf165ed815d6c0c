"""LoRA training with peft: completion-only loss, seeded, a progress bar, and a hard stop on NaN."""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from loragate.card import LoraSettings, TrainSettings
from loragate.data import Example

IGNORE = -100  # label id that cross-entropy skips: prompt and padding positions


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; nothing was stored."""


@dataclass
class TrainResult:
    loss_curve: list[float] = field(default_factory=list)  # mean loss of each optimizer step
    eval_loss: float = float("nan")
    steps: int = 0
    seconds: float = 0.0
    answer_tokens: int = 0  # tokens that carried loss, over all epochs


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def encode(tokenizer: PreTrainedTokenizerBase, example: Example, max_length: int) -> tuple[list[int], list[int]]:
    """Prompt and answer ids, answer + EOS as labels. Prompt and answer are tokenized separately, the
    same way generation sees them: the prompt alone, then the model's continuation."""
    prompt = tokenizer(example.prompt).input_ids
    answer = tokenizer(example.target, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    ids = prompt + answer
    if len(ids) > max_length:
        raise ValueError(
            f"example {example.id}: {len(ids)} tokens > train.max_length {max_length}; the answer would be "
            f"cut. Raise train.max_length in the card or shorten the prompt template."
        )
    return ids, [IGNORE] * len(prompt) + answer


def collate(batch: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad for training (labels carry IGNORE on padding, so padding never counts)."""
    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for row, (ids, labs) in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(labs)] = torch.tensor(labs)
        attention[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


def summed_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Sum of answer-token cross-entropies and their count, so batches can be weighted by tokens."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    targets = batch["labels"][:, 1:]
    loss = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.size(-1)).float(), targets.reshape(-1), ignore_index=IGNORE, reduction="sum"
    )
    return loss, int((targets != IGNORE).sum())


def attach_lora(model: PreTrainedModel, lora: LoraSettings, seed: int) -> PeftModel:
    """Wrap `model` with fresh LoRA layers; the seed fixes lora_A's random init."""
    missing = [t for t in lora.target_modules if not any(n.endswith(f".{t}") or n == t for n, _ in model.named_modules())]
    if missing:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
        raise ValueError(f"lora.target_modules {missing} are not in the model; its linear modules are {linear}")
    seed_everything(seed)
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


@torch.no_grad()
def eval_loss(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, examples: list[Example],
              max_length: int, batch_size: int = 32) -> float:
    """Token-weighted mean answer loss over `examples`."""
    model.eval()
    device = next(model.parameters()).device
    encoded = [encode(tokenizer, ex, max_length) for ex in examples]
    total, count = 0.0, 0
    for start in range(0, len(encoded), batch_size):
        batch = {k: v.to(device) for k, v in collate(encoded[start : start + batch_size], tokenizer.pad_token_id).items()}
        loss, n = summed_loss(model, batch)
        total, count = total + float(loss), count + n
    return total / count


def train_lora(model: PeftModel, tokenizer: PreTrainedTokenizerBase, train: list[Example], eval_: list[Example],
               settings: TrainSettings, progress: bool = True, desc: str = "train") -> TrainResult:
    """Train the LoRA weights of `model` in place; raise TrainingDiverged at the first non-finite loss."""
    seed_everything(settings.seed)
    device = next(model.parameters()).device
    encoded = [encode(tokenizer, ex, settings.max_length) for ex in train]
    micro = [encoded[i : i + settings.batch_size] for i in range(0, len(encoded), settings.batch_size)]
    steps_per_epoch = math.ceil(len(micro) / settings.grad_accum)
    total_steps = steps_per_epoch * settings.epochs
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min(1.0, (step + 1) / max(1, settings.warmup_steps)) * max(0.0, 1 - step / total_steps),
    )
    order = torch.Generator().manual_seed(settings.seed)
    result = TrainResult()
    started = time.perf_counter()
    model.train()
    with tqdm(total=total_steps, desc=desc, disable=not progress, leave=False) as bar:
        for _epoch in range(settings.epochs):
            shuffled = [encoded[i] for i in torch.randperm(len(encoded), generator=order).tolist()]
            batches = [shuffled[i : i + settings.batch_size] for i in range(0, len(shuffled), settings.batch_size)]
            for first in range(0, len(batches), settings.grad_accum):
                group = [collate(b, tokenizer.pad_token_id) for b in batches[first : first + settings.grad_accum]]
                tokens = sum(int((g["labels"][:, 1:] != IGNORE).sum()) for g in group)
                step_loss = 0.0
                for batch in group:
                    loss, _ = summed_loss(model, {k: v.to(device) for k, v in batch.items()})
                    if not torch.isfinite(loss):
                        raise TrainingDiverged(
                            f"{desc}: loss became {float(loss.detach())} at optimizer step {result.steps + 1}; "
                            f"no adapter was stored. Lower train.lr or check the data."
                        )
                    (loss / tokens).backward()
                    step_loss += float(loss.detach())
                optimizer.step()
                if not bool(torch.stack([torch.isfinite(p).all() for p in params]).all()):
                    raise TrainingDiverged(
                        f"{desc}: LoRA weights became non-finite at optimizer step {result.steps + 1} (loss "
                        f"{step_loss / tokens}); no adapter was stored. Lower train.lr or check the data."
                    )
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                result.steps += 1
                result.answer_tokens += tokens
                result.loss_curve.append(step_loss / tokens)
                bar.set_postfix(loss=f"{result.loss_curve[-1]:.4f}")
                bar.update()
    model.eval()
    result.seconds = time.perf_counter() - started
    result.eval_loss = eval_loss(model, tokenizer, eval_, settings.max_length)
    return result
