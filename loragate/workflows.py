"""Lint of the release-gate workflow for the GitHub Actions mistakes that hand a GPU runner to strangers.

A self-hosted runner must never run code from a fork's pull request: `pull_request` from forks runs the
fork's code there, and `pull_request_target` with a checkout of the PR head does so with the repo's secrets
(the classic "pwn request"). Secrets must reach steps as environment variables, never be echoed, and text a
user controls (dispatch inputs, event fields) reaches a script through the environment, never pasted into it:
`${{ inputs.x }}` inside `run:` is spliced into the shell source before it runs (script injection).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

PR_TRIGGERS = {"pull_request", "pull_request_target"}
ECHOED_SECRET = re.compile(r"(echo|printf|print)\b[^\n]*(\$\{\{\s*secrets\.|\$HF_TOKEN|\$\{HF_TOKEN)")
SPLICED_INPUT = re.compile(r"\$\{\{\s*(inputs\.|github\.event\.|github\.head_ref)")


def load_workflow(path: Path) -> dict:
    workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(workflow, dict):
        raise ValueError(f"{path}: not a YAML mapping")
    if True in workflow:  # YAML 1.1 reads the key `on` as the boolean true
        workflow["on"] = workflow.pop(True)
    return workflow


def triggers(workflow: dict) -> set[str]:
    on = workflow.get("on") or {}
    return {on} if isinstance(on, str) else set(on)


def self_hosted_jobs(workflow: dict) -> list[str]:
    def labels(job: dict) -> list[str]:
        runs_on = job.get("runs-on", [])
        return [runs_on] if isinstance(runs_on, str) else list(runs_on)

    return [name for name, job in (workflow.get("jobs") or {}).items() if "self-hosted" in labels(job)]


def findings(path: Path) -> list[str]:
    """What is unsafe in the workflow at `path`; empty when nothing is."""
    workflow = load_workflow(path)
    problems = []
    hosted = self_hosted_jobs(workflow)
    pr = sorted(triggers(workflow) & PR_TRIGGERS)
    if hosted and pr:
        problems.append(f"{path}: jobs {hosted} run on a self-hosted runner and the workflow triggers on {pr}: "
                        f"a fork's pull request would run on it; trigger on release/tags/workflow_dispatch only")
    for name, job in (workflow.get("jobs") or {}).items():
        for number, step in enumerate(job.get("steps") or [], start=1):
            run = step.get("run") or ""
            if ECHOED_SECRET.search(run):
                problems.append(f"{path}: job {name} step {number} prints a secret; pass it as env and never echo it")
            if SPLICED_INPUT.search(run):
                problems.append(f"{path}: job {name} step {number} pastes user-controlled text into its script "
                                f"(script injection); pass it through `env:` and quote the variable")
            ref = str((step.get("with") or {}).get("ref", ""))
            if "pull_request_target" in triggers(workflow) and "head" in ref:
                problems.append(f"{path}: job {name} step {number} checks out the PR head under "
                                f"pull_request_target: the fork's code would run with this repo's secrets")
    permissions = workflow.get("permissions")
    if hosted and (not isinstance(permissions, dict) or any(v == "write" for v in permissions.values())):
        problems.append(f"{path}: a self-hosted workflow needs explicit read-only `permissions:`, got {permissions!r}")
    return problems
