"""A card's `labels`: the class names, written as a list (`[billing, technical]`, `[1, 2, 3]`) or as a mapping from
the data's values to the names (`{1: World, 2: Sports}`).

The names are the labels everywhere after a row is read (targets, parsing, tables, figures, reports); the mapping
only translates the data's values when rows are read (loragate.data.card_files). A whole number is read as its text
(`1` is the label "1"), so numeric labels need no quotes; anything else that is not text is refused, saying to
quote it.
"""

from __future__ import annotations

from collections.abc import Mapping


def label_text(value: object, where: str) -> str:
    """A label (or a data value the card maps) as text: text as it is, a whole number as it reads."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    written = str(value).lower() if isinstance(value, bool) else value  # as YAML writes it
    raise ValueError(f"{where} is {written}, a {type(value).__name__}: a label is text or a whole number; quote it "
                     f"(\"{written}\") to make it text")


def label_values(labels: object) -> dict[str, str]:
    """The data's value -> the label's name, from a `labels` mapping; {} where `labels` is a list (each label is its
    own value)."""
    if not isinstance(labels, Mapping):
        return {}
    values: dict[str, str] = {}
    for value, name in labels.items():
        text = label_text(value, f"the data value {value!r}")
        if text in values:
            raise ValueError(f"the data value {text!r} is mapped twice ({values[text]!r} and {name!r}); map each "
                             f"value once")
        values[text] = label_text(name, f"the name of the data value {value!r}")
    return values


def label_names(labels: object) -> object:
    """The names of `labels` as a list of text: a mapping's names in its order, a list's items as text. Anything
    else is left to the field's own type check."""
    if isinstance(labels, Mapping):
        return list(label_values(labels).values())
    if isinstance(labels, list):
        return [label_text(label, f"labels[{index}]") for index, label in enumerate(labels)]
    return labels
