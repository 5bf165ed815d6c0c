"""Instruction tuning (SFT): an instruction in, a free-text response out, loss on the response tokens only.

Shipped data: 400 instruction/response pairs GENERATED here over a small invented world (twelve countries with
a capital, language, currency, national animal and flag; people who do things; greetings). No text comes from
Dolly or FineTome. Every response is short (at most 13 tokens + EOS on the tiny tokenizer) and fixed by its
instruction, and every fact is
asked three ways, so a test question is usually a new phrasing of a fact the train split holds.

`--data PATH` reads a real file instead, JSON (a list of records) or JSONL (one record per line), its format
told by the first record's fields:

* ShareGPT / FineTome: `conversations: [{from: human|gpt|system, value}]`. The first human turn is the
  instruction, the gpt turn right after it the response; later turns are dropped (single-turn SFT). A system
  turn before it is kept as a system message, and the model's chat template places it (Llama 3.2: its own
  header; Gemma 3's template prepends it to the user turn; the tiny template: a `<|system|>` block).
* Dolly: `instruction`, `context`, `response`. The context is NOT shown to the model, as in the seed (which
  dropped it); it is kept in `fields["context"]` for the record only.

A file's rows are shuffled with a fixed seed and at most MAX_EXAMPLES kept (the seed trained on 1000 Dolly
examples), then cut 70/15/15 into train/eval/test; ids are `instruct-<row index in the file>`.

Prompts are chat-formatted text (see loragate/models/chat.py): rendered with TINY_CHAT_TEMPLATE here, and again with
the base's own template by `chat.format_splits` once the base is loaded.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from loragate.card.settings import TaskCard
from loragate.card.templates import fill
from loragate.data.examples import Example, Splits
from loragate.data.hf_dataset import missing_columns
from loragate.data.parsing import ParsedOutput
from loragate.kinds.instruct.parsing import parse_response
from loragate.tasks import CARDS_DIR, TASKS

# name, capital, language, currency, national animal, flag colors: all invented
COUNTRIES = (
    ("Zorvia", "Kelm", "Vellic", "crown", "snow owl", ("red", "green", "gold")),
    ("Marsk", "Dunrow", "Orrun", "shell", "river otter", ("blue", "white", "black")),
    ("Quellan", "Aspel", "Sashi", "mark", "gray wolf", ("green", "white", "orange")),
    ("Tavoria", "Miravel", "Krellish", "leaf", "red fox", ("purple", "gold", "white")),
    ("Brindor", "Torrin", "Dumari", "star", "black bear", ("black", "red", "white")),
    ("Elsmoor", "Ghalt", "Pellan", "ring", "white stag", ("blue", "gold", "green")),
    ("Varnith", "Sevrin", "Thissa", "pearl", "sea eagle", ("orange", "black", "blue")),
    ("Oskaria", "Lunmar", "Ambric", "coin", "lynx", ("white", "purple", "red")),
    ("Drellin", "Broska", "Quonese", "bell", "heron", ("gold", "blue", "red")),
    ("Pelandor", "Feyla", "Ruskan", "flame", "badger", ("green", "black", "purple")),
    ("Kestria", "Cordel", "Elvian", "stone", "falcon", ("red", "blue", "orange")),
    ("Umbrell", "Nimra", "Tarnic", "moon", "seal", ("white", "green", "black")),
)
# (instruction phrasings, response) per fact; {c} country, {capital}, {language}, {currency}, {animal}, {flag}
COUNTRY_FACTS = (
    (("What is the capital of {c}?", "Which city is the capital of {c}?", "Name the capital city of {c}."),
     "The capital of {c} is {capital}."),
    (("What language is spoken in {c}?", "Which language do people in {c} speak?", "Name the main language of {c}."),
     "People in {c} speak {language}."),
    (("What currency does {c} use?", "What money is used in {c}?", "Name the currency of {c}."),
     "{c} uses the {currency}."),
    (("What is the national animal of {c}?", "Which animal is the symbol of {c}?", "Name the national animal of {c}."),
     "The national animal of {c} is the {animal}."),
    (("List the colors of the {c} flag.", "What colors are on the flag of {c}?",
      "Name the three colors of the flag of {c}."),
     "{flag}."),
    (("Which country has {capital} as its capital?", "{capital} is the capital of which country?"),
     "{capital} is the capital of {c}."),
    (("Describe {c} in one sentence.", "Tell me about {c} briefly."),
     "{c} is a country whose capital is {capital} and whose people speak {language}."),
)
PEOPLE = ("Mira", "Tobin", "Asha", "Pell", "Rook", "Yara", "Dov", "Lenna")
GREETINGS = (
    ("Write a short greeting for {n}.", "Hello, {n}! It is good to see you."),
    ("Write a short goodbye to {n}.", "Goodbye, {n}. See you again soon."),
    ("Write a thank-you note to {n}.", "Thank you, {n}, for all your help."),
    ("Congratulate {n} on the new job.", "Congratulations on the new job, {n}!"),
)
VERBS = (("paints", "painted"), ("opens", "opened"), ("carries", "carried"), ("cleans", "cleaned"),
         ("finds", "found"), ("sees", "saw"), ("builds", "built"), ("sells", "sold"), ("takes", "took"),
         ("mends", "mended"))
OBJECTS = ("the red door", "a small boat", "the old map", "a basket of plums", "the garden gate", "a copper lamp",
           "the blue kite", "a wooden chair")
PAST_TENSE = 140  # sampled from the 640 person x verb x object sentences: 228 + 32 + 140 = 400 pairs
GENERATOR_SEED = 0
EVAL_FRACTION = 0.15
TEST_FRACTION = 0.15  # 400 generated pairs -> 280 train / 60 eval / 60 test
SPLIT_SEED = 0
MAX_EXAMPLES = 1000  # rows kept from a --data file, as the seed's 1000 Dolly examples
MIN_EXAMPLES = 10  # so every split of a --data file holds at least one example
PROMPT_TEMPLATE = "{instruction}"  # the user turn; the card's prompt_template
TARGET_TEMPLATE = "{response}"  # no leading space: the chat template's assistant header ends with a newline
SHAREGPT_ROLES = {"human": "user", "gpt": "assistant", "system": "system"}


@dataclass(frozen=True)
class Pair:
    """One single-turn example: what the user asked and the reference response."""

    instruction: str
    response: str
    system: str = ""
    context: str = ""  # Dolly's context: kept for the record, not shown to the model


def _join_colors(colors: tuple[str, ...]) -> str:
    return f"{', '.join(colors[:-1])} and {colors[-1]}".capitalize()


def generate_pairs(past_tense: int = PAST_TENSE, seed: int = GENERATOR_SEED) -> list[Pair]:
    """The shipped pairs in a fixed order: every country fact in each phrasing, every greeting, then
    `past_tense` rewriting exercises drawn with `seed`. Same arguments, same pairs; instructions are unique."""
    pairs = []
    for c, capital, language, currency, animal, flag in COUNTRIES:
        values = dict(c=c, capital=capital, language=language, currency=currency, animal=animal,
                      flag=_join_colors(flag))
        for phrasings, response in COUNTRY_FACTS:
            pairs += [Pair(p.format(**values), response.format(**values)) for p in phrasings]
    for name in PEOPLE:
        pairs += [Pair(instruction.format(n=name), response.format(n=name)) for instruction, response in GREETINGS]
    sentences = [(name, verb, obj) for name in PEOPLE for verb in VERBS for obj in OBJECTS]
    for name, (present, past), obj in random.Random(seed).sample(sentences, past_tense):
        pairs.append(Pair(f"Rewrite in the past tense: {name} {present} {obj}.", f"{name} {past} {obj}."))
    instructions = [pair.instruction for pair in pairs]
    assert len(set(instructions)) == len(instructions), "generated instructions repeat"
    return pairs


def make_example(example_id: str, pair: Pair, prompt_template: str = PROMPT_TEMPLATE,
                 target_template: str = TARGET_TEMPLATE) -> Example:
    """An Example whose prompt is the tiny chat template's rendering of the pair's conversation."""
    from loragate.models.chat import example_messages, render_tiny  # loads transformers: not at pytest start-up

    fields = {"instruction": pair.instruction,
              **({"system": pair.system} if pair.system else {}),
              **({"context": pair.context} if pair.context else {})}
    response = fill(target_template, {"response": pair.response}, "target_template")
    return Example(id=example_id, prompt=render_tiny(example_messages(fields, prompt_template)), target=response,
                   label="", fields=fields, references=(pair.response,))


def split_rows(rows: list[tuple[str, Pair]], max_rows: int | None = None,
               seed: int = SPLIT_SEED) -> tuple[list, list, list]:
    """A seeded shuffle, its first `max_rows` kept, cut 70/15/15 (eval and test rounded, at least one each)."""
    order = list(rows)
    random.Random(seed).shuffle(order)
    order = order[:max_rows]
    n_eval = max(1, round(len(order) * EVAL_FRACTION))
    n_test = max(1, round(len(order) * TEST_FRACTION))
    train_end = len(order) - n_eval - n_test
    return order[:train_end], order[train_end : train_end + n_eval], order[train_end + n_eval :]


# ----------------------------------------------------------------------------------------------- reading files


def read_records(path: Path) -> list[tuple[str, object]]:
    """(where, record) for each record of a JSON list or a JSONL file; `where` is `path:line` or `path[index]`."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the instruct data: {exc.strerror}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from exc
    if text.lstrip().startswith("["):  # a JSON list; a JSONL line is an object, never a list
        try:
            records = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}, column {exc.colno}); "
                             f"fix the file or write one JSON object per line (JSONL)") from exc
        return [(f"{path}[{index}]", record) for index, record in enumerate(records)]
    records = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            records.append((f"{path}:{number}", json.loads(line)))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not valid JSON ({exc.msg}, column {exc.colno}); each line of a "
                             f"JSONL file must be one complete JSON object") from exc
    return records


def _text(where: str, record: dict, key: str, fix: str) -> str:
    value = record.get(key)
    if not isinstance(value, str):
        got = "missing" if key not in record else f"a {type(value).__name__}, not a string"
        raise ValueError(f"{where}: field {key!r} is {got}; {fix}")
    return value


def dolly_pair(where: str, record: dict) -> Pair:
    """Dolly: `instruction`, `context` (may be empty; not shown to the model, as in the seed), `response`."""
    fix = "each Dolly record needs string fields instruction, context and response"
    instruction = _text(where, record, "instruction", fix).strip()
    response = _text(where, record, "response", fix).strip()
    context = record.get("context", "")
    if not isinstance(context, str):
        raise ValueError(f"{where}: field 'context' is a {type(context).__name__}, not a string; {fix}")
    for key, value in (("instruction", instruction), ("response", response)):
        if not value:
            raise ValueError(f"{where}: field {key!r} is empty; remove the record or fill in its {key}")
    return Pair(instruction, response, context=context.strip())


def sharegpt_pair(where: str, record: dict) -> Pair:
    """ShareGPT/FineTome: system turns before the first human turn, that turn, and the gpt turn after it."""
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise ValueError(f"{where}: field 'conversations' must be a non-empty list of "
                         f"{{\"from\": \"human\"|\"gpt\"|\"system\", \"value\": text}} turns")
    system, instruction = [], None
    for index, turn in enumerate(turns):
        at = f"{where}: conversations[{index}]"
        if not isinstance(turn, dict):
            raise ValueError(f"{at} is a {type(turn).__name__}; each turn is an object with 'from' and 'value'")
        role = turn.get("from")
        if role not in SHAREGPT_ROLES:
            raise ValueError(f"{at}: field 'from' is {role!r}; use one of {', '.join(SHAREGPT_ROLES)}")
        value = _text(at, turn, "value", "each turn needs a string 'value'").strip()
        if instruction is None:
            if role == "gpt":
                raise ValueError(f"{at}: a gpt turn before any human turn; the first non-system turn must be human")
            if role == "system":
                system.append(value)
                continue
            if not value:
                raise ValueError(f"{at}: field 'value' of the human turn is empty; fill it in or drop the record")
            instruction = value
            continue
        if role != "gpt":
            raise ValueError(f"{at}: the turn after the first human turn is {role!r}, expected 'gpt' (the response)")
        if not value:
            raise ValueError(f"{at}: field 'value' of the gpt turn is empty; fill it in or drop the record")
        return Pair(instruction, value, system="\n".join(part for part in system if part))
    raise ValueError(f"{where}: field 'conversations' has no gpt turn after the first human turn; "
                     f"each record needs a human instruction followed by a gpt response")


def read_pairs(path: Path) -> list[Pair]:
    """Every record of a Dolly or ShareGPT/FineTome file as a Pair; the first record decides the format."""
    records = read_records(path)
    if not records:
        raise ValueError(f"{path}: no records; write Dolly or ShareGPT/FineTome records as JSONL or a JSON list")
    first_where, first = records[0]
    if not isinstance(first, dict):
        raise ValueError(f"{first_where}: a {type(first).__name__}, not an object; each record is a JSON object")
    if "conversations" in first:
        reader, expected = sharegpt_pair, "ShareGPT/FineTome (it has 'conversations')"
    elif "instruction" in first:
        reader, expected = dolly_pair, "Dolly (it has 'instruction')"
    else:
        raise ValueError(f"{first_where}: neither field 'conversations' (ShareGPT/FineTome) nor 'instruction' "
                         f"(Dolly) is there, only {sorted(first)}; use one of those two formats")
    pairs = []
    for where, record in records:
        if not isinstance(record, dict):
            raise ValueError(f"{where}: a {type(record).__name__}, not an object; each record is a JSON object")
        try:
            pairs.append(reader(where, record))
        except ValueError as exc:
            raise ValueError(f"{exc} (the file is read as {expected}, told by its first record)") from exc
    return pairs


def load_splits(data: Path | None = None, prompt_template: str = PROMPT_TEMPLATE,
                target_template: str = TARGET_TEMPLATE, max_examples: int = MAX_EXAMPLES) -> Splits:
    """70/15/15 splits of the generated pairs (280/60/60), or of `data` (seeded, at most `max_examples` rows)."""
    pairs = generate_pairs() if data is None else read_pairs(data)
    if len(pairs) < MIN_EXAMPLES:
        raise ValueError(f"{data}: {len(pairs)} records; at least {MIN_EXAMPLES} are needed to give "
                         f"train, eval and test examples each")
    rows = [(f"instruct-{index}", pair) for index, pair in enumerate(pairs)]
    train, eval_, test = split_rows(rows, None if data is None else max_examples)
    build = lambda part: [make_example(i, pair, prompt_template, target_template) for i, pair in part]  # noqa: E731
    return Splits(train=build(train), eval=build(eval_), test=build(test))


class InstructTask:
    def __init__(self) -> None:
        self.card = TaskCard.from_yaml(CARDS_DIR / "instruct.yaml")

    hub_suffix = ".jsonl"

    def write_hub_rows(self, rows: Iterable[dict], columns: list[str], source: str, out: Path) -> None:
        """Dolly (databricks/databricks-dolly-15k: instruction, context, response) or ShareGPT/FineTome
        (mlabonne/FineTome-100k: conversations), written as JSONL records as they are."""
        layout = ("conversations",) if "conversations" in columns else ("instruction", "response")
        missing_columns(columns, layout, source, "instruct", "Dolly's instruction/response or ShareGPT conversations")
        with out.open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")

    def load_splits(self, data: Path | None = None) -> Splits:
        block = self.card.block("instruct")
        return load_splits(data, self.card.prompt_template, self.card.target_template,
                           block.max_examples if block is not None else MAX_EXAMPLES)

    def parse(self, text: str) -> ParsedOutput:
        return parse_response(text)

    def ceiling(self, test: list[Example]) -> None:
        """Not knowable: free text has no best achievable score to count."""
        return None
TASKS.register("instruct", InstructTask)
