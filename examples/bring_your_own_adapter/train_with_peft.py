"""Train a LoRA adapter with plain transformers + peft (no loragate) on the files `python -m loragate export-data`
wrote, following their format.md, as a training stack of your own would; then gate it with loragate.

    python -m loragate export-data --task iris --tier tiny --out data
    python train_with_peft.py --data data --base data/base --out my-iris-adapter
    pytest -m smoke --task iris --base-model=data/base --adapter=my-iris-adapter

The defaults are the Iris card's tiny recipe (LoRA r 8, alpha 16 on every linear layer; 12 epochs of batches of 8 at
lr 3e-3, AdamW, linear decay); on the tiny base it trains in seconds on a CPU.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

IGNORE = -100  # the label cross-entropy skips: no loss on the prompt or on padding
LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def encode(tokenizer: PreTrainedTokenizerBase, row: dict) -> tuple[list[int], list[int]]:
    """format.md's rules: the prompt tokenized with the tokenizer's special tokens (BOS), the target tokenized
    alone without them and appended, then EOS; loss on the target and EOS only."""
    prompt = tokenizer(row["prompt"]).input_ids
    answer = tokenizer(row["target"], add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    return prompt + answer, [IGNORE] * len(prompt) + answer


def collate(rows: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded to the batch's longest row; padding carries no loss and no attention."""
    width = max(len(ids) for ids, _ in rows)
    return {"input_ids": torch.tensor([ids + [pad_id] * (width - len(ids)) for ids, _ in rows]),
            "attention_mask": torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in rows]),
            "labels": torch.tensor([labels + [IGNORE] * (width - len(labels)) for _, labels in rows])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the export-data directory")
    parser.add_argument("--base", type=Path, required=True, help="the base model directory (save_pretrained)")
    parser.add_argument("--out", type=Path, required=True, help="where the adapter is saved")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--r", type=int, default=8)
    parser.add_argument("--alpha", type=float, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    random.seed(args.seed)
    torch.manual_seed(args.seed)
    base = str(args.base.resolve())  # recorded as the adapter's base_model_name_or_path
    tokenizer = AutoTokenizer.from_pretrained(base)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=args.r, lora_alpha=args.alpha, lora_dropout=0.0,
                                             target_modules=LINEAR, task_type="CAUSAL_LM"))
    lines = (args.data / "train.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [encode(tokenizer, json.loads(line)) for line in lines]

    steps = args.epochs * -(-len(rows) // args.batch_size)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)
    model.train()
    for epoch in range(args.epochs):
        random.shuffle(rows)
        for start in range(0, len(rows), args.batch_size):
            loss = model(**collate(rows[start : start + args.batch_size], pad_id)).loss
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
        print(f"epoch {epoch + 1}: last batch loss {loss.item():.4f}")
    model.save_pretrained(args.out)
    print(f"adapter saved to {args.out}")


if __name__ == "__main__":
    main()
