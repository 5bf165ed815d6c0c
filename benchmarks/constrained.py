"""Constrained vs free decoding throughput: the same model, the same prompts, in one run, the two alternating
within each round (at least 5 timed rounds after a warm-up); medians compared; prints a table and writes JSON.

    python -m benchmarks.constrained --out constrained.json                         # CPU, the card's tiny model
    python -m benchmarks.constrained --device cuda --dtype bf16 --model-size 100m --out constrained-gpu.json

Workloads, all 150 Iris prompts, batch 32:
- labels: the briefly tuned LoRA answers, free (the engine's label stop) and under `one_of` the card's targets.
  Its free answers are labels, so both produce the same tokens: the time difference is the constraint's cost,
  shown per generated token.
- json: the untuned base writes an `Item` (a small bounded pydantic model) under `json_of`, against free decoding
  with the same token budget. The two produce different tokens, so the ratio is of generated tokens per second.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Annotated

import torch
from pydantic import BaseModel, ConfigDict, Field

from benchmarks.compare import DTYPES, aligned, checked
from benchmarks.workloads import SIZES, alternate, build_base, load_data, tuned_model
from loragate.inference.engine import Generations, generate
from loragate.inference.grammar import Constraint, json_of, one_of, one_of_budget
from loragate.tasks import get_task


class Item(BaseModel):
    """What a structured task might ask for; bounded, so the untuned base closes it within JSON_BUDGET."""
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(max_length=8)]
    qty: Annotated[int, Field(ge=0, le=999)]
    tags: Annotated[list[Annotated[str, Field(max_length=6)]], Field(max_length=2)]


JSON_BUDGET = 96  # max_new_tokens of both json contenders


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", choices=sorted(DTYPES), help="default: fp32 on CPU, bf16 on CUDA")
    parser.add_argument("--model-size", choices=sorted(SIZES), default="tiny", help="as in benchmarks.compare")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per workload (at least 5)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch (a busy 2-core box: 1)")
    parser.add_argument("--cache", type=Path, default=Path(".loragate"), help="where the built bases are kept")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    return checked(parser, parser.parse_args(argv))


def race(model: torch.nn.Module, tokenizer, prompts: list[str], budget: int, batch_size: int, rounds: int,
         constraint: Constraint, labels: list[str] | None = None) -> dict:
    """Free vs constrained `generate` on the same prompts, alternating; medians, rates and their ratios."""
    timings = alternate({
        "free": lambda _: generate(model, tokenizer, prompts, budget, batch_size, labels=labels),
        "constrained": lambda _: generate(model, tokenizer, prompts, budget, batch_size, labels=labels,
                                          constraint=constraint),
    }, rounds)
    last: dict[str, Generations] = {name: results[-1] for name, results in timings.results.items()}
    seconds = {name: timings.median(name) for name in last}
    tokens_per_s = {name: last[name].new_tokens / seconds[name] for name in last}
    return {
        "constraint": constraint.what, "examples": len(prompts), "max_new_tokens": budget, "median_s": seconds,
        "new_tokens": {name: run.new_tokens for name, run in last.items()},
        "ended_with_eos": {name: sum(run.terminated) for name, run in last.items()},
        "examples_per_s": {name: len(prompts) / s for name, s in seconds.items()},
        "tokens_per_s": tokens_per_s,
        "constrained_vs_free_examples_per_s": seconds["free"] / seconds["constrained"],
        "constrained_vs_free_tokens_per_s": tokens_per_s["constrained"] / tokens_per_s["free"],
        "same_texts": sum(a == b for a, b in zip(last["free"].texts, last["constrained"].texts)),
        "texts": {name: run.texts[:3] for name, run in last.items()},
    }


def table(result: dict) -> str:
    rows = [("workload", "constraint", "free s", "constrained s", "free tok/s", "constrained tok/s", "ratio tok/s",
             "check")]
    for name, part in result["workloads"].items():
        check = (f"same text {part['same_texts']}/{part['examples']}, +{part['overhead_ms_per_token']:.3f} ms/token"
                 if name == "labels" else f"EOS {part['ended_with_eos']['constrained']}/{part['examples']} "
                                          f"(free {part['ended_with_eos']['free']})")
        rows.append((name, part["constraint"], f"{part['median_s']['free']:.3f}",
                     f"{part['median_s']['constrained']:.3f}", f"{part['tokens_per_s']['free']:,.0f}",
                     f"{part['tokens_per_s']['constrained']:,.0f}",
                     f"{part['constrained_vs_free_tokens_per_s']:.2f}x", check))
    return aligned(rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = load_data(train_variants=1)
    base = build_base(args.model_size, data, args.device, DTYPES[args.dtype], args.cache)
    prompts = [ex.prompt for ex in data.rows]
    untuned = race(base.model, base.tokenizer, prompts, JSON_BUDGET, args.batch_size, args.rounds, json_of(Item))
    model, _ = tuned_model(base, data)  # wraps base.model in place: the json workload runs first
    card = get_task("iris").card
    targets = [card.target_template.format(label=label) for label in card.labels]
    labels = race(model, base.tokenizer, prompts, one_of_budget(targets), args.batch_size, args.rounds,
                  one_of(targets), labels=card.labels)
    labels["overhead_ms_per_token"] = 1000 * (labels["median_s"]["constrained"] - labels["median_s"]["free"]) / \
        labels["new_tokens"]["constrained"]
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"cpu ({args.threads} threads)"
    result = {"device": device, "dtype": args.dtype, "model_size": args.model_size, "parameters": base.parameters,
              "rounds": args.rounds, "batch_size": args.batch_size, "torch": torch.__version__,
              "workloads": {"labels": labels, "json": untuned}}
    print(f"{device}, {args.dtype}, model {args.model_size} ({base.parameters:,} parameters), batch "
          f"{args.batch_size}, medians of {args.rounds} alternated rounds")
    print(table(result))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
