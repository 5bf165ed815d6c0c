"""Writes data/orders.jsonl: short customer messages and the order each one asks for, generated from phrase
templates with a fixed seed (no real data). Run `python generate_data.py` to rebuild it; the output is committed."""

import json
import random
from pathlib import Path

NAMES = ["Anna", "Ben", "Carla", "David", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kemal", "Lena"]
ITEMS = ["blue mug", "desk lamp", "green scarf", "road bike", "tea kettle", "wool hat", "yoga mat", "bath towel",
         "phone case", "oak chair"]
CITIES = ["Berlin", "Lisbon", "Oslo", "Madrid", "Vienna", "Prague", "Dublin", "Zurich", "Warsaw", "Athens"]
WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
OPENINGS = ["Hi, this is {name}. Please send {qty} x {item} to {city}.",
            "{name} here: I need {qty} x {item}, shipped to {city}.",
            "Order for {name} in {city}: {qty} x {item}.",
            "Could you deliver {qty} x {item} to {city}? Thanks, {name}.",
            "Please ship {qty} x {item} to {name}, {city}."]
EXPRESS = [" Express delivery, please.", " I need it fast, send it express.", " By express if you can."]
STANDARD = ["", " Standard shipping is fine.", " No rush."]
TAG_PHRASES = {"gift": [" It is a gift.", " Please wrap it as a gift."],
               "fragile": [" Handle with care, it is fragile.", " Fragile, pack it well."],
               "bulk": [" This is a bulk order.", " Bill it as bulk."]}
ROWS = 600
SEED = 0


def order(rng: random.Random, index: int) -> dict:
    quantity = rng.randint(1, 12)
    spelled = WORDS[quantity] if quantity in WORDS and rng.random() < 0.3 else str(quantity)
    name, item, city = rng.choice(NAMES), rng.choice(ITEMS), rng.choice(CITIES)
    express = rng.random() < 0.4
    tags = sorted(rng.sample(sorted(TAG_PHRASES), rng.choice([0, 0, 1, 1, 2])))
    text = rng.choice(OPENINGS).format(name=name, qty=spelled, item=item, city=city)
    text += rng.choice(EXPRESS if express else STANDARD)
    text += "".join(rng.choice(TAG_PHRASES[tag]) for tag in tags)
    output = {"customer": name, "item": item, "quantity": quantity, "city": city, "express": express, "tags": tags}
    return {"id": f"order-{index}", "text": text, "output": output}


def main() -> None:
    rng = random.Random(SEED)
    rows = [order(rng, index) for index in range(ROWS)]
    path = Path(__file__).parent / "data" / "orders.jsonl"
    path.parent.mkdir(exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    print(f"wrote {len(rows)} orders to {path}")


if __name__ == "__main__":
    main()
