"""Gold bookings, scored outputs and a project whose card declares the Booking schema (booking_schema.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from loragate.card.settings import TaskCard
from loragate.data.parsing import ParsedOutput
from loragate.kinds.structured_output.fields import FieldLayout, field_layout
from loragate.kinds.structured_output.schema import parse_object
from loragate.kinds.structured_output.scoring import StructuredMetrics, structured_metrics
from tests.kinds.structured_output.booking_schema import Booking


def booking(**changes: object) -> dict:
    """A gold booking as JSON, with `changes` applied (dotted keys reach into location)."""
    value: dict = {"guest": "Ada", "location": {"building": "B", "room": "12", "codes": ["x", "y"]},
                   "stops": ["Lisbon", "Porto", "Faro"], "badges": ["red"], "backup": None}
    for key, new in changes.items():
        outer, _, inner = key.partition(".")
        if inner:
            value[outer] = {**value[outer], inner: new}
        else:
            value[outer] = new
    return value


def text(value: dict) -> str:
    return json.dumps(value)


GOLD = Booking.model_validate(booking()).model_dump_json()


def score(outputs: list[str], fields: FieldLayout | None = None, gold: str = GOLD) -> StructuredMetrics:
    parsed: list[ParsedOutput] = [parse_object(output, Booking) for output in outputs]
    return structured_metrics([f"e{i}" for i in range(len(outputs))], [gold] * len(outputs), parsed, outputs,
                              fields or field_layout(Booking))


def write_project(root: Path, structured: str = '{output_schema: "booking_schema:Booking"}') -> TaskCard:
    """A project at `root` with booking_schema.py and a card whose structured block is `structured`."""
    (root / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    shutil.copy(Path(__file__).with_name("booking_schema.py"), root / "booking_schema.py")
    (root / "card.yaml").write_text(f"""
name: bookings
description: a booking as JSON
kind: structured_output
structured: {structured}
prompt_template: "Text: {{text}}\\nBooking:"
target_template: " {{output}}"
data: {{file: rows.jsonl, split: {{test: 0.2, eval: 0.2, seed: 0}}}}
tiers:
  tiny:
    base_model: tiny
    lora: {{r: 4, alpha: 8, target_modules: [q_proj]}}
    train: {{epochs: 1, batch_size: 8, lr: 1.0e-3}}
gates: {{min_delta: {{object_exact: 0.1}}}}
""")
    return TaskCard.from_yaml(root / "card.yaml")
