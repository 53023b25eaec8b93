"""The text half of the prompt: style instructions, history facts and the candidate's description.

Training and serving both call these functions (then `seller.llm.layout.build_layout`), so the
LLM reads the same words in both. Facts are short on purpose: every prompt token costs a
forward pass of the frozen LLM on every training step. They keep what an explanation cites:
the item's name (which in luxury catalogues already carries model, colour and material), what
the client did, the date in the references' own format; the events related to the candidate
(the adapter's attention) also carry the attributes explanations match on (maison, hardware,
collection). Client names are never part of a prompt.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import pandas as pd

from seller.data.schema import STYLE_INSTRUCTIONS, check_style

VERBS = {"purchase": "bought", "try_on": "tried on", "wishlist": "wishlisted", "view": "viewed",
         "add_to_cart": "added to basket", "return": "returned"}
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
# strongest signal first: when facts must be dropped, views go before purchases
EVENT_STRENGTH = {"purchase": 5, "try_on": 4, "add_to_cart": 3, "wishlist": 3, "return": 2, "view": 1}


def _val(row, key) -> str:
    v = row.get(key) if hasattr(row, "get") else None
    if v is None or (isinstance(v, float) and pd.isna(v)) or str(v).strip().lower() in ("", "none", "nan"):
        return ""
    return str(v).strip()


def instruction(style: str, day: date | None = None) -> str:
    """The style's instruction; with `day`, the day the card is read, so "coming" seasons are
    coming from that day (`DataConfig.date_in_prompt`)."""
    text = STYLE_INSTRUCTIONS[check_style(style)]
    return text if day is None else f"{text} Today is {day.day} {MONTHS[day.month - 1]} {day.year}."


def date_text(ts: pd.Timestamp) -> str:
    return f"{ts.day} {MONTHS[ts.month - 1]} {ts.year}"


def item_text(item, aspects: Sequence[str] = ()) -> str:
    """`item`: a row of Dataset.items. E.g. 'Lune Tote in Black Calfskin, Aubrelle handbags, gold
    hardware, Heritage collection'. Public items may have only a name (or an id); `aspects`
    (review data, `item_aspects`) describe them: 'B0002E1G5C, reviewers mention strings, tuner'."""
    parts = [_val(item, "name") or _val(item, "item_id")]
    maker = " ".join(p for p in (_val(item, "maison"), _val(item, "category")) if p)
    if maker:
        parts.append(maker)
    if _val(item, "hardware"):
        parts.append(f"{_val(item, 'hardware')} hardware")
    if _val(item, "collection"):
        parts.append(f"{_val(item, 'collection')} collection")
    if aspects:
        parts.append("reviewers mention " + ", ".join(aspects))
    return ", ".join(parts)


def layout_config(cfg) -> "LayoutConfig":
    """The fixed prompt texts for `cfg` (DataConfig): its `system` turn, else the default."""
    from seller.llm.layout import LayoutConfig
    return LayoutConfig(system=cfg.system) if cfg.system else LayoutConfig()


def prompt_aspects(refs: pd.DataFrame, train_clients, n: int) -> dict[str, list[str]]:
    """item -> the `n` aspects `item_text` names for it (`DataConfig.item_aspects`): its most
    frequent in training clients' references only; items no training client reviewed get none."""
    from seller.data.review_explanations import item_aspects
    return {i: a[:n] for i, a in item_aspects(refs, train_clients).items() if i} if n else {}


def event_fact(event, item, detail: bool = False) -> str:
    """One history line: '2 March 2026, bought Lune Tote in Black Calfskin', with `detail`
    '... (Aubrelle, gold hardware, Heritage collection)'."""
    name = _val(item, "name") or _val(item, "item_id")
    verb = VERBS.get(event["event_type"], event["event_type"])
    line = f"{date_text(event['timestamp'])}, {verb} {name}"
    if detail:
        extra = [_val(item, "maison"), f"{_val(item, 'hardware')} hardware" if _val(item, "hardware") else "",
                 f"{_val(item, 'collection')} collection" if _val(item, "collection") else ""]
        extra = [x for x in extra if x]
        line += f" ({', '.join(extra)})" if extra else ""
    return line


def select_fact_events(history: pd.DataFrame, max_facts: int) -> pd.DataFrame:
    """The events spelled out as shared history text: one per item (its strongest, latest
    event); items the client did more than view come first, then the most recent; at most
    `max_facts`, returned oldest first. `history` is a client's events, oldest first.

    On the sample data this covers 60% of the events the reference texts cite with 6 facts
    (recency alone: 48%); the candidate-specific related facts cover the rest."""
    if history.empty or max_facts <= 0:
        return history.iloc[:0]
    h = history.assign(_strength=history["event_type"].map(EVENT_STRENGTH).fillna(0).to_numpy(),
                       _pos=range(len(history)))
    best = h.sort_values(["_strength", "_pos"], kind="stable").groupby("item_id", sort=False).tail(1)
    last_seen = h.groupby("item_id")["_pos"].max()
    best = best.assign(_last=best["item_id"].map(last_seen).to_numpy(), _strong=best["_strength"] > 1)
    chosen = best.sort_values(["_strong", "_last"], kind="stable").tail(max_facts)
    return history.loc[chosen.sort_values("_pos").index]


def history_facts(history: pd.DataFrame, items: pd.DataFrame, max_facts: int) -> tuple[list[str], list[str]]:
    """(fact lines oldest first, their event ids). `items` is indexed by item_id."""
    chosen = select_fact_events(history, max_facts)
    lines = [event_fact(ev, items.loc[ev["item_id"]]) for _, ev in chosen.iterrows()]
    return lines, list(chosen["event_id"])


def evidence_fact(found, item) -> str:
    """The reason seller.fallback's evidence engine found for the candidate `item` (a row of
    Dataset.items), as the prompt line the LLM puts into words (`DataConfig.evidence_prompt`):
    'Reason: shares colour Fuchsia, hardware ruthenium' / 'Reason: coming: winter'."""
    details = [f"{'colour' if c == 'color' else c} {_val(item, c)}" for c in found.shared if _val(item, c)]
    d = found.detail
    parts = {
        "shared_detail": [f"shares {', '.join(details)}"] if details else [],
        "taste_line": [f"both pieces share {', '.join(details)}"] if details else [],
        "collection_drift": [f"moved from the {d.get('from')} collection to the item's"],
        "co_occurrence": [f"{d.get('clients')} other clients went on from it to the item"],
        "holidays": ["coming: the holidays"],
        "season": [f"coming: {d.get('season')}", f"shares {', '.join(details)}" if details else ""],
        "launch": [f"launched {date_text(pd.Timestamp(d['launched']))}" if d.get("launched") else "",
                   f"coming: {d.get('season')}", f"shares {', '.join(details)}" if details else ""],
    }.get(found.kind, [])
    if found.kind in ("holidays", "co_occurrence") and details:
        parts.append(f"shares {', '.join(details)}")
    return "Reason: " + ("; ".join(p for p in parts if p) or "none")


def related_fact(event, item) -> str:
    """A history line for an event the adapter found related to the candidate, with the
    attributes explanations match on, marked so the LLM knows which facts concern the item."""
    return "Related to the item: " + event_fact(event, item, detail=True)
