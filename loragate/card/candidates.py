"""A card's `candidates:` block: several adapters of one task gated together, and a sweep loragate trains.

    candidates:
      pick: best                  # all (default): every candidate must pass, a fleet; best: one passing is enough
      variants:                   # a sweep: each a name and --set-style settings under tiers.<tier>
        - {name: r4, set: {lora.r: 4, train.lr: 0.003}}
        - {name: r16, set: {lora.r: 16}}

A variant changes how an adapter trains (`train.` and `lora.` fields) and nothing it is gated on, so every candidate
is judged on the same examples: `eval.` (how the test split is predicted), `train.max_length` and `train.truncation`
(which fit the test inputs too) are refused. Each variant is applied to each tier that trains an adapter and the
result validated as a whole card, as `--set` is (loragate.card.overrides), when the card loads: a typo or a bad value
is one line at start-up, never an error after the base has loaded. The variant's card (`variant_card`) then trains
and stores its adapter under its own key, as any card does (loragate.run.sweep).
"""

from __future__ import annotations

import difflib
import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from loragate.card.strict import CardError, Strict
from loragate.card.tier_settings import LoraSettings, Tier, TierSettings, TrainSettings

if TYPE_CHECKING:
    from loragate.card.settings import TaskCard

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")  # a path component, a pytest id and a peft adapter name (no dots)
RESERVED = ("base", "__base__", "default", "base_layer", "modules_to_save", "original_module")  # what reports call the
# base model's column, and names peft gives its own modules


def name_problem(name: str) -> str | None:
    """Why `name` cannot name a candidate (a variant, or --adapter NAME=PATH), with the fix; None where it can. Peft
    keys the adapter's modules by it, pytest ids and report files show it."""
    if not NAME.fullmatch(name):
        return "use letters, digits, _ and - only, starting with a letter or _ (e.g. r4-lr3)"
    if name.lower() in RESERVED or name.startswith("lora_"):
        return "that name is the base model's column in reports, or one peft gives its own modules: choose another"
    return None
BLOCKS = {"train": TrainSettings, "lora": LoraSettings}  # what a variant may change: how an adapter trains
SHARED = {
    "train.max_length": "it fits the test inputs too",
    "train.truncation": "it cuts the test inputs too",
}  # fields of BLOCKS every candidate must share, and why: the candidates are judged on the same examples


def unknown_keys(data: Any, fields: dict[str, Any], where: str) -> None:
    """A key the block does not take, refused with the closest one: pydantic's 'Extra inputs are not permitted'
    names no fix."""
    if not isinstance(data, dict):
        return
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{where} has no key {key!r}{hint}; it takes {', '.join(fields)}")


def pick_of(card: TaskCard, pick_best: bool) -> Literal["all", "best"]:
    """`best` under --pick-best or the card's `candidates.pick: best`, else `all`."""
    return "best" if pick_best or (card.candidates is not None and card.candidates.pick == "best") else "all"


def path_problem(path: str) -> str | None:
    """Why a variant may not set `path` (relative to tiers.<tier>), with the fix; None where it may."""
    parts = path.split(".")
    if parts[0] == "tiers":
        return f"write it relative to tiers.<tier>: {'.'.join(parts[2:]) or 'lora.r'}"
    if parts[0] not in BLOCKS:
        return ("a variant changes how an adapter trains, so it sets train.* or lora.* only (eval and the rest "
                "are what every candidate is gated on): set it in the card itself, or drop it")
    if len(parts) != 2:
        return f"name one field of {parts[0]} by its path, e.g. {parts[0]}.{next(iter(BLOCKS[parts[0]].model_fields))}"
    fields = list(BLOCKS[parts[0]].model_fields)
    if parts[1] not in fields:
        close = difflib.get_close_matches(parts[1], fields, n=1)
        hint = f" (did you mean {parts[0]}.{close[0]}?)" if close else ""
        return f"{parts[0]} has no field {parts[1]!r}{hint}; it has {', '.join(fields)}"
    if path in SHARED:
        return f"every candidate is gated on the same examples, and {SHARED[path]}: set it in the card itself"
    return None


class Variant(Strict):
    """One candidate of a sweep: its name and the training settings it changes."""

    name: str = Field(description="how reports, pytest ids and file names call it: letters, digits, _ . -")
    set: dict[str, Any] = Field(min_length=1, description="--set-style values, each at a path relative to "
                                "tiers.<tier> under train. or lora. (lora.r: 4)")

    @model_validator(mode="before")
    @classmethod
    def known_keys(cls, data: Any) -> Any:
        name = data.get("name") if isinstance(data, dict) else None
        unknown_keys(data, cls.model_fields, "a candidates variant" if name is None else f"candidates variant {name!r}")
        return data

    @field_validator("name")
    @classmethod
    def usable_name(cls, name: str) -> str:
        problem = name_problem(name)
        if problem is not None:
            raise ValueError(f"{name!r} is not a usable name: {problem}")
        return name

    @field_validator("set")
    @classmethod
    def settable_paths(cls, values: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        for path in values:
            problem = path_problem(path)
            if problem:
                name = info.data.get("name")  # absent where the name was refused
                raise ValueError(f"candidates variant {name!r}: {path}: {problem}" if name else f"{path}: {problem}")
        return values


class Candidates(Strict):
    """Which candidates a task gates and when it passes."""

    pick: Literal["all", "best"] = Field("all", description="all: the task passes when every candidate passes (a "
                                         "fleet); best: when one does, and the report names the one to ship")
    variants: list[Variant] = Field(default_factory=list, description="a sweep loragate trains and gates together")

    @model_validator(mode="before")
    @classmethod
    def known_keys(cls, data: Any) -> Any:
        unknown_keys(data, cls.model_fields, "candidates")
        return data

    @field_validator("variants")
    @classmethod
    def unique_names(cls, variants: list[Variant]) -> list[Variant]:
        seen: dict[str, str] = {}
        for variant in variants:
            folded = variant.name.lower()  # two names one case apart are one directory on macOS and Windows
            if folded in seen:
                raise ValueError(f"two variants are named {seen[folded]!r} and {variant.name!r}: name each once "
                                 f"(names differing only in case count as one)")
            seen[folded] = variant.name
        return variants


class VariantError(ValueError):
    """A variant that does not apply to a tier; the message names the variant, the tier, the path and the fix."""


def apply_variant(card: TaskCard, tier: Tier, variant: Variant) -> TaskCard:
    """`card` with `variant`'s settings at tiers.<tier>, validated again as a whole card (as `--set` is), without the
    `candidates` block: the variant's card is one candidate's."""
    where = f"candidates variant {variant.name!r}"
    if card.tier(tier).training_gaps():
        raise VariantError(f"{where}: tiers.{tier} does not say how to train an adapter (it has no "
                           f"{', '.join(card.tier(tier).training_gaps())}), so it has no sweep; add them to the card")
    data = card.model_dump(exclude={"candidates"})
    settings = data["tiers"][tier]
    for path, value in variant.set.items():
        block, field = path.split(".")
        settings[block][field] = value
    try:
        varied = type(card).model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = [str(part) for part in err["loc"]]
            path = ".".join(loc[2:]) if loc[:2] == ["tiers", tier] else None
            value = f"={variant.set[path]!r}" if path in variant.set else ""
            problems.append(f"tiers.{tier}.{path}{value}: {err['msg']}" if path else err["msg"])
        raise VariantError(f"{where}: {'; '.join(problems)}; fix its value in candidates.variants, or drop "
                           f"it") from exc
    varied._path = card.path  # what the card's relative names (data files, output schema) are relative to
    return varied


def check_variants(card: TaskCard) -> None:
    """Each variant applied to each tier that trains an adapter (a gate-only tier trains no sweep); two variants that
    give a tier the same settings would train one adapter twice over. Raised as a ValidationError at the variant,
    which the card's reader shows as one line naming the file."""
    if card.candidates is None:
        return
    trained: list[tuple[Tier, TierSettings, str]] = []  # each tier's settings under each variant so far
    for index, variant in enumerate(card.candidates.variants):
        try:
            for tier in card.tiers:
                if card.tier(tier).training_gaps():
                    continue
                varied = apply_variant(card, tier, variant).tier(tier)
                same = [name for other, settings, name in trained if other == tier and
                        (settings.lora, settings.train) == (varied.lora, varied.train)]
                if same:
                    raise VariantError(f"candidates variants {same[0]!r} and {variant.name!r} give tiers.{tier} the "
                                       f"same settings, so they would train one adapter: change or drop one")
                trained.append((tier, varied, variant.name))
        except VariantError as exc:
            raise ValidationError.from_exception_data("TaskCard", [
                {"type": PydanticCustomError("candidate_variant", str(exc)),
                 "loc": ("candidates", "variants", index, "set"), "input": variant.set}]) from None


def variant_card(card: TaskCard, tier: Tier, variant: Variant) -> TaskCard:
    """The card of one candidate of the sweep: `card` with `variant`'s settings applied to tiers.<tier>. The card's
    load checked every variant on every tier that trains, so this fails only on a tier that trains no adapter (a
    CardError naming the card's file and what the tier lacks)."""
    try:
        return apply_variant(card, tier, variant)
    except VariantError as exc:
        where = f"{card.path}: " if card.path is not None else f"task {card.name!r}: "
        raise CardError(f"{where}{exc}") from exc
