"""Checks of our GitHub workflows that zizmor does not make; tests/project/test_workflows.py runs both on every
workflow.

zizmor (`zizmor --offline`, its default persona, medium severity and up) already fails on a pull_request_target
or workflow_run trigger, `${{ inputs.x }}` spliced into a `run:` script, a workflow without `permissions:`, an
action not pinned to a commit, and checkout credentials left where an artifact can pick them up. It stays
silent on the mistakes below, which would hand our self-hosted GPU runner or its token to strangers:

- a job that may run on a self-hosted runner (a `self-hosted` label, a runner group, a `runs-on` expression a
  caller or a PR's copy of the workflow can point there, or a local reusable workflow with such a job) in a
  workflow with a pull request trigger, unless the job's `if:` refuses forks
  (`github.event.pull_request.head.repo.full_name == github.repository`): a fork's code would run on the
  runner. Under `pull_request` GitHub runs the PR's own copy of the workflow, which can drop the guard: only the
  repository settings in docs/ci.md stop that copy (zizmor flags self-hosted runners only in its auditor persona,
  and then every one);
- a venv created with `--system-site-packages` in a self-hosted job: it imports whatever an earlier job left in
  the runner user's site-packages, with the job's secrets in its environment;
- a step that prints a secret (`echo $HF_TOKEN`): zizmor has no such audit;
- write permissions for a self-hosted job (zizmor reports them only in its auditor persona);
- an action pinned to a commit without its version in a comment (`@<sha>  # v4.4.0`): zizmor checks the
  comment only online, and a bare SHA tells a reviewer nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

PR_TRIGGERS = {"pull_request", "pull_request_target", "pull_request_review", "pull_request_review_comment"}
ECHOED_SECRET = re.compile(r"(echo|printf|print)\b[^\n]*(\$\{\{\s*secrets\.|\$HF_TOKEN|\$\{HF_TOKEN)")
PINNED_USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<action>\S+@[0-9a-f]{40})(?P<rest>.*)$")
VERSION_COMMENT = re.compile(r"#\s*v\d+(\.\d+)*\b")
SHARED_SITE = re.compile(r"--system-site-packages\b|include-system-site-packages\s*=\s*true", re.IGNORECASE)
# conditions false for a pull request from a fork (GitHub's expression syntax, spaces normalised)
FORK_GUARDS = ("github.event.pull_request.head.repo.full_name == github.repository",
               "github.repository == github.event.pull_request.head.repo.full_name",
               "github.event.pull_request.head.repo.fork == false", "!github.event.pull_request.head.repo.fork")
EVENT_TEST = re.compile(r"^github\.event_name (?P<op>[!=]=) '(?P<event>\w+)'$")
SHELL_COMMENT = re.compile(r"(^|\s)#.*$", re.MULTILINE)


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


def may_run_self_hosted(job: dict) -> bool:
    """Whether the job's runner may be self-hosted: a `self-hosted` label, a runner group (where self-hosted
    runners live), or a `${{ }}` expression, which an input, a matrix or a PR's copy of the workflow can point at
    the GPU labels."""
    runs_on = job.get("runs-on", [])
    if isinstance(runs_on, dict):
        return "group" in runs_on or may_run_self_hosted({"runs-on": runs_on.get("labels", [])})
    labels = [runs_on] if isinstance(runs_on, str) else list(runs_on)
    return any(label == "self-hosted" or "${{" in str(label) for label in labels)


def self_hosted_jobs(workflow: dict, path: Path | None = None) -> list[str]:
    """Jobs that may run on a self-hosted runner; with `path`, also jobs calling a local reusable workflow
    (`uses: ./.github/workflows/x.yml`) that has one (a remote one cannot be read offline)."""
    def called(job: dict) -> bool:
        uses = str(job.get("uses", ""))
        if path is None or not uses.startswith("./"):
            return False
        callee = path.parents[2] / uses.split("@")[0]
        return callee.is_file() and bool(self_hosted_jobs(load_workflow(callee)))

    return [name for name, job in (workflow.get("jobs") or {}).items() if may_run_self_hosted(job) or called(job)]


def split_top(expression: str, operator: str) -> list[str]:
    """`expression` split at `operator` outside parentheses, each part without its outer parentheses (a condition
    quoting `(`, `)`, `&&` or `||` inside a string is not expected on a job)."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(expression):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and expression.startswith(operator, index):
            parts.append(expression[start:index])
            start = index + len(operator)
    parts.append(expression[start:])
    return [strip_parentheses(part) for part in parts]


def strip_parentheses(expression: str) -> str:
    """`(a || b)` -> `a || b`, but `(a) || (b)` stays whole: its first `(` closes before the end."""
    expression = expression.strip()
    while expression.startswith("(") and closing(expression) == len(expression) - 1:
        expression = expression[1:-1].strip()
    return expression


def closing(expression: str) -> int:
    """The index of the parenthesis that closes the one opening `expression`, -1 when none does."""
    depth = 0
    for index, char in enumerate(expression):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            return index
    return -1


def refuses_forks(condition: object, pr_triggers: set[str]) -> bool:
    """Whether a job-level `if:` is false for a pull request from a fork on each of `pr_triggers`."""
    text = re.sub(r"\s+", " ", str(condition or "")).strip()
    text = re.sub(r"^\$\{\{(.*)\}\}$", r"\1", text).replace('"', "'")
    return bool(text) and all(false_for_forks(text, event) for event in pr_triggers)


def false_for_forks(expression: str, event: str) -> bool:
    """Whether `expression` is false on a fork's pull request on `event`: `||` binds looser than `&&`; an atom is
    false when it is a fork guard or tests github.event_name against another event."""
    expression = strip_parentheses(expression)
    either = split_top(expression, "||")
    if len(either) > 1:
        return all(false_for_forks(part, event) for part in either)
    both = split_top(expression, "&&")
    if len(both) > 1:
        return any(false_for_forks(part, event) for part in both)
    match = EVENT_TEST.match(expression)
    return expression in FORK_GUARDS or bool(match and (match["event"] == event) == (match["op"] == "!="))


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


def runner(job: dict) -> str:
    """What a job names as its runner, for a finding: its `runs-on`, or the reusable workflow it calls."""
    return f"runs-on: {job['runs-on']}" if "runs-on" in job else f"uses: {job.get('uses')}"


def fork_reachable(path: Path, workflow: dict) -> list[str]:
    """Jobs a fork's pull request can put on a self-hosted runner: a PR trigger and no fork guard in the job's `if:`."""
    pr = triggers(workflow) & PR_TRIGGERS
    jobs = workflow.get("jobs") or {}
    return [f"{path}: job {name} may run on a self-hosted runner ({runner(jobs[name])}) and the workflow triggers "
            f"on {sorted(pr)}: a fork's pull request would run on it; refuse forks in the job's `if:` "
            f"(github.event.pull_request.head.repo.full_name == github.repository) or trigger on "
            f"release/tags/workflow_dispatch only, and set the repository up as docs/ci.md says"
            for name in self_hosted_jobs(workflow, path) if pr and not refuses_forks(jobs[name].get("if"), pr)]


def findings(path: Path) -> list[str]:
    """What zizmor misses and is unsafe in the workflow at `path`; empty when nothing is."""
    workflow = load_workflow(path)
    problems = fork_reachable(path, workflow)
    hosted = self_hosted_jobs(workflow, path)
    for name, job in (workflow.get("jobs") or {}).items():
        for number, step in enumerate(job.get("steps") or [], start=1):
            if ECHOED_SECRET.search(step.get("run") or ""):
                problems.append(f"{path}: job {name} step {number} prints a secret; pass it as env and never echo it")
            if name in hosted and SHARED_SITE.search(SHELL_COMMENT.sub("", step.get("run") or "")):
                problems.append(f"{path}: self-hosted job {name} step {number} creates a venv with "
                                f"--system-site-packages: it imports what an earlier job left in the runner user's "
                                f"site-packages; install torch into the job's own venv")
        if name in hosted and (grants_write(workflow.get("permissions")) or grants_write(job.get("permissions"))):
            problems.append(f"{path}: self-hosted job {name} gets write permissions; give it `contents: read`")
    return problems + unnamed_pins(path)
