"""The data as the gate sees it, written out for an adapter trained elsewhere (Unsloth, TRL, a notebook): a task's
train, eval and test splits after every step the gate takes before tokenizing (its data or --data, the --set
overrides, the base's chat template where the card asks for one, prompts fitted to train.max_length), as JSONL,
with a format.md that states how the gate tokenizes and reads them, and on the tiny tier the tiny base the gate
builds offline, to train on.

The steps are the run's own (loragate.run.steps), so the export cannot drift from the gate. They read only the base's
tokenizer and config: a hub base's weights are never loaded (its architecture is built on the meta device, which
allocates nothing)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer

from loragate.atomic import atomic_dir, atomic_file
from loragate.card.options import RunOptions
from loragate.card.settings import CardError, Tier
from loragate.data.examples import Example, Splits
from loragate.data.task import Task
from loragate.data.truncation import SPLITS, InputFit
from loragate.kinds.causal import CausalKind
from loragate.kinds.encoders import EncoderKind
from loragate.models.bases import LoadedBase, ModelLoadError, hub_unreachable, resolve_encoder
from loragate.redact import redact
from loragate.run.data_format import format_markdown
from loragate.run.steps import fit_inputs, for_base, kind, load_splits, load_task

FORMAT_FILE = "format.md"
BASE_DIR = "base"  # the tiny tier's base, copied beside the splits


@dataclass(frozen=True)
class GateData:
    """A task's splits as the gate reads them at one tier, and what they were fitted with."""

    task: Task  # its card with the --set overrides and train.max_length resolved
    tier: Tier
    splits: Splits
    base: LoadedBase  # the tokenizer, and the architecture without weights
    source: str  # the hub id or directory the base loads from
    inputs: InputFit | None  # how the prompts were fitted to train.max_length; None: the kind windows long inputs


def gate_data(name: str, tier: Tier, options: RunOptions) -> GateData:
    """The splits of task `name` at `tier` after the run's steps up to tokenizing (loragate.run.task_run.load_inputs
    with the base's tokenizer in place of the base)."""
    task = load_task(name, options)
    splits = load_splits(task, options)
    source, shown = base_source(task, tier, splits, options)
    base = tokenizer_only(source, shown)
    task.card, fitted, inputs = fit_inputs(task, tier, for_base(task, splits, base), base)
    return GateData(task, tier, fitted, base, source, inputs)


def base_source(task: Task, tier: Tier, splits: Splits, options: RunOptions) -> tuple[str, str]:
    """(hub id or directory the base's tokenizer loads from, the base's name), as the kind's load_base finds them;
    the tiny base is built here on first use (seconds), as a run builds it."""
    pipeline = kind(task)
    if isinstance(pipeline, CausalKind):
        source, shown = pipeline.base_source(task, tier, splits, options)
        return source, shown or source
    if isinstance(pipeline, EncoderKind):
        name = options.base_model or task.card.tier(tier).base_model
        return resolve_encoder(name), name
    raise CardError(f"task {task.card.name}: export-data reads a base's tokenizer for the causal and encoder kinds; "
                    f"kind {task.card.kind} is neither (its pipeline derives from neither CausalKind nor EncoderKind)")


def tokenizer_only(source: str, name: str) -> LoadedBase:
    """The base's tokenizer, and its architecture on the meta device (config only, no weights read or allocated):
    all that the kind's for_base and answer_tokens and fit_inputs read of a base. It has no fingerprint and cannot
    run."""
    offline = hub_unreachable(source) is not None
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False, local_files_only=offline)
        config = AutoConfig.from_pretrained(source, trust_remote_code=False, local_files_only=offline)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(redact(
            f"cannot load the tokenizer of base {name!r} ({source}): {exc}\nFix: pass a local save_pretrained "
            f"directory with --base-model PATH, or fill the Hugging Face cache for this hub id on a machine with "
            f"network.")) from exc
    with torch.device("meta"):
        model = AutoModel.from_config(config)
    return LoadedBase(model=model, tokenizer=tokenizer, name=name, fingerprint="", parameters=0,
                      pad_policy="not loaded")


def export_data(name: str, tier: Tier, options: RunOptions, out: Path, command: str) -> list[Path]:
    """Write `out`/train.jsonl, eval.jsonl, test.jsonl and format.md (replacing those files, each atomically), and
    on the tiny tier `out`/base/; `command` is how export-data was called, for format.md. Returns what was written."""
    data = gate_data(name, tier, options)
    written = [write_rows(out / f"{split}.jsonl", getattr(data.splits, split)) for split in SPLITS]
    tiny = (options.base_model or data.task.card.tier(tier).base_model) == "tiny"
    if tiny:
        written.append(copy_base(Path(data.source), out / BASE_DIR))
        base = (f"`{BASE_DIR}/`: the tiny base the gate builds offline for this tier ({data.base.name}), a "
                f"save_pretrained directory. Train on it, and gate with `--base-model={out / BASE_DIR}`.")
    else:
        base = (f"Base: `{data.base.name}` (`tiers.{tier}.base_model`, or `--base-model`), whose tokenizer fitted "
                f"the rows.")
    text = format_markdown(data.task.card, tier, data.splits, data.base.tokenizer, data.inputs,
                           chat_formatted(data.task), base, command)
    text += (f"\n## Gate an adapter trained on these files\n\n```bash\n{gate_command(name, tier, options, out, tiny)}\n"
             f"```\n\nThe adapter directory holds peft's `adapter_config.json` and `adapter_model.safetensors`; the "
             f"command repeats the export's `--set` and `--data`, so the gate evaluates the rows written here.\n")
    with atomic_file(out / FORMAT_FILE) as staged:
        staged.path.write_text(text, encoding="utf-8")
    return [*written, out / FORMAT_FILE]


def gate_command(name: str, tier: Tier, options: RunOptions, out: Path, tiny: bool) -> str:
    """The pytest command that gates an adapter on the exported rows: the export's --set and --data, and
    --base-model where the gate would not load that base by default (the tiny tier's copy in `out`, or the
    --base-model given)."""
    base = out / BASE_DIR if tiny else options.base_model
    flags = [*([f"--base-model={base}"] if base else []), *(f"--set={value}" for value in options.overrides),
             *([f"--data={options.data}"] if options.data else [])]
    marks = ["-m", "smoke"] if tier == "tiny" else ["-m", "full", "--gpu"]
    return shlex.join(["pytest", *marks, "--task", name, *flags, "--adapter=PATH/TO/ADAPTER"])


def chat_formatted(task: Task) -> bool:
    """Whether the task's prompts went through the base's chat template (a causal kind's choice)."""
    pipeline = kind(task)
    return isinstance(pipeline, CausalKind) and pipeline.chat_formatted(task)


def row(example: Example) -> dict[str, object]:
    """One JSONL row: what the gate reads of the example, the optional parts where it has them."""
    record: dict[str, object] = {"id": example.id, "prompt": example.prompt, "target": example.target}
    if example.label:
        record["label"] = example.label
    if example.fields:
        record["fields"] = example.fields
    if example.references:
        record["references"] = list(example.references)
    return record


def write_rows(path: Path, examples: list[Example]) -> Path:
    with atomic_file(path) as staged:
        staged.path.write_text("".join(json.dumps(row(ex), ensure_ascii=False) + "\n" for ex in examples),
                               encoding="utf-8")
    return path


def copy_base(source: Path, target: Path) -> Path:
    """The tiny base's directory copied to `target`, replacing an earlier export's."""
    with atomic_dir(target, place=replace_dir) as staged:
        shutil.copytree(source, staged.path, dirs_exist_ok=True)
    return target


def replace_dir(new: Path, target: Path) -> None:
    """Rename `new` onto `target`, removing what `target` held."""
    if target.exists():
        shutil.rmtree(target)
    os.replace(new, target)
