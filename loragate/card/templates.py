"""A card's prompt and target templates: str.format templates over an example's named fields, checked when the card
is read, so a template that cannot be filled is a card error naming the template field, not an IndexError or
ValueError from the first example it meets."""

from __future__ import annotations

import string


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
