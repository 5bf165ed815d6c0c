"""Mixed-adapter batches: one PeftModel holding several candidate adapters answers each prompt once per candidate in
the same batch, PEFT's `adapter_names=` naming each row's adapter ("__base__": none, the base alone).

A mixed model (`MixedAdapters`) answers a split's rows each repeated once per candidate, in the candidates' order
(`interleave`): row r is candidate r % N's copy of the split's row r // N. A batch call site passes
`row_adapters(model, rows)` with the indices of its batch's rows (nothing for a plain model) and cuts its batches at
batch_size x `candidates(model)` rows. Length-sorted batching sorts stably, so a mixed batch holds the prompts of one
candidate's batch alone, each once per candidate, padded to the same width. On CPU each row then computes exactly what
it would alone (tests/run/test_mixed.py compares every kind bit for bit); on a GPU a batch N times larger may run other
kernels, which can move logits in their last bits, as any other batch size does (steps.predict's halving).

PEFT's mixed forward gathers each adapter's rows at every LoRA layer. On CPU, where the arithmetic is the same either
way, one pass of 8 candidates is about as fast as 8 predictions one after another (faster with more candidates, whose
per-call costs it shares); it pays off where one candidate's batch leaves the device idle (a GPU).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # the engine imports this module, and `python -m loragate merge` the engine: no peft there
    from peft import PeftModel

T = TypeVar("T")
BASE = "__base__"  # PEFT's name for a row answered by the base alone


class UnmixedCall(RuntimeError):
    """A forward or generate call on a MixedAdapters that named no row's adapter: the calling code cannot batch
    candidates mixed (a project's kind that does not pass `row_adapters`)."""


class MixedAdapters:
    """A PeftModel holding every adapter in `names`, whose rows each name their adapter (the module docstring's layout).
    Its attributes are the model's; a forward or generate call without `adapter_names` is refused (UnmixedCall), since
    the model would answer every row with its active adapter."""

    def __init__(self, model: PeftModel, names: Sequence[str]):
        self.model, self.names = model, list(names)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **self.named(kwargs))

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        return self.model.generate(*args, **self.named(kwargs))

    def named(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if "adapter_names" not in kwargs:
            raise UnmixedCall(f"a batch call on {len(self.names)} mixed adapters names no row's adapter: pass "
                              f"row_adapters(model, rows) (loragate.inference.mixed_batches) at the call site")
        return kwargs


def candidates(model: object) -> int:
    """How many times a mixed model answers each row; 1 for a plain model."""
    return len(model.names) if isinstance(model, MixedAdapters) else 1


def row_adapters(model: object, rows: Iterable[int]) -> dict[str, list[str]]:
    """The keyword a batch call passes: PEFT's adapter_names of `rows` (indices into the rows its caller was given)
    for a mixed model; nothing for a plain one."""
    if not isinstance(model, MixedAdapters):
        return {}
    return {"adapter_names": [model.names[row % len(model.names)] for row in rows]}


def interleave(values: Sequence[T], count: int) -> list[T]:
    """Each of `values` `count` times in a row: a split's rows as a mixed model of `count` candidates answers them."""
    return [value for value in values for _ in range(count)]


def split_rows(model: object, values: Sequence[T]) -> list[list[T]]:
    """Per candidate of `model`, in its order, its rows of `values` (what a mixed model answered); `[values]` for a
    plain model."""
    count = candidates(model)
    return [list(values[index::count]) for index in range(count)]


def join_rows(per_candidate: Sequence[Sequence[T]]) -> list[T]:
    """`split_rows` undone: each candidate's rows, interleaved again."""
    return [value for row in zip(*per_candidate, strict=True) for value in row]
