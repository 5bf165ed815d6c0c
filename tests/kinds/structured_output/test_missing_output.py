"""A structured card's rows must hold the gold object in `output`: a misspelt column (`outptu`) is named as the
closest one, like every other column the card reads (it was listed among the row's columns without a hint)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from loragate.card.settings import CardError
from loragate.tasks.card_task import CardTask
from tests.kinds.structured_output.booking import booking, write_project


def test_a_misspelt_output_column_names_the_closest_column(tmp_path: Path) -> None:
    write_project(tmp_path)
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps({"text": f"booking {i}", "outptu": booking()}) + "\n"
                                                 for i in range(10)))
    with pytest.raises(CardError, match=re.escape(
            "rows.jsonl:1: no field 'output' (the gold object) (did you mean 'outptu'?); the row has the columns "
            "['outptu', 'text']: add the column, or map one with data.columns: {output: <column>}")):
        CardTask(tmp_path / "card.yaml").load_splits()
