"""News topics: World, Sports, Business or Sci/Tech from a headline and its first sentence.

The shipped data is generated here from templates over invented names, not copied from AG News. Names are
shared across topics on purpose (a country has a national team and a trade deficit, a company ships phones and
reports earnings), so the topic lies in what the sentence says about the name, not in the name itself.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from loragate.card.settings import TaskCard
from loragate.card.templates import fill
from loragate.data.examples import Example, Splits, csv_records, stratified_split
from loragate.data.hf_dataset import missing_columns
from loragate.data.parsing import ParsedOutput, parse_label
from loragate.tasks import CARDS_DIR, TASKS

AG_NEWS_CLASSES = {"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"}  # AG News class index -> label
AG_NEWS_COLUMNS = ("class index", "title", "description")  # the CSV has no header
PER_TOPIC = 100
TEST_FRACTION = 0.2
EVAL_FRACTION_OF_REST = 0.2
SPLIT_SEED = 0
MIN_PER_TOPIC = 5

COUNTRIES = ["Valdoria", "Kesh", "Morvania", "Tallis", "Orvane", "Quenland", "Straya Minor", "Belcar"]
CITIES = ["Port Ilse", "Dunmarrow", "Keshtal", "Avenport", "Lorne", "Marisca"]
COMPANIES = ["Norrix", "Caldera Systems", "Bluefen", "Opaline", "Vantor Group", "Heliq", "Tamsen Labs"]
PEOPLE = ["Ada Morrow", "Ivo Petrak", "Lena Sarr", "Tomas Reyl", "Mira Quist", "Odin Vale"]
TEAMS = ["Dunmarrow Rovers", "Avenport City", "the Keshtal Hawks", "Lorne United", "the Marisca Comets"]

TEMPLATES: dict[str, list[tuple[str, str]]] = {
    "World": [
        ("{country} and {country2} sign border accord",
         "Leaders met in {city} and agreed to reopen crossings closed since the dispute."),
        ("Protests grow in {city} ahead of {country} vote",
         "Thousands marched as the opposition accused the government of delaying the election."),
        ("{person} named envoy to {country}", "The veteran diplomat will lead talks on refugees and the ceasefire."),
        ("Ceasefire holds in northern {country}",
         "Aid convoys reached {city} for the first time in weeks, officials said."),
        ("{country} recalls ambassador from {country2}", "The foreign ministry cited a row over detained journalists."),
        ("Floods displace thousands in {country}",
         "Rescue teams from {country2} joined the relief effort around {city}."),
    ],
    "Sports": [
        ("{team} beat {team2} in extra time",
         "A late header sealed the win and lifted the side to second in the league."),
        ("{country} reach the final of the world cup",
         "The national team came from behind to knock out {country2} in {city}."),
        ("{person} wins the marathon in {city}", "The runner broke the course record by forty seconds."),
        ("{team} sign striker from {team2}", "The forward joins on a three-year deal before the new season."),
        ("Injury rules {person} out of the open", "The top seed withdrew with a wrist problem before the first round."),
        ("{country} name squad for the summer games",
         "The coach picked six debutants for the relay and the rowing events."),
    ],
    "Business": [
        ("{company} shares jump after strong quarter",
         "Profit rose on higher sales in {country}, beating analysts' forecasts."),
        ("{company} to cut jobs as orders fall", "The firm will close its plant near {city} to reduce costs."),
        ("{country} central bank raises interest rates",
         "Inflation reached its highest level in a decade, the bank said."),
        ("{company} agrees takeover of {company2}",
         "The deal values the rival at a premium to its closing share price."),
        ("{country} trade deficit widens", "Imports of fuel and machinery grew faster than exports, figures showed."),
        ("{person} steps down as chief executive of {company}",
         "Investors welcomed the change and the stock rose in early trading."),
    ],
    "Sci/Tech": [
        ("{company} unveils a faster phone chip",
         "The processor doubles battery life, engineers said at the launch in {city}."),
        ("Researchers in {country} map a new protein",
         "The structure could help scientists design drugs against the virus."),
        ("{company} patches a flaw in its browser",
         "Attackers could have read passwords from other tabs, the software firm said."),
        ("Telescope spots water on a distant planet",
         "Astronomers from {country} and {country2} published the data this week."),
        ("{person} builds a robot that learns to walk",
         "The machine taught itself on a laboratory treadmill in {city}."),
        ("{company} opens its cloud software to developers", "Programmers can now run code on the network for free."),
    ],
}


class TopicAnswer(BaseModel):
    topic: Literal["World", "Sports", "Business", "Sci/Tech"]


def generate_rows(per_topic: int = PER_TOPIC, seed: int = SPLIT_SEED) -> list[tuple[str, str, str, str]]:
    """(id, title, description, topic) rows, `per_topic` unique rows per topic, the same for the same seed."""
    rng = random.Random(seed)
    rows: list[tuple[str, str, str, str]] = []
    for topic, templates in TEMPLATES.items():
        seen: set[tuple[str, str]] = set()
        while len(seen) < per_topic:
            title, description = rng.choice(templates)
            country, country2 = rng.sample(COUNTRIES, 2)
            company, company2 = rng.sample(COMPANIES, 2)
            team, team2 = rng.sample(TEAMS, 2)
            slots = dict(country=country, country2=country2, city=rng.choice(CITIES), company=company,
                         company2=company2, person=rng.choice(PEOPLE), team=team, team2=team2)
            pair = (title.format(**slots), description.format(**slots))
            if pair not in seen:
                seen.add(pair)
                rows.append((f"topics-{len(rows)}", pair[0], pair[1], topic))
    return rows


def read_ag_news_csv(path: Path) -> list[tuple[str, str, str, str]]:
    """AG News CSV rows: class index 1-4, title, description; no header."""
    rows = []
    with open_text(path) as handle:
        for line, record in csv_records(path, handle, AG_NEWS_COLUMNS):
            if not record:
                continue
            if len(record) != 3:
                raise ValueError(f"{path}:{line}: {len(record)} columns; AG News rows are class index, title, "
                                 f"description (quote fields that contain commas)")
            index, title, description = record
            if index.strip() not in AG_NEWS_CLASSES:
                raise ValueError(f"{path}:{line}: class index {index!r} is not 1-4 (1 World, 2 Sports, 3 Business, "
                                 f"4 Sci/Tech)")
            rows.append((f"topics-{len(rows)}", title.strip(), description.strip(), AG_NEWS_CLASSES[index.strip()]))
    return rows


def read_question_answer_jsonl(path: Path, labels: list[str]) -> list[tuple[str, str, str, str]]:
    """The seed's JSONL: one {"question": article text, "answer": topic} per line."""
    rows = []
    with open_text(path) as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
                question, answer = record["question"], record["answer"]
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{line}: expected a JSON object with 'question' and 'answer' ({exc})") from exc
            if answer not in labels:
                raise ValueError(f"{path}:{line}: answer {answer!r} is not one of {', '.join(labels)}")
            rows.append((f"topics-{len(rows)}", str(question).strip(), "", answer))
    return rows


def open_text(path: Path):
    try:
        return path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from exc


class TopicsTask:
    def __init__(self) -> None:
        self.card = TaskCard.from_yaml(CARDS_DIR / "topics.yaml")

    def rows(self, data: Path | None) -> list[tuple[str, str, str, str]]:
        if data is None:
            return generate_rows()
        try:
            rows = (read_question_answer_jsonl(data, self.card.labels) if data.suffix == ".jsonl"
                    else read_ag_news_csv(data))
        except UnicodeDecodeError as exc:
            raise ValueError(f"{data}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from exc
        empty = [row[0] for row in rows if not (row[1] or row[2])]
        if empty:
            raise ValueError(f"{data}: rows {empty[:5]} have no text; remove them")
        return rows

    hub_suffix = ".csv"

    def write_hub_rows(self, rows: Iterable[dict], columns: list[str], source: str, out: Path) -> None:
        """AG News on the hub (fancyzhx/ag_news): `text` (title and description in one), `label` 0-3, written
        as the AG News CSV (class index 1-4, title, description) with the text as the description."""
        missing_columns(columns, ("text", "label"), source, "topics",
                        "text, label 0-3: World, Sports, Business, Sci/Tech")
        with out.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            for row in rows:
                writer.writerow([int(row["label"]) + 1, "", row["text"]])

    def load_splits(self, data: Path | None = None) -> Splits:
        """Stratified: 20% test, then 20% of the rest for eval (256/64/80 on the shipped data)."""
        rows = self.rows(data)
        train, eval_, test = stratified_split(rows, [row[3] for row in rows], self.card.labels, TEST_FRACTION,
                                              EVAL_FRACTION_OF_REST, SPLIT_SEED, MIN_PER_TOPIC, data, "topic")
        return Splits(train=self.examples(train), eval=self.examples(eval_), test=self.examples(test))

    def examples(self, rows: list[tuple[str, str, str, str]]) -> list[Example]:
        template = self.card.prompt_template
        return [Example(id=row_id, prompt=fill(template, {"title": title, "description": description},
                                               "prompt_template").strip(),
                        target=topic, label=topic, fields={"title": title, "description": description})
                for row_id, title, description, topic in rows]

    def parse(self, text: str) -> ParsedOutput:
        return parse_label(text, self.card.labels, TopicAnswer, "topic")

    def ceiling(self, test: list[Example]) -> None:
        return None


TASKS.register("topics", TopicsTask)
