"""What one run is asked to do, beside the card (device, base, adapter, data, store), and the checks of option
combinations. The plugin and train_fixtures.py build the same RunOptions and run the same checks, each raising
them as its own usage error, so the CLI and the gate cannot drift. Nothing here imports torch at load time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


class OptionError(ValueError):
    """A combination of options that cannot run; the message names the flags and the fix."""


def require_one_task(flags: Mapping[str, object], chosen: list[str], registered: list[str]) -> None:
    """Options that name one task's files (its adapter, data, base) need exactly one explicit --task: the same
    command must not change meaning when a second task is registered."""
    for flag, value in flags.items():
        if value not in (None, False) and len(chosen) != 1:
            raise OptionError(f"--{flag.replace('_', '-')} applies to one task: add --task NAME "
                              f"(one of {', '.join(registered)})")


def require_quantizable(quantize: str | None, tasks: list[str]) -> None:
    """--quantize loads causal bases through bitsandbytes: it must import, and no task may run on an encoder."""
    if quantize is None:  # before the imports: they load torch, which `pytest --help` must not wait for
        return
    from loragate.kinds import KINDS  # the kinds, models and tasks load torch: only once --quantize is given
    from loragate.models.bases import ModelLoadError, require_bitsandbytes  # (the line above says why)
    from loragate.tasks import TASKS, get_task  # (and this one)

    try:
        require_bitsandbytes(quantize)
    except ModelLoadError as exc:
        raise OptionError(str(exc)) from exc
    on_encoder = {name: KINDS.get(get_task(name).card.kind).encoder for name in TASKS.names()}
    encoders = [name for name in tasks if on_encoder[name]]
    if encoders:
        causal = [name for name, encoder in on_encoder.items() if not encoder]
        raise OptionError(f"--quantize {quantize} is for causal bases; {', '.join(encoders)} run on an encoder: "
                          f"choose tasks with --task ({', '.join(causal)}) or drop --quantize")


def require_cuda() -> None:
    import torch  # only under --gpu: `pytest --help` and CPU runs start without it

    if not torch.cuda.is_available():
        raise OptionError(f"--gpu: CUDA is not available to torch {torch.__version__}. Run without --gpu for the tiny "
                          f"tier on CPU, or install a CUDA build of torch on a machine with an NVIDIA GPU.")


@dataclass(frozen=True)
class RunOptions:
    device: str = "cpu"
    base_model: str | None = None  # overrides the card's base for the tier
    adapter: Path | None = None  # gate this adapter instead of the store's
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

    @property
    def dtype(self) -> torch.dtype:
        import torch  # RunOptions is built before any model loads; torch only when a run asks for its dtype

        return torch.bfloat16 if self.device.startswith("cuda") else torch.float32  # bf16 is slow on CPU
