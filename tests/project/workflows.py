"""Checks of our GitHub workflows that zizmor does not make; tests/project/test_workflows.py runs both on every
workflow.

zizmor (`zizmor --offline`, its default persona, medium severity and up) already fails on a pull_request_target
or workflow_run trigger, `${{ inputs.x }}` spliced into a `run:` script, a workflow without `permissions:`, an
action not pinned to a commit, and checkout credentials left where an artifact can pick them up. It stays
silent on the four mistakes below, which would hand our self-hosted GPU runner or its token to strangers:

- a pull request trigger on a workflow with a self-hosted job: `pull_request` and its review events run the
  PR's merge commit, so a fork's code would run on the runner (zizmor flags self-hosted runners only in its
  auditor persona, and then every one);
- a step that prints a secret (`echo $HF_TOKEN`): zizmor has no such audit;
- write permissions for a self-hosted job (zizmor reports them only in its auditor persona);
- an action pinned to a commit without its version in a comment (`@<sha>  # v4.4.0`): zizmor checks the
  comment only online, and a bare SHA tells a reviewer nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

PR_TRIGGERS = {"pull_request", "pull_request_review", "pull_request_review_comment"}
ECHOED_SECRET = re.compile(r"(echo|printf|print)\b[^\n]*(\$\{\{\s*secrets\.|\$HF_TOKEN|\$\{HF_TOKEN)")
PINNED_USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<action>\S+@[0-9a-f]{40})(?P<rest>.*)$")
VERSION_COMMENT = re.compile(r"#\s*v\d+(\.\d+)*\b")


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


def grants_write(permissions: object) -> bool:
    if isinstance(permissions, str):
        return permissions == "write-all"
    return isinstance(permissions, dict) and "write" in permissions.values()


def unnamed_pins(path: Path) -> list[str]:
    """`uses:` lines pinned to a commit SHA with no `# vX.Y.Z` comment, read from the text (YAML drops comments)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [f"{path}:{number}: {match['action']} needs its release in a comment, e.g. `  # v4.4.0`"
            for number, line in enumerate(lines, start=1)
            if (match := PINNED_USES.match(line)) and not VERSION_COMMENT.search(match["rest"])]


def findings(path: Path) -> list[str]:
    """What zizmor misses and is unsafe in the workflow at `path`; empty when nothing is."""
    workflow = load_workflow(path)
    problems = []
    hosted = self_hosted_jobs(workflow)
    pr = sorted(triggers(workflow) & PR_TRIGGERS)
    if hosted and pr:
        problems.append(f"{path}: jobs {hosted} run on a self-hosted runner and the workflow triggers on {pr}: "
                        f"a fork's pull request would run on it; trigger on release/tags/workflow_dispatch only")
    for name, job in (workflow.get("jobs") or {}).items():
        for number, step in enumerate(job.get("steps") or [], start=1):
            if ECHOED_SECRET.search(step.get("run") or ""):
                problems.append(f"{path}: job {name} step {number} prints a secret; pass it as env and never echo it")
        if name in hosted and (grants_write(workflow.get("permissions")) or grants_write(job.get("permissions"))):
            problems.append(f"{path}: self-hosted job {name} gets write permissions; give it `contents: read`")
    return problems + unnamed_pins(path)
