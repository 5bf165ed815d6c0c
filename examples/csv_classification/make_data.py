"""Write data/train.csv and data/test.csv: generated support tickets, each routed to the team that handles it.

    python make_data.py

Seeded, so the same script writes the same files (both are committed). No text comes from a real dataset: a ticket
is a greeting, one issue sentence and a closing, the issue naming the product and a detail drawn from lists shared
by every team, so only the issue's own words tell the team. Every ticket is unique, and no test ticket is in train.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

TEAMS = {
    "billing": (
        "I was charged twice for my {product} subscription",
        "the invoice for my {product} plan shows the wrong amount",
        "please refund the payment I made for {product}",
        "my card was billed after I cancelled {product}",
    ),
    "technical": (
        "the {product} app crashes when I open it",
        "{product} shows an error when I try to save",
        "the {product} page keeps loading and never finishes",
        "sync stopped working in {product}",
    ),
    "account": (
        "I cannot log in to my {product} account",
        "the password reset email for {product} never arrives",
        "please change the email address on my {product} profile",
        "my {product} username is locked",
    ),
    "shipping": (
        "my {product} package has not arrived",
        "the tracking link for my {product} order does not update",
        "the {product} box was delivered to the wrong address",
        "my {product} parcel arrived damaged",
    ),
}
PRODUCTS = ("Notebook", "Camera", "Speaker", "Planner", "Router", "Tablet")
GREETINGS = ("Hi,", "Hello,", "Hey team,", "Good morning,", "")
DETAILS = ("since yesterday", "this week", "again", "for the second time", "today", "")
CLOSINGS = ("Please help.", "Thanks.", "Can you fix this?", "What should I do?", "")
PER_TEAM = 60  # 240 tickets: 180 train (the card cuts 20% of them for eval) and 60 test, 15 per team
TEST_PER_TEAM = 15
SEED = 0
HERE = Path(__file__).parent


def ticket(rng: random.Random, team: str) -> str:
    issue = rng.choice(TEAMS[team]).format(product=rng.choice(PRODUCTS))
    parts = [rng.choice(GREETINGS), f"{issue} {rng.choice(DETAILS)}".strip() + ".", rng.choice(CLOSINGS)]
    return " ".join(part for part in parts if part)


def generate(seed: int = SEED) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(train rows, test rows), each row a ticket id, its message and its team; test holds TEST_PER_TEAM per team."""
    rng = random.Random(seed)
    seen: set[str] = set()
    train, test = [], []
    for team in TEAMS:
        for index in range(PER_TEAM):
            message = ticket(rng, team)
            while message in seen:  # 4 issues x 6 products x 5 x 6 x 5 variants per team: a repeat is rare
                message = ticket(rng, team)
            seen.add(message)
            row = {"ticket_id": f"{team[:3]}-{index}", "message": message, "team": team}
            (test if index < TEST_PER_TEAM else train).append(row)
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test


def write(rows: list[dict[str, str]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["ticket_id", "message", "team"])
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    train, test = generate()
    write(train, HERE / "data" / "train.csv")
    write(test, HERE / "data" / "test.csv")
    print(f"wrote {len(train)} train and {len(test)} test tickets to {HERE / 'data'}")
