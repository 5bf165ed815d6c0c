"""Side by side, in one process, on the same model and data: loragate's evaluation and training against the
seeds' ways. Contenders alternate within each round (at least 5 timed rounds after a warm-up) and medians
are compared; prints a table and writes JSON.

    python -m benchmarks.compare --out speed.json                                   # CPU, the card's tiny model
    python -m benchmarks.compare --device cuda --dtype bf16 --model-size 100m --out speed-gpu.json

Workloads: generation (all 150 Iris prompts) by the engine (batched `model.generate` with the per-row label
stop) vs a per-example `model.generate` loop, vs batched `model.generate` without the stop, and vs the previous
engine's hand-written decode loop; label scoring vs the engine; LoRA training on Iris prompts behind a free-text
preamble of 0-80 words (Iris prompts alone are all ~14 tokens: grouping would have nothing to remove),
length-grouped vs padded to the batch's longest vs padded to 128 vs packed without padding; validation loss
batched vs one at a time.
On CUDA also training MFU and batch-1 decode speed against the memory-bandwidth bound.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import replace
from pathlib import Path

import torch

from benchmarks.workloads import (
    SIZES,
    TRAIN_MAX_LENGTH,
    Data,
    alternate,
    build_base,
    hand_loop_generate,
    hf_batched_generate,
    linear_flops_per_token,
    load_data,
    naive_generate,
    packed_budget,
    real_lengths,
    reset_lora,
    train_settings,
    training_flops,
    tuned_model,
)
from loragate.inference.engine import answer_budget, generate
from loragate.inference.label_scoring import label_log_likelihoods, likeliest
from loragate.inference.predictions import label_of
from loragate.tasks import get_task
from loragate.training.lora import TrainResult, eval_loss, train_lora

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
NAIVE, BATCHED, HAND, ENGINE, SCORING = ("naive per-example generate", "batched model.generate",
                                         "hand-written loop (previous engine)", "engine: generate + RowStop",
                                         "label scoring")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", choices=sorted(DTYPES), help="default: fp32 on CPU, bf16 on CUDA")
    parser.add_argument("--model-size", choices=sorted(SIZES), default="tiny",
                        help="tiny: the Iris card's tiny base (~0.4M); small: ~7M; 100m: ~100M; 1b: ~1.1B parameters")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per workload (at least 5)")
    parser.add_argument("--train-epochs", type=int, default=8, help="enough for the eval loss to level off")
    parser.add_argument("--train-lr", type=float, default=1e-3)
    parser.add_argument("--train-batch-size", type=int, default=8)
    parser.add_argument("--train-variants", type=int, default=3, help="preamble variants of each Iris train row")
    parser.add_argument("--examples", type=int, help="only the first N rows of every workload's data (default: all); "
                        "for a quick run that checks the script, as benchmarks/gpu_check.py --dry-run does")
    parser.add_argument("--eval-batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch (a busy 2-core box: 1)")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="GPU peak, for MFU (H100 bf16 dense)")
    parser.add_argument("--hbm-tbps", type=float, default=3.35, help="GPU memory bandwidth, for the decode bound")
    parser.add_argument("--decode-tokens", type=int, default=128, help="batch-1 decode length on CUDA")
    parser.add_argument("--cache", type=Path, default=Path(".loragate"), help="where the built bases are kept")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    return checked(parser, parser.parse_args(argv))


def checked(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """The options every speed script shares, checked (rounds, device) and defaulted (dtype by device)."""
    if args.rounds < 5:
        parser.error(f"--rounds {args.rounds}: medians need at least 5 rounds")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available to torch {torch.__version__}")
    args.dtype = args.dtype or ("bf16" if args.device.startswith("cuda") else "fp32")
    return args


def labels_of(texts: list[str]) -> list[str | None]:
    task = get_task("iris")
    return [label_of(task.parse(text)) for text in texts]


def generation(model: torch.nn.Module, tokenizer, data: Data, args: argparse.Namespace) -> dict:
    """Engine vs per-example and batched `model.generate` and the hand-written loop, and label scoring, on every
    Iris prompt."""
    card = get_task("iris").card
    prompts, gold = [ex.prompt for ex in data.rows], [ex.label for ex in data.rows]
    targets = [card.target_template.format(label=label) for label in card.labels]
    budget = answer_budget(tokenizer, targets)
    size = args.eval_batch_size
    timings = alternate({
        NAIVE: lambda _: naive_generate(model, tokenizer, prompts, budget),
        BATCHED: lambda _: hf_batched_generate(model, tokenizer, prompts, budget, size),
        HAND: lambda _: hand_loop_generate(model, tokenizer, prompts, budget, size, card.labels),
        ENGINE: lambda _: generate(model, tokenizer, prompts, budget, size, labels=card.labels).texts,
        SCORING: lambda _: likeliest(label_log_likelihoods(model, tokenizer, prompts, targets, size), card.labels),
    }, args.rounds)
    naive, batched, hand, engine, scored = (timings.results[name][-1] for name in (NAIVE, BATCHED, HAND, ENGINE,
                                                                                   SCORING))
    naive_labels, engine_labels = labels_of(naive), labels_of(engine)
    valid = [i for i, label in enumerate(engine_labels) if label is not None]
    rates = {name: len(prompts) / timings.median(name) for name in timings.seconds}
    return {
        "examples": len(prompts), "max_new_tokens": budget, "batch_size": size,
        "median_s": {name: timings.median(name) for name in timings.seconds}, "examples_per_s": rates,
        "engine_vs_naive": rates[ENGINE] / rates[NAIVE],
        "engine_vs_batched_generate": rates[ENGINE] / rates[BATCHED],
        "engine_vs_hand_loop": rates[ENGINE] / rates[HAND],
        "scoring_vs_engine": rates[SCORING] / rates[ENGINE],
        "same_prediction_engine_naive": sum(a == b for a, b in zip(engine_labels, naive_labels)),
        "same_text_engine_hand_loop": sum(a == b for a, b in zip(engine, hand)),
        "engine_text_prefix_of_naive": sum(b.startswith(a) for a, b in zip(engine, naive)),
        "same_text_engine_batched_generate": sum(a == b for a, b in zip(engine, batched)),
        "valid_engine_outputs": len(valid),
        "scored_equals_generated": sum(scored[i] == engine_labels[i] for i in valid),
        "accuracy": {ENGINE: sum(p == g for p, g in zip(engine_labels, gold)) / len(gold),
                     SCORING: sum(p == g for p, g in zip(scored, gold)) / len(gold)},
    }


TRAIN_CONTENDERS = {"max": f"pad to max_length {TRAIN_MAX_LENGTH}", "dynamic": "pad to batch's longest",
                    "grouped": "length-grouped", "packed": f"packed in rows of {TRAIN_MAX_LENGTH}"}


def training(model: torch.nn.Module, init: dict[str, torch.Tensor], base, data: Data,
             args: argparse.Namespace) -> dict:
    """Each round, every contender trains the same LoRA init for the same epochs on the same examples with
    the same data-order seed (the round's number); only the batching differs. `max` and `dynamic` see the
    same batches in the same order, so their loss curves must agree step by step; `grouped` composes its
    batches by length, and `packed` its micro-batches by a token budget (`packed_budget`: rows of 128 tokens for the
    batch size's worth of mean-length examples), so both are compared on the eval loss after the same epochs,
    averaged over the seeds."""
    tokenizer = base.tokenizer
    budget = packed_budget(real_lengths(tokenizer, data.train), args.train_batch_size)

    def train(batching: str, seed: int) -> TrainResult:
        reset_lora(model, init)
        settings = train_settings(batching, args.train_epochs, args.train_batch_size, args.train_lr, seed,
                                  budget if batching == "packed" else None)
        return train_lora(model, tokenizer, data.train, data.eval, settings, progress=False)

    contenders = {name: (lambda seed, b=batching: train(b, seed)) for batching, name in TRAIN_CONTENDERS.items()}
    timings = alternate(contenders, args.rounds, warmup=False)
    runs: dict[str, list[TrainResult]] = timings.results  # type: ignore[assignment]
    grouped, dynamic, padded, packed = (TRAIN_CONTENDERS[b] for b in ("grouped", "dynamic", "max", "packed"))
    rates = {name: statistics.median(r.tokens / r.seconds for r in results) for name, results in runs.items()}
    losses = {name: statistics.mean(r.eval_loss for r in results) for name, results in runs.items()}
    # per step, relative to the run's first loss: a late loss near 0 makes a plain relative gap meaningless in bf16
    curve_gap = max(abs(a - b) / m.loss_curve[0] for d, m in zip(runs[dynamic], runs[padded])
                    for a, b in zip(d.loss_curve, m.loss_curve))
    out = {
        "examples": len(data.train), "epochs": args.train_epochs, "batch_size": args.train_batch_size,
        "lr": args.train_lr, "seeds": list(range(args.rounds)), "packed_tokens_per_batch": budget,
        "steps_per_epoch": {name: results[0].steps // args.train_epochs for name, results in runs.items()},
        "real_tokens_per_epoch": sum(real_lengths(tokenizer, data.train)),
        "padding_share": {name: 1 - results[0].tokens / results[0].positions for name, results in runs.items()},
        "real_tokens_per_s": rates,
        "grouped_vs_max": rates[grouped] / rates[padded],
        "grouped_vs_dynamic": rates[grouped] / rates[dynamic],
        "packed_vs_dynamic": rates[packed] / rates[dynamic],
        "packed_vs_max": rates[packed] / rates[padded],
        "eval_loss_mean": losses,
        "eval_loss_by_seed": {name: [r.eval_loss for r in results] for name, results in runs.items()},
        "eval_loss_seed_cv": {name: statistics.stdev(r.eval_loss for r in results) / losses[name]
                              for name, results in runs.items()},
        "eval_loss_rel_diff_grouped_vs_max": abs(losses[grouped] - losses[padded]) / losses[padded],
        "eval_loss_rel_diff_grouped_vs_dynamic": abs(losses[grouped] - losses[dynamic]) / losses[dynamic],
        "eval_loss_rel_diff_packed_vs_dynamic": (losses[packed] - losses[dynamic]) / losses[dynamic],
        "loss_curve_max_diff_dynamic_vs_max": curve_gap,
    }
    if args.device.startswith("cuda"):
        config = base.model.config
        flops = training_flops(model, real_lengths(tokenizer, data.train), config.num_hidden_layers,
                               config.hidden_size) * args.train_epochs
        out["mfu"] = {name: statistics.median(flops / r.seconds for r in results) / (args.peak_tflops * 1e12)
                      for name, results in runs.items()}
    return out


def validation_loss(model: torch.nn.Module, tokenizer, data: Data, args: argparse.Namespace) -> dict:
    """eval_loss in length-sorted batches vs one example at a time, on the 150 Iris rows (what the gate
    evaluates) and on the preamble eval set (long, varied prompts): the same number, faster."""
    out = {}
    for name, examples in (("iris", data.rows), ("preamble", data.eval)):
        timings = alternate({
            "batch 1": lambda _, ex=examples: eval_loss(model, tokenizer, ex, TRAIN_MAX_LENGTH, batch_size=1),
            "batched": lambda _, ex=examples: eval_loss(model, tokenizer, ex, TRAIN_MAX_LENGTH,
                                                        batch_size=args.eval_batch_size),
        }, args.rounds)
        one, many = timings.results["batch 1"][-1], timings.results["batched"][-1]
        out[name] = {"examples": len(examples), "batch_size": args.eval_batch_size,
                     "median_s": {key: timings.median(key) for key in timings.seconds},
                     "batched_vs_batch1": timings.median("batch 1") / timings.median("batched"),
                     "loss": {"batch 1": one, "batched": many}, "abs_diff": abs(one - many)}
    return out


def decode_bound(model: torch.nn.Module, tokenizer, data: Data, args: argparse.Namespace) -> dict:
    """Batch-1 greedy decode speed (no stop: EOS is held off) against the HBM bound: every step reads every
    weight once."""
    enc = tokenizer(data.rows[0].prompt, return_tensors="pt").to(next(model.parameters()).device)
    steps = args.decode_tokens

    def decode(tokens: int) -> torch.Tensor:
        return model.generate(**enc, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
                              pad_token_id=tokenizer.pad_token_id)

    timings = alternate({"prefill": lambda _: decode(1), "prefill + decode": lambda _: decode(steps + 1)}, args.rounds)
    seconds = timings.median("prefill + decode") - timings.median("prefill")
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    bound = args.hbm_tbps * 1e12 / weight_bytes
    return {"tokens": steps, "tokens_per_s": steps / seconds, "bound_tokens_per_s": bound,
            "fraction_of_bound": steps / seconds / bound, "weight_bytes": weight_bytes}


def table(result: dict) -> str:
    """The comparison as aligned text: one row per contender, its rate, its ratio to the baseline, checks."""
    gen, train, val = result["generation"], result["training"], result["val_loss"]
    naive = gen["examples_per_s"][NAIVE]
    checks = {ENGINE: f"same prediction as naive {gen['same_prediction_engine_naive']}/{gen['examples']}, same text "
                      f"as hand loop {gen['same_text_engine_hand_loop']}/{gen['examples']}, "
                      f"{gen['engine_vs_hand_loop']:.2f}x hand loop",
              SCORING: f"= generated label {gen['scored_equals_generated']}/{gen['valid_engine_outputs']}, "
                       f"{gen['scoring_vs_engine']:.2f}x engine"}
    rows = [("workload", "contender", "median s", "rate", "ratio", "check")]
    for name, rate in gen["examples_per_s"].items():
        rows.append(("scoring" if name == SCORING else "generation", name, f"{gen['median_s'][name]:.3f}",
                     f"{rate:,.0f} ex/s", f"{rate / naive:.1f}x", checks.get(name, "")))
    padded = train["real_tokens_per_s"][TRAIN_CONTENDERS["max"]]
    for name, rate in train["real_tokens_per_s"].items():
        rows.append(("training", name, "", f"{rate:,.0f} tok/s", f"{rate / padded:.2f}x",
                     f"eval loss {train['eval_loss_mean'][name]:.4f} (seed cv {train['eval_loss_seed_cv'][name]:.1%}), "
                     f"padding {train['padding_share'][name]:.0%}"))
    for data_name, part in val.items():
        for name, seconds in part["median_s"].items():
            rows.append((f"val loss {data_name}", name if name == "batch 1" else f"batch {part['batch_size']}",
                         f"{seconds:.3f}", "", f"{part['median_s']['batch 1'] / seconds:.1f}x",
                         f"loss {part['loss'][name]:.6f}"))
    return aligned(rows)


def aligned(rows: list[tuple[str, ...]]) -> str:
    """Rows of cells as text columns, each as wide as its widest cell."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = load_data(args.train_variants)
    if args.examples:
        data = replace(data, rows=data.rows[: args.examples], train=data.train[: args.examples],
                       eval=data.eval[: args.examples])
    base = build_base(args.model_size, data, args.device, DTYPES[args.dtype], args.cache)
    model, init = tuned_model(base, data)
    frozen, lora = linear_flops_per_token(model)
    result = {
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else f"cpu ({args.threads} threads)",
        "dtype": args.dtype, "model_size": args.model_size, "parameters": base.parameters, "lora_parameters": lora,
        "frozen_linear_parameters": frozen, "rounds": args.rounds, "torch": torch.__version__,
        "generation": generation(model, base.tokenizer, data, args),
        "val_loss": validation_loss(model, base.tokenizer, data, args),
    }
    if args.device.startswith("cuda"):
        result["decode"] = decode_bound(model, base.tokenizer, data, args)
    result["training"] = training(model, init, base, data, args)
    print(f"{result['device']}, {args.dtype}, model {args.model_size} ({base.parameters:,} parameters, "
          f"LoRA {lora:,}), medians of {args.rounds} alternated rounds")
    print(table(result))
    train = result["training"]
    print(f"training: grouped {train['grouped_vs_max']:.2f}x pad-to-max, {train['grouped_vs_dynamic']:.2f}x dynamic; "
          f"eval loss after {args.train_epochs} epochs (mean of seeds 0-{args.rounds - 1}) grouped vs max "
          f"{train['eval_loss_rel_diff_grouped_vs_max']:.2%}, "
          f"vs dynamic {train['eval_loss_rel_diff_grouped_vs_dynamic']:.2%}; "
          f"dynamic vs max loss curves within {train['loss_curve_max_diff_dynamic_vs_max']:.1e} of the first loss")
    steps = train["steps_per_epoch"]
    print(f"packed ({train['packed_tokens_per_batch']} tokens a micro-batch, {steps[TRAIN_CONTENDERS['packed']]} steps "
          f"an epoch vs dynamic's {steps[TRAIN_CONTENDERS['dynamic']]}): "
          f"{train['packed_vs_dynamic']:.2f}x dynamic, {train['packed_vs_max']:.2f}x pad-to-max tokens/s; eval loss "
          f"{train['eval_loss_rel_diff_packed_vs_dynamic']:+.2%} vs dynamic")
    if "decode" in result:
        print(json.dumps({"decode": result["decode"], "mfu": result["training"]["mfu"]}, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
