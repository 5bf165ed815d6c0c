"""Data-parallel scenarios that tests/training/test_distributed.py starts under torchrun (2 processes, gloo, CPU).

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/training/distributed_scenarios.py OUT_DIR

Each rank writes OUT_DIR/rank<R>.json: per scenario, what it computed or the exception it stopped with. The
scenarios run in order in one launch (starting a process costs seconds); train_both goes last, as it ends
the group. A scenario that hangs instead of raising is a failure too: the test runs them under a timeout.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.distributed as dist

from loragate.card.settings import TrainSettings
from loragate.training import distributed
from loragate.training.lora import TrainingDiverged, train_features

SETTINGS = TrainSettings(epochs=2, batch_size=1, grad_accum=4, lr=1e-2, seed=0)  # iris full: 1 row x 8 micro-batches


class BagOfWords(torch.nn.Module):
    """The smallest model with a head and its own loss, as train_features expects of an encoder."""

    def __init__(self, poison_rank: int | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.EmbeddingBag(50, 8, mode="sum")
        self.head = torch.nn.Linear(8, 3)
        self.poison_rank = poison_rank

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                labels: torch.Tensor) -> SimpleNamespace:
        mask = attention_mask.float()
        logits = self.head(self.embed(input_ids, per_sample_weights=mask) / mask.sum(-1, keepdim=True))
        loss = torch.nn.functional.cross_entropy(logits, labels)
        if self.poison_rank is not None and distributed.current().rank == self.poison_rank:
            loss = loss * float("nan")
        return SimpleNamespace(loss=loss)


def features() -> list[dict]:
    """22 examples of 2 to 11 tokens: a last optimizer step with fewer rows than ranks x micro-batches."""
    generator = torch.Generator().manual_seed(1)
    rows = []
    for index in range(22):
        length = 2 + index % 10
        rows.append({"input_ids": torch.randint(1, 50, (length,), generator=generator).tolist(),
                     "attention_mask": [1] * length, "labels": index % 3})
    return rows


def weights(model: torch.nn.Module) -> list[list[float]]:
    return [p.detach().flatten().tolist() for p in model.parameters()]


def train_both() -> dict:
    """The same training data-parallel and then, with the group gone, in one process (on every rank)."""
    model = BagOfWords()
    result = train_features(model, features(), SETTINGS, pad_id=0, progress=False)
    parallel = {"weights": weights(model), "loss_curve": result.loss_curve, "answer_tokens": result.answer_tokens}
    dist.destroy_process_group()
    model = BagOfWords()
    result = train_features(model, features(), SETTINGS, pad_id=0, progress=False)
    return {"parallel": parallel,
            "single": {"weights": weights(model), "loss_curve": result.loss_curve,
                       "answer_tokens": result.answer_tokens}}


def nan_on_rank_1() -> dict:
    train_features(BagOfWords(poison_rank=1), features(), SETTINGS, pad_id=0, progress=False)
    return {}


def main_rank_fails() -> dict:
    def store() -> Path:
        raise OSError(28, "No space left on device", "adapters/iris/tiny/abc")

    return {"value": str(distributed.current().from_main(store))}


def ranks_drift() -> dict:
    distributed.current().check_same([torch.full((3,), float(distributed.current().rank))], "drift test")
    return {}


SCENARIOS = {"nan_on_rank_1": nan_on_rank_1, "main_rank_fails": main_rank_fails, "ranks_drift": ranks_drift,
             "train_both": train_both}


def main() -> None:
    out = Path(sys.argv[1])
    ranks, _ = distributed.start(gpu=False)
    records = {}
    for name, scenario in SCENARIOS.items():
        try:
            records[name] = {"ok": scenario()}
        except (TrainingDiverged, distributed.RanksDisagree, OSError) as exc:
            records[name] = {"error": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()}
    (out / f"rank{ranks.rank}.json").write_text(json.dumps(records))
    distributed.stop()


if __name__ == "__main__":
    main()
