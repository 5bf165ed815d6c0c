"""A card's prompt and target templates: str.format templates over an example's named fields, checked when the card
is read, so a template that cannot be filled is a card error naming the template field, not an IndexError or
ValueError from the first example it meets."""

from __future__ import annotations

import difflib
import string
from collections.abc import Mapping

from loragate.card.strict import CardError


def template_fields(template: str) -> list[str]:
    """The field names a str.format template reads ("{text} {x[0]}" -> text, x), in order."""
    names = [name for _, name, _, _ in string.Formatter().parse(template) if name]
    return list(dict.fromkeys(name.split(".")[0].split("[")[0] for name in names))


def check_template(template: str) -> str:
    """`template` when every replacement field names an example field and its braces balance; else a ValueError
    saying what is wrong and how to write it (a literal brace is doubled: {{ or }})."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"{template!r} is not a str.format template ({exc}): close each field as {{name}}, and "
                         f"write a literal brace as {{{{ or }}}}") from exc
    for _, name, _, _ in parsed:
        if name is None:
            continue
        root = name.split(".")[0].split("[")[0]
        if not root or root.isdigit():
            raise ValueError(f"{template!r} has the field {{{name}}}, which names no example field: a template "
                             f"reads fields by name, e.g. {{text}}; write a literal brace as {{{{ or }}}}")
    return template


def fill(template: str, fields: Mapping[str, object], field: str) -> str:
    """`template` (the card's `field`, prompt_template or target_template) over an example's `fields`. A field the
    template reads that the example lacks is a CardError naming the card field, the closest field and every field
    there is: a built-in task's examples have fixed fields, which str.format answered with a bare KeyError."""
    missing = [name for name in template_fields(template) if name not in fields]
    if missing:
        close = difflib.get_close_matches(missing[0], list(fields), n=2, cutoff=0.5)  # {petal}: both petal_ fields
        hint = f" (did you mean {' or '.join(f'{{{name}}}' for name in close)}?)" if close else ""
        raise CardError(f"{field} {template!r} reads {{{missing[0]}}}{hint}, a field this task's examples do not "
                        f"have; they have {', '.join(f'{{{name}}}' for name in fields)}: read those in {field}")
    try:
        return template.format(**fields)
    except (ValueError, IndexError, AttributeError, KeyError) as exc:  # a format spec or an index the value lacks
        raise CardError(f"{field} {template!r} cannot be filled from this task's examples ({type(exc).__name__}: "
                        f"{exc}); read the fields {', '.join(f'{{{name}}}' for name in fields)} plainly") from exc
