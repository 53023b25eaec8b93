"""A blind sheet of cards as the app shows them, from ../results.json: the 20 random SELLER cards
of that report (the guard's shown text: the model's when every claim passed, else the grounded
sentence) and 10 random template cards (shown the same way), shuffled. Each row: the reading day,
the requested style, the candidate's and every named past piece's catalogue facts, the client's events a reader needs (the
last 12 before the day, and any older one on a day the text names). key.csv says which method
wrote each card and whether it is a grounded sentence.

    PYTHONPATH=. python reports/claims/mined-16/as_shown_reading/make_sheet.py
"""
import json
import random
from pathlib import Path

import pandas as pd

from seller.prompt import date_text
from seller.data.dataset import load_sample

HERE = Path(__file__).parent
FACTS = ("category", "maison", "color", "material", "hardware", "collection", "season")  # no launch date: see README


def facts(items, item_id: str) -> str:
    row = items.loc[item_id]
    return f"{row['name']} ({', '.join(str(row[c]) for c in FACTS if isinstance(row.get(c), str))})"


def events_for(dataset, items, client_id: str, day: pd.Timestamp, text: str) -> str:
    before = dataset.client_history(client_id, before=day)
    named = before["timestamp"].map(lambda t: date_text(t) in text)
    recent = pd.Series(range(len(before)), index=before.index) >= len(before) - 12
    shown = before[named | recent]
    return "; ".join(f"{e.event_type} {items.loc[e.item_id, 'name']} on {date_text(e.timestamp)}"
                     for e in shown.itertuples())


def pieces_named(dataset, items, client_id: str, day: pd.Timestamp, text: str) -> str:
    """The catalogue facts of every piece of the history the text names (by its name before " in ")."""
    before = dataset.client_history(client_id, before=day)
    ids = [i for i in dict.fromkeys(before["item_id"]) if items.loc[i, "name"].split(" in ")[0] in text]
    return "; ".join(facts(items, i) for i in ids)


def main() -> None:
    dataset = load_sample()
    items = dataset.items.set_index("item_id")
    methods = json.loads((HERE.parent / "results.json").read_text())["methods"]
    rng = random.Random(0)
    picked = [("seller", c) for c in methods["seller"]["claims"]["cards"]]
    picked += [("template", c) for c in rng.sample(methods["template"]["claims"]["cards"], 10)]
    rng.shuffle(picked)
    sheet, key = [], []
    for k, (method, card) in enumerate(picked, 1):
        client, rest = card["case"].split("@", 1)
        day = pd.Timestamp(rest.rsplit(":", 1)[0])
        sheet.append({"card_id": f"card{k:02d}", "reading_day": day.date().isoformat(),
                      "style_requested": card["style"], "candidate": facts(items, card["item_id"]),
                      "pieces_named": pieces_named(dataset, items, client, day, card["shown_text"]),
                      "client_events": events_for(dataset, items, client, day, card["shown_text"]),
                      "text": card["shown_text"]})
        key.append({"card_id": f"card{k:02d}", "method": method, "grounded": card["grounded"],
                    "case": card["case"], "item_id": card["item_id"]})
    pd.DataFrame(sheet).to_csv(HERE / "sheet.csv", index=False)
    pd.DataFrame(key).to_csv(HERE / "key.csv", index=False)


if __name__ == "__main__":
    main()
