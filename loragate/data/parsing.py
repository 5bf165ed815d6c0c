"""From raw generated text to a task's output schema, recording why a text failed.

Policy (documented in the README): leading and trailing whitespace is ignored; the rest must equal one
label exactly, case included. Nothing is repaired: "Setosa", "setosa." and "setosa\\nmore" are invalid,
each with its reason. The parser never raises on any string.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ValidationError

_SHOWN = 40  # characters of a bad output quoted in a reason


@dataclass(frozen=True)
class SchemaError:
    """One way an output failed its schema: where (a field path, "(root)" for the whole output) and pydantic's
    error type ("json_invalid", "missing", "int_parsing", ...)."""

    loc: str
    type: str


@dataclass(frozen=True)
class ParsedOutput:
    value: BaseModel | None
    reason: str | None  # None when valid
    errors: tuple[SchemaError, ...] = ()  # structured output: why it did not validate
    lenient: bool = False  # structured output: validates only once a code fence or surrounding prose is stripped

    @property
    def valid(self) -> bool:
        return self.value is not None


def _quote(text: str) -> str:
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")


def parse_label(text: str, labels: list[str], schema: type[BaseModel], field: str) -> ParsedOutput:
    """Parse `text` as exactly one of `labels` into `schema(**{field: label})`."""
    answer = text.strip()
    if not answer:
        return ParsedOutput(None, "empty output" if not text else "whitespace-only output")
    if answer not in labels:
        prefixes = sorted((label for label in labels if answer.startswith(label)), key=len, reverse=True)
        if prefixes:
            junk = answer[len(prefixes[0]) :]
            return ParsedOutput(None, f"trailing junk after {prefixes[0]!r}: {_quote(junk)}")
        folded = [label for label in labels if label.lower() == answer.lower()]
        hint = f" (labels are case-sensitive: did you mean {folded[0]!r}?)" if folded else ""
        return ParsedOutput(None, f"unknown label {_quote(answer)}{hint}; expected one of {', '.join(labels)}")
    try:
        return ParsedOutput(schema.model_validate({field: answer}), None)
    except ValidationError as exc:
        return ParsedOutput(None, f"schema rejected {_quote(answer)}: {exc.errors()[0]['msg']}")
