"""Grounded sentences: evidence chosen from the catalogue and the client's history, realised as
one sentence an associate could say. One engine for two callers: the card whose generated text
failed the claim verifier (seller/verify.py, labelled as grounded on the card) and the reference
miner (seller/references.py), which keeps only the strong evidence.

    builder = GroundedSentenceBuilder(dataset.items, dataset.events)   # events: co-occurrence
    s = builder.build(item_id, history, style, today)      # history: the client's events
    s.text, s.cited_event_id, s.evidence                    # the event the reason rests on
    e = builder.evidence(item_id, history, style, today)   # the evidence alone; e.strong
    builder.realise(e, item_id, history, seed=0)            # its sentence

Evidence (`Evidence.kind`), per style, strongest first; past pieces are never the candidate
itself nor another colourway of the same model, returns never count:
- feature  shared_detail: a piece of the history (engaged with, recent, sharing most) shares a
           colour, material, hardware, collection or maison with the candidate, named in the text.
- style    taste_line: two or more of the last distinct pieces share one detail with the
           candidate (both named, one of them more than viewed); collection_drift: an earlier piece came from one collection,
           a later one and the candidate from another (the move, two pieces named).
- occasion holidays (1 November to 20 December), launch (the candidate launched in the last
           60 days) or season: the season ahead of `today` that the candidate's own season
           (SS / AW) is made for, with the piece it goes with.
- any      co_occurrence: for a candidate with no attributes to compare, other clients who had
           a piece of this history went on to the candidate (needs `events`).
Weak evidence (`strong` False: a piece that shares nothing, no history, no fitting season) still
gives the fallback a true sentence; the miner drops it. Every fact comes from the catalogue and
the history, every phrase is one the verifier reads as meant (an attribute stands next to the
piece it belongs to), so the result passes it by construction (tests/test_fallback.py and
tests/test_references.py check every case). Phrasing varies with `seed` between templates.
"""
from __future__ import annotations

import random
import re
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

import pandas as pd

from seller.data.schema import check_style
from seller.verify import MONTHS, NUMBER_WORDS, SEASONS, comes_in_pairs, season_of

SHARED = ("color", "material", "hardware", "collection", "maison")  # most telling first
WEIGHT = {"color": 3, "hardware": 3, "material": 2, "collection": 2, "maison": 1}
STRENGTH = {"purchase": 4, "try_on": 3, "wishlist": 2, "add_to_cart": 2, "view": 1, "return": 0}
ENGAGED = 2  # strength from which an event is more than browsing
VERB = {"purchase": "bought", "try_on": "tried on", "wishlist": "wishlisted", "view": "viewed",
        "add_to_cart": "put in the basket"}
RECENT_DAYS = 365  # an event older than a year is cited only when nothing later fits
RECENT_WEEKS = 13  # within a season, a piece is what the client is thinking of now
RECENT_PIECES = 6  # distinct pieces the style sentence looks back over for a leaning
LAUNCH_DAYS = 60  # a launch this recent is news worth an occasion sentence
DRIFT_GAP = pd.Timedelta(days=14)  # a move between collections takes more than one visit
FOLLOW_WINDOW = 5  # "went on to": among a client's next five distinct pieces
MIN_CLIENTS = 2  # other clients a co-occurrence needs before it is said
BLANK = ("", "none", "clear", "n/a", "nan")  # values that are no detail to share
_SEASON_CODE = ((re.compile(r"^(ss|s/s|pe)|spring|summer", re.I), ("spring", "summer")),
                (re.compile(r"^(aw|fw|a/w|f/w|ah)|autumn|fall|winter", re.I), ("autumn", "winter")))


@dataclass(frozen=True)
class GroundedSentence:
    text: str
    style: str
    cited_event_id: str | None  # the event the reason rests on (None: no usable history)
    cited_item_id: str | None
    shared: tuple[str, ...]  # attribute columns the candidate shares with the cited piece
    evidence: str = "none"  # Evidence.kind
    cited_event_ids: tuple[str, ...] = ()  # every event the text names, the main one first
    strong: bool = False  # the evidence delivers the style (see Evidence.strong)


@dataclass(frozen=True)
class Evidence:
    kind: str  # shared_detail | taste_line | collection_drift | season | launch | holidays |
    #            co_occurrence | follow_on (weak) | none (weak: no usable history)
    style: str
    rows: tuple = ()  # the cited events (pandas rows), the main one first
    shared: tuple[str, ...] = ()  # columns the candidate shares with the main cited piece
    detail: dict = field(default_factory=dict)  # column / from / season / clients ...
    strong: bool = False  # delivers the style as an associate would; the miner keeps only these


def _day(d: date) -> str:
    return f"{d.day} {MONTHS[d.month - 1].capitalize()} {d.year}"


def _text(value) -> str:
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value).strip()


def _utc(ts) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _upper(text: str) -> str:
    return text[0].upper() + text[1:]


def follow_ons(events: pd.DataFrame) -> dict[tuple[str, str], frozenset[str]]:
    """(earlier item, later item) -> the clients who engaged with the later one among their next
    FOLLOW_WINDOW distinct pieces (views and returns aside: browsing is no choice)."""
    engaged = events[events["event_type"].map(STRENGTH).fillna(0) >= ENGAGED]
    if engaged.empty:  # a store of views only: what they looked at is all there is
        engaged = events[events["event_type"] != "return"]
    pairs: dict[tuple[str, str], set[str]] = defaultdict(set)
    for client, items in engaged.sort_values("timestamp", kind="stable").groupby("client_id", sort=False)["item_id"]:
        order = list(dict.fromkeys(items.astype(str)))
        for i, earlier in enumerate(order):
            for later in order[i + 1:i + 1 + FOLLOW_WINDOW]:
                pairs[(earlier, later)].add(str(client))
    return {k: frozenset(v) for k, v in pairs.items()}


class GroundedSentenceBuilder:
    def __init__(self, items: pd.DataFrame, events: pd.DataFrame | None = None):
        self._items = {str(r["item_id"]): {k: _text(v) for k, v in r.items()}
                       for r in items.to_dict("records")}
        self._follow = follow_ons(events) if events is not None and len(events) else {}
        self._common = self._untelling(self._items.values())

    @property
    def follow_ons(self) -> dict[tuple[str, str], frozenset[str]]:
        """What its co-occurrence sentences count (seller.verify checks them against it)."""
        return self._follow

    @staticmethod
    def _untelling(items) -> set[tuple[str, str]]:
        """(column, value) pairs most of the catalogue shares (one maison for a mono-brand
        store): no detail worth naming."""
        counts: dict[tuple[str, str], int] = defaultdict(int)
        filled: dict[str, int] = defaultdict(int)
        for item in items:
            for c in SHARED:
                if item.get(c) and item[c].lower() not in BLANK:
                    counts[(c, item[c].lower())] += 1
                    filled[c] += 1
        return {k for k, n in counts.items() if filled[k[0]] >= 4 and n > filled[k[0]] / 2}

    # ------------------------------------------------------------------ naming pieces
    def this(self, item: dict) -> str:
        kind = item.get("subcategory") or item.get("category")
        if not kind:  # a piece known by name only is called by its name
            stem = self._stem_name(item)
            return f"this {stem}" if stem else "this piece"
        kind = kind.lower() if kind.istitle() and " " not in kind else kind  # "Comedy" -> "comedy"
        return f"this pair of {kind}" if comes_in_pairs(item.get('subcategory')) else f"this {kind}"

    @staticmethod
    def _stem_name(item: dict) -> str:
        return re.split(r"\s+in\s+", item.get("name") or "", maxsplit=1)[0]

    def _stem(self, item: dict) -> str:
        return self._stem_name(item).lower()

    def _own(self, item: dict) -> str:
        """The candidate's own details: "in Acid Yellow linen from Noctelle"."""
        look = " ".join(v for v in (item.get("color"), item.get("material")) if v and v.lower() not in BLANK)
        parts = [f"in {look}" if look else "", f"from {item['maison']}" if item.get("maison") else ""]
        return " ".join(p for p in parts if p)

    @staticmethod
    def _noun(item: dict, column: str) -> str:
        value = item[column]
        return {"color": f"the {value} colour", "material": f"the {value}",
                "hardware": f"the {value} hardware", "collection": f"the {value} collection",
                "maison": f"the {value} signature"}[column]

    @staticmethod
    def _adj(item: dict, columns) -> str:
        """"in Cognac calfskin with rose gold hardware, from the Prism collection"."""
        look = " ".join(item[c] for c in ("color", "material") if c in columns)
        parts = [f"in {look}" if look else "",  # attributes follow the piece they belong to
                 f"with {item['hardware']} hardware" if "hardware" in columns else "",
                 f"from {_collection(item['collection'])}" if "collection" in columns else
                 (f"from {item['maison']}" if "maison" in columns else "")]
        return " ".join(p for p in parts if p)

    def _piece(self, row, history: pd.DataFrame) -> str:
        """"the Valmonde Passport Holder" (its model alone when no other piece in view shares
        it), "the pair of ..." for pieces that come in pairs."""
        past = self._items[str(row["item_id"])]
        stems = [self._stem(self._items.get(str(i), {})) for i in history["item_id"].unique()]
        name = self._stem_name(past) if stems.count(self._stem(past)) == 1 else past["name"]
        return f"the pair of {name}" if comes_in_pairs(past.get('subcategory')) else f"the {name}"

    def _when(self, row) -> tuple[str, str]:
        verb = VERB[row["event_type"]]
        return verb, _day(_utc(row["timestamp"]).date())

    def _event(self, row, history, who: str, final: bool = False) -> str:
        """"the Valmonde Passport Holder they tried on 13 May 2026" (`who`: "they", "the client"
        or "" for "the ..., bought on 3 May 2026", which only fits where it ends the sentence)."""
        verb, when = self._when(row)
        on = "" if verb.endswith(" on") else " on"
        the = self._piece(row, history)
        return f"{the} {who} {verb}{on} {when}" if who or not final else f"{the}, {verb}{on} {when}"

    @staticmethod
    def _who(rng: random.Random) -> str:
        return rng.choice(["they", "the client"])

    # ------------------------------------------------------------------ the evidence
    def _shared(self, a: dict, b: dict) -> tuple[str, ...]:
        return tuple(c for c in SHARED if a.get(c) and a[c].lower() not in BLANK
                     and a[c].lower() == b.get(c, "").lower() and (c, a[c].lower()) not in self._common)

    def _past(self, item_id: str, history: pd.DataFrame | None, today) -> list[dict]:
        """Events before `today` (oldest first, as records) of pieces that may be cited: not
        the candidate, not another colourway of it, not a piece the client returned (a piece
        sent back is no reason to buy another), items in the catalogue."""
        if history is None or len(history) == 0:
            return []
        h = history[[c for c in ("event_id", "item_id", "event_type") if c in history]].assign(
            timestamp=pd.to_datetime(history["timestamp"], utc=True))
        h = h[h["timestamp"] < today]
        returned = set(h.loc[h["event_type"] == "return", "item_id"].astype(str))
        mine = self._stem(self._items.get(item_id, {}))
        out = []
        for row in h.to_dict("records"):
            iid = row["item_id"] = str(row["item_id"])
            if iid in self._items and iid != item_id and iid not in returned \
                    and not (mine and self._stem(self._items[iid]) == mine):
                out.append(row)
        return out

    def _ranked(self, item_id: str, past: list[dict], today, cited_event_id=None) -> list:
        """[(key, row, shared)] best first: the caller's cited event, then recent, engaged,
        sharing a telling detail (more than the maison), from the last RECENT_WEEKS, sharing
        most, stronger, later."""
        mine = self._items.get(item_id, {})
        out = []
        for pos, row in enumerate(past):
            age = (today - row["timestamp"]).days
            shared = self._shared(mine, self._items[row["item_id"]])
            strength = STRENGTH.get(row["event_type"], 0)
            chosen = cited_event_id is not None and str(row.get("event_id")) == str(cited_event_id)
            score = sum(WEIGHT[c] for c in shared)
            key = (chosen, age <= RECENT_DAYS, strength >= ENGAGED, score >= 2,
                   age <= 7 * RECENT_WEEKS, score, strength, pos)
            out.append((key, row, shared))
        return sorted(out, key=lambda x: x[0], reverse=True)

    def anchor(self, item_id: str, history: pd.DataFrame | None, today,
               cited_event_id: str | None = None):
        """(event row, shared columns) the reason rests on, or (None, ())."""
        today = _utc(today)
        ranked = self._ranked(item_id, self._past(item_id, history, today), today, cited_event_id)
        return (pd.Series(ranked[0][1]), ranked[0][2]) if ranked else (None, ())

    def evidence(self, item_id: str, history: pd.DataFrame | None, style: str, today,
                 cited_event_id: str | None = None) -> Evidence:
        """The best evidence for `style` about candidate `item_id`, read on `today`."""
        if style not in ("feature", "style", "occasion"):
            raise ValueError(f"style {style!r}: expected feature, style or occasion")
        today = _utc(today)
        past = self._past(item_id, history, today)
        ranked = self._ranked(item_id, past, today, cited_event_id)
        if not ranked:
            return Evidence("none", style)
        _, row, shared = ranked[0]
        # the caller's cited event when given, else the best piece that shares a detail
        match = ranked[0] if ranked[0][0][0] else next((r for r in ranked if r[2]), None)
        co = self._co_occurrence(item_id, past, history)
        if style == "style":
            found = [e for e in (self._taste_line(item_id, past), self._drift(item_id, past)) if e]
            if found:
                return max(found, key=lambda e: e.strong)  # the first strong one
        if style == "occasion":
            item = self._items.get(item_id, {})
            found = self._occasion_time(item, today.date())
            if found:  # strong with a piece it goes with: a shared detail or other clients' choice
                if co and not shared:
                    return Evidence("co_occurrence", style, (co[0],), (), {**found[1], "clients": co[1]}, True)
                mate = self._companion(item_id, ranked)
                if mate is not None:
                    kind = found[0]
                    if found[1].get("launched") == _utc(mate[1]["timestamp"]).date():
                        kind = "season"  # "launched on D ... bought on D" says one day twice
                    return Evidence(kind, style, (mate[1],), mate[2], found[1], strong=True)
            # weak: the calendar's moment alone (the piece's season aside)
            found = found or self._occasion_time({}, today.date())
            return Evidence(found[0], style, (row,), shared, found[1])
        if co and not shared:
            return Evidence("co_occurrence", style, (co[0],), (), {"clients": co[1]}, strong=True)
        if match and match[2]:  # feature: strong; style: one piece is no taste line yet (weak)
            return Evidence("shared_detail", style, (match[1],), match[2], strong=style == "feature")
        return Evidence("follow_on", style, (row,), shared)

    def _companion(self, item_id: str, ranked: list):
        """The best-ranked piece that shares a detail with the candidate and is of another
        category: one worn or carried with it (a second pair of shoes goes with nothing)."""
        kind = self._items.get(item_id, {}).get("category", "").lower()
        return next((r for r in ranked if r[2] and not (
            kind and self._items[str(r[1]["item_id"])].get("category", "").lower() == kind)), None)

    def _co_occurrence(self, item_id: str, past: list[dict], history) -> tuple | None:
        """(row, n): the engaged piece of the history that most other clients went on from to
        the candidate (its latest event); only for a candidate with no details to compare."""
        mine = self._items.get(item_id, {})
        if not self._follow or any(mine.get(c) and mine[c].lower() not in BLANK for c in SHARED):
            return None
        client = str(history["client_id"].iat[0]) if "client_id" in history and len(history) else None
        best = None
        for pos, row in enumerate(past):
            n = len(self._follow.get((str(row["item_id"]), item_id), frozenset()) - {client})
            key = (n, STRENGTH.get(row["event_type"], 0), pos)
            if n >= MIN_CLIENTS and (best is None or key > best[0]):
                best = (key, row, n)
        return (best[1], best[2]) if best else None

    def _distinct(self, past: list[dict], engaged_only: bool) -> list:
        """One row per piece (its strongest, then latest event), latest pieces first."""
        rows = {}
        for pos, row in enumerate(past):
            s = STRENGTH.get(row["event_type"], 0)
            if engaged_only and s < ENGAGED:
                continue
            iid = str(row["item_id"])
            if iid not in rows or (s, pos) >= rows[iid][0]:
                rows[iid] = ((s, pos), row, pos)
        last = {row["item_id"]: p for p, row in enumerate(past)}
        return [r for _, r, _ in sorted(rows.values(), key=lambda x: -last[x[1]["item_id"]])]

    def _taste_line(self, item_id: str, past: list[dict]) -> Evidence | None:
        """A detail the candidate shares with two or more of the last distinct pieces."""
        mine = self._items.get(item_id, {})
        recent = self._distinct(past, engaged_only=False)[:RECENT_PIECES]
        stems = set()
        for column in sorted(SHARED, key=lambda c: -WEIGHT[c]):
            rows = [r for r in recent if column in self._shared(mine, self._items[str(r["item_id"])])]
            rows = [r for r in rows if not (self._stem(self._items[str(r["item_id"])]) in stems
                                            or stems.add(self._stem(self._items[str(r["item_id"])])))]
            stems.clear()
            rows.sort(key=lambda r: STRENGTH.get(r["event_type"], 0) < ENGAGED, )  # engaged first
            days = {}
            for r in rows:  # "keeps returning": two pieces, two different days
                days.setdefault(_utc(r["timestamp"]).date(), r)
            if len(days) >= 2:
                pair = sorted(list(days.values())[:2], key=lambda r: r["timestamp"])
                engaged = any(STRENGTH.get(r["event_type"], 0) >= ENGAGED for r in pair)
                # two views alone are browsing, not yet a taste the miner would teach
                return Evidence("taste_line", "style", (pair[1], pair[0]), (column,), {"column": column}, engaged)
        return None

    def _drift(self, item_id: str, past: list[dict]) -> Evidence | None:
        """A later engaged piece shares the candidate's collection, an earlier one came from
        another: the client's choices have moved from that collection to this one."""
        new = self._items.get(item_id, {}).get("collection", "")
        if not new or new.lower() in BLANK:
            return None
        engaged = self._distinct(past, engaged_only=True)  # latest first
        later = next((r for r in engaged if self._items[str(r["item_id"])].get("collection") == new), None)
        if later is None:
            return None
        earlier = next((r for r in engaged if r["timestamp"] < later["timestamp"] - DRIFT_GAP
                        and self._items[str(r["item_id"])].get("collection", "").lower() not in BLANK
                        and self._items[str(r["item_id"])]["collection"] != new), None)
        if earlier is None:
            return None
        old = self._items[earlier["item_id"]]["collection"]
        if any((self._items[r["item_id"]].get("collection") == new and r["timestamp"] < earlier["timestamp"])
               or (self._items[r["item_id"]].get("collection") == old and r["timestamp"] > later["timestamp"])
               for r in engaged):
            return None  # no move: the new collection was theirs before, or they went back
        return Evidence("collection_drift", "style", (later, earlier), ("collection",),
                        {"from": self._items[str(earlier["item_id"])]["collection"]}, True)

    @staticmethod
    def _made_for(item: dict) -> tuple[str, ...]:
        """The seasons the candidate's own season code (SS26, AW25, "Spring 2026") is made for."""
        code = item.get("season") or ""
        for pattern, seasons in _SEASON_CODE:
            if pattern.search(code):
                return seasons
        return SEASONS

    def _occasion_time(self, item: dict, today: date) -> tuple[str, dict] | None:
        """(kind, detail) of the coming moment: the holidays, a recent launch with the season
        ahead, or the season ahead that the piece is made for; None when none fits."""
        if date(today.year, 11, 1) <= today <= date(today.year, 12, 20):
            return "holidays", {"when": "the holidays"}
        current, year = season_of(today)
        start_month = {"winter": 12, "spring": 3, "summer": 6, "autumn": 9}[current]
        begun = date(year - (current == "winter"), start_month, 1)
        nxt = SEASONS[(SEASONS.index(current) + 1) % 4]
        ahead = ([current] if (today - begun).days <= 21 else []) + [nxt]
        fits = [s for s in ahead if s in self._made_for(item)]
        if not fits:
            return None
        detail = {"season": fits[0], "begins": fits[0] == current}
        launched = pd.to_datetime(item.get("launched_at") or None, utc=True, errors="coerce")
        if not pd.isna(launched) and timedelta(0) <= today - launched.date() <= timedelta(days=LAUNCH_DAYS):
            return "launch", {**detail, "launched": launched.date()}
        return "season", detail

    # ------------------------------------------------------------------ the sentence
    def build(self, item_id: str, history: pd.DataFrame | None, style: str, today,
              cited_event_id: str | None = None, seed: int = 0) -> GroundedSentence:
        """One grounded sentence for candidate `item_id` in `style` ("feature" | "style" |
        "occasion"), read on `today`; `cited_event_id` prefers that event as the evidence."""
        check_style(style)
        found = self.evidence(item_id, history, style, today, cited_event_id)
        return self.sentence(found, item_id, history, today, seed)

    def sentence(self, found: Evidence, item_id: str, history, today, seed: int = 0) -> GroundedSentence:
        """`found` (from `evidence`) realised as a GroundedSentence."""
        text = self.realise(found, item_id, history, today, seed)
        ids = tuple(str(r["event_id"]) for r in found.rows if "event_id" in r)
        main = found.rows[0] if found.rows else None
        return GroundedSentence(text, found.style, ids[0] if ids else None,
                                None if main is None else str(main["item_id"]), found.shared,
                                found.kind, ids, found.strong)

    def realise(self, found: Evidence, item_id: str, history, today, seed: int = 0) -> str:
        item = self._items.get(item_id) or {"item_id": item_id}
        key = ";".join(str(r.get("event_id", r["item_id"])) for r in found.rows)
        rng = random.Random(zlib.crc32(f"{seed}:{item_id}:{found.style}:{key}".encode()))
        this = self.this(item)
        today = _utc(today)
        if not found.rows:
            return self._alone(found.style, item, this, today.date(), rng)
        if found.style == "occasion" and found.kind != "follow_on":
            return self._occasion(found, item, this, history, rng)
        if found.style == "style" and found.kind == "shared_detail":
            return self._one_piece_taste(found, item, this, history, rng)
        realise = {"shared_detail": self._shared_detail, "taste_line": self._taste,
                   "collection_drift": self._moved, "co_occurrence": self._followed,
                   "follow_on": self._follow_on}[found.kind]
        return realise(found, item, this, history, rng)

    def _shared_detail(self, found, item, this, history, rng) -> str:
        row, who = found.rows[0], self._who(rng)
        end, mid = self._event(row, history, rng.choice([who, ""]), True), self._event(row, history, who)
        look = [c for c in found.shared if c in ("color", "material", "hardware")][:2]
        origin = next((c for c in ("collection", "maison") if c in found.shared), None)
        forms = [f"Like {mid}, {this} comes {self._adj(item, found.shared[:3])}.",
                 f"{_upper(this)} comes {self._adj(item, found.shared[:3])}, just like {end}."]
        if look:
            nouns = _and([self._noun(item, c) for c in look])
            also = ""
            if origin:  # after the past piece's name: the verifier reads it as that piece's
                also = (f", and both come from {_collection(item['collection'])}" if origin == "collection"
                        else f", and both are by {item['maison']}")
            forms += [f"{_upper(this)} shares {nouns} of {mid}{also}.",
                      f"{_upper(this)} echoes {nouns} of {mid}{also}.",
                      f"{_upper(this)} has {nouns} in common with {end}."]
        return rng.choice(forms)

    def _taste(self, found, item, this, history, rng) -> str:
        adj, who = self._adj(item, found.shared), self._who(rng)
        other = "they" if who == "the client" else "the client"  # one subject said twice reads as a stutter
        newer, older = found.rows
        both = f"{self._event(older, history, who)} and {self._event(newer, history, other)}"
        return rng.choice([
            f"Pieces {adj} keep returning in their choices, as {both} show; {this} continues that line.",
            f"Like {both}, {this} comes {adj}, a detail they keep choosing.",
            f"Their taste keeps coming back to pieces {adj}, as {both} show, and {this} follows that taste.",
        ])

    def _one_piece_taste(self, found, item, this, history, rng) -> str:
        """Weak style: the taste one past piece shows (the fallback only)."""
        end = self._event(found.rows[0], history, self._who(rng), True)
        return f"{_upper(this)} carries on the taste shown by {end}: both come {self._adj(item, found.shared[:2])}."

    def _moved(self, found, item, this, history, rng) -> str:
        later, earlier = found.rows
        verb, when = self._when(earlier)
        on = "" if verb.endswith(" on") else " on"
        old = f"{self._piece(earlier, history)} from {_collection(found.detail['from'])}, {verb}{on} {when}"
        both = (f"{self._event(later, history, self._who(rng))} and {this} both come from "
                f"{_collection(item['collection'])}")
        return rng.choice([f"Since {old}, their choices have moved on: {both}.",
                           f"Their choices have moved on since {old}: {both}."])

    def _followed(self, found, item, this, history, rng) -> str:
        row, n = found.rows[0], _number(found.detail["clients"])
        event = self._event(row, history, self._who(rng))
        # each piece named once (a name said twice reads as a stutter); "as it has for N other
        # clients" is the phrasing seller.verify counts against the other clients' events
        return rng.choice([f"{_upper(this)} would follow on well from {event}, as it has for {n} other clients.",
                           f"{_upper(this)} often comes next after {event}, as it has for {n} other clients."])

    def _follow_on(self, found, item, this, history, rng) -> str:
        """Weak: a piece that shares nothing (the fallback only)."""
        row, own = found.rows[0], self._own(item)
        end = self._event(row, history, self._who(rng), True)
        if found.style == "feature" and own:
            return f"{_upper(this)} comes {own}; it would sit well beside {end}."
        return rng.choice([f"After {self._event(row, history, self._who(rng))}, {this}"
                           f"{' ' + own if own else ''} is one more piece to show them.",
                           f"{_upper(this)}{' ' + own if own else ''} would sit well beside {end}."])

    @staticmethod
    def _moment(detail: dict, rng) -> str:
        if "when" in detail:
            return rng.choice(["Ahead of the holidays", "For the holidays"])
        season = detail["season"]
        return f"As {season} begins" if detail.get("begins") else rng.choice(
            [f"Ahead of {season}", f"With {season} coming"])

    def _occasion(self, found, item, this, history, rng) -> str:
        row, moment = found.rows[0], self._moment(found.detail, rng)
        end = self._event(row, history, rng.choice([self._who(rng), ""]), final=True)
        if "clients" in found.detail:
            return (f"{moment}, {this} would follow on well from {end}, as it has for "
                    f"{_number(found.detail['clients'])} other clients.")
        both = f": both come {self._adj(item, found.shared[:2])}" if found.shared else ""
        if found.kind == "launch":
            return (f"Launched on {_day(found.detail['launched'])}, {this} arrives in time for "
                    f"{found.detail['season']} and would go well with {end}{both}.")
        own = self._own(item) if not found.shared else ""
        return f"{moment}, {this}{' ' + own if own else ''} would go well with {end}{both}."

    def _alone(self, style, item, this, today, rng) -> str:
        """No usable history: the candidate's own facts only."""
        own = self._own(item)
        if style == "occasion":
            moment = self._occasion_time(item, today) or ("season", {"season": season_of(today)[0], "begins": True})
            return f"{self._moment(moment[1], rng)}, {this}{' ' + own if own else ''} is ready to show."
        return f"{_upper(this)} comes {own}." if own else f"{_upper(this)} is from the current catalogue."


def _collection(value: str) -> str:
    """"the Riviera collection"; a year stored as the collection (films) is just the year."""
    return value if value.isdigit() else f"the {value} collection"


def _number(n: int) -> str:
    return NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else str(n)
