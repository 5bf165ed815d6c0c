"""The YAML reader of cards and `--set` values: PyYAML's pure-Python SafeLoader (on purpose: no libyaml build to
differ between machines), with two rules of its own.

- A key given twice in one mapping is an error naming its line: YAML would keep the last silently, so a second
  `gates:` block would replace the first without a word.
- Only YAML 1.2's booleans (true, false, in any case) are booleans: YAML 1.1 also reads yes/no/on/off as booleans,
  and pydantic then reads those as numbers (`r: yes` -> 1, `min_validity: off` -> 0.0). They stay strings here, so
  a numeric field refuses them naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from typing import Any

import yaml
from yaml.nodes import MappingNode

BOOL_TAG = "tag:yaml.org,2002:bool"
MERGE_TAG = "tag:yaml.org,2002:merge"


class DuplicateKeyError(yaml.YAMLError):
    """A mapping that names one key twice; the message gives the key and both lines (1-based)."""

    def __init__(self, key: object, line: int, first_line: int) -> None:
        super().__init__(f"line {line}: the key {key!r} is given twice in one mapping (first at line {first_line}); "
                         f"YAML would keep only the last, silently: give each key once (merge the two blocks)")
        self.key, self.line, self.first_line = key, line, first_line


class CardLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and reads only true/false as booleans."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        """The mapping as SafeLoader builds it, once no key repeats among the node's own keys (a `<<` merge may
        still be overridden by a key of the node, as YAML intends)."""
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):  # a list as a key: SafeLoader's own error below names it
                break
            line = key_node.start_mark.line + 1
            if key in seen:
                raise DuplicateKeyError(key, line, seen[key])
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


CardLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
CardLoader.add_implicit_resolver(BOOL_TAG, re.compile(r"^(?:true|false)$", re.IGNORECASE), list("tTfF"))


def load_yaml(text: str) -> Any:
    """`text` read as YAML by CardLoader: a DuplicateKeyError (a yaml.YAMLError) on a repeated key."""
    return yaml.load(text, Loader=CardLoader)
