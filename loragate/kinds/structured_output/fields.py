"""Which fields of an output schema are scored, and how their values compare.

Every field is scored by its path: the schema's top-level fields, and the fields of a nested object after it
(`location`, then `location.room`), so a nested field wrong 30 times in 400 has a row and a gate of its own. A list
compares in order, as the schema's `list` (or tuple) is ordered; a set (`set[...]`, `frozenset[...]`) or a list
field the card names in `structured.unordered_fields` compares as a multiset of its items. A list inside a list's
items has the path of the outer list with `[]` (`items[].tags`)."""

from __future__ import annotations

import collections.abc
import difflib
import json
import types
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Union, get_args, get_origin

from pydantic import BaseModel

from loragate.card.settings import CardError, TaskCard

ORDERED = (list, tuple, collections.abc.Sequence, collections.abc.MutableSequence)
UNORDERED = (set, frozenset, collections.abc.Set, collections.abc.MutableSet)
MISSING = object()  # a field of an output that did not validate


@dataclass(frozen=True)
class FieldLayout:
    """The scored fields of a schema and the list fields that compare in any order."""

    paths: list[str]  # every scored field: top-level ones in the schema's order, each nested object's fields after it
    unordered: frozenset[str]  # list paths compared as multisets: set-typed in the schema, or named by the card

    @property
    def top_level(self) -> list[str]:
        """The fields F1 is counted over (a nested object is one item of its top-level field)."""
        return [path for path in self.paths if "." not in path]


def layout(card: TaskCard, schema: type[BaseModel]) -> FieldLayout:
    """The card's schema's field paths, and its unordered list fields: the schema's sets, and the card's
    `structured.unordered_fields`, each of which must name a list field of the schema (a CardError naming the card
    field, the closest list field and every one of them, otherwise)."""
    lists = list_fields(schema)
    named = list(card.block("structured").unordered_fields)
    for path in named:
        if path not in lists:
            where = f"{card.path}: " if card.path else ""
            close = difflib.get_close_matches(path, list(lists), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            choices = f"its list fields are {', '.join(lists)}" if lists else "it has no list field"
            raise CardError(f"{where}task {card.name}: structured.unordered_fields names {path!r}, which is not a list "
                            f"field of {schema.__name__}{hint}; {choices}: name one of them, or remove it")
    return field_layout(schema, named)


def field_layout(schema: type[BaseModel], unordered: Iterable[str] = ()) -> FieldLayout:
    """`schema`'s field paths; its set fields and the list fields `unordered` names compare in any order."""
    sets = [path for path, is_set in list_fields(schema).items() if is_set]
    return FieldLayout(field_paths(schema), frozenset([*sets, *unordered]))


def field_paths(schema: type[BaseModel], prefix: str = "", seen: tuple[type, ...] = ()) -> list[str]:
    """Every field of `schema` by path, each nested object's fields after it (through optional objects too; a model
    that holds itself is one field)."""
    paths = []
    for name, info in schema.model_fields.items():
        path = f"{prefix}{name}"
        paths.append(path)
        nested = single_model(info.annotation)
        if nested is not None and nested not in (*seen, schema):
            paths += field_paths(nested, f"{path}.", (*seen, schema))
    return paths


def single_model(annotation: object) -> type[BaseModel] | None:
    """The pydantic model a field holds (alone, or with None), else None: a union of two models has no one set of
    nested fields."""
    models = [arg for arg in union_members(annotation) if isinstance(arg, type) and issubclass(arg, BaseModel)]
    others = [arg for arg in union_members(annotation) if arg not in models and arg is not type(None)]
    return models[0] if len(models) == 1 and not others else None


def union_members(annotation: object) -> list[object]:
    """The members of a union (Annotated's metadata dropped), or the annotation alone."""
    if get_origin(annotation) is Annotated:
        return union_members(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        return [member for arg in get_args(annotation) for member in union_members(arg)]
    return [annotation]


def list_fields(schema: type[BaseModel]) -> dict[str, bool]:
    """Every list-valued field of `schema` by path -> whether its type is a set (compared in any order)."""
    found: dict[str, bool] = {}

    def walk(annotation: object, path: str, seen: tuple[type, ...]) -> None:
        for member in union_members(annotation):
            origin = get_origin(member)
            if isinstance(member, type) and issubclass(member, BaseModel) and member not in seen:
                for name, info in member.model_fields.items():
                    walk(info.annotation, f"{path}.{name}" if path else name, (*seen, member))
            elif origin in ORDERED or origin in UNORDERED or member in ORDERED or member in UNORDERED:
                found[path] = found.get(path, False) or origin in UNORDERED or member in UNORDERED
                for arg in get_args(member):
                    if arg is not Ellipsis:
                        walk(arg, f"{path}[]", seen)

    walk(schema, "", ())
    return found


def value_at(value: object, path: str) -> object:
    """The value at a dotted `path` of a JSON object; None where an object on the way is null."""
    for name in path.split("."):
        if value is MISSING:
            return MISSING
        value = value.get(name) if isinstance(value, dict) else None
    return value


def normal(value: object, path: str, unordered: frozenset[str]) -> object:
    """`value` (JSON) with the items of its unordered lists sorted, so two values are equal exactly when their
    normal forms' JSON texts are."""
    if isinstance(value, dict):
        return {key: normal(item, f"{path}.{key}" if path else key, unordered) for key, item in value.items()}
    if isinstance(value, list):
        items = [normal(item, f"{path}[]", unordered) for item in value]
        return sorted(items, key=text) if path in unordered else items
    return value


def text(value: object) -> str:
    return json.dumps(value, sort_keys=True)


def field_equal(gold: object, predicted: object, path: str, unordered: frozenset[str]) -> bool:
    """Exact match of the field at `path`: lists in order unless unordered, objects key by key."""
    if predicted is MISSING:
        return False
    return text(normal(gold, path, unordered)) == text(normal(predicted, path, unordered))


def field_counts(gold: object, predicted: object, path: str, unordered: frozenset[str]) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) of one field. A list's items: in an unordered list each gold
    item found once is a true positive (multisets); in an ordered one, the items of the longest common subsequence
    of gold and predicted (items found in gold's order), so a swapped pair finds one of its two items. Any other
    value is one item, or none when it is null (a null gold and a null prediction agree without a true positive)."""
    def items(value: object) -> list[str]:
        if value is MISSING or value is None:
            return []
        values = value if isinstance(value, list) else [value]
        return [text(normal(v, f"{path}[]" if isinstance(value, list) else path, unordered)) for v in values]

    gold_items, predicted_items = items(gold), items(predicted)
    if path in unordered or not isinstance(gold, list) or not isinstance(predicted, list):
        tp = sum((Counter(gold_items) & Counter(predicted_items)).values())
    else:
        tp = common_subsequence(gold_items, predicted_items)
    return tp, len(predicted_items) - tp, len(gold_items) - tp


def common_subsequence(first: list[str], second: list[str]) -> int:
    """The length of the longest common subsequence of two lists."""
    previous = [0] * (len(second) + 1)
    for item in first:
        current = [0]
        for j, other in enumerate(second):
            current.append(previous[j] + 1 if item == other else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]
