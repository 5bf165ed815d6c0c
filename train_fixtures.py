"""Train (or refresh) the adapters that the gate's fixtures load from adapters/.

Usage:
    python train_fixtures.py                          # every task, tiny tier, on CPU
    python train_fixtures.py --task iris --retrain    # train again even if the store has the key
    python train_fixtures.py --task iris --tier full --gpu --base-model google/gemma-3-1b-it --data iris.csv

An adapter is stored under adapters/<task>/<tier>/<key>/, the key hashing the base fingerprint, the data,
and the LoRA and training settings; an entry whose key already exists is reused unless --retrain.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from loragate.plugin import parse_base_model, parse_existing_path, parse_task
from loragate.run import RunOptions, for_base, prepare_adapter, prepare_base
from loragate.tasks import TASKS, get_task
from loragate.training import seed_everything


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", action="append", type=parse_task, help="repeatable; default: every task")
    parser.add_argument("--tier", choices=["tiny", "full"], default="tiny")
    parser.add_argument("--gpu", action="store_true", help="train on CUDA in bf16")
    parser.add_argument("--base-model", type=parse_base_model, help="hub id or local directory")
    parser.add_argument("--data", type=parse_existing_path, help="the task's data in its real format")
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--store", type=Path, default=Path(__file__).parent / "adapters")
    args = parser.parse_args(argv)
    tasks = args.task or TASKS.names()
    if (args.base_model or args.data) and len(tasks) != 1:
        parser.error("--base-model and --data apply to one task: add --task NAME")
    if args.gpu:
        import torch

        if not torch.cuda.is_available():
            parser.error(f"--gpu: CUDA is not available to torch {torch.__version__}")
    options = RunOptions(device="cuda" if args.gpu else "cpu", base_model=args.base_model, data=args.data,
                         retrain=args.retrain, store_root=args.store, cache=Path(__file__).parent / ".loragate")
    for name in tasks:
        task = get_task(name)
        settings = task.card.tier(args.tier)
        seed_everything(settings.train.seed)
        print(f"== {name}/{args.tier}: base {options.base_model or settings.base_model}, device {options.device}")
        print(json.dumps({"lora": settings.lora.model_dump(), "train": settings.train.model_dump()}, indent=2))
        splits = task.load_splits(options.data)
        base = prepare_base(task, args.tier, splits, options)
        splits = for_base(task, splits, base)
        _, entry, manifest, trained = prepare_adapter(task, args.tier, base, splits, options)
        state = "trained" if trained else "up to date (use --retrain to train again)"
        curve = manifest["loss_curve"] if manifest else []
        print(f"{entry}: {state}")
        if curve:
            print(f"  loss {curve[0]:.4f} -> {curve[-1]:.4f} over {len(curve)} steps; at train time "
                  f"{json.dumps(manifest['metrics_at_train'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
