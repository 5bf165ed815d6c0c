"""The base of every card block (Strict) and the card's error (CardError): unknown fields refused, values frozen,
no NaN, infinity or boolean-as-number anywhere in a card."""

from __future__ import annotations

from collections.abc import Mapping
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


class CardError(ValueError):
    """A card that cannot be used; the message names the file, the field and the fix."""


class Strict(BaseModel):
    """Every card block: unknown fields refused, values fixed, and no NaN or infinity in any number (a NaN threshold
    compares false both ways, so a gate on it would pass anything). A yes/no field is a StrictBool: only true or
    false, since pydantic would read the strings yes, on, off (YAML 1.1 booleans) as booleans."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def no_boolean_as_number(cls, value: Any, info: ValidationInfo) -> Any:
        """pydantic reads true as 1 and false as 0 where a number is due (`min_validity: false` would gate nothing,
        `max_leakage: true` would allow every repeat): a boolean is refused wherever the field takes no boolean."""
        if info.field_name is not None and boolean_where_number(value, cls.model_fields[info.field_name].annotation):
            raise ValueError(f"{value!r} where a number is due: booleans are not numbers here; write the number")
        return value


def boolean_where_number(value: Any, annotation: Any) -> bool:
    """Whether `value` holds a boolean where `annotation` takes none (in a dict's values or a list's items too)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if isinstance(value, bool):
        return not takes_boolean(annotation)
    if isinstance(value, Mapping) and origin is dict and len(args) == 2:
        return any(boolean_where_number(item, args[1]) for item in value.values())
    if isinstance(value, list) and origin is list and args:
        return any(boolean_where_number(item, args[0]) for item in value)
    return False


def takes_boolean(annotation: Any) -> bool:
    """Whether a field of `annotation` takes a boolean: bool, StrictBool, a union or Literal holding one, or Any."""
    origin = get_origin(annotation)
    if annotation is bool or annotation is Any:
        return True
    if origin is Annotated:
        return takes_boolean(get_args(annotation)[0])
    if origin is Union or origin is UnionType:
        return any(takes_boolean(arg) for arg in get_args(annotation))
    if origin is Literal:
        return any(isinstance(arg, bool) for arg in get_args(annotation))
    return False
