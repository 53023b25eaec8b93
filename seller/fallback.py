"""A grounded sentence built from evidence alone, for a card whose generated text failed the
claim verifier (seller/verify.py), labelled as such on the card.

    builder = GroundedSentenceBuilder(dataset.items)
    s = builder.build(item_id, history, style, today)      # history: the client's events
    s.text, s.cited_event_id                                # the event the reason rests on

The reason rests on one past event: the client's piece (never the candidate itself, nor
another colourway of the same model) from the last year that shares most with the candidate,
stronger events (bought, tried on) and later ones first; the caller's cited event when given. Each style says something true of it:
- feature: the details the two pieces share (colour, material, hardware, maison, collection);
- style: the taste line, "their recent pieces lean to X" only when two or more recent pieces
  really share X with the candidate;
- occasion: the season under way or next, named from `today` (never "the season ahead"),
  the holidays when they are close.
Every fact comes from the catalogue and the history, every phrase is one the verifier reads
as it is meant, so the result passes it by construction (tests/test_fallback.py checks every
held-out sample case). Phrasing varies with `seed` between several templates per style.
"""
from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from datetime import date

import pandas as pd

from seller.data.schema import check_style
from seller.verify import MONTHS, comes_in_pairs, seasons_ahead

SHARED = ("color", "material", "hardware", "collection", "maison")  # most telling first
STRENGTH = {"purchase": 4, "try_on": 3, "wishlist": 2, "add_to_cart": 2, "view": 1, "return": 0}
VERB = {"purchase": "bought", "try_on": "tried on", "wishlist": "wishlisted", "view": "viewed",
        "add_to_cart": "put in the basket"}
RECENT_DAYS = 365  # an event older than a year is cited only when nothing later fits
RECENT_PIECES = 6  # distinct pieces the style sentence looks back over for a leaning


@dataclass(frozen=True)
class GroundedSentence:
    text: str
    style: str
    cited_event_id: str | None  # the event the reason rests on (None: no usable history)
    cited_item_id: str | None
    shared: tuple[str, ...]  # attribute columns the candidate shares with the cited piece


def _day(d: date) -> str:
    return f"{d.day} {MONTHS[d.month - 1].capitalize()} {d.year}"


def _text(value) -> str:
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value).strip()


class GroundedSentenceBuilder:
    def __init__(self, items: pd.DataFrame):
        self._items = {str(r["item_id"]): {k: _text(v) for k, v in r.items()}
                       for r in items.to_dict("records")}

    # ------------------------------------------------------------------ naming pieces
    def this(self, item: dict) -> str:
        kind = item.get("subcategory") or item.get("category")
        if not kind:
            return "this piece"
        return f"this pair of {kind}" if comes_in_pairs(item.get('subcategory')) else f"this {kind}"

    def _own(self, item: dict) -> str:
        """The candidate's own details: "in Acid Yellow linen from Noctelle"."""
        look = " ".join(v for v in (item.get("color"), item.get("material")) if v)
        parts = [f"in {look}" if look else "", f"from {item['maison']}" if item.get("maison") else ""]
        return " ".join(p for p in parts if p)

    @staticmethod
    def _shared_noun(item: dict, column: str) -> str:
        value = item[column]
        return {"color": f"its {value} colour", "material": f"its {value}",
                "hardware": f"its {value} hardware", "collection": f"the {value} collection",
                "maison": f"the {value} name"}[column]

    @staticmethod
    def _shared_adj(item: dict, columns) -> str:
        """"in Cognac calfskin with rose gold hardware, from the Prism collection"."""
        look = " ".join(item[c] for c in ("color", "material") if c in columns)
        parts = [f"in {look}" if look else "",
                 f"with {item['hardware']} hardware" if "hardware" in columns else "",
                 f"from the {item['collection']} collection" if "collection" in columns else
                 (f"from {item['maison']}" if "maison" in columns else "")]
        return " ".join(p for p in parts if p)

    @staticmethod
    def _and(parts: list[str]) -> str:
        return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]

    # ------------------------------------------------------------------ the evidence
    def _shared(self, a: dict, b: dict) -> tuple[str, ...]:
        return tuple(c for c in SHARED if a.get(c) and a.get(c).lower() not in ("none",)
                     and a.get(c, "").lower() == b.get(c, "").lower())

    def _stem(self, item: dict) -> str:
        return (item.get("name") or "").split(" in ")[0].lower()

    def anchor(self, item_id: str, history: pd.DataFrame | None, today,
               cited_event_id: str | None = None):
        """(event row, shared columns) the reason rests on, or (None, ())."""
        if history is None or len(history) == 0:
            return None, ()
        mine = self._items.get(item_id, {})
        h = history[pd.to_datetime(history["timestamp"], utc=True) < pd.Timestamp(today)]
        best, best_key = None, None
        fresh = (pd.Timestamp(today) - pd.to_datetime(h["timestamp"], utc=True)).dt.days <= RECENT_DAYS
        for pos, (iid, kind) in enumerate(zip(h["item_id"].astype(str), h["event_type"])):
            past = self._items.get(iid)
            if past is None or iid == item_id or kind == "return" or (
                    self._stem(past) and self._stem(past) == self._stem(mine)):
                continue
            shared = self._shared(mine, past)
            chosen = cited_event_id is not None and "event_id" in h and h["event_id"].iat[pos] == cited_event_id
            key = (chosen, bool(fresh.iat[pos]), len(shared), STRENGTH.get(kind, 0), pos)
            if best_key is None or key > best_key:
                best, best_key = pos, key
        if best is None:
            return None, ()
        row = h.iloc[best]
        return row, self._shared(mine, self._items[str(row["item_id"])])

    def _event_phrase(self, row, history: pd.DataFrame, rng: random.Random, final: bool) -> str:
        """"the Valmonde Passport Holder the client tried on on 13 May 2026", naming the model
        alone when no other piece in view shares it; `final`: it ends the sentence."""
        past = self._items[str(row["item_id"])]
        stems = [self._stem(self._items.get(str(i), {})) for i in set(history["item_id"].astype(str))]
        name = past["name"].split(" in ")[0] if stems.count(self._stem(past)) == 1 else past["name"]
        the = f"the pair of {name}" if comes_in_pairs(past.get('subcategory')) else f"the {name}"
        verb = VERB[row["event_type"]]
        when = _day(pd.Timestamp(row["timestamp"]).date())
        on = "" if verb.endswith(" on") else " on"
        forms = [f"{the} the client {verb}{on} {when}", f"{the} they {verb}{on} {when}"]
        return rng.choice(forms + [f"{the}, {verb}{on} {when}"] * final)

    def _leaning(self, item_id: str, anchor_id: str, history: pd.DataFrame, columns) -> str | None:
        """An attribute the candidate shares with two or more of the last distinct pieces, the
        cited one among them."""
        mine = self._items.get(item_id, {})
        recent = list(dict.fromkeys(history["item_id"].astype(str)[::-1]))[:RECENT_PIECES]
        if anchor_id not in recent:
            return None
        for column in columns:
            n = sum(1 for i in recent if i in self._items and i != item_id
                    and column in self._shared(mine, self._items[i]))
            if n >= 2:
                return column
        return None

    # ------------------------------------------------------------------ the sentence
    def build(self, item_id: str, history: pd.DataFrame | None, style: str, today,
              cited_event_id: str | None = None, seed: int = 0) -> GroundedSentence:
        """One grounded sentence for candidate `item_id` in `style` ("feature" | "style" |
        "occasion"), read on `today`; `cited_event_id` prefers that event as the evidence."""
        check_style(style)
        item = self._items.get(item_id) or {"item_id": item_id}
        rng = random.Random(zlib.crc32(f"{seed}:{item_id}:{style}".encode()))
        today = pd.Timestamp(today)
        today = today.tz_localize("UTC") if today.tzinfo is None else today
        row, shared = self.anchor(item_id, history, today, cited_event_id)
        this = self.this(item)
        This = this[0].upper() + this[1:]
        own = self._own(item)
        if row is None:
            text = self._alone(style, This, this, own, today.date(), rng)
            return GroundedSentence(text, style, None, None, ())
        event = (self._event_phrase(row, history, rng, False), self._event_phrase(row, history, rng, True))
        if style == "feature":
            text = self._feature(item, This, this, own, event, shared, rng)
        elif style == "style":
            past = history[pd.to_datetime(history["timestamp"], utc=True) < today]
            leaning = self._leaning(item_id, str(row["item_id"]), past, shared)
            text = self._style(item, This, this, own, event, shared, leaning, rng)
        else:
            text = self._occasion(item, This, this, own, event, shared, today.date(), rng)
        event_id = str(row["event_id"]) if "event_id" in row.index else None
        return GroundedSentence(text, style, event_id, str(row["item_id"]), shared)

    def _feature(self, item, This, this, own, event, shared, rng) -> str:
        mid, end = event  # the event phrase inside a sentence, or ending it
        if not shared:
            own = f" {own}" if own else ""
            return rng.choice([f"After {mid}, {this}{own} is the next piece to show.",
                               f"{This}{own} follows on from {end}."])
        nouns = self._and([self._shared_noun(item, c) for c in shared[:2]])
        adj = self._shared_adj(item, shared[:3])
        return rng.choice([
            f"{This} shares {nouns} with {end}.",
            f"Like {mid}, {this} comes {adj}.",
            f"{This} comes {adj}, a match for {end}.",
        ])

    def _style(self, item, This, this, own, event, shared, leaning, rng) -> str:
        mid, end = event  # the event phrase inside a sentence, or ending it
        if leaning:
            value = self._shared_adj(item, (leaning,))
            return rng.choice([
                f"Their recent choices lean to pieces {value}, {mid} among them; {this} continues that line.",
                f"Pieces {value} keep returning in their choices, as {mid} shows; {this} is one more.",
            ])
        if shared:
            adj = self._shared_adj(item, shared[:2])
            return rng.choice([
                f"{This} picks up the taste shown by {end}: both come {adj}.",
                f"The taste shown by {mid} carries on in {this}, {adj}.",
            ])
        return rng.choice([
            f"{This}{', ' + own + ',' if own else ''} brings a new note after {end}.",
            f"After {mid}, {this} {('comes ' + own + ' and ') if own else ''}widens the wardrobe.",
        ])

    def _season(self, today: date, rng) -> str:
        current, nxt = seasons_ahead(today)
        festive = date(today.year, 11, 1) <= today <= date(today.year, 12, 20)
        options = [f"With {current} under way", f"Ahead of {nxt}"]
        return rng.choice(options + (["Ahead of the holidays"] if festive else []))

    def _occasion(self, item, This, this, own, event, shared, today, rng) -> str:
        mid, end = event  # the event phrase inside a sentence, or ending it
        when = self._season(today, rng)
        if shared:
            adj = self._shared_adj(item, shared[:2])
            return rng.choice([
                f"{when}, {this} pairs with {end}: both come {adj}.",
                f"{when}, {this} {adj} goes well with {end}.",
            ])
        return rng.choice([
            f"{when}, {this}{' ' + own if own else ''} adds to {end}.",
            f"{when}, {this} is a fresh companion to {end}.",
        ])

    def _alone(self, style, This, this, own, today, rng) -> str:
        """No usable history: the candidate's own facts only."""
        if style == "occasion":
            return f"{self._season(today, rng)}, {this}{' ' + own if own else ''} is ready for the season."
        return f"{This} comes {own}." if own else f"{This} is from the current catalogue."
