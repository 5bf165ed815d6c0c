"""SQuAD v2-style extractive QA: a question and a short passage in, a span of the passage (or nothing) out.

The shipped data is generated here, seeded, from sentence templates about invented towns and people; no text
comes from SQuAD. Each passage is 2-5 sentences. Its answerable questions ask for a fact it states; its
unanswerable ones ask, in the same wording, for a fact it does not state (a founding year when only a bridge's
year is given, a mayor when only a founder is named) or for the same fact about another invented name. So a
model that picks "the year in the passage" fails, and at least a third of every split is unanswerable. Many
questions accept several gold answers ("1742" and "in 1742"; "Odile Marsk" and "the weaver Odile Marsk").

`--data PATH` reads the official SQuAD v2 JSON instead (`data -> paragraphs -> qas`); `plausible_answers` is
ignored. Both are split by passage (the context text), never by question, so no context is seen in training and
again in test.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from loragate.card.settings import TaskCard
from loragate.card.templates import fill
from loragate.data.examples import Example, Splits
from loragate.data.hf_dataset import missing_columns
from loragate.data.parsing import ParsedOutput
from loragate.tasks import CARDS_DIR, TASKS

PASSAGES = 160  # -> 506 questions: 327 train / 77 eval / 102 test, 40-41% unanswerable in each
GENERATOR_SEED = 0
SPLIT_SEED = 0
TEST_FRACTION = 0.2  # of the questions, whole passages at a time
EVAL_FRACTION = 0.15
MIN_UNANSWERABLE = 0.3  # every generated split holds at least this share of unanswerable questions
SWAP_SHARE = 0.25  # of unanswerable questions: a fact the passage states, asked about another name

ONSETS = ("b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gr", "kl", "st",
          "th", "tr", "vr", "sh", "w")
VOWELS = ("a", "e", "i", "o", "u", "ae", "ei", "ou", "ia")
CODAS = ("", "", "n", "r", "l", "s", "m", "sk", "nd", "th", "rn")
PROFESSIONS = ("weaver", "miller", "cartographer", "glassblower", "shipwright", "brewer", "potter", "clockmaker",
               "stonemason", "botanist", "astronomer", "printer", "blacksmith", "physician", "beekeeper")
PRODUCTS = ("woollen blankets", "blue glass", "smoked eel", "copper kettles", "pear cider", "salt cod", "lace",
            "clay pipes", "rye bread", "walnut furniture", "tin whistles", "goat cheese", "linen sails")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
FESTIVALS = ("lantern", "harvest", "kite", "music", "boat", "cheese", "candle", "apple")
SIZES = ("small", "quiet", "busy", "old", "walled", "hillside")
REGIONS = ("northern", "southern", "eastern", "western", "central")
TITLE_ADJ = ("Silent", "Last", "Narrow", "Golden", "Winter", "Hidden", "Salt", "Distant", "Iron")
TITLE_NOUN = ("Harbour", "Orchard", "Lantern", "Road", "Tide", "Meadow", "Archive", "Bell", "Garden")


@dataclass(frozen=True)
class Fact:
    """One sentence of a passage and the questions it answers. `questions`: (question templates, answer
    templates) pairs; the first answer is the target, every answer must be a substring of the sentence."""

    sentence: str
    questions: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]


TOWN_INTRO = "{T} is {a_size} town in the {region} hills of {land}."
TOWN_FACTS = (
    Fact("It was founded in {founded} by the {prof1} {P1}.", (
        (("When was {T} founded?", "In what year was {T} founded?", "What year was {T} established?"),
         ("{founded}", "in {founded}")),
        (("Who founded {T}?", "Who was the founder of {T}?"), ("{P1}", "the {prof1} {P1}")),
    )),
    Fact("{T} lies on the {R} river, {k} kilometres from the sea.", (
        (("Which river does {T} lie on?", "On what river is {T}?"), ("{R}", "the {R} river")),
        (("How far is {T} from the sea?", "How many kilometres from the sea is {T}?"), ("{k} kilometres", "{k}")),
    )),
    Fact("About {n} people live there today.", (
        (("How many people live in {T}?", "What is the population of {T}?"), ("{n}", "About {n}")),
    )),
    Fact("The town is known for its {product}.", (
        (("What is {T} known for?", "What is {T} famous for?"), ("{product}", "its {product}")),
    )),
    Fact("Its stone bridge was built in {bridge}.", (
        (("When was the stone bridge of {T} built?", "In what year was the bridge in {T} built?"),
         ("{bridge}", "in {bridge}")),
    )),
    Fact("The current mayor is {P2}, a former {prof2}.", (
        (("Who is the mayor of {T}?", "Who is {T}'s current mayor?"), ("{P2}",)),
        (("What did the mayor of {T} work as before?",), ("{prof2}", "a former {prof2}")),
    )),
    Fact("Every {month} the town holds {a_fest} festival.", (
        (("In which month does {T} hold its festival?", "When is the festival in {T} held?"),
         ("{month}", "Every {month}")),
        (("What kind of festival does {T} hold?",), ("{fest} festival", "{fest}")),
    )),
)
PERSON_INTRO = "{P} was {a_prof1} born in {T} in {y1}."
PERSON_FACTS = (
    Fact("{Sub} worked as {a_prof1} for {k} years.", (
        (("How long did {P} work as {a_prof1}?", "For how many years did {P} work?"), ("{k} years", "for {k} years")),
    )),
    Fact("{Sub} published a book called {title} in {y2}.", (
        (("What book did {P} publish?", "What was the title of {P}'s book?"), ("{title}",)),
        (("When did {P} publish a book?", "In what year did {P}'s book appear?"), ("{y2}", "in {y2}")),
    )),
    Fact("{Pos} teacher was the {prof2} {P2}.", (
        (("Who taught {P}?", "Who was {P}'s teacher?"), ("{P2}", "the {prof2} {P2}")),
    )),
    Fact("{Sub} later moved to {T2}, a town on the {R} river.", (
        (("Where did {P} move to?", "To which town did {P} move?"), ("{T2}",)),
    )),
    Fact("{P} died in {y3} at the age of {age}.", (
        (("When did {P} die?", "In what year did {P} die?"), ("{y3}", "in {y3}")),
        (("How old was {P} when {sub} died?", "At what age did {P} die?"), ("{age}",)),
    )),
    Fact("{Sub} married {P3} in {y4}.", (
        (("Whom did {P} marry?", "Who was {P}'s spouse?"), ("{P3}",)),
        (("When did {P} marry?", "In what year did {P} get married?"), ("{y4}", "in {y4}")),
    )),
)
PERSON_INTRO_QUESTIONS = (
    (("Where was {P} born?", "In which town was {P} born?"), ("{T}", "in {T}")),
    (("When was {P} born?", "In what year was {P} born?"), ("{y1}", "in {y1}")),
    (("What was {P}'s profession?", "What did {P} work as?"), ("{prof1}", "{a_prof1}")),
)


@dataclass(frozen=True)
class QARow:
    """One question on its passage. `answers`: every gold (text, start); () when unanswerable."""

    id: str
    context: str
    question: str
    answers: tuple[tuple[str, int], ...]


class SquadAnswer(BaseModel):
    answer: str  # "" is the model saying the passage does not answer the question


def invented_name(rng: random.Random, syllables: int) -> str:
    word = "".join(rng.choice(ONSETS) + rng.choice(VOWELS) for _ in range(syllables)) + rng.choice(CODAS)
    return word.capitalize()


def with_article(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def _values(rng: random.Random, names: set[str]) -> dict[str, str]:
    """The invented facts of one passage: distinct names and distinct years, so every answer occurs once."""

    def fresh(make: Any) -> str:
        while True:
            value = make()
            if value not in names:
                names.add(value)
                return value

    town = lambda: invented_name(rng, rng.randint(2, 3))  # noqa: E731
    person = lambda: f"{invented_name(rng, 2)} {invented_name(rng, rng.randint(1, 2))}"  # noqa: E731
    born = rng.randint(1600, 1880)  # a person's dates in order: born, married, published, died
    married, published, age = born + rng.randint(18, 30), born + rng.randint(31, 60), rng.randint(61, 95)
    founded = rng.randint(1100, 1800)  # a town's: founded, then its bridge built
    she = rng.random() < 0.5
    prof1, fest = rng.choice(PROFESSIONS), rng.choice(FESTIVALS)
    return {
        "T": fresh(town), "T2": fresh(town), "land": fresh(town), "R": fresh(town),
        "P": fresh(person), "P1": fresh(person), "P2": fresh(person), "P3": fresh(person),
        "other_T": fresh(town), "other_P": fresh(person),
        "y1": str(born), "y2": str(published), "y3": str(born + age), "y4": str(married), "age": str(age),
        "founded": str(founded), "bridge": str(founded + rng.randint(20, 150)),
        "prof1": prof1, "a_prof1": with_article(prof1), "prof2": rng.choice(PROFESSIONS),
        "product": rng.choice(PRODUCTS), "month": rng.choice(MONTHS), "fest": fest, "a_fest": with_article(fest),
        "a_size": with_article(rng.choice(SIZES)),
        "region": rng.choice(REGIONS), "k": str(rng.randint(3, 40)), "n": f"{rng.randint(2, 60)},{rng.randint(0, 9)}00",
        "title": f"The {rng.choice(TITLE_ADJ)} {rng.choice(TITLE_NOUN)}",
        "Sub": "She" if she else "He", "sub": "she" if she else "he", "Pos": "Her" if she else "His",
    }


def span_start(context: str, sentence_start: int, sentence: str, text: str, where: str) -> int:
    """Where `text` starts in `context`, found inside its own sentence; raises if the offsets disagree."""
    inside = sentence.find(text)
    start = sentence_start + inside
    if inside < 0 or context[start : start + len(text)] != text:
        raise ValueError(f"{where}: answer {text!r} is not a span of its sentence {sentence!r}")
    return start


def generate_passage(rng: random.Random, index: int, names: set[str]) -> list[QARow]:
    """One passage (an intro + 1-4 fact sentences) and its questions: 1-3 answerable, then ceil(half as many)
    unanswerable, so every passage, and so every split, is at least a third unanswerable."""
    values = _values(rng, names)
    about_town = index % 2 == 0
    intro, facts = (TOWN_INTRO, TOWN_FACTS) if about_town else (PERSON_INTRO, PERSON_FACTS)
    chosen = sorted(rng.sample(range(len(facts)), rng.randint(1, 4)))
    intro_fact = Fact(intro, () if about_town else PERSON_INTRO_QUESTIONS)
    sentences = [intro_fact, *(facts[i] for i in chosen)]
    rendered = [fact.sentence.format(**values) for fact in sentences]
    context = " ".join(rendered)
    starts = [sum(len(s) + 1 for s in rendered[:i]) for i in range(len(rendered))]
    stated = [(fact, sentence, start, pair) for fact, sentence, start in zip(sentences, rendered, starts)
              for pair in fact.questions]
    missing = [pair for i, fact in enumerate(facts) if i not in chosen for pair in fact.questions]
    answerable = rng.sample(stated, min(len(stated), rng.randint(1, 3)))
    rows = []
    for _fact, sentence, start, (templates, answer_templates) in answerable:
        question = rng.choice(templates).format(**values)
        where = f"generated passage {index}, question {question!r}"
        texts = [t.format(**values) for t in answer_templates]
        answers = tuple((text, span_start(context, start, sentence, text, where)) for text in texts)
        rows.append((question, answers))
    unasked = rng.sample(missing, len(missing))  # without replacement: no question twice
    swappable = [pair for _f, _s, _st, pair in answerable]
    for _ in range(math.ceil(len(answerable) / 2)):
        if swappable and rng.random() < SWAP_SHARE:  # a stated fact, asked about a name the passage never mentions
            swapped = {**values, "T": values["other_T"], "P": values["other_P"]}
            question = rng.choice(swappable.pop()[0]).format(**swapped)
        else:
            question = rng.choice(unasked.pop()[0]).format(**values)
        rows.append((question, ()))
    return [QARow(f"squad_v2-gen-{index:03d}-{q}", context, question, answers)
            for q, (question, answers) in enumerate(rows)]


def generate_rows(passages: int = PASSAGES, seed: int = GENERATOR_SEED) -> list[QARow]:
    """`passages` generated passages' questions, in passage order: seeded, so the same arguments give the same
    rows, ids included."""
    rng = random.Random(seed)
    names: set[str] = set()
    return [row for index in range(passages) for row in generate_passage(rng, index, names)]


def _at(path: Path, where: str, problem: str) -> ValueError:
    return ValueError(f"{path}: {where}: {problem}")


def _field(path: Path, where: str, obj: Any, name: str, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(obj, dict):
        raise _at(path, where, f"expected an object with {name!r}, got {type(obj).__name__}; {what}")
    if name not in obj:
        raise _at(path, where, f"missing field {name!r}; {what}")
    value = obj[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise _at(path, f"{where}.{name}", f"expected {names}, got {type(value).__name__} {value!r:.40}; {what}")
    return value


def read_squad_json(path: Path) -> list[QARow]:
    """Questions of an official SQuAD v2 JSON file (`{"data": [{"paragraphs": [{"context", "qas": [{"id",
    "question", "is_impossible", "answers": [{"text", "answer_start"}]}]}]}]}`) as rows, with every answer's
    answer_start checked against the context. A missing `is_impossible` (SQuAD v1.1) means "no answers listed".
    `plausible_answers` is ignored: those are wrong answers by construction."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the SQuAD v2 JSON: {exc.strerror}") from exc
    try:
        document = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}:{exc.colno}: not JSON ({exc.msg}); pass the SQuAD v2 file itself "
                         f"(train-v2.0.json or dev-v2.0.json), not a JSON-lines or CSV export") from exc
    shape = 'the SQuAD v2 layout is {"version": "v2.0", "data": [{"title", "paragraphs": [...]}]}'
    data = _field(path, "top level", document, "data", list, shape)
    rows: list[QARow] = []
    seen: dict[str, str] = {}
    for a, article in enumerate(data):
        paragraphs = _field(path, f"data[{a}]", article, "paragraphs", list, "each article lists its paragraphs")
        for p, paragraph in enumerate(paragraphs):
            here = f"data[{a}].paragraphs[{p}]"
            context = _field(path, here, paragraph, "context", str, "each paragraph has its context text")
            if not context.strip():
                raise _at(path, f"{here}.context", "empty context; remove the paragraph or fill in its text")
            qas = _field(path, here, paragraph, "qas", list, "each paragraph lists its questions")
            for q, qa in enumerate(qas):
                row = _read_question(path, f"{here}.qas[{q}]", qa, context)
                if row.id in seen:
                    raise _at(path, f"{here}.qas[{q}].id", f"id {row.id!r} repeats {seen[row.id]}; ids must be unique")
                seen[row.id] = f"{here}.qas[{q}]"
                rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no questions under data[].paragraphs[].qas; the file needs at least three "
                         f"paragraphs with questions, one for each of train, eval and test")
    return rows


def _read_question(path: Path, here: str, qa: Any, context: str) -> QARow:
    qid = _field(path, here, qa, "id", str, "each question has a unique string id")
    question = _field(path, here, qa, "question", str, "each question has its text")
    if not question.strip():
        raise _at(path, f"{here}.question", "empty question; remove it or fill in its text")
    impossible = qa.get("is_impossible")
    if impossible is not None and not isinstance(impossible, bool):
        raise _at(path, f"{here}.is_impossible", f"expected true or false, got {impossible!r:.40}")
    listed = qa.get("answers", [] if impossible else None)
    if listed is None:
        raise _at(path, here, "missing field 'answers'; list [{\"text\", \"answer_start\"}], or [] with "
                              "\"is_impossible\": true for a question the context does not answer")
    if not isinstance(listed, list):
        raise _at(path, f"{here}.answers", f"expected a list, got {type(listed).__name__}")
    if impossible is None:
        impossible = not listed
    if impossible and listed:
        raise _at(path, f"{here}.answers", f"is_impossible is true but {len(listed)} answers are listed; move them "
                                           f"to plausible_answers or set is_impossible to false")
    if not impossible and not listed:
        raise _at(path, f"{here}.answers", "is_impossible is false but no answers are listed; add the answer "
                                           "span or set is_impossible to true")
    answers: list[tuple[str, int]] = []
    for i, answer in enumerate(listed):
        at = f"{here}.answers[{i}]"
        text = _field(path, at, answer, "text", str, "each answer has its text, a span of the context")
        start = _field(path, at, answer, "answer_start", int, "the character offset of the text in the context")
        if not text:
            raise _at(path, f"{at}.text", "empty answer text; remove the answer or fill in the span")
        if context[start : start + len(text)] != text:
            found = context.find(text)
            fix = (f"the text first occurs at {found}: set answer_start to {found}" if found >= 0
                   else "the text does not occur in the context at all: copy the span from the context")
            shown = context[max(start, 0) : max(start, 0) + len(text)]
            raise _at(path, f"{at}.answer_start", f"{start} points at {shown!r}, not the answer text {text!r}; {fix}")
        if (text, start) not in answers:  # the dev set repeats an answer once per annotator
            answers.append((text, start))
    return QARow(qid, context, question, tuple(answers))


def split_rows(rows: list[QARow], source: Path | str = "generated data") -> tuple[list[QARow], ...]:
    """Train/eval/test by passage: the distinct contexts are shuffled under SPLIT_SEED and dealt out, test first
    then eval, until each holds its share of the questions. A context's questions all land in one split, so no
    passage is read in training and then asked about in test."""
    groups: dict[str, list[QARow]] = {}
    for row in rows:
        groups.setdefault(row.context, []).append(row)
    if len(groups) < 3:
        raise ValueError(f"{source}: {len(groups)} distinct passages; the split needs at least 3 (one each for "
                         f"train, eval and test) because a passage never straddles two splits")
    order = list(groups.values())
    random.Random(SPLIT_SEED).shuffle(order)
    test: list[QARow] = []
    eval_: list[QARow] = []
    train: list[QARow] = []
    for group in order:
        if len(test) < TEST_FRACTION * len(rows):
            test += group
        elif len(eval_) < EVAL_FRACTION * len(rows):
            eval_ += group
        else:
            train += group
    if not train:
        raise ValueError(f"{source}: after dealing {len(test)} questions to test and {len(eval_)} to eval no "
                         f"passage is left for train; add passages (a passage's questions stay together)")
    return train, eval_, test


def make_example(row: QARow, prompt_template: str = "{question}", target_template: str = "{answer}") -> Example:
    fields = {"context": row.context, "question": row.question,
              "answer_start": str(row.answers[0][1] if row.answers else -1)}
    first = row.answers[0][0] if row.answers else ""
    return Example(
        id=row.id,
        prompt=fill(prompt_template, fields, "prompt_template"),
        target=fill(target_template, {"answer": first}, "target_template"),
        label="answerable" if row.answers else "unanswerable",
        fields=fields,
        references=tuple(text for text, _ in row.answers),
    )


def build_splits(rows: list[QARow], source: Path | str = "generated data", prompt_template: str = "{question}",
                 target_template: str = "{answer}") -> Splits:
    parts = [[make_example(row, prompt_template, target_template) for row in part] for part in split_rows(rows, source)]
    return Splits(train=parts[0], eval=parts[1], test=parts[2])


def generated_splits(prompt_template: str = "{question}", target_template: str = "{answer}") -> Splits:
    """The shipped data, split; raises if a split is under MIN_UNANSWERABLE unanswerable."""
    splits = build_splits(generate_rows(), "generated data", prompt_template, target_template)
    for name in ("train", "eval", "test"):
        part = getattr(splits, name)
        share = sum(ex.label == "unanswerable" for ex in part) / len(part)
        if share < MIN_UNANSWERABLE:
            raise ValueError(f"generated {name} split is {share:.0%} unanswerable, under {MIN_UNANSWERABLE:.0%}")
    return splits


def parse_answer(text: str) -> ParsedOutput:
    """Any string is an answer (an empty one means "unanswerable"); whitespace around it is ignored. Never
    raises: a span model's output is a span of the context, or nothing, by construction."""
    return ParsedOutput(SquadAnswer(answer=str(text).strip()), None)


class SquadV2Task:
    def __init__(self) -> None:
        self.card = TaskCard.from_yaml(CARDS_DIR / "squad_v2.yaml")

    hub_suffix = ".json"

    def write_hub_rows(self, rows: Iterable[dict], columns: list[str], source: str, out: Path) -> None:
        """The hub's flat layout (rajpurkar/squad_v2): one row per question with `id`, `title`, `context`,
        `question`, `answers: {text: [...], answer_start: [...]}`, regrouped into the official nested JSON."""
        missing_columns(columns, ("id", "title", "context", "question", "answers"), source, "squad_v2",
                        "one row per question, answers as {text, answer_start} lists")
        articles: dict[str, dict[str, list[dict]]] = {}
        for row in rows:
            answers = [{"text": text, "answer_start": start}
                       for text, start in zip(row["answers"]["text"], row["answers"]["answer_start"])]
            paragraphs = articles.setdefault(row["title"], {})
            paragraphs.setdefault(row["context"], []).append(
                {"id": row["id"], "question": row["question"], "answers": answers, "is_impossible": not answers})
        data = [{"title": title,
                 "paragraphs": [{"context": context, "qas": qas} for context, qas in paragraphs.items()]}
                for title, paragraphs in articles.items()]
        out.write_text(json.dumps({"version": "v2.0", "data": data}), encoding="utf-8")

    def load_splits(self, data: Path | None = None) -> Splits:
        """By passage, about 65/15/20 of the questions (327/77/102 generated; see `split_rows`)."""
        templates = (self.card.prompt_template, self.card.target_template)
        return build_splits(read_squad_json(data), data, *templates) if data else generated_splits(*templates)

    def parse(self, text: str) -> ParsedOutput:
        return parse_answer(text)

    def ceiling(self, test: list[Example]) -> None:
        """Not computed: every gold answer is a span of its passage, so a perfect reader scores 1."""
        return None


TASKS.register("squad_v2", SquadV2Task)
