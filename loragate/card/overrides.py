"""Card overrides: `--set path.to.key=value` changes one card value for a run without editing the card.

The value is read as YAML (numbers, booleans, lists, `null`) by the cards' own reader (loragate.card.loader): only
true/false are booleans, and a key given twice in a mapping is an error. The card is dumped to a dict, the key set,
and the dict validated again by TaskCard, so an override meets the same checks, and the same messages, as the card's
own YAML. What decides the weights (lora, train, the templates and so the data) enters the adapter key through the
overridden card; the overrides themselves are recorded in the adapter's manifest and in every report.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml
from pydantic import ValidationError

from loragate.card.loader import DuplicateKeyError, load_yaml
from loragate.card.settings import TaskCard


class OverrideError(ValueError):
    """A --set that cannot apply; the message names the --set, the field and the fix."""


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b.c=value` -> (["a", "b", "c"], the value read as YAML)."""
    path, sep, raw = text.partition("=")
    parts = path.strip().split(".")
    if not sep or not all(part.strip() for part in parts):
        raise OverrideError(f"--set {text}: write it as path.to.key=value, e.g. --set tiers.tiny.train.lr=1e-3")
    try:
        value = load_yaml(raw)
    except DuplicateKeyError as exc:
        raise OverrideError(f"--set {text}: the value {raw!r} gives a key twice ({exc})") from exc
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or exc
        raise OverrideError(f"--set {text}: the value {raw!r} is not YAML ({problem}); quote it as a string") from exc
    return [part.strip() for part in parts], value


def set_path(data: dict[str, Any], parts: list[str], value: Any, text: str) -> None:
    """Set `value` at `parts` in the card's dict. A missing last key is set (the card model then says whether it
    exists); a missing block on the way is an error naming the keys there, except an optional block left out
    (`qa`, `instruct`), which starts empty."""
    node = data
    for depth, part in enumerate(parts[:-1]):
        where = ".".join(parts[: depth + 1])
        if node.get(part) is None and part in node:
            node[part] = {}
        if part not in node:
            raise OverrideError(f"--set {text}: the card has no {where!r}; "
                                f"{'.'.join(parts[:depth]) or 'the card'} holds {', '.join(sorted(node))}")
        if not isinstance(node[part], dict):
            raise OverrideError(f"--set {text}: {where!r} is a value ({node[part]!r}), not a block of keys; "
                                f"set it with --set {where}=VALUE")
        node = node[part]
    node[parts[-1]] = value


def apply_overrides(card: TaskCard, overrides: Sequence[str]) -> TaskCard:
    """`card` with each `--set path=value` of `overrides` applied in order, validated again as a whole card."""
    if not overrides:
        return card
    data = card.model_dump()
    paths, values = {}, {}
    for text in overrides:
        parts, value = parse_override(text)
        set_path(data, parts, value, text)
        paths[text], values[text] = parts, value
    try:
        overridden = TaskCard.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = [str(part) for part in err["loc"]]
            named = [text for text, parts in paths.items()  # the --set at the field, or below it
                     if field[: len(parts)] == parts or parts[: len(field)] == field]
            read = "; ".join(f"{values[text]!r}" for text in named) if field else ""  # not for a whole-card check
            problems.append(f"--set {' --set '.join(named or paths)}: field '{'.'.join(field) or 'card'}': {err['msg']}"
                            + (f" (the value read as YAML: {read}; quote it to pass a string)" if read else ""))
        raise OverrideError(f"task {card.name!r}: {'; '.join(problems)}. Fix the value or drop the --set.") from exc
    overridden._path = card.path  # what the card's relative names (data files, output schema) are relative to
    return overridden
