"""The gate's command-line options, in one group, each checked as it is parsed: a bad value is a usage error naming
the flag, the value and the fix; and the checks of their combinations, which need the project's tasks.
train_fixtures.py parses its own flags and checks them with the same functions."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from loragate.card.candidates import name_problem
from loragate.card.options import OptionError
from loragate.card.overrides import OverrideError, parse_override
from loragate.card.settings import CardError, TaskCard, Tier
from loragate.kinds import KINDS
from loragate.tasks import TASKS, get_task

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def parse_task(value: str) -> str:
    """train_fixtures.py's --task, checked as parsed against the built-in tasks. The plugin's --task is checked in
    pytest_configure instead, once the project's tasks are loaded (loragate.plugin.discovery)."""
    if value not in TASKS:
        raise argparse.ArgumentTypeError(TASKS.unknown_message(value))
    return value


def parse_base_model(value: str) -> str:
    """An existing model directory, or a hub id. A mistyped path that looks like `dir/name` is refused here rather
    than tried on the hub, which costs a minute of retries and ends in a message about connectivity."""
    path = Path(value).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise argparse.ArgumentTypeError(f"{value} has no config.json: point --base-model at a model directory "
                                             f"saved with save_pretrained")
        return str(path.resolve())
    reason = path_reason(value)
    if reason is not None:
        raise argparse.ArgumentTypeError(f"{value}: no such directory (a path, not a hub id: {reason}); point "
                                         f"--base-model at a model directory saved with save_pretrained")
    if not HUB_ID.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{value!r} is neither an existing directory nor a hub id like "
                                         f"'google/gemma-3-1b-it'")
    return value


def path_reason(value: str) -> str | None:
    """Why `value` must be a local path rather than a hub id, or None where it may be either."""
    if value.startswith((".", "/", "~")):
        return f"it starts with {value[0]!r}"
    parent = Path(value).parent
    if parent != Path(".") and parent.is_dir():
        return f"its directory {str(parent)!r} exists"
    return None


def parse_data(value: str) -> Path | str:
    """An existing file (the task's real format) or directory (a Hugging Face dataset), or a hub dataset id."""
    path = Path(value)
    if path.exists():
        return path.resolve()
    if not HUB_ID.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{value!r} is neither an existing file or directory nor a hub dataset id "
                                         f"like 'stanfordnlp/sst2'")
    return value


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")  # as loragate.store.adapters, which loads torch


def adapter_parser(flag: str) -> Callable[[str], Path]:
    """The parser of `flag` (--adapter, --baseline-adapter): a peft adapter directory with its config and safetensors
    weights, checked as parsed, so a wrong path stops the run once, before any model loads, naming the flag."""

    def parse_adapter(value: str) -> Path:
        path = Path(value).expanduser()
        fix = f"point {flag} at a directory written by peft's save_pretrained"
        if not path.exists():
            raise argparse.ArgumentTypeError(f"{value} does not exist: {fix}")
        if not path.is_dir():
            raise argparse.ArgumentTypeError(f"{value} is a file, not an adapter directory: {fix}")
        if not (path / "adapter_config.json").is_file():
            raise argparse.ArgumentTypeError(f"{value} has no adapter_config.json: {fix}")
        try:
            json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise argparse.ArgumentTypeError(f"{path / 'adapter_config.json'} is not readable JSON ({exc}): {fix}") \
                from exc
        if not (path / "adapter_model.safetensors").is_file():
            pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
            if pickles:
                raise argparse.ArgumentTypeError(
                    f"{value} has no adapter_model.safetensors, only {pickles}: pickle formats are never loaded (they "
                    f"can run code); save the adapter again with save_pretrained(..., safe_serialization=True)")
            raise argparse.ArgumentTypeError(f"{value} has no adapter_model.safetensors: {fix}")
        return path.resolve()

    return parse_adapter


def parse_candidate(value: str) -> tuple[str | None, Path]:
    """--adapter PATH, or NAME=PATH naming the candidate (where PATH=... is not itself an existing path)."""
    name, separator, path = value.partition("=")
    if separator and not Path(value).expanduser().exists():
        problem = name_problem(name)
        if problem is not None:
            raise argparse.ArgumentTypeError(f"{value}: the candidate name {name!r} cannot be used: {problem}")
        return name, adapter_parser("--adapter")(path)
    return None, adapter_parser("--adapter")(value)


def named_candidates(given: list[tuple[str | None, Path]]) -> tuple[tuple[str, Path], ...]:
    """Each --adapter's candidate name: the one given (NAME=PATH), else its directory's name made a valid one. Two
    candidates of one name (letter case aside, as a sweep's variants: their report files would be one file on macOS
    and Windows) are refused, naming both directories."""
    named: dict[str, Path] = {}
    for name, path in given:
        if name is None:
            name = re.sub(r"[^A-Za-z0-9_-]", "_", path.name)
            name = name if name_problem(name) is None else f"c_{name}"
        same = next((other for other in named if other.lower() == name.lower()), None)
        if same is not None:
            names = repr(name) if same == name else f"{same!r} and {name!r}, one name but for letter case,"
            raise OptionError(f"--adapter: two candidates are named {names} ({named[same]} and {path}); name each "
                              f"with --adapter NAME=PATH")
        named[name] = path
    return tuple(named.items())


def parse_set(value: str) -> str:
    """A --set's form (path.to.key=value, the value YAML), checked as parsed; its path and value are checked against
    each task's card in pytest_configure, once the project's tasks are loaded."""
    try:
        parse_override(value)
    except OverrideError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return value


def parse_existing_path(value: str) -> Path:
    path = Path(value)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{value} does not exist")
    return path.resolve()


def add_options(parser: pytest.Parser) -> None:
    """The gate's options, in one group (the plugin's pytest_addoption)."""
    group = parser.getgroup("loragate", "loragate release gate")
    group.addoption("--gpu", action="store_true", help="run on CUDA in bf16 and enable the full tier")
    group.addoption("--task", action="append", metavar="NAME",
                    help="gate only this task (repeatable); default: the project's own tasks (its tasks directory, the "
                    "loragate.tasks entry points), else the built-in ones")
    group.addoption("--task-dir", action="append", type=Path, metavar="DIR",
                    help="a directory of task modules to load (repeatable); default: the ini option loragate_tasks, "
                         "else [tool.loragate] tasks in pyproject.toml")
    group.addoption("--base-model", type=parse_base_model, metavar="ID|PATH",
                    help="base model hub id or local directory instead of the card's")
    group.addoption("--adapter", type=parse_candidate, action="append", metavar="[NAME=]PATH",
                    help="gate this peft adapter directory instead of training one (needs one --task); give it more "
                         "than once to gate candidates on one base in one pass, each named NAME or by its directory")
    group.addoption("--pick-best", action="store_true",
                    help="with candidates (--adapter more than once, or a card's candidates.variants): a task passes "
                         "when one candidate passes, and the report names the one to ship (default: every candidate "
                         "must pass)")
    group.addoption("--allow-foreign-adapter", action="store_true",
                    help="gate an --adapter or --baseline-adapter whose manifest.json names another task or base model")
    group.addoption("--baseline-adapter", type=adapter_parser("--baseline-adapter"), metavar="PATH",
                    help="the last release's adapter: fail if a gated metric drops against it (needs one --task)")
    group.addoption("--baseline-report", type=parse_existing_path, metavar="PATH",
                    help="the last release's report.json instead of its adapter (needs one --task)")
    group.addoption("--data", type=parse_data, metavar="PATH|ID",
                    help="the task's data instead of the shipped data: a file in its real format, or a Hugging Face "
                         "dataset (hub id or directory) whose train split is converted to it (needs one --task)")
    group.addoption("--quantize", choices=["4bit", "8bit"], metavar="4bit|8bit",
                    help="load causal bases through bitsandbytes: 4bit is QLoRA (NF4, double quantization), "
                         "8bit is LLM.int8(); needs pip install 'loragate[quantize]'")
    group.addoption("--export", type=Path, metavar="DIR",
                    help="keep what the export checks wrote: DIR/<task>-<tier>/merged/ (merged safetensors) and, for "
                         "Llama-architecture bases, DIR/<task>-<tier>/model.q8_0.gguf")
    group.addoption("--set", action="append", type=parse_set, default=[], dest="overrides", metavar="PATH=VALUE",
                    help="change a card value for this run, e.g. --set tiers.tiny.train.lr=1e-3 (repeatable; the value "
                         "is read as YAML); it enters the adapter key where it decides the weights, and every report")
    group.addoption("--constrain", action="store_true",
                    help="decode under the output's grammar too (one of the labels, or JSON of the output schema), "
                         "beside free decoding: both are reported side by side; the gates read the mode the card's "
                         "eval.constrain declares")
    group.addoption("--retrain", action="store_true", help="train adapters even when the store has them")
    group.addoption("--report-dir", type=Path, default=Path("reports"), metavar="DIR",
                    help="where reports/<run>/report.json and report.md go (default: reports)")
    parser.addini("loragate_tasks", "the project's directory of task modules (like --task-dir), relative to the "
                  "config file", default="")


def require_one_task(flags: Mapping[str, object], chosen: list[str], registered: list[str],
                     defaults: list[str] | None = None) -> None:
    """Options that name one task's files (its adapter, data, base) need exactly one task: one --task, or, without
    --task, a project whose own tasks (`defaults`) are one. A second task registered later makes the same command a
    usage error, never a run of another task."""
    if len(chosen) == 1 or (not chosen and defaults is not None and len(defaults) == 1):
        return
    for flag, value in flags.items():
        if value not in (None, False):
            raise OptionError(f"--{flag.replace('_', '-')} applies to one task: add --task NAME "
                              f"(one of {', '.join(registered)})")


def require_trainable(cards: list[TaskCard], tiers: list[Tier]) -> None:
    """A run that will train (no --adapter) needs each card's tiers to say how: a card without `lora` or `train`
    gates only adapters trained elsewhere, and is refused here, naming what it lacks, rather than after its base
    loaded."""
    for card in cards:
        for tier in tiers:
            if tier in card.tiers:
                try:
                    card.trainable(tier)
                except CardError as exc:
                    raise OptionError(str(exc)) from exc


def require_quantizable(quantize: str | None, tasks: list[str]) -> None:
    """--quantize loads causal bases through bitsandbytes: it must import, and no task may run on an encoder."""
    if quantize is None:  # before the imports: they load torch, which `pytest --help` must not wait for
        return
    from loragate.models.bases import ModelLoadError, require_bitsandbytes  # loads torch: only under --quantize

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
