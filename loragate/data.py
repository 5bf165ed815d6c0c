"""Examples and splits, and the hash that ties an adapter to the exact data it saw."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Example:
    """One prompt with its gold answer; `fields` holds the values the prompt was built from."""

    id: str
    prompt: str
    target: str
    label: str
    fields: dict[str, str] = field(default_factory=dict)
    references: tuple[str, ...] = ()  # every acceptable answer, for text metrics (QA: () = unanswerable)


@dataclass(frozen=True)
class Splits:
    train: list[Example]
    eval: list[Example]
    test: list[Example]

    def data_hash(self) -> str:
        """sha256 over every split's ids, prompts, targets, references and QA passages (`fields["context"]`): any
        change to data, bins or template changes it."""
        payload = {
            name: [[ex.id, ex.prompt, ex.target, *([list(ex.references)] if ex.references else []),
                    *([ex.fields["context"]] if ex.fields.get("context") else [])]
                   for ex in getattr(self, name)]
            for name in ("train", "eval", "test")
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def leaked(self) -> list[str]:
        """Ids of test examples whose input (prompt and fields, case and spacing ignored) also appears in train:
        a model that memorised train would score them without having learned the task."""
        def key(ex: Example) -> str:
            return " ".join(" ".join([ex.prompt, *ex.fields.values()]).lower().split())

        seen = {key(ex) for ex in self.train}
        return [ex.id for ex in self.test if key(ex) in seen]

    def texts(self) -> list[str]:
        """All prompt and target text, for training a tiny tokenizer on the task's own words."""
        return [ex.prompt + ex.target for split in (self.train, self.eval, self.test) for ex in split]

    def to_json(self) -> dict[str, list[dict]]:
        return {name: [asdict(ex) for ex in getattr(self, name)] for name in ("train", "eval", "test")}


def stratified_split(rows: list, labels: list[str], classes: list[str], test_fraction: float,
                     eval_fraction_of_rest: float, seed: int, min_per_class: int, source: object,
                     noun: str = "label") -> tuple[list, list, list]:
    """(train, eval, test) rows, each split holding every class in the proportions of the whole: `test_fraction`
    of the rows for test, then `eval_fraction_of_rest` of the rest for eval. A class with fewer than
    `min_per_class` rows is an error naming `source`: it could not reach every split."""
    from sklearn.model_selection import train_test_split  # imported here so `pytest --help` stays fast

    too_few = {c: labels.count(c) for c in classes if labels.count(c) < min_per_class}
    if too_few:
        raise ValueError(f"{source}: too few rows of {too_few} to give every split each {noun}; "
                         f"add at least {min_per_class} rows per {noun}")
    rest, test, rest_labels, _ = train_test_split(rows, labels, test_size=test_fraction, stratify=labels,
                                                  random_state=seed)
    train, eval_ = train_test_split(rest, test_size=eval_fraction_of_rest, stratify=rest_labels, random_state=seed)
    return train, eval_, test
