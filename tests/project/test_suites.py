"""Every test of the gate (suites/) runs once per gated task, through a fixture that names the case: a test that
reads no case would run in every project that installs loragate, whatever it gates (Iris's own binning tests ran in
projects without Iris: issue 32, point 3). A built-in task's own tests belong in tests/tasks/."""

from __future__ import annotations

import ast
from pathlib import Path

SUITES = Path(__file__).resolve().parents[2] / "suites"
CASE_FIXTURES = {"task_run", "task_name", "gate_case", "read_back"}  # read_back: the GGUF suite's case fixture


def test_every_gate_test_reads_a_gated_case() -> None:
    free = [f"{path.name}::{node.name}" for path in sorted(SUITES.glob("test_*.py"))
            for node in ast.parse(path.read_text()).body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
            and not CASE_FIXTURES & {arg.arg for arg in node.args.args}]
    assert not free, f"gate tests that read no gated case, so run in every project: {free}; take a case fixture " \
                     f"({', '.join(sorted(CASE_FIXTURES))}) or move them to tests/"
