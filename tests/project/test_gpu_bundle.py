"""What a lent GPU machine needs besides its image cannot drift from loragate's dependencies, bitsandbytes' wheel
is trimmed to what the image's torch loads, and benchmarks/gpu_run.sh installs carried wheels and leaves the check's
results where the device tool fetches them (all offline: the download itself needs the index and is not run here)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from benchmarks.gpu_bundle import (
    BUILT_HERE,
    CARRIED,
    LEFT_BEHIND,
    ON_THE_IMAGE,
    REPO,
    loragate_wheel,
    trim_bitsandbytes,
)
from loragate.plugin.discovery import tomllib  # tomli before Python 3.11


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_dependency_of_loragate_is_carried_on_the_image_or_left_behind_with_a_reason() -> None:
    requirements = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {normalized(re.match(r"[A-Za-z0-9_.-]+", requirement).group()) for requirement in requirements}
    accounted = {normalized(name) for name in (*CARRIED, *BUILT_HERE, *ON_THE_IMAGE, *LEFT_BEHIND)}
    missing = sorted(names - accounted)
    assert not missing, (f"pyproject.toml's dependencies {missing} are in no list of benchmarks/gpu_bundle.py: add "
                         f"each to CARRIED if the GPU image lacks it, else to ON_THE_IMAGE")


def test_bitsandbytes_keeps_its_python_and_the_cpu_and_cuda_13_libraries_only(tmp_path: Path) -> None:
    wheel = tmp_path / "bitsandbytes-0.50.2-py3-none-manylinux_2_24_x86_64.whl"
    kept = ["bitsandbytes/__init__.py", "bitsandbytes/libbitsandbytes_cpu.so",
            "bitsandbytes/libbitsandbytes_cuda130.so", "bitsandbytes/libbitsandbytes_cuda132.so"]
    dropped = ["bitsandbytes/libbitsandbytes_cuda118.so", "bitsandbytes/libbitsandbytes_cuda128.so",
               "bitsandbytes/libbitsandbytes_rocm72.so", "bitsandbytes/libbitsandbytes_xpu2025.so"]
    record = "bitsandbytes-0.50.2.dist-info/RECORD"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name in kept + dropped:
            archive.writestr(name, b"x" * 100)
        archive.writestr(record, "".join(f"{name},sha256=x,100\n" for name in kept + dropped) + f"{record},,\n")
    with zipfile.ZipFile(trim_bitsandbytes(wheel)) as archive:
        assert sorted(set(archive.namelist()) - {record}) == sorted(kept)
        rows = [row.split(",")[0] for row in archive.read(record).decode().splitlines()]
    assert rows == [*kept, record], rows


@pytest.mark.slow
def test_gpu_run_installs_the_carried_wheels_and_leaves_the_results_for_the_tool(tmp_path: Path) -> None:
    """The script as the GPU machine runs it, on a dry run of its first two steps, with loragate's own wheel carried:
    the check's JSON and table and an archive of its logs and step results land in $OUT."""
    wheels, out = tmp_path / "wheels", tmp_path / "out"
    wheels.mkdir(), out.mkdir()
    wheel = loragate_wheel(tmp_path / "build")
    wheel.rename(wheels / wheel.name)
    env = {**os.environ, "OUT": str(out), "GPU_RUN_WHEELS": str(wheels), "GPU_RUN_SITE": str(tmp_path / "site"),
           "GPU_RUN_CHECK": str(tmp_path / "check"),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}  # python3: this venv's
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_run.sh"), "--dry-run", "--only", "versions"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert list((tmp_path / "site").glob("loragate-*.dist-info")), "the carried wheel was not installed"
    assert sorted(path.name for path in out.iterdir()) == ["gpu-check-logs.tgz", "gpu-check.json", "gpu-check.md"]
    assert list(json.loads((out / "gpu-check.json").read_text())["steps"]) == ["versions", "base"]
    with tarfile.open(out / "gpu-check-logs.tgz") as archive:
        assert {"steps/versions.json", "steps/base.json"} <= set(archive.getnames()), archive.getnames()
