"""The examples under examples/ are projects of their own: each is copied into a temporary directory outside this
repository and gated there by `pytest -m smoke` in a subprocess, as its user runs it. One runs from the built wheel,
installed without dependencies into a fresh venv that sees this venv's packages, so package data the wheel lacks
(cards, suites, evaluate modules) fails it, where the editable checkout would hide it.

Each example commits its adapter store, so these runs load the adapter (about a minute each on 2 idle cores); a
change to the card, the data or the training code changes the adapter's key and the run trains a new one instead."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from benchmarks.gpu_bundle import loragate_wheel

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def gate_example(name: str, project: Path, python: str = sys.executable,
                 pythonpath: str | None = None) -> subprocess.CompletedProcess:
    """Copy examples/`name` to `project` and run `pytest -m smoke` there with `python`, as its README says (no --task:
    a project's own tasks replace the built-in ones by default); its PYTHONPATH is `pythonpath` (None: none, so
    loragate comes from what `python` has installed)."""
    shutil.copytree(EXAMPLES / name, project, ignore=shutil.ignore_patterns("reports", ".loragate", "__pycache__"))
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTHONPATH")}
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    return subprocess.run([python, "-m", "pytest", "-m", "smoke", "-p", "no:cacheprovider", "-rA"],
                          cwd=project, env={**env, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
                          capture_output=True, text=True)


def assert_gated(result: subprocess.CompletedProcess, project: Path, task: str, metric: str = "accuracy",
                 title: str = "accuracy") -> Path:
    """Exit 0, the PASS verdict and the base-vs-tuned table (its `title` row, the `metric` delta gate) of the project's
    task and no built-in task's, and report.json and report.md in the project's reports/. The report directory."""
    output = result.stdout[-4000:] + result.stderr[-3000:]
    assert result.returncode == 0, output
    assert "iris/tiny" not in result.stdout and "[iris-tiny]" not in result.stdout, "a built-in task was gated"
    assert f"{task}/tiny: PASS  base tiny:{task}, adapter adapters/{task}/tiny/" in result.stdout, output
    assert "loragate: base vs tuned" in result.stdout and f"  {title}  " in result.stdout, output
    assert f"gate ok   {metric} delta: base " in result.stdout, output
    (report,) = (project / "reports").iterdir()
    assert (report / "report.json").is_file() and (report / "report.md").is_file()
    assert f"report: {report / 'report.md'}" in result.stdout, output
    return report


def ran_suites_from(suites: Path, project: Path, result: subprocess.CompletedProcess) -> bool:
    """Whether the run collected the gate's suites from `suites`: pytest names a skip by its file, relative to the
    project (the card gates no subgroups, so that test skips)."""
    return f"SKIPPED [1] {os.path.relpath(suites, project)}/test_quality.py:" in result.stdout


@pytest.mark.slow
def test_the_csv_example_gates_in_its_own_directory(tmp_path: Path) -> None:
    """The editable checkout's loragate (this venv's), pointed at by PYTHONPATH as this test run is."""
    project = tmp_path / "csv_classification"
    result = gate_example("csv_classification", project, pythonpath=str(ROOT))
    assert_gated(result, project, "tickets")
    assert ran_suites_from(ROOT / "suites", project, result), result.stdout[-3000:]


@pytest.mark.slow
def test_the_json_example_gates_in_its_own_directory(tmp_path: Path) -> None:
    """A structured-output card and its pydantic schema at the project's root: strict validity, every field's exact
    match and the schema errors reach the table and report.json."""
    project = tmp_path / "json_extraction"
    result = gate_example("json_extraction", project, pythonpath=str(ROOT))
    report = assert_gated(result, project, "orders", "object_exact", "whole-object exact match")
    for row in ("  field 'city' exact  ", "  field micro F1  ", "  validity  "):
        assert row in result.stdout, result.stdout[-3000:]
    (run,) = json.loads((report / "report.json").read_text())["runs"]
    tuned, base = run["metrics"]["tuned"], run["metrics"]["base"]
    assert tuned["validity_rate"] >= 0.95 and set(tuned["field_exact"]) == {"customer", "item", "quantity", "city",
                                                                          "express", "tags"}
    assert base["schema_errors"], "the untrained base's outputs fail the schema, and the report says where"
    assert run["trivial_predictor"]["name"].startswith("constant object '{")


def venv_with(wheel: Path, venv: Path) -> str:
    """A fresh venv holding `wheel` (no dependencies) that sees this venv's packages through a .pth line; that line
    runs none of this venv's .pth files, so the editable install's finder stays off. Its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], check=True,
                          capture_output=True, text=True).stdout.strip()
    Path(site, "test_venv_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # --ignore-installed: pip would otherwise count the checkout's loragate (its loragate.egg-info, on sys.path from
    # the working directory or PYTHONPATH) as installed and install nothing
    subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
                    "--ignore-installed", "-q", str(wheel)], check=True, capture_output=True, text=True)
    return python


def package_files(package: Path) -> set[str]:
    """Every file of the package directory, relative to it; bytecode and hidden folders (a .hypothesis database that a
    test run started inside loragate/ leaves there) left out."""
    return {str(path.relative_to(package)) for path in package.rglob("*")
            if path.is_file() and not any(part == "__pycache__" or part.startswith(".")
                                          for part in path.relative_to(package).parts)}


@pytest.mark.slow
def test_the_built_wheel_gates_the_csv_example(tmp_path: Path) -> None:
    wheel = loragate_wheel(tmp_path / "build")
    venv = tmp_path / "venv"
    python = venv_with(wheel, venv)
    imported = subprocess.run([python, "-c", "import loragate; print(loragate.__file__)"], cwd=tmp_path,
                              env={key: value for key, value in os.environ.items() if key != "PYTHONPATH"},
                              check=True, capture_output=True, text=True).stdout.strip()
    assert Path(imported).is_relative_to(venv), f"loragate came from {imported}, not the wheel in {venv}"
    missing = package_files(ROOT / "loragate") - package_files(Path(imported).parent)
    assert not missing, f"the wheel lacks {sorted(missing)}: add them to [tool.setuptools.package-data]"
    project = tmp_path / "csv_classification"
    result = gate_example("csv_classification", project, python=python)
    assert_gated(result, project, "tickets")
    assert ran_suites_from(Path(imported).parent / "suites", project, result), result.stdout[-3000:]
