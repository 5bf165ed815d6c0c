"""Bring your own adapter, as a user does it (examples/bring_your_own_adapter/): export Iris's tiny-tier data with
`python -m loragate export-data`, train an adapter on it with plain transformers + peft (the example's script, no
loragate), and gate it with the command format.md gives, each a subprocess in a directory of its own: it passes."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "bring_your_own_adapter" / "train_with_peft.py"


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"}
    result = subprocess.run(args, cwd=cwd, env={**env, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
                            capture_output=True, text=True)
    assert result.returncode == 0, f"{shlex.join(args)}:\n{result.stdout[-4000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [[], ["--set", "chat_template=true", "--set", 'target_template="{label}"']],
                         ids=["plain", "chat_template"])
def test_an_adapter_trained_with_plain_peft_on_the_exported_data_passes_the_gate(tmp_path: Path,
                                                                                   overrides: list[str]) -> None:
    """Chat-formatted too: the script trains on the exported prompts as they are, and format.md's command carries the
    export's --set, so the gate evaluates the same prompts."""
    run([sys.executable, "-m", "loragate", "export-data", "--task", "iris", "--tier", "tiny", "--out", "data",
         *overrides], tmp_path)
    run([sys.executable, str(SCRIPT), "--data", "data", "--base", "data/base", "--out", "my-iris-adapter"], tmp_path)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # the user's directory is pytest's rootdir
    text = (tmp_path / "data" / "format.md").read_text()
    (command,) = [line for line in text.splitlines() if line.startswith("pytest -m smoke --task iris")]
    args = [arg.replace("PATH/TO/ADAPTER", "my-iris-adapter") for arg in shlex.split(command)[1:]]
    result = run([sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider"], tmp_path)
    assert f"iris/tiny: PASS  base {tmp_path.resolve() / 'data' / 'base'}, adapter my-iris-adapter" in result.stdout, \
        result.stdout[-3000:]
    assert "failed" not in result.stdout.splitlines()[-1], result.stdout[-1000:]
