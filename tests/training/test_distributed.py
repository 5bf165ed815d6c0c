"""Data-parallel training (loragate.training.distributed): the same adapter as one process, one store entry, and every
rank stopping together when one rank fails. Real torchrun runs of 2 processes on gloo (CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from loragate.tasks.iris import bundled_rows
from loragate.training.distributed import Ranks

ROOT = Path(__file__).resolve().parents[2]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def launch(args: list[str], timeout: int = 300,
           launcher: tuple[str, ...] = tuple(TORCHRUN)) -> subprocess.CompletedProcess:
    """Run under torchrun (or `launcher`) with one thread per process (2 processes on a 2-core machine)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([*launcher, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict]]:
    """Per scenario of tests/training/distributed_scenarios.py, each rank's record; a hang fails by the timeout."""
    out = tmp_path_factory.mktemp("scenarios")
    result = launch(["tests/training/distributed_scenarios.py", str(out)], timeout=180)
    assert result.returncode == 0, f"torchrun exited {result.returncode}\n{result.stderr[-3000:]}"
    ranks = [json.loads((out / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    return {name: [ranks[0][name], ranks[1][name]] for name in ranks[0]}


def test_share_deals_every_row_of_a_step_once_in_micro_batches_of_at_most_batch_size() -> None:
    step = [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]  # grad_accum 3, batch 4, a short last batch
    shares = [Ranks(rank, 3).share(step, 4) for rank in range(3)]
    assert sorted(i for share in shares for batch in share for i in batch) == list(range(10))
    assert all(len(batch) <= 4 for share in shares for batch in share)
    assert [sum(map(len, share)) for share in shares] == [4, 3, 3], "rows not spread evenly over ranks"
    assert Ranks().share(step, 4) is step, "a single process must train exactly the batches it was given"


def test_share_splits_a_step_of_one_row_micro_batches_over_ranks() -> None:
    """iris full trains 1 row x 8 micro-batches per step: each of 2 ranks must take 4, not 8 and 0."""
    step = [[index] for index in range(8)]
    assert [Ranks(rank, 2).share(step, 1) for rank in (0, 1)] == [[[0], [2], [4], [6]], [[1], [3], [5], [7]]]


def test_share_leaves_a_rank_empty_when_a_step_has_fewer_rows_than_ranks() -> None:
    assert [Ranks(rank, 4).share([[7, 9]], 8) for rank in range(4)] == [[[7]], [[9]], [], []]


@pytest.mark.slow
def test_data_parallel_training_equals_one_process(scenarios: dict[str, list[dict]]) -> None:
    """2 ranks, batch 1 x grad_accum 4, 22 examples (a last step that leaves one rank a single row): the loss
    curve and the weights of one process, up to float summation order."""
    records = scenarios["train_both"]
    for rank, record in enumerate(records):
        assert "ok" in record, f"rank {rank}: {record.get('traceback')}"
        parallel, single = record["ok"]["parallel"], record["ok"]["single"]
        assert parallel["answer_tokens"] == single["answer_tokens"] == 44, "not every example counted once per epoch"
        assert parallel["loss_curve"] == pytest.approx(single["loss_curve"], abs=1e-6)
        for got, want in zip(parallel["weights"], single["weights"]):
            assert got == pytest.approx(want, abs=1e-6), f"rank {rank}: weights differ from one process"
    assert records[0]["ok"]["parallel"]["weights"] == records[1]["ok"]["parallel"]["weights"], "ranks drifted apart"


@pytest.mark.slow
def test_a_non_finite_loss_on_one_rank_stops_every_rank(scenarios: dict[str, list[dict]]) -> None:
    """Rank 1 alone sees NaN: rank 0 must not wait for it forever, and neither may step on a NaN gradient."""
    for rank, record in enumerate(scenarios["nan_on_rank_1"]):
        assert record.get("error") == "TrainingDiverged", f"rank {rank}: {record}"
        assert "loss became nan at optimizer step 1" in record["message"]


@pytest.mark.slow
def test_a_failure_of_the_main_rank_reaches_every_rank(scenarios: dict[str, list[dict]]) -> None:
    """Rank 0 writes the store; when it fails, the others must fail with its reason, not hang."""
    zero, one = scenarios["main_rank_fails"]
    assert zero.get("error") == "OSError" and "No space left" in zero["message"], zero
    assert one.get("error") == "RanksDisagree", one
    assert "rank 0 failed: OSError" in one["message"] and "No space left" in one["message"], one


@pytest.mark.slow
def test_ranks_that_end_with_different_weights_are_an_error(scenarios: dict[str, list[dict]]) -> None:
    for rank, record in enumerate(scenarios["ranks_drift"]):
        assert record.get("error") == "RanksDisagree", f"rank {rank}: {record}"
        assert "2 ranks ended with different weights" in record["message"]


@pytest.mark.slow
def test_train_fixtures_under_torchrun_stores_the_one_process_adapter_once(tmp_path: Path) -> None:
    """The CLI end to end: `torchrun --nproc_per_node 2 train_fixtures.py --task iris` writes one entry under
    the key one process writes, with the same weights, and logs once. The parallel run reads Iris as a Hugging
    Face dataset directory (rank 0 converts it), which gives the shipped data and so the same key."""
    parallel, single = tmp_path / "parallel", tmp_path / "single"
    dataset = tmp_path / "iris-dataset"
    dataset.mkdir()
    rows = bundled_rows(["setosa", "versicolor", "virginica"])
    (dataset / "train.jsonl").write_text("".join(json.dumps({**features, "species": species}) + "\n"
                                                 for _, features, species in rows))
    result = launch(["train_fixtures.py", "--task", "iris", "--store", str(parallel), "--data", str(dataset)])
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("== iris/tiny") == 1, f"the log should come from rank 0 only:\n{result.stdout}"
    assert result.stderr.count("iris/tiny: trained ") == 1, f"progress should come from rank 0 only:\n{result.stderr}"
    assert "2 data-parallel processes" in result.stdout
    alone = launch(["train_fixtures.py", "--task", "iris", "--store", str(single)], launcher=(sys.executable,))
    assert alone.returncode == 0, alone.stderr[-3000:]
    entries = [path for path in (parallel / "iris" / "tiny").iterdir() if not path.name.startswith(".lock")]
    (single_entry,) = (single / "iris" / "tiny").glob("[0-9a-f]*")
    assert [entry.name for entry in entries] == [single_entry.name], f"entries {entries}, temp dirs left behind?"
    got, want = (load_file(entry / "adapter_model.safetensors") for entry in (entries[0], single_entry))
    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=1e-5, msg=lambda m: f"{name}: {m}")
    manifests = [json.loads((entry / "manifest.json").read_text()) for entry in (entries[0], single_entry)]
    assert manifests[0]["metrics_at_train"] == manifests[1]["metrics_at_train"]
    assert [m["data_parallel_processes"] for m in manifests] == [2, 1], "the manifest must say how it was trained"
