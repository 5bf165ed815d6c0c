"""The GitHub Actions workflows: valid against GitHub's schema, free of zizmor findings of medium severity or
more, free of what workflows checks beyond zizmor, and the release gate safe for a GPU runner."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.project.workflows import findings, load_workflow, self_hosted_jobs, triggers

WORKFLOWS = Path(__file__).resolve().parents[2] / ".github" / "workflows"
SMOKE, RELEASE = WORKFLOWS / "smoke.yml", WORKFLOWS / "release-gate.yml"
EVERY_WORKFLOW = sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])  # reusable ones included
README_COMMANDS = ("python3 -m venv .venv && . .venv/bin/activate",
                   'pip install torch==2.13.0 && pip install -e ".[test]"', "pytest -m smoke", "pytest tests")


def zizmor(path: Path) -> subprocess.CompletedProcess[str]:
    """zizmor offline on `path`: exit status 0 only without a finding of medium severity or more."""
    search = os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")])
    executable = shutil.which("zizmor", path=search)
    if executable is None:
        pytest.fail("zizmor is not installed: it is in the test extra, `pip install -e '.[test]'`")
    return subprocess.run([executable, "--offline", "--min-severity", "medium", "--no-progress", "--color", "never",
                           str(path)], capture_output=True, text=True, timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize("path", EVERY_WORKFLOW, ids=lambda p: p.name)
def test_workflow_is_valid_against_githubs_schema(path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                             str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("path", EVERY_WORKFLOW, ids=lambda p: p.name)
def test_zizmor_finds_nothing_of_medium_severity_or_more(path: Path) -> None:
    result = zizmor(path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", EVERY_WORKFLOW, ids=lambda p: p.name)
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
    with_token = [step["name"] for step in job["steps"] if "HF_TOKEN" in step.get("env", {})]
    assert "HF_TOKEN" not in job["env"] and len(with_token) == 2, f"HF_TOKEN only where models download: {with_token}"
    assert all(step["env"]["HF_TOKEN"] == "${{ secrets.HF_TOKEN }}" for step in job["steps"] if "env" in step)
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    assert "pytest -m full --gpu" in runs and "--junitxml=" in runs and "--benchmark-json=" in runs
    training = runs.find("torch.distributed.run --standalone --nproc_per_node")
    assert 0 <= training < runs.find("pytest -m full"), "full adapters are trained on every GPU before the gate"
    uploads = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert uploads and uploads[0]["if"] == "always()" and uploads[0]["with"]["path"] == "reports/"


def test_smoke_workflow_runs_the_readme_commands() -> None:
    readme = (WORKFLOWS.parents[1] / "README.md").read_text()
    runs = "\n".join(step.get("run", "") for step in load_workflow(SMOKE)["jobs"]["smoke"]["steps"])
    for command in README_COMMANDS:
        assert command in readme and command in runs, command
    assert not self_hosted_jobs(load_workflow(SMOKE))


def gate_step(workflow: dict, uses: str) -> dict:
    return next(step for step in workflow["jobs"]["gate"]["steps"] if str(step.get("uses", "")).startswith(uses))


def append_to_gate_script(line: str) -> Callable[[dict], None]:
    def mutate(workflow: dict) -> None:
        workflow["jobs"]["gate"]["steps"][-2]["run"] += line + "\n"
    return mutate


def add_trigger(name: str) -> Callable[[dict], None]:
    return lambda workflow: workflow["on"].update({name: {}})


def checkout_pr_head(workflow: dict) -> None:
    workflow["on"]["pull_request_target"] = {}
    gate_step(workflow, "actions/checkout")["with"]["ref"] = "${{ github.event.pull_request.head.sha }}"


def unpin_checkout(workflow: dict) -> None:
    gate_step(workflow, "actions/checkout")["uses"] = "actions/checkout@v4"


def persist_credentials(workflow: dict) -> None:
    del gate_step(workflow, "actions/checkout")["with"]


def mutated_release(tmp_path: Path, mutate: Callable[[dict], None]) -> Path:
    workflow = load_workflow(RELEASE)
    mutate(workflow)
    path = tmp_path / "release-gate.yml"
    path.write_text(yaml.safe_dump(workflow, sort_keys=False))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("mutate, audit", [
    (add_trigger("pull_request_target"), "dangerous-triggers"),
    (checkout_pr_head, "dangerous-triggers"),
    (append_to_gate_script("pytest -m full --gpu --data ${{ inputs.data }}"), "template-injection"),
    (lambda workflow: workflow.pop("permissions"), "excessive-permissions"),
    (unpin_checkout, "unpinned-uses"),
    (persist_credentials, "artipacked"),
], ids=["pull_request_target", "pr-head-checkout", "spliced-input", "no-permissions", "unpinned", "credentials"])
def test_zizmor_fails_unsafe_release_workflows(tmp_path: Path, mutate, audit: str) -> None:
    """What workflows leaves to zizmor, zizmor catches at medium severity or more."""
    result = zizmor(mutated_release(tmp_path, mutate))
    assert result.returncode != 0 and f"[{audit}]" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("mutate, message", [
    (add_trigger("pull_request"), "a fork's pull request would run on it"),
    (add_trigger("pull_request_review"), "a fork's pull request would run on it"),
    (append_to_gate_script("echo $HF_TOKEN"), "prints a secret"),
    (append_to_gate_script("printf '%s' '${{ secrets.HF_TOKEN }}'"), "prints a secret"),
    (lambda workflow: workflow.update(permissions="write-all"), "self-hosted job gate gets write permissions"),
    (lambda workflow: workflow["jobs"]["gate"].update(permissions={"contents": "write"}),
     "self-hosted job gate gets write permissions"),
], ids=["pull_request", "pull_request_review", "echo", "printf", "write-all", "job-write"])
def test_lint_catches_what_zizmor_misses(tmp_path: Path, mutate, message: str) -> None:
    bad = findings(mutated_release(tmp_path, mutate))
    assert any(message in finding for finding in bad), bad


def test_lint_wants_the_release_of_a_pinned_action_in_a_comment(tmp_path: Path) -> None:
    bare = tmp_path / "release-gate.yml"
    bare.write_text(RELEASE.read_text().replace("  # v4.4.0", ""))
    assert [finding.split(": ", 1)[1] for finding in findings(bare)] == [  # one per checkout: the gate's, the merge's
        "actions/checkout@11d5960a326750d5838078e36cf38b85af677262 needs its release in a comment, e.g. `  # v4.4.0`"
    ] * RELEASE.read_text().count("  # v4.4.0")


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


def test_release_gate_installs_its_cuda_torch_into_its_own_venv() -> None:
    """The venv sees no site-packages outside it (what an earlier job on the runner left there is never imported
    with HF_TOKEN set), and a step proves it, and that its torch sees a GPU, before anything is trained."""
    job = load_workflow(RELEASE)["jobs"]["gate"]
    runs = [step.get("run", "") for step in job["steps"]]
    install = next(run for run in runs if "python3 -m venv" in run)
    assert "python3 -m venv --clear .venv" in install and '.venv/bin/pip install "${torch_args[@]}"' in install
    assert install.index("torch_args") < install.index('pip install -e ".[test]"'), "torch before loragate"
    assert job["env"]["TORCH"] == "${{ inputs.torch || 'torch==2.13.0' }}" and job["env"]["PIP_NO_CACHE_DIR"] == "1"
    check = next(index for index, run in enumerate(runs) if "torch.cuda.is_available()" in run)
    assert "not p.startswith(sys.prefix)" in runs[check] and "site.ENABLE_USER_SITE" in runs[check]
    assert runs.index(install) < check < next(index for index, run in enumerate(runs) if "torch.distributed.run" in run)
    for trigger in ("workflow_dispatch", "workflow_call"):
        assert "torch" in load_workflow(RELEASE)["on"][trigger]["inputs"], trigger


def test_release_gate_refuses_a_callers_pull_request_event_before_checkout() -> None:
    """Called (workflow_call) from a project's pull-request workflow, the gate fails before the PR's code is checked
    out on the GPU runner, instead of running it or being skipped (a skipped required job counts as passed)."""
    first, second = load_workflow(RELEASE)["jobs"]["gate"]["steps"][:2]
    assert first["if"] == "startsWith(github.event_name, 'pull_request')" and "exit 1" in first["run"]
    assert str(second["uses"]).startswith("actions/checkout@")


def synthetic_workflow(tmp_path: Path, on: object, job: dict, name: str = "ci.yml") -> Path:
    """A workflow of one job under tmp_path/.github/workflows, with read-only permissions."""
    path = tmp_path / ".github" / "workflows" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    workflow = {"name": "ci", "on": on, "permissions": {"contents": "read"}, "jobs": {"job": job}}
    path.write_text(yaml.safe_dump(workflow, sort_keys=False))
    return path


GPU = ["self-hosted", "linux", "gpu"]
FORK_GUARD = "github.event.pull_request.head.repo.full_name == github.repository"
ON_FORK = "a fork's pull request would run on it"
SHARED_SITE = "creates a venv with --system-site-packages"


@pytest.mark.parametrize("on, job, message", [
    (["pull_request"], {"runs-on": GPU}, ON_FORK),
    ({"pull_request_target": {}}, {"runs-on": "self-hosted"}, ON_FORK),
    (["push", "pull_request"], {"runs-on": "${{ inputs.runner }}"}, ON_FORK),
    (["pull_request"], {"runs-on": "${{ matrix.runner }}", "strategy": {"matrix": {"runner": [GPU]}}}, ON_FORK),
    (["pull_request"], {"runs-on": {"group": "gpu-runners"}}, ON_FORK),
    (["pull_request"], {"runs-on": {"labels": GPU}}, ON_FORK),
    (["pull_request"], {"runs-on": GPU, "if": f"{FORK_GUARD} || true"}, ON_FORK),
    (["pull_request"], {"runs-on": GPU, "if": FORK_GUARD.replace("==", "!=")}, ON_FORK),
    (["pull_request", "pull_request_target"],
     {"runs-on": GPU, "if": f"github.event_name != 'pull_request' || {FORK_GUARD}"}, ON_FORK),
    (["pull_request"], {"runs-on": GPU, "if": f"{FORK_GUARD} && always() || always()"}, ON_FORK),
    (["release"], {"runs-on": GPU, "steps": [{"run": "python3 -m venv --system-site-packages .venv"}]}, SHARED_SITE),
    (["release"], {"runs-on": GPU, "steps": [{"run": "uv venv --system-site-packages"}]}, SHARED_SITE),
], ids=["pull_request", "pull_request_target", "runs-on-input", "runs-on-matrix", "runner-group", "group-labels",
        "guard-or-true", "guard-inverted", "event-name-escape", "precedence", "system-site", "uv-system-site"])
def test_lint_fails_a_self_hosted_job_a_fork_can_reach_or_taint(tmp_path: Path, on, job: dict, message: str) -> None:
    bad = findings(synthetic_workflow(tmp_path, on, job))
    assert any(message in finding for finding in bad), bad


@pytest.mark.parametrize("on, job", [
    (["pull_request"], {"runs-on": GPU, "if": FORK_GUARD}),
    (["pull_request"], {"runs-on": GPU, "if": "${{ !github.event.pull_request.head.repo.fork && always() }}"}),
    (["push", "pull_request"], {"runs-on": GPU, "if": f"github.event_name != 'pull_request' || ({FORK_GUARD})"}),
    (["push", "pull_request"], {"runs-on": GPU, "if": "${{ github.event_name == 'push' }}"}),
    (["pull_request"], {"runs-on": "ubuntu-latest", "steps": [{"run": "python3 -m venv --system-site-packages v"}]}),
    (["release"], {"runs-on": GPU, "steps": [{"run": "# never --system-site-packages\npython3 -m venv .venv"}]}),
], ids=["fork-guard", "not-fork-and", "event-name-or-guard", "push-only", "hosted-system-site", "comment"])
def test_lint_passes_a_guarded_or_hosted_job(tmp_path: Path, on, job: dict) -> None:
    assert findings(synthetic_workflow(tmp_path, on, job)) == []


def test_lint_follows_a_local_reusable_workflow_onto_the_gpu_runner(tmp_path: Path) -> None:
    """A pull-request workflow calling our release gate (`uses: ./.github/workflows/release-gate.yml`) puts the PR's
    code on the GPU runner as surely as a self-hosted job of its own."""
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / RELEASE.name).write_text(RELEASE.read_text())
    caller = synthetic_workflow(tmp_path, ["pull_request"], {"uses": f"./.github/workflows/{RELEASE.name}"})
    assert any(ON_FORK in finding and "uses: ./.github/workflows/" in finding for finding in findings(caller))


def test_lint_fails_a_prs_copy_of_smoke_pointed_at_the_gpu_runner(tmp_path: Path) -> None:
    """The attack of issue 31: a fork's PR edits smoke.yml (GitHub runs the PR's copy) to `runs-on: [self-hosted,
    linux, gpu]`. The lint refuses that file in this repository; only docs/ci.md's settings refuse a fork's copy."""
    workflow = load_workflow(SMOKE)
    workflow["jobs"]["smoke"]["runs-on"] = GPU
    path = tmp_path / SMOKE.name
    path.write_text(yaml.safe_dump(workflow, sort_keys=False))
    assert any(ON_FORK in finding and "job smoke" in finding for finding in findings(path)), findings(path)
