"""The start-up check of each selected task's data: before any model loads, its splits are read and checked against
its card (columns, the fields its templates read, label values, split sizes), from the card's files or `--data`.
A mistake in the data is then one line and exit 4, not a traceback under every gate test of its case.

A card-only task keeps what it read for the run (CardTask.check_splits), so a large file is read once.

A card whose prompts go through the base's chat template (`chat_template: true`, or the instruct kind) is checked
against the base's tokenizer where it can be read without the weights (a local directory, a hub id in the Hugging
Face cache); the tiny base is built with a template, and a hub id not cached is left to the load, which says why.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from loragate.card.options import RunOptions
from loragate.card.overrides import apply_overrides
from loragate.card.settings import CardError, Tier
from loragate.data.hf_dataset import is_dataset, materialize
from loragate.data.task import Task
from loragate.tasks import get_task
from loragate.tasks.card_task import CardTask


def check_data(tasks: list[str], options: RunOptions, tiers: list[Tier]) -> None:
    """Read each task's splits with the run's --set overrides and --data, as the run will, and check its base's chat
    template at `tiers`; a CardError or the ValueError a task module raises for its data, or an OSError reading a file
    (the user's: permission denied, a directory where a file is expected), becomes a usage error naming the task.
    Any other exception (a task module's own bug) is left to the run, which raises it again as the case's error with
    its traceback: here it would be pytest's INTERNALERROR."""
    for name in tasks:
        task = get_task(name)
        task.card = apply_overrides(task.card, options.overrides)
        try:
            check_splits(task, options.data, options.cache)
            check_chat_template(task, options.base_model, tiers)
        except ValueError as exc:  # CardError included: the message names the file, the field and the fix
            raise pytest.UsageError(f"task {name}: {exc}") from exc
        except OSError as exc:
            raise pytest.UsageError(unreadable(name, exc)) from exc
        except Exception:  # not swallowed: the run meets it again and shows it with its traceback
            continue


def unreadable(task: str, exc: OSError) -> str:
    """The one line for a file the start-up check could not read: the file, why, and the fix."""
    what = f"{exc.filename}" if exc.filename is not None else "a file of its data"
    return (f"task {task}: cannot read {what}: {exc.strerror or exc}; make it a file this user can read, or point "
            f"the card's data field (or --data) at one")


def check_splits(task: Task, data: Path | str | None, cache: Path) -> None:
    path = materialize(task.card.name, task, data, cache) if is_dataset(data) else data
    if isinstance(task, CardTask):
        task.check_splits(path)
    else:
        task.load_splits(path)


def check_chat_template(task: Task, base_model: str | None, tiers: list[Tier]) -> None:
    """A chat-formatted card on a base whose tokenizer has no chat template is a CardError naming where the base was
    given and the card field; the tiny base (built with one) and tokenizers that cannot be read here pass."""
    bases = {base_model or task.card.tiers[tier].base_model: tier for tier in tiers if tier in task.card.tiers}
    bases.pop("tiny", None)
    if not bases:
        return
    from loragate.models.chat import NO_TEMPLATE_FIX, has_chat_template  # load transformers: only for such a base
    from loragate.run.export_data import chat_formatted

    if not chat_formatted(task):
        return
    for base, tier in bases.items():
        if has_chat_template(base) is False:
            given = "--base-model" if base_model else f"tiers.{tier}.base_model"
            why, fix = (("chat_template: true", f"{NO_TEMPLATE_FIX}, or remove chat_template from the card")
                        if task.card.chat_template else
                        (f"kind {task.card.kind}, whose prompts are always a conversation", NO_TEMPLATE_FIX))
            raise CardError(f"{given} {base!r}: its tokenizer has no chat template, and the card's prompts go "
                            f"through one ({why}). Fix: {fix}")
