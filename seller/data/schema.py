"""The data model: items, clients and events, as typed column specifications.

One place states every table's columns, which are required, and how each is parsed, so the
importer, the public loaders, the sample generator and the app agree on one shape. Tables are
pandas DataFrames in memory (whole-catalog scoring wants columns, not objects); the dataclasses
below document a single row and are what the library hands to callers that want one record.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

EVENT_TYPES = ("view", "wishlist", "try_on", "add_to_cart", "purchase", "return")
CHANNELS = ("online", "boutique")
# The explanation styles and what each one asks for: the instruction every prompt gives the LLM
# (seller.prompt, in training and serving alike; short, as every token is a forward pass
# per training step). The order is the adapter's style-embedding index, so a trained model
# depends on it: append, never reorder; a changed instruction means retraining.
STYLE_INSTRUCTIONS = {
    "feature": "Explain by matching details (colour, material, hardware, maker) why the client may like the item.",
    "style": "Explain how the item fits the client's taste and where their style is heading.",
    "occasion": "Explain which coming occasion or season the item suits for the client.",
}
EXPLANATION_STYLES = tuple(STYLE_INSTRUCTIONS)

EventType = Literal["view", "wishlist", "try_on", "add_to_cart", "purchase", "return"]
Channel = Literal["online", "boutique"]


def check_style(style: str) -> str:
    """`style` if it is an explanation style, else ValueError naming the choices."""
    if style not in STYLE_INSTRUCTIONS:
        raise ValueError(f"unknown style {style!r} (choose from {', '.join(EXPLANATION_STYLES)})")
    return style


@dataclass(frozen=True)
class Column:
    name: str
    kind: Literal["str", "float", "bool", "datetime"]
    required: bool  # the column must exist in an imported file and be non-empty in every row


ITEM_COLUMNS = (
    Column("item_id", "str", True),
    Column("name", "str", True),
    Column("maison", "str", False),  # brand; public datasets may lack it
    Column("category", "str", False),
    Column("subcategory", "str", False),
    Column("color", "str", False),
    Column("material", "str", False),
    Column("hardware", "str", False),  # e.g. gold, palladium; drives "complement" intents
    Column("collection", "str", False),
    Column("season", "str", False),
    Column("price", "float", False),
    Column("currency", "str", False),
    Column("description", "str", False),
    Column("launched_at", "datetime", False),
    Column("one_of_a_kind", "bool", False),
)

CLIENT_COLUMNS = (
    Column("client_id", "str", True),
    Column("display_name", "str", False),  # shown in the app only; never logged or stored
    Column("tier", "str", False),
    Column("home_boutique", "str", False),
    Column("consent_marketing", "bool", False),
)

EVENT_COLUMNS = (
    Column("client_id", "str", True),
    Column("item_id", "str", True),
    Column("event_type", "str", True),
    Column("channel", "str", False),
    Column("timestamp", "datetime", True),  # timezone-aware; stored as UTC
)

TABLES = {"items": ITEM_COLUMNS, "clients": CLIENT_COLUMNS, "events": EVENT_COLUMNS}
PRIMARY_KEYS = {"items": "item_id", "clients": "client_id"}


@dataclass(frozen=True)
class Item:
    item_id: str
    name: str
    maison: str | None = None
    category: str | None = None
    subcategory: str | None = None
    color: str | None = None
    material: str | None = None
    hardware: str | None = None
    collection: str | None = None
    season: str | None = None
    price: float | None = None
    currency: str | None = None
    description: str | None = None
    launched_at: datetime | None = None
    one_of_a_kind: bool = False


@dataclass(frozen=True)
class Client:
    client_id: str
    display_name: str | None = None
    tier: str | None = None
    home_boutique: str | None = None
    consent_marketing: bool = False


@dataclass(frozen=True)
class Event:
    client_id: str
    item_id: str
    event_type: EventType
    timestamp: datetime
    channel: Channel | None = None
