"""Data-parallel training under `torchrun` or `accelerate launch`: one process per GPU, one adapter.

Every rank builds the same seeded epoch order, takes its share of each optimizer step's rows, and the
summed gradients, losses and token counts are added across ranks before the step. The step is therefore
the single-process step, split: the card's batch_size stays the global batch and the stored adapter's key
(the recipe) does not depend on the number of GPUs. The bits do: sums are taken in another order, so the
first steps agree with one process to float precision (tests/training/test_distributed.py) and a long run at a high
learning rate can drift further; the manifest records the process count. Rank 0 alone takes the store's
lock and writes the entry.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")
# How long a process may wait for another: a rank at a collective, a run at the adapter store's lock
# (loragate.store.adapters). A full-tier run may train for hours while another worker waits.
LOCK_TIMEOUT_S = 4 * 3600


class RanksDisagree(RuntimeError):
    """The ranks of one data-parallel run ended with different weights, or one of them failed."""


@dataclass(frozen=True)
class Ranks:
    """This process's place in the data-parallel group; Ranks() is a single process."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, step: list[list[int]], batch_size: int) -> list[list[int]]:
        """This rank's micro-batches of one optimizer step (lists of example indices). The step's rows, in
        their length-grouped order, are dealt round-robin, so every rank gets rows of similar lengths, and
        re-cut into micro-batches of at most `batch_size` rows. A rank may get none."""
        if self.world == 1:
            return step
        rows = [index for batch in step for index in batch][self.rank :: self.world]
        return [rows[first : first + batch_size] for first in range(0, len(rows), batch_size)]

    def sum_gradients(self, params: list[torch.nn.Parameter], *counts: float) -> list[float]:
        """Add every parameter's gradient (none yet counts as zero: a rank may have had no rows) and `counts`
        over all ranks; the gradients are summed in place, the summed counts returned. One collective call
        for all the gradients, not one per tensor."""
        if self.world == 1:
            return list(counts)
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.flatten().float() for g in grads])
        totals = torch.tensor(counts, dtype=torch.float64, device=flat.device)
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        dist.all_reduce(totals, op=dist.ReduceOp.SUM)
        for param, reduced in zip(params, torch.split(flat, [p.numel() for p in params])):
            param.grad = reduced.view_as(param).to(param.dtype)
        return totals.tolist()

    def from_main(self, compute: Callable[[], T]) -> T:
        """`compute()` run on rank 0 and its result (or its exception, re-raised as RanksDisagree) handed to
        every rank: filesystem decisions must be one decision, or ranks would wait for each other forever."""
        if self.world == 1:
            return compute()
        payload: list[object] = [None]
        if self.main:
            try:
                payload = [("ok", compute())]
            except Exception as exc:
                dist.broadcast_object_list([("error", f"{type(exc).__name__}: {exc}")], src=0)
                raise
        dist.broadcast_object_list(payload, src=0)
        status, value = payload[0]  # type: ignore[misc]
        if status == "error":
            raise RanksDisagree(f"rank {self.rank}: rank 0 failed: {value}")
        return value  # type: ignore[return-value]

    def check_same(self, params: list[torch.Tensor], what: str) -> None:
        """Raise on every rank when the ranks' `params` differ: a data-parallel run that drifted apart
        (a rank that skipped a step, a non-deterministic kernel) would store one rank's guess."""
        if self.world == 1:
            return
        digest = hashlib.sha256()
        for param in params:
            digest.update(param.detach().float().cpu().numpy().tobytes())
        digests: list[str | None] = [None] * self.world
        dist.all_gather_object(digests, digest.hexdigest())
        if len(set(digests)) > 1:
            raise RanksDisagree(f"{what}: the {self.world} ranks ended with different weights "
                                f"({', '.join(d[:8] for d in digests if d)}); nothing was stored")


def current() -> Ranks:
    """The running process group, or a single process when there is none."""
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size())
    return Ranks()


def launched() -> bool:
    """Started by torchrun or accelerate launch with more than one process (they set WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def start(gpu: bool) -> tuple[Ranks, str]:
    """Join the group the launcher set up (its RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT): NCCL on
    GPUs, each process on the GPU of its LOCAL_RANK; gloo on CPU. Returns the ranks and this process's device."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = "cpu"
    if gpu:
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK {local_rank} but this node has {torch.cuda.device_count()} GPUs: "
                               f"launch at most that many processes per node (--nproc_per_node)")
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    if not dist.is_initialized():  # ranks wait for rank 0 while it waits for the store's lock
        dist.init_process_group(backend="nccl" if gpu else "gloo", timeout=timedelta(seconds=LOCK_TIMEOUT_S))
    return current(), device


def stop() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
