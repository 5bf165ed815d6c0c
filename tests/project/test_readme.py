"""The README's commands are what CI runs: `.ci/run` starts with them, in order, before anything else, and
installs nothing outside them (no apt, no sudo, no pip of its own), so CI tests the machine the README describes."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ("Install", "Run the gate", "Run the tests")


def readme_commands(readme: str) -> list[str]:
    """The command lines of the first bash block under each of SECTIONS, in order."""
    commands = []
    for title in SECTIONS:
        section = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", readme, re.M | re.S)
        assert section, f"README.md has no '## {title}' section"
        block = re.search(r"```bash\n(.*?)```", section.group(1), re.S)
        assert block, f"README.md '## {title}' has no ```bash block"
        commands += [line.strip() for line in block.group(1).splitlines() if line.strip()]
    return commands


def ci_commands(script: str) -> list[str]:
    """.ci/run's command lines, without comments, `set`, `cd`, and its checks (lines starting with `[` or
    `python -c`, which assert what the commands did)."""
    lines = [line.split("  #")[0].strip() for line in script.splitlines()]
    return [line for line in lines if line and not line.startswith(("#", "set ", "cd ", "[ ", "python -c "))]


def drift(readme: str, script: str) -> str | None:
    """Why `script` does not run the README's commands first and alone, or None."""
    wanted, ran = readme_commands(readme), ci_commands(script)
    if ran[: len(wanted)] != wanted:
        return f".ci/run starts with {ran[:len(wanted)]}, the README's commands are {wanted}"
    extra_installs = [line for line in ran if re.search(r"\b(apt-get|apt|sudo|dpkg)\b", line)
                      or (re.search(r"\bpip install\b", line) and line not in wanted)]
    if extra_installs:
        return f".ci/run installs outside the README: {extra_installs}"
    return None


def test_ci_runs_the_readme_commands_first_and_installs_nothing_else() -> None:
    assert drift((ROOT / "README.md").read_text(), (ROOT / ".ci" / "run").read_text()) is None


README = "## Install\n```bash\npython3 -m venv .venv\npip install -e .\n```\n" \
         "## Run the gate\n```bash\npytest -m smoke\n```\n" \
         "## Run the tests\n```bash\npytest tests\n```\n"


def test_drift_is_found() -> None:
    script = "set -e\npython3 -m venv .venv\npip install -e .\npytest -m smoke\npytest tests\npytest benchmarks\n"
    assert drift(README, script) is None
    assert "starts with" in drift(README, script.replace("pytest -m smoke", "pytest -m smoke -x"))
    assert "starts with" in drift(README, "apt-get install -y wordnet-base\n" + script)
    assert "installs outside" in drift(README, script + "sudo apt-get install foo\n")
    assert "installs outside" in drift(README, script + "pip install extra\n")
