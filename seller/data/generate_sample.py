"""Seeded generator of sample_data/: a fictional luxury group's catalogue, clients and events.

    python -m seller.data.generate_sample --out sample_data --seed 7

Each client's history is a mix of noise (random views), organic funnels (view -> wishlist /
try-on -> purchase, sometimes a return) and planted intent episodes whose engagements are the
ground truth in intents.csv: complement (an accessory matching the colour or hardware of the bag
bought just before), style evolution (months of steps from classic towards avant-garde
collections), occasion (preparation for a gala, wedding, journey or season change) and loyalty
(repeat maison or material). Reference explanations cite only earlier events of the same client.
The same seed writes byte-identical files: one random.Random drives everything, in fixed order.
"""
from __future__ import annotations

import argparse
import csv
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from seller.data.sample_catalog import (ACCESSORIES, COLLECTIONS, COLD_START, HORIZON, MAISONS, Client, Item,
                                        build_clients, build_items, style_word, this)
from seller.data.sample_phrasing import MAX_WORDS, MIN_WORDS, OCCASIONS, cite, compose, season_word
from seller.data.schema import CLIENT_COLUMNS, EVENT_COLUMNS, EXPLANATION_STYLES, ITEM_COLUMNS

N_CLIENTS = 72  # 60-80 asked; about 10 explained targets each keeps explanations near 2,000 rows
STRONG = ("wishlist", "try_on", "purchase")  # engagements that get reference explanations
FASHION = ("handbags", "shoes", "ready-to-wear", "jewellery", "silks")
DAY = timedelta(days=1)
INTENT_COLUMNS = ("event_id", "client_id", "item_id", "timestamp", "event_type", "intent", "episode_id",
                  "anchor_event_id", "anchor_item_id", "anchor_timestamp", "detail")
EXPLANATION_COLUMNS = ("client_id", "item_id", "target_timestamp", "style", "text", "cited_event_ids",
                       "cited_item_ids", "intent", "target_event_id")


@dataclass
class Ev:
    client_id: str
    item: Item
    event_type: str
    channel: str
    ts: datetime
    seq: int  # creation order: the tie-break after timestamp
    episode: "Episode | None" = None
    anchor: "Ev | None" = None
    event_id: str = ""


@dataclass
class Episode:
    episode_id: str
    intent: str  # complement | style_evolution | occasion | loyalty
    detail: str
    targets: list[tuple[Item, list[Ev], Ev | None, Ev | None]] = field(default_factory=list)  # item, events, A, B
    context: dict = field(default_factory=dict)


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


class History:
    """One client's timeline under construction."""

    def __init__(self, rng: random.Random, client: Client, items: list[Item], sold: set[str], seq: list[int]):
        self.rng, self.client, self.items, self.sold, self.seq = rng, client, items, sold, seq
        self.events: list[Ev] = []
        self.reserved: list[tuple[datetime, datetime]] = []  # no other purchase may fall inside
        self.episodes: list[Episode] = []
        self.style_path: list[tuple[datetime, float]] = []  # (time, level) of a style evolution's steps

    def add(self, item: Item, event_type: str, channel: str, ts: datetime, episode=None, anchor=None) -> Ev:
        self.seq[0] += 1
        ev = Ev(self.client.client_id, item, event_type, channel, ts.replace(microsecond=0), self.seq[0], episode, anchor)
        self.events.append(ev)
        return ev

    def pool(self, t: datetime, cold: bool = False, where=lambda it: True) -> list[Item]:
        """Items on sale at t; cold-start items only when asked (they appear only as late targets)."""
        base = [it for it in self.items if it.launched_at <= t and where(it)]
        if cold:
            fresh = [it for it in base if it.cold]
            return fresh or [it for it in base if not it.cold]
        return [it for it in base if not it.cold]

    def level_at(self, t: datetime) -> float | None:
        """The drifting taste between style steps (the last step's level holds until the next)."""
        past = [lvl for when, lvl in self.style_path if when <= t]
        return past[-1] if past else None

    def in_taste(self, t: datetime, cands: list[Item]) -> list[Item]:
        """During a style evolution every engagement follows the drifting taste, not only its steps."""
        level = self.level_at(t)
        near = [it for it in cands if level is None or abs(it.style_level - level) <= 0.2]
        return near or cands

    def purchase_free(self, t0: datetime, t1: datetime) -> bool:
        return not any(e.event_type == "purchase" and t0 <= e.ts <= t1 for e in self.events)

    def reserved_at(self, t: datetime) -> bool:
        return any(a <= t <= b for a, b in self.reserved)

    def funnel(self, item: Item, t: datetime, depth: str, limit: datetime, episode=None, anchor=None) -> list[Ev]:
        """view -> (wishlist | try_on | purchase path); delays shrink to end before limit."""
        rng = self.rng
        if depth == "purchase" and item.one_of_a_kind and item.item_id in self.sold:
            depth = "try_on"  # a unique piece sells once
        if depth == "purchase" and self.reserved_at(t) and episode is None:
            depth = "try_on"  # keep complement windows free of unrelated purchases
        evs = [self.add(item, "view", "online" if rng.random() < 0.75 else "boutique", t, episode, anchor)]

        def step(hours_lo, hours_hi):
            room = (limit - evs[-1].ts).total_seconds() / 3600
            return evs[-1].ts + timedelta(hours=min(rng.uniform(hours_lo, hours_hi), max(room, 0.02) / 2))

        if depth == "wishlist":
            evs.append(self.add(item, "wishlist", "online", step(0.1, 72), episode, anchor))
        elif depth == "try_on":
            evs.append(self.add(item, "try_on", "boutique", step(2, 240), episode, anchor))
        elif depth == "purchase":
            if rng.random() < 0.5:
                evs.append(self.add(item, "try_on", "boutique", step(2, 240), episode, anchor))
                evs.append(self.add(item, "purchase", "boutique", step(0.2, 2), episode, anchor))
            else:
                if rng.random() < 0.5:
                    evs.append(self.add(item, "wishlist", "online", step(1, 120), episode, anchor))
                evs.append(self.add(item, "add_to_cart", "online", step(0.05, 24), episode, anchor))
                evs.append(self.add(item, "purchase", "online", step(0.02, 1), episode, anchor))
            if item.one_of_a_kind:
                self.sold.add(item.item_id)
        return evs


def _main_event(evs: list[Ev]) -> Ev:
    rank = {"purchase": 3, "try_on": 2, "wishlist": 1, "add_to_cart": 1, "view": 0}
    return max(evs, key=lambda e: (rank[e.event_type], -e.seq))


def _rand_time(rng: random.Random, a: datetime, b: datetime) -> datetime:
    return a + (b - a) * rng.random()


def plan_chain(h: History, intent: str, lo: datetime, hi: datetime, n: int):
    """Style evolution or loyalty: a seed engagement, then targets spread over months."""
    rng, c = h.rng, h.client
    if (hi - lo).days < 90:
        return
    times = [_rand_time(rng, lo, lo + (hi - lo) * 0.4)]
    while len(times) < n:  # gaps longer than a funnel (10 days) keep the steps in order
        t = times[-1] + timedelta(days=rng.uniform(25, 75))
        if t + 10 * DAY > hi:
            break
        times.append(t)
    if len(times) < 3:
        return
    n = len(times)
    if intent == "style_evolution":
        first, last = rng.choice([0, 1]), rng.choice([4, 5])  # strictly rising levels, classic to avant-garde
        idx = [first] + sorted(rng.sample(range(first + 1, last), min(n - 2, last - first - 1))) + [last]
        times = times[: len(idx)]
        names = list(COLLECTIONS)
        wants = [lambda it, k=k: it.collection == names[k] and it.category in FASHION for k in idx]
        detail = f"{names[first]} -> {names[last]}"
    else:
        if rng.random() < 0.6:
            maison = max(c.maisons, key=c.maisons.get)
            wants = [lambda it: it.maison == maison] * n
            detail = f"maison {maison}"
            ctx = {"loyal_phrase": f"from {maison}", "loyal_noun": f"{maison}'s {MAISONS[maison][0]}"}
        else:
            mat = rng.choice(["crocodile", "lambskin", "calfskin", "silk twill", "cashmere", "suede"])
            wants = [lambda it: it.material == mat] * n
            detail, ctx = f"material {mat}", {"loyal_phrase": f"in {mat}", "loyal_noun": mat}
    ep = Episode(f"{c.client_id}-{len(h.episodes) + 1}", intent, detail)
    if intent == "loyalty":
        ep.context = ctx
    steps: list[Ev] = []
    used: set[str] = set()
    for t, want in zip(times, wants):
        cands = [it for it in h.pool(t, where=want) if it.item_id not in used and it.item_id not in h.sold]
        if intent == "loyalty":
            cands = h.in_taste(t, cands)
        if not cands:
            continue
        item = rng.choice(cands)
        used.add(item.item_id)
        if not steps:  # the seed: not driven by the intent, so not recorded as one
            seed = h.funnel(item, t, "purchase" if intent == "loyalty" else rng.choice(["purchase", "try_on"]), t + 10 * DAY)
            steps.append(_main_event(seed))
            continue
        weights = [0.5, 0.3, 0.2] if intent == "loyalty" else [0.35, 0.4, 0.25]  # loyal clients buy
        depth = rng.choices(["purchase", "try_on", "wishlist"], weights)[0]
        anchor = steps[-1]
        evs = h.funnel(item, t, depth, t + 10 * DAY, ep, anchor)
        ep.targets.append((item, evs, anchor, steps[-2] if len(steps) > 1 else None))
        steps.append(_main_event(evs))
    if ep.targets:
        h.episodes.append(ep)
        if intent == "style_evolution":
            h.style_path = [(e.ts, e.item.style_level) for e in steps]


def plan_occasion(h: History, lo: datetime, hi: datetime, cold: bool = False):
    """Preparation views, then try-ons and a purchase of pieces for one dated occasion."""
    rng, c = h.rng, h.client
    if cold:  # the last weeks of a history prepare for a date just after it
        kind, date = rng.choice(["gala", "wedding", "travel"]), hi + timedelta(days=rng.uniform(3, 20))
        start, limit = lo, hi
    else:
        kind, date = rng.choice(["gala", "wedding", "travel", "season change"]), _rand_time(rng, lo + 40 * DAY, hi)
    if kind == "season change":  # the next 1 March or 1 September; pieces of the incoming season
        date = min(datetime(y, m, 1, tzinfo=date.tzinfo) for y in (date.year, date.year + 1) for m in (3, 9)
                   if datetime(y, m, 1, tzinfo=date.tzinfo) >= date)
        if date > hi:
            kind, date = "travel", hi
        code = ("SS" if date.month == 3 else "AW") + str(date.year)[2:]
        want = lambda it: it.season == code and it.category in ("ready-to-wear", "shoes", "silks", "handbags")
    if kind != "season change":
        want = lambda it: kind in it.occasions
    if not cold:
        start, limit = date - timedelta(days=rng.uniform(18, 40)), date - DAY
    ep = Episode(f"{c.client_id}-{len(h.episodes) + 1}", "occasion", f"{kind} on {date:%Y-%m-%d}")
    ep.context = {"occasion": kind}
    cands = h.in_taste(start, h.pool(start, cold=cold, where=want))
    rng.shuffle(cands)
    if len(cands) < 3:
        return
    prep = [h.funnel(it, _rand_time(rng, start, start + 4 * DAY), "view", limit, ep)[0] for it in cands[: rng.choice([1, 2])]]
    prep.sort(key=lambda e: e.ts)
    anchor = prep[0]
    for e in prep[1:]:
        e.anchor = anchor
    n_targets = min(len(cands) - len(prep), rng.choice([2, 2, 3]))
    times = sorted(_rand_time(rng, start + 5 * DAY, limit - 2 * DAY) for _ in range(n_targets))
    seen = list(prep)
    for k, (item, t) in enumerate(zip(cands[len(prep):], times)):
        depth = "purchase" if k == n_targets - 1 else rng.choice(["try_on", "wishlist"])
        evs = h.funnel(item, t, depth, limit, ep, anchor)
        support = rng.choice([e for e in seen if e is not anchor]) if len(seen) > 1 else None
        ep.targets.append((item, evs, anchor, support))
        seen.append(_main_event(evs))
    h.episodes.append(ep)


def plan_complement(h: History, lo: datetime, hi: datetime, cold: bool = False):
    """A bag purchase, then within weeks an accessory matching its colour or hardware."""
    rng, c = h.rng, h.client
    for _ in range(30):
        t0 = _rand_time(rng, lo, hi - 12 * DAY)
        t1 = t0 + timedelta(days=rng.uniform(2, 10) if cold else rng.uniform(3, 25))
        if t1 + 6 * DAY <= hi and h.purchase_free(t0 - 5 * DAY, t1 + 6 * DAY):
            break
    else:
        return
    earlier = {e.item.color for e in h.events if e.event_type == "purchase" and e.ts < t0}
    bags = [it for it in h.pool(t0 - 4 * DAY, where=lambda it: it.category == "handbags") if it.item_id not in h.sold]
    bags = [b for b in bags if b.color not in earlier] or bags  # a new colour makes the last purchase informative
    bag = rng.choice(h.in_taste(t0, bags))
    bag_evs = h.funnel(bag, t0 - timedelta(days=rng.uniform(0, 4)), "purchase", t0 + DAY)
    anchor = [e for e in bag_evs if e.event_type == "purchase"]
    if not anchor:
        return
    anchor = anchor[0]

    def matches(it):
        return it.category in ACCESSORIES and (it.color == bag.color or (it.hardware == bag.hardware != "none"))

    cands = h.in_taste(t1, [it for it in h.pool(t1, cold=cold, where=matches) if it.item_id not in h.sold])
    if not cands:
        return
    rng.shuffle(cands)
    ep = Episode(f"{c.client_id}-{len(h.episodes) + 1}", "complement", "")
    first, limit = True, t1 + 6 * DAY
    for item in cands[: rng.choice([1, 1, 2])]:
        if first:
            depth = rng.choices(["purchase", "try_on", "wishlist"], [0.55, 0.3, 0.15])[0]
        else:
            depth = rng.choice(["try_on", "wishlist"])
        evs = h.funnel(item, t1, depth, limit, ep, anchor)
        ep.targets.append((item, evs, anchor, None))
        t1 = evs[-1].ts + timedelta(hours=rng.uniform(2, 48))
        first = False
        if t1 > limit - DAY or evs[-1].event_type == "purchase":
            break  # after a purchase the bag is no longer the last purchase: the episode ends
    match = [m for m, ok in (("colour", ep.targets[0][0].color == bag.color),
                             ("hardware", ep.targets[0][0].hardware == bag.hardware != "none")) if ok]
    ep.detail = " and ".join(f"{m} {bag.color if m == 'colour' else bag.hardware}" for m in match)
    h.reserved.append((anchor.ts - 5 * DAY, max(e.ts for _, evs, _, _ in ep.targets for e in evs) + DAY))
    h.episodes.append(ep)


def plan_background(h: History):
    """Noise views (sessions of 1-4 random items) and organic funnels, at rates set by tier."""
    rng, c = h.rng, h.client
    months = (c.end - c.start).days / 30.4
    views, funnels = {"Platinum": (6, 1.4), "Gold": (4, 1.0), "Silver": (3, 0.8)}[c.tier]
    taste = lambda it: rng.random() < c.maisons[it.maison] / 4
    h.add(rng.choice(h.pool(c.start)), "view", "online", c.start)  # pin the start; activity runs to the end
    for _ in range(round(months * views / 2.5)):
        t = _rand_time(rng, c.start, c.end)
        pool = h.pool(t)
        for _ in range(rng.randint(1, 4)):
            h.add(rng.choice(pool), "view", "online" if rng.random() < 0.85 else "boutique", t)
            t += timedelta(minutes=rng.uniform(1, 30))
            if t > c.end:
                break
    for _ in range(round(months * funnels)):
        t = _rand_time(rng, c.start, c.end - 15 * DAY)
        item = rng.choice(h.in_taste(t, h.pool(t, where=taste) or h.pool(t)))
        depth = rng.choices(["view", "wishlist", "try_on", "purchase"], [0.3, 0.25, 0.2, 0.25])[0]
        evs = h.funnel(item, t, depth, t + 12 * DAY)
        buy = evs[-1]
        if buy.event_type == "purchase" and h.reserved_at(buy.ts):
            h.events.remove(buy)  # the funnel stopped short: a complement window stays clean
            h.sold.discard(item.item_id)
        elif buy.event_type == "purchase" and rng.random() < 0.15:
            back = buy.ts + timedelta(days=rng.uniform(3, 14))
            if back < c.end:
                h.add(item, "return", rng.choice(["online", "boutique"]), back)


def build_history(rng: random.Random, client: Client, items: list[Item], sold: set[str], seq: list[int]) -> History:
    h = History(rng, client, items, sold, seq)
    late = client.end >= COLD_START + 20 * DAY
    hi = client.end - (35 * DAY if late else 2 * DAY)  # late clients keep their last weeks for cold items
    lo = client.start + 7 * DAY
    if late:
        (plan_complement if rng.random() < 0.5 else plan_occasion)(h, client.end - 21 * DAY, client.end - DAY, cold=True)
    if rng.random() < 0.55:
        plan_chain(h, "style_evolution", lo, hi, rng.randint(4, 5))
    if rng.random() < 0.45:
        plan_chain(h, "loyalty", lo, hi, rng.randint(3, 4))
    for _ in range(rng.choice([1, 1, 2])):
        plan_occasion(h, lo, hi)
    for _ in range(rng.choice([1, 2])):
        plan_complement(h, lo, hi)
    plan_background(h)
    h.events.sort(key=lambda e: (e.ts, e.seq))
    bad = [e for e in h.events if not (client.start <= e.ts <= client.end < HORIZON) or e.ts < e.item.launched_at]
    if bad:
        raise RuntimeError(f"generator bug: client {client.client_id} event on {bad[0].item.item_id} at {iso(bad[0].ts)} "
                           "is outside the history or before the item's launch")
    return h


def explanations(rng: random.Random, h: History) -> list[dict]:
    """Three reference texts per intent target, citing its anchor (and support) event."""
    rows, seen = [], set()  # two targets of one kind after the same event could get one text
    for ep in h.episodes:
        for item, evs, a, b in ep.targets:
            strong = [e for e in evs if e.event_type in STRONG]
            if not strong or a is None:
                continue
            target = strong[0]
            b = b if b is not None and b.ts < target.ts and b.item is not item else None
            if not (a.ts < target.ts):
                continue
            texts = []
            for style in EXPLANATION_STYLES:
                for _ in range(10):
                    slots = _slots(rng, ep, item, target, a, b)
                    text, core = compose(rng, style, ep.intent, slots, b is not None)
                    if text not in seen:
                        break
                seen.add(text)
                cited = [a] + ([b] if b is not None and ("{B}" in core or "{and_B}" in core) else [])
                texts.append((style, text, cited))
            if not all(MIN_WORDS <= len(text.split()) <= MAX_WORDS for _, text, _ in texts):
                continue  # all three styles or none, so every target is explained in each style
            for style, text, cited in texts:
                rows.append({"client_id": h.client.client_id, "item_id": item.item_id, "target_timestamp": iso(target.ts),
                             "style": style, "text": text, "cited_event_ids": ";".join(e.event_id for e in cited),
                             "cited_item_ids": ";".join(e.item.item_id for e in cited), "intent": ep.intent,
                             "target_event_id": target.event_id})
    return rows


def _slots(rng: random.Random, ep: Episode, item: Item, target: Ev, a: Ev, b: Ev | None) -> dict[str, str]:
    """The facts a phrasing may use: target, cited events (fresh wording per call), match, occasion."""
    anchor_item = a.item
    colour_match = item.color == anchor_item.color
    hw_match = item.hardware == anchor_item.hardware != "none"
    if colour_match and hw_match:
        matched, short = f"the {item.color} colour and {item.hardware} hardware", f"{item.color} with {item.hardware} hardware"
    elif colour_match:
        matched, short = f"the {item.color} shade", item.color
    else:
        matched, short = f"the {item.hardware} hardware", f"{item.hardware} hardware"
    tstyle = style_word(item.style_level)
    occ, mood = OCCASIONS[ep.context.get("occasion", "season change")]
    astyle = style_word(anchor_item.style_level)
    slots = {"T": this(item), "A": cite(rng, a.item, a.event_type, a.ts), "Ac": cite(rng, a.item, a.event_type, a.ts, True),
             "B": cite(rng, b.item, b.event_type, b.ts, compact=True) if b else "",
             "and_B": (" and " + cite(rng, b.item, b.event_type, b.ts, compact=True)) if b else "",
             "match_long": "the same" + matched[3:], "match_the": matched, "match_short": short,
             "tmat": item.material, "coll": item.collection,
             "acoll": anchor_item.collection, "tstyle": tstyle,
             "a_tstyle": ("an " if tstyle[0] == "a" else "a ") + tstyle,
             "astyle": astyle if astyle != tstyle else "quieter", "season": season_word(target.ts), "occ": occ,
             "occ_cap": occ[0].upper() + occ[1:], "occ_mood": mood}
    slots.update(ep.context)
    return slots


def generate(out: Path, seed: int = 7, n_clients: int = N_CLIENTS) -> dict[str, int]:
    rng = random.Random(seed)
    items = build_items(rng)
    clients = build_clients(rng, n_clients)
    sold: set[str] = set()
    seq = [0]
    histories = [build_history(rng, c, items, sold, seq) for c in clients]
    events = [e for h in histories for e in h.events]  # clients are in id order, each sorted by time
    for i, e in enumerate(events):
        e.event_id = f"e{i}"
    expl = [row for h in histories for row in explanations(rng, h)]
    out.mkdir(parents=True, exist_ok=True)
    _write(out / "items.csv", [c.name for c in ITEM_COLUMNS], (
        [it.item_id, it.name, it.maison, it.category, it.subcategory, it.color, it.material, it.hardware, it.collection,
         it.season, f"{it.price:.2f}", "EUR", it.description, iso(it.launched_at), str(it.one_of_a_kind).lower()]
        for it in items))
    _write(out / "clients.csv", [c.name for c in CLIENT_COLUMNS], (
        [c.client_id, c.display_name, c.tier, c.home_boutique, str(c.consent_marketing).lower()] for c in clients))
    _write(out / "events.csv", ["event_id"] + [c.name for c in EVENT_COLUMNS], (
        [e.event_id, e.client_id, e.item.item_id, e.event_type, e.channel, iso(e.ts)] for e in events))
    _write(out / "intents.csv", INTENT_COLUMNS, (
        [e.event_id, e.client_id, e.item.item_id, iso(e.ts), e.event_type, e.episode.intent, e.episode.episode_id,
         e.anchor.event_id if e.anchor else "", e.anchor.item.item_id if e.anchor else "",
         iso(e.anchor.ts) if e.anchor else "", _detail(e)] for e in events if e.episode is not None))
    _write(out / "explanations.csv", EXPLANATION_COLUMNS, ([r[k] for k in EXPLANATION_COLUMNS] for r in expl))
    return {"items": len(items), "clients": len(clients), "events": len(events),
            "intents": sum(e.episode is not None for e in events), "explanations": len(expl)}


def _detail(e: Ev) -> str:
    """The episode's detail; a style step also names the collections it moves between."""
    if e.episode.intent == "style_evolution" and e.anchor is not None:
        return f"{e.anchor.item.collection} -> {e.item.collection} (episode {e.episode.detail})"
    return e.episode.detail


def _write(path: Path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def order_check(sample: Path, seed: int = 0) -> dict[str, float]:
    """Does the complement target follow the LAST purchase, or just anything in the history?

    For every explained complement target: the share matching (same colour, or same non-empty
    hardware) the client's most recent purchase before it, the expected share for a purchase
    drawn at random from the earlier ones, the share whose colour is the most frequent colour
    over all earlier events (what an order-blind bag of items would guess), and the share whose
    history also holds an earlier purchase it does not match (a decoy only order rules out).
    For style-evolution targets: the mean distance between the target's style level and the mean
    level of the client's last three strong engagements, against the whole history's mean.
    """
    items = {r["item_id"]: r for r in _read(sample / "items.csv")}
    events = _read(sample / "events.csv")
    by_client: dict[str, list[dict]] = {}
    for e in events:
        by_client.setdefault(e["client_id"], []).append(e)
    index = {e["event_id"]: i for i, e in enumerate(events)}

    def match(x, y):
        return x["color"] == y["color"] or (x["hardware"] == y["hardware"] != "none")

    last, rand, modal, decoy, n = 0.0, 0.0, 0.0, 0, 0
    gap_recent, gap_all, m = 0.0, 0.0, 0
    for row in _read(sample / "explanations.csv"):
        if row["style"] != "feature":
            continue
        target = items[row["item_id"]]
        pos = index[row["target_event_id"]]
        past = [e for e in by_client[row["client_id"]] if index[e["event_id"]] < pos]
        if row["intent"] == "style_evolution":
            levels = [COLLECTIONS[items[e["item_id"]]["collection"]] for e in past if e["event_type"] in STRONG]
            if len(levels) >= 4:
                m += 1
                gap_recent += abs(COLLECTIONS[target["collection"]] - sum(levels[-3:]) / 3)
                gap_all += abs(COLLECTIONS[target["collection"]] - sum(levels) / len(levels))
        buys = [items[e["item_id"]] for e in past if e["event_type"] == "purchase"]
        if row["intent"] != "complement" or len(buys) < 2:
            continue
        n += 1
        last += match(target, buys[-1])
        rand += sum(match(target, b) for b in buys[:-1]) / (len(buys) - 1)
        top = Counter(items[e["item_id"]]["color"] for e in past).most_common(1)[0][0]
        modal += target["color"] == top
        decoy += any(not match(target, b) for b in buys[:-1])
    return {"complement_targets": n, "match_last_purchase": round(last / n, 3),
            "match_random_earlier_purchase": round(rand / n, 3), "colour_is_modal_colour_of_history": round(modal / n, 3),
            "has_non_matching_earlier_purchase": round(decoy / n, 3), "style_targets": m,
            "style_gap_last_3_engagements": round(gap_recent / m, 3), "style_gap_whole_history": round(gap_all / m, 3)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("sample_data"), help="folder to write the CSV files into")
    p.add_argument("--seed", type=int, default=7, help="random seed; the same seed gives byte-identical files")
    p.add_argument("--clients", type=int, default=N_CLIENTS, help="number of clients to generate")
    args = p.parse_args(argv)
    counts = generate(args.out, args.seed, args.clients)
    print(" ".join(f"{k}={v}" for k, v in counts.items()))
    print(" ".join(f"{k}={v}" for k, v in order_check(args.out).items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
