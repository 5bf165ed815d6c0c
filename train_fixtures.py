"""Train (or refresh) the adapters that the gate's fixtures load from adapters/.

Usage:
    python train_fixtures.py                          # every task, tiny tier, on CPU
    python train_fixtures.py --task iris --retrain    # train again even if the store has the key
    python train_fixtures.py --task iris --set tiers.tiny.train.lr=1e-3   # a card value changed for this run
    python train_fixtures.py --task iris --tier full --gpu --base-model google/gemma-3-1b-it --data iris.csv
    python train_fixtures.py --task instruct --sweep-ranks 4,8,16   # a rank comparison table, nothing stored
    torchrun --nproc_per_node 4 train_fixtures.py --task sst2 --tier full --gpu   # data-parallel on 4 GPUs

An adapter is stored under adapters/<task>/<tier>/<key>/, the key hashing the base fingerprint, the data,
and the LoRA and training settings; an entry whose key already exists is reused unless --retrain. A card that
declares a sweep (`candidates.variants`) has each variant's adapter stored under its own key: those are what its gate
loads.
Progress goes to stderr (loragate.progress): on a terminal one line per task rewritten in place with the steps
done and the time left, else (a CI log, a file) one line per phase when it ends.
Under torchrun or accelerate launch each optimizer step is split over the processes (loragate.training.distributed):
the same adapter, under the same key, as one process would train.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from loragate.card.options import OptionError, RunOptions
from loragate.card.overrides import OverrideError, apply_overrides
from loragate.kinds import KINDS
from loragate.plugin.options import (
    parse_base_model,
    parse_data,
    parse_set,
    parse_task,
    require_cuda,
    require_one_task,
    require_quantizable,
    require_trainable,
)
from loragate.progress import Progress, StderrTerminal, mode_for, reporter, reporting
from loragate.run.adapter import prepare_adapter
from loragate.run.steps import fit_inputs, for_base, load_splits, load_task, prepare_base
from loragate.run.sweep import sweep_adapters
from loragate.tasks import TASKS, get_task
from loragate.training import distributed
from loragate.training.lora import seed_everything


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", action="append", type=parse_task, help="repeatable; default: every task")
    parser.add_argument("--tier", choices=["tiny", "full"], default="tiny")
    parser.add_argument("--gpu", action="store_true", help="train on CUDA in bf16")
    parser.add_argument("--base-model", type=parse_base_model, help="hub id or local directory")
    parser.add_argument("--data", type=parse_data,
                        help="the task's data: a file in its real format, "
                             "or a Hugging Face dataset (hub id or directory)")
    parser.add_argument("--quantize", choices=["4bit", "8bit"],
                        help="train on the base loaded through bitsandbytes (QLoRA with 4bit), "
                             "as the gate's --quantize")
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--set", action="append", type=parse_set, default=[], dest="overrides",
                        metavar="PATH=VALUE", help="change a card value for this run, e.g. tiers.tiny.train.lr=1e-3 "
                                                   "(repeatable; the value is read as YAML)")
    parser.add_argument("--store", type=Path, default=Path(__file__).parent / "adapters")
    parser.add_argument("--sweep-ranks", type=ranks, metavar="R,R,...",
                        help="train the task once per LoRA rank (alpha scaled to keep alpha/r) and write a comparison "
                             "table to reports/; stores nothing")
    args = parser.parse_args(argv)
    tasks = args.task or TASKS.names()
    if args.sweep_ranks and len(tasks) != 1:
        parser.error("--sweep-ranks applies to one task: add --task NAME")
    try:  # the gate's own checks of these options (loragate.card.options)
        require_one_task({"base_model": args.base_model, "data": args.data}, args.task or [], TASKS.names())
        require_quantizable(args.quantize, tasks)
        if args.gpu:
            require_cuda()
        require_trainable([apply_overrides(get_task(name).card, args.overrides) for name in tasks], [args.tier])
    except (OptionError, OverrideError) as exc:
        parser.error(str(exc))
    if args.sweep_ranks and distributed.launched():
        parser.error("--sweep-ranks runs in one process: start it with python, not torchrun or accelerate launch")
    device = "cuda" if args.gpu else "cpu"
    if distributed.launched():
        _, device = distributed.start(args.gpu)
    try:
        return train_tasks(args, tasks, device)
    finally:
        distributed.stop()


def train_tasks(args: argparse.Namespace, tasks: list[str], device: str) -> int:
    ranks = distributed.current()
    main = ranks.main  # data-parallel: one copy of the log and the progress bars, from rank 0
    where = f"{device}" + (f", {ranks.world} data-parallel processes" if ranks.world > 1 else "")
    options = RunOptions(device=device, base_model=args.base_model, data=args.data, retrain=args.retrain,
                         quantize=args.quantize, overrides=tuple(args.overrides), store_root=args.store,
                         cache=Path(__file__).parent / ".loragate",
                         progress=main)
    say = print if main else lambda *_: None
    progress = Progress(StderrTerminal(), mode_for(0, sys.stderr.isatty()) if main else "silent")
    if args.sweep_ranks:
        with reporting(progress), progress.case(f"{tasks[0]}/{args.tier} sweep"):
            table = sweep(load_task(tasks[0], options), args.tier, args.sweep_ranks, options)
        print(table)
        return 0
    for name in tasks:
        task = load_task(name, options)
        settings = task.card.tier(args.tier)
        seed_everything(settings.train.seed)
        say(f"== {name}/{args.tier}: base {options.base_model or settings.base_model}, device {where}")
        say(json.dumps({"lora": settings.lora.model_dump(), "train": settings.train.model_dump(),
                        "overrides": args.overrides}, indent=2))
        with reporting(progress), progress.case(f"{name}/{args.tier}"):
            splits = load_splits(task, options)
            base = prepare_base(task, args.tier, splits, options)
            task.card, splits, inputs = fit_inputs(task, args.tier, for_base(task, splits, base), base)
            if inputs is not None:
                say(f"  inputs: {json.dumps(inputs.to_json())}")
            adapters = card_adapters(task, args.tier, base, splits, options, inputs)
        for label, entry, manifest, trained in adapters:
            state = "trained" if trained else "up to date (use --retrain to train again)"
            curve = manifest.loss_curve if manifest else []
            say(f"{label}{entry}: {state}")
            if curve:
                say(f"  loss {curve[0]:.4f} -> {curve[-1]:.4f} over {len(curve)} steps; at train time "
                    f"{json.dumps(manifest.metrics_at_train)}")
    return 0


def card_adapters(task, tier: str, base, splits, options: RunOptions, inputs) -> list[tuple]:
    """(label, store entry, manifest, training) of each adapter the gate loads for `task` at `tier`: its card's
    sweep (`candidates.variants`), each variant under its own key, where it declares one (the gate then gates those,
    not the card's own adapter); else the card's one adapter."""
    if task.card.candidates is not None and task.card.candidates.variants:
        return [(f"candidate {swept.name}: ", swept.directory, swept.manifest, swept.trained)
                for swept in sweep_adapters(task, tier, base, splits, options, inputs)]
    _, entry, manifest, trained = prepare_adapter(task, tier, base, splits, options, inputs)
    return [("", entry, manifest, trained)]


def ranks(value: str) -> list[int]:
    try:
        parsed = [int(part) for part in value.split(",")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r}: give ranks as positive integers, e.g. 4,8,16") from exc
    if not parsed or min(parsed) < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: give ranks as positive integers, e.g. 4,8,16")
    return parsed


def sweep(task, tier: str, rank_list: list[int], options: RunOptions) -> str:
    """Train `task` once per rank from the same base, data and seed; the table the seeds kept by hand (rank,
    alpha, trainable parameters, best val loss, its perplexity, wall time), as markdown and JSON in reports/."""
    import math
    import time

    from loragate.models.parameters import trainable_parameters
    from loragate.run.steps import kind
    from loragate.training.lora import attach_lora

    card = task.card
    settings = card.tier(tier)
    splits = load_splits(task, options)
    rows = []
    for rank in rank_list:
        lora = settings.lora.model_copy(update={"r": rank, "alpha": settings.lora.alpha * rank / settings.lora.r})
        task.card = card.model_copy(update={"tiers": {**card.tiers, tier: settings.model_copy(update={"lora": lora})}})
        base = prepare_base(task, tier, splits, options)
        task.card, ready, _ = fit_inputs(task, tier, for_base(task, splits, base), base)
        model = attach_lora(base.model, lora, settings.train.seed, KINDS.get(card.kind).peft_task_type,
                            lora.modules_to_save or None)
        started = time.perf_counter()
        with reporter().phase(f"train r={rank}", f"trained r={rank}"):
            result = kind(task).train(task, tier, model, base, ready, options)
        best = min([loss for _, loss in result.eval_curve] or [result.eval_loss])
        rows.append({"rank": rank, "alpha": lora.alpha, "trainable_parameters": trainable_parameters(model),
                     "best_val_loss": round(best, 6), "perplexity": round(math.exp(best), 4),
                     "wall_seconds": round(time.perf_counter() - started, 1)})
    task.card = card
    lines = [f"LoRA rank sweep, {card.name}/{tier} (base {options.base_model or settings.base_model}, seed "
             f"{settings.train.seed}, {settings.train.epochs} epochs, lr {settings.train.lr})", "",
             "| rank | alpha | trainable params | best val loss | perplexity | wall s |",
             "|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['rank']} | {r['alpha']:g} | {r['trainable_parameters']:,} | {r['best_val_loss']:.4f} | "
              f"{r['perplexity']:.3f} | {r['wall_seconds']:.1f} |" for r in rows]
    out = Path("reports") / f"sweep-{card.name}-{tier}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    return "\n".join(lines) + f"\n\nwritten to {out}.md and {out}.json"


if __name__ == "__main__":
    sys.exit(main())
