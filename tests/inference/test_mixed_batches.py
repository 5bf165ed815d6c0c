"""Issue 34, point 2: the layout of a mixed model's rows (each row of a split once per candidate, in the candidates'
order) and the keyword each batch call passes; a call that names no row's adapter is refused, never answered by the
active adapter alone."""

from __future__ import annotations

import pytest

from loragate.inference.engine import length_batches
from loragate.inference.mixed_batches import (
    MixedAdapters,
    UnmixedCall,
    candidates,
    interleave,
    join_rows,
    row_adapters,
    split_rows,
)


class Recorder:
    """A stand-in for a PeftModel: records the keywords of each call."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.active_adapter = "a"

    def __call__(self, **kwargs: object) -> str:
        self.calls.append(kwargs)
        return "forward"

    def generate(self, **kwargs: object) -> str:
        self.calls.append(kwargs)
        return "generate"


def test_row_r_is_candidate_r_mod_n_and_a_plain_model_names_none() -> None:
    model = MixedAdapters(Recorder(), ["a", "b", "__base__"])  # type: ignore[arg-type]
    assert candidates(model) == 3 and candidates(Recorder()) == 1
    assert row_adapters(model, [0, 1, 2, 3, 7]) == {"adapter_names": ["a", "b", "__base__", "a", "b"]}
    assert row_adapters(Recorder(), [0, 1]) == {}, "a plain model gets no keyword"


def test_split_rows_undoes_interleave_per_candidate() -> None:
    model = MixedAdapters(Recorder(), ["a", "b"])  # type: ignore[arg-type]
    rows = interleave(["x", "y", "z"], 2)
    assert rows == ["x", "x", "y", "y", "z", "z"]
    assert split_rows(model, [f"{row}{index % 2}" for index, row in enumerate(rows)]) == [["x0", "y0", "z0"],
                                                                                          ["x1", "y1", "z1"]]
    assert join_rows([["x0", "y0"], ["x1", "y1"]]) == ["x0", "x1", "y0", "y1"]
    assert split_rows(Recorder(), ["x", "y"]) == [["x", "y"]]


def test_a_mixed_batch_holds_the_prompts_of_one_candidates_batch_each_once_per_candidate() -> None:
    """length_batches sorts stably: at batch_size x N rows, mixed batch i is batch i alone, each row N times."""
    lengths = [5, 3, 5, 4, 3, 5, 4]
    alone = length_batches(lengths, 3)
    mixed = length_batches(interleave(lengths, 2), 3 * 2)
    assert [[row // 2 for row in batch[::2]] for batch in mixed] == alone
    assert all(batch[1::2] == [row + 1 for row in batch[::2]] for batch in mixed)


def test_a_call_naming_no_rows_adapter_is_refused() -> None:
    inner = Recorder()
    model = MixedAdapters(inner, ["a", "b"])  # type: ignore[arg-type]
    assert model(input_ids=[1, 2], adapter_names=["a", "b"]) == "forward"
    assert model.generate(input_ids=[1, 2], adapter_names=["b", "a"]) == "generate"
    assert inner.calls[-1]["adapter_names"] == ["b", "a"]
    assert model.active_adapter == "a", "attributes are the model's"
    for call in (model, model.generate):
        with pytest.raises(UnmixedCall, match=r"names no row's adapter: pass row_adapters\(model, rows\)"):
            call(input_ids=[1, 2])
