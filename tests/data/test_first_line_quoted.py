"""An error that quotes a file's first line read as a header quotes it in the file's order (it was sorted, so the
line it showed was not the file's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loragate.card.settings import CardError
from loragate.tasks.card_task import CardTask

CARD = """name: news
description: topics
kind: generative_classification
labels: {1: World, 2: Sports}
prompt_template: "{title}: {description}"
data: {file: news.csv, split: {test: 0.2, eval: 0.2}}
tiers:
  tiny:
    base_model: tiny
    lora: {r: 4, alpha: 8, target_modules: [q_proj]}
    train: {epochs: 1, batch_size: 4, lr: 0.001}
gates: {min_delta: {accuracy: 0.1}}
"""


def test_a_template_field_missing_under_a_data_header_quotes_the_first_line_as_it_reads(tmp_path: Path) -> None:
    """No header row and no data.header: false: the first line (label 2, then title, then description) is quoted."""
    (tmp_path / "card.yaml").write_text(CARD)
    (tmp_path / "news.csv").write_text("".join(f"{2 - i % 2},Zebra title {i},About item {i} here\n" for i in range(20)))
    with pytest.raises(CardError) as raised:
        CardTask(tmp_path / "card.yaml").load_splits()
    assert "read as its header, is ['2', 'Zebra title 0', 'About item 0 here'], which reads like data" in \
        str(raised.value), raised.value
