"""Two processes that need the same adapter at the same moment: one trains, the other waits and loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

WORKER = """
import json, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from loragate.card.options import RunOptions
from loragate.run.adapter import prepare_adapter
from loragate.run.steps import fit_inputs, prepare_base
from loragate.tasks import get_task

root, start = Path(sys.argv[1]), float(sys.argv[2])
options = RunOptions(store_root=root / "adapters", cache=root / "cache", progress=False)
task = get_task("iris")
splits = task.load_splits()
base = prepare_base(task, "tiny", splits, options)
task.card, splits, inputs = fit_inputs(task, "tiny", splits, base)  # the card's max_length: auto, resolved
time.sleep(max(0.0, start - time.time()))  # both workers ask for the adapter at the same instant
_, entry, manifest, trained = prepare_adapter(task, "tiny", base, splits, options, inputs)
print(json.dumps({"trained": trained is not None, "entry": str(entry), "sha": manifest.adapter_sha256}))
"""


@pytest.mark.slow
def test_two_workers_train_the_same_key_once(tmp_path: Path) -> None:
    start = time.time() + 25  # after both have imported torch and built the base, even on a busy machine
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path), str(start)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=240)
        assert worker.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert time.time() > start, "a worker finished before the common start: the test did not race them"
    assert sorted(r["trained"] for r in results) == [False, True], f"expected one trainer and one loader: {results}"
    assert results[0]["entry"] == results[1]["entry"] and results[0]["sha"] == results[1]["sha"], results
    entries = [p for p in (tmp_path / "adapters" / "iris" / "tiny").iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1, entries
