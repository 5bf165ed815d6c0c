"""Issue 31, a structured card's output schema that cannot be used: with --constrain a wrong module, a module that
raises or calls sys.exit, or a field with no JSON Schema ended in pytest's INTERNALERROR (exit 3), and a module
calling sys.exit(0) without --constrain in 2,529 lines of pytest-internal assertions. Now each is a start-up error
(exit 4) naming the card, its structured.output_schema and the problem, before any model loads."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from loragate.card.settings import CardError, TaskCard
from loragate.kinds.structured_output.schema import declared_schema, load_schema

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "json_extraction"
SPEC = "task orders: structured.output_schema 'order_schema:Order'"
NO_JSON_SCHEMA = '''
from pydantic import BaseModel, ConfigDict


class Address:
    """A plain class: pydantic validates it by isinstance, and it has no JSON Schema."""


class Order(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    customer: str
    address: Address
'''


def write_project(root: Path, schema: str | None = None, spec: str = "order_schema:Order") -> Path:
    """The json_extraction example (no adapters) in `root`, its order_schema.py replaced by `schema` and its card's
    output_schema by `spec`; returns the card."""
    shutil.copytree(EXAMPLE, root, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("adapters", "reports", ".loragate"))
    if schema is not None:
        (root / "order_schema.py").write_text(schema)
    card = root / "tasks" / "orders.yaml"
    card.write_text(card.read_text().replace("output_schema: order_schema:Order", f"output_schema: {spec}"))
    return card


def test_a_schema_module_that_exits_is_a_card_error(tmp_path: Path) -> None:
    (tmp_path / "exits.py").write_text("import sys\n\nsys.exit(0)\n")
    with pytest.raises(CardError, match=r"^task t: structured.output_schema 'exits:Order': importing .*exits\.py "
                                        r"failed: SystemExit: 0; fix the module"):
        load_schema("exits:Order", tmp_path, "t")


def test_a_field_with_no_json_schema_is_named_when_the_card_is_constrained(tmp_path: Path) -> None:
    card = TaskCard.from_yaml(write_project(tmp_path, NO_JSON_SCHEMA))
    assert declared_schema(card, constrained=False).__name__ == "Order", "free decoding needs no JSON Schema"
    with pytest.raises(CardError, match=rf"^{SPEC}: Order has no JSON Schema, which constrained decoding needs: field "
                                        rf"address has none \(Cannot generate a JsonSchema"):
        declared_schema(card, constrained=True)


SCHEMA_PROBLEMS = {
    "exits": ("import sys\n\nsys.exit(0)\n", "order_schema:Order", (),
              "importing *order_schema.py failed: SystemExit: 0"),
    "raises": ("raise RuntimeError('no orders today')\n", "order_schema:Order", ("--constrain",),
               "importing *order_schema.py failed: RuntimeError: no orders today"),
    "wrong module": (None, "order_schemas:Order", ("--constrain",), "module 'order_schemas' is not importable"),
    "no JSON Schema": (NO_JSON_SCHEMA, "order_schema:Order", ("--constrain",), "field address has none"),
}


@pytest.mark.slow
@pytest.mark.parametrize("problem", list(SCHEMA_PROBLEMS))
def test_a_schema_problem_is_a_usage_error_at_start_up(tmp_path: Path, problem: str) -> None:
    schema, spec, flags, message = SCHEMA_PROBLEMS[problem]
    write_project(tmp_path, schema, spec)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    result = subprocess.run([sys.executable, "-m", "pytest", "-m", "smoke", "-p", "no:cacheprovider", "--collect-only",
                             "-q", *flags], cwd=tmp_path, env={**env, "HF_HUB_OFFLINE": "1"}, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, (result.stdout + result.stderr)[-3000:]
    where = SPEC.replace("order_schema:Order", spec)
    assert f"ERROR: {where}: " in result.stderr and all(part in result.stderr for part in message.split("*")), \
        result.stderr[-3000:]
    assert "INTERNALERROR" not in result.stdout + result.stderr
