"""The GitHub Actions workflows: valid against GitHub's schema, and the release gate safe for a GPU runner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from loragate.workflows import findings, load_workflow, self_hosted_jobs, triggers

WORKFLOWS = Path(__file__).resolve().parents[1] / ".github" / "workflows"
SMOKE, RELEASE = WORKFLOWS / "smoke.yml", WORKFLOWS / "release-gate.yml"


@pytest.mark.parametrize("path", [SMOKE, RELEASE], ids=lambda p: p.name)
def test_workflow_is_valid_against_githubs_schema(path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                             str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", [SMOKE, RELEASE], ids=lambda p: p.name)
def test_workflow_has_no_unsafe_pattern(path: Path) -> None:
    assert findings(path) == []


def test_release_gate_runs_the_full_tier_on_the_gpu_runner_only_for_releases() -> None:
    workflow = load_workflow(RELEASE)
    assert triggers(workflow) == {"release", "push", "workflow_dispatch", "workflow_call"}
    assert set(workflow["on"]["push"]) == {"tags"}, "a branch push must not start the GPU gate"
    assert self_hosted_jobs(workflow) == ["gate"]
    job = workflow["jobs"]["gate"]
    assert {"self-hosted", "linux", "gpu"} <= set(job["runs-on"])
    assert workflow["concurrency"]["group"].startswith("release-gate-")
    assert job["env"]["HF_TOKEN"] == "${{ secrets.HF_TOKEN }}"
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    assert "pytest -m full --gpu" in runs and "--junitxml=" in runs and "--benchmark-json=" in runs
    training = runs.find("torch.distributed.run --standalone --nproc_per_node")
    assert 0 <= training < runs.find("pytest -m full"), "full adapters are trained on every GPU before the gate"
    uploads = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert uploads and uploads[0]["if"] == "always()" and uploads[0]["with"]["path"] == "reports/"


def test_smoke_workflow_runs_the_readme_commands() -> None:
    readme = (WORKFLOWS.parents[1] / "README.md").read_text()
    runs = "\n".join(step.get("run", "") for step in load_workflow(SMOKE)["jobs"]["smoke"]["steps"])
    for command in ("pytest -m smoke", "pytest tests"):
        assert command in readme and command in runs, command
    assert not self_hosted_jobs(load_workflow(SMOKE))


def add_trigger(workflow: dict, name: str) -> None:
    workflow["on"][name] = {}


def echo_token(workflow: dict, name: str) -> None:
    workflow["jobs"]["gate"]["steps"][-2]["run"] += "echo $HF_TOKEN\n"


def splice_input(workflow: dict, name: str) -> None:
    workflow["jobs"]["gate"]["steps"][-2]["run"] += "pytest -m full --gpu --data ${{ inputs.data }}\n"


def checkout_pr_head(workflow: dict, name: str) -> None:
    workflow["on"]["pull_request_target"] = {}
    workflow["jobs"]["gate"]["steps"][0]["with"] = {"ref": "${{ github.event.pull_request.head.sha }}"}


@pytest.mark.parametrize("mutate, name, message", [
    (add_trigger, "pull_request", "a fork's pull request would run on it"),
    (add_trigger, "pull_request_target", "a fork's pull request would run on it"),
    (echo_token, "", "prints a secret"),
    (checkout_pr_head, "", "checks out the PR head under pull_request_target"),
    (splice_input, "", "pastes user-controlled text into its script"),
])
def test_lint_catches_unsafe_release_workflows(tmp_path: Path, mutate, name: str, message: str) -> None:
    workflow = load_workflow(RELEASE)
    mutate(workflow, name)
    bad = tmp_path / "release-gate.yml"
    bad.write_text(yaml.safe_dump(workflow))
    assert any(message in finding for finding in findings(bad)), findings(bad)


@pytest.mark.parametrize("path, job", [(SMOKE, "smoke"), (RELEASE, "gate")], ids=["smoke.yml", "release-gate.yml"])
def test_a_project_calls_the_gate_with_its_own_tasks_directory(path: Path, job: str) -> None:
    """Reusable: a project's workflow calls the gate (workflow_call) with its tasks directory and its install
    command, which reach the scripts through the environment and the gate as --task-dir."""
    workflow = load_workflow(path)
    inputs = workflow["on"]["workflow_call"]["inputs"]
    assert {"install", "tasks-dir"} <= set(inputs) and inputs["install"]["default"] == ""
    env = workflow["jobs"][job]["env"]
    assert env["TASKS_DIR"] == "${{ inputs.tasks-dir }}" and env["INSTALL"] == "${{ inputs.install }}"
    runs = "\n".join(step.get("run", "") for step in workflow["jobs"][job]["steps"])
    assert '${TASKS_DIR:+--task-dir "$TASKS_DIR"}' in runs and 'pip install "${install_args[@]}"' in runs
