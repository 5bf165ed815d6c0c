"""What one run is asked to do, beside the card (device, base, adapter, data, store). The plugin and
train_fixtures.py build the same RunOptions and check their combinations with the same functions
(loragate.plugin.options), each raising OptionError as its own usage error, so the CLI and the gate cannot drift.
Nothing here imports torch at load time."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


class OptionError(ValueError):
    """A combination of options that cannot run; the message names the flags and the fix."""


@dataclass(frozen=True)
class RunOptions:
    device: str = "cpu"
    base_model: str | None = None  # overrides the card's base for the tier
    adapter: Path | None = None  # gate this adapter instead of the store's
    candidates: tuple[tuple[str, Path], ...] = ()  # --adapter given more than once: (name, directory) of each candidate
    pick_best: bool = False  # --pick-best: a task passes when one candidate passes (default: every candidate must)
    baseline_adapter: Path | None = None  # the last release's adapter: tuned must not regress against it
    baseline_report: Path | None = None  # or the last release's report.json, with its per-example predictions
    data: Path | str | None = None  # a file in the task's real format, or a Hugging Face dataset (hub id or directory)
    retrain: bool = False
    allow_foreign_adapter: bool = False  # gate --adapter/--baseline-adapter whose manifest names another task or base
    quantize: str | None = None  # "4bit" (QLoRA: NF4, double quantization) or "8bit" through bitsandbytes
    overrides: tuple[str, ...] = ()  # --set path.to.key=value, applied to each task's card (loragate.card.overrides)
    constrain: bool = False  # --constrain: decode under the grammar too, beside free (loragate.run.decoding_modes)
    store_root: Path = Path("adapters")
    cache: Path = Path(".loragate")
    progress: bool = True

    def for_candidate(self, directory: Path) -> RunOptions:
        """These options as a run of one candidate sees them: its directory is the --adapter."""
        return replace(self, adapter=directory, candidates=())

    @property
    def dtype(self) -> torch.dtype:
        import torch  # RunOptions is built before any model loads; torch only when a run asks for its dtype

        return torch.bfloat16 if self.device.startswith("cuda") else torch.float32  # bf16 is slow on CPU
