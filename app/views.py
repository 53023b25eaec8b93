"""Page-side shaping of the dataset for display: client lists, the header figures, the timeline.

Pure functions of DataFrames (cached with `st.cache_data` by the pages); no model or DB logic.
"""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from seller.data.schema import EVENT_TYPES

INK, BRONZE, SLATE, GOLD = "#1E1B18", "#8C6A3F", "#7A8590", "#C9A227"
CHANNEL_STYLE = {"boutique": (BRONZE, "diamond"), "online": (SLATE, "circle")}
EVENT_LABELS = {"view": "Viewed", "wishlist": "Wishlisted", "try_on": "Tried on", "add_to_cart": "Added to bag",
                "purchase": "Purchased", "return": "Returned"}


def filter_clients(clients: pd.DataFrame, query: str, tiers: list[str], boutiques: list[str]) -> pd.DataFrame:
    out = clients
    if query.strip():
        q = query.strip().lower()
        names = out["display_name"].fillna("").str.lower()
        out = out[names.str.contains(q, regex=False) | out["client_id"].str.lower().str.contains(q, regex=False)]
    if tiers:
        out = out[out["tier"].isin(tiers)]
    if boutiques:
        out = out[out["home_boutique"].isin(boutiques)]
    return out


def shown_text(value, missing: str = "—") -> str:
    """A text field for display; empty and NaN (pandas' missing) become `missing`."""
    return value if isinstance(value, str) and value.strip() else missing


def client_label(row) -> str:
    name = row.get("display_name")
    return f"{name} · {row['client_id']}" if isinstance(name, str) and name else row["client_id"]


def client_events(events: pd.DataFrame, items: pd.DataFrame, client_id: str) -> pd.DataFrame:
    """The client's events with the item facts shown on hover, oldest first."""
    mine = events[events["client_id"] == client_id]
    facts = items[["item_id", "name", "maison", "category", "color", "material", "price", "currency"]]
    return mine.merge(facts, on="item_id", how="left").sort_values("timestamp", kind="stable")


def spend_summary(history: pd.DataFrame) -> dict:
    """Lifetime spend (purchases less returns) and the last boutique visit or any last event."""
    sign = history["event_type"].map({"purchase": 1, "return": -1}).fillna(0)
    spend = float((sign * history["price"].fillna(0)).sum())
    currency = history["currency"].dropna().mode()
    in_store = history[history["channel"] == "boutique"]
    return {"spend": spend, "currency": currency.iloc[0] if len(currency) else "",
            "last_visit": in_store["timestamp"].max() if len(in_store) else None,
            "last_event": history["timestamp"].max() if len(history) else None,
            "events": len(history)}


def money(amount: float, currency: str) -> str:
    return f"{amount:,.0f} {currency}".strip()


def timeline_figure(history: pd.DataFrame, highlighted: list[str], highlight_label: str) -> go.Figure:
    """Events over time, one row per event type, coloured and shaped by channel."""
    fig = go.Figure()
    history = history.assign(event_type=history["event_type"].map(EVENT_LABELS).fillna(history["event_type"]))
    hover = ("<b>%{customdata[0]}</b><br>%{customdata[1]} · %{customdata[2]}<br>"
             "%{customdata[3]} · %{customdata[4]}<br>%{customdata[5]}<br>"
             "%{y} · %{customdata[6]} · %{x|%d %b %Y}<br><i>%{customdata[7]}</i><extra></extra>")

    def custom(frame):
        price = [money(p, c or "") if pd.notna(p) else "" for p, c in zip(frame["price"], frame["currency"])]
        cols = [frame[c].fillna("").astype(str) for c in ("name", "maison", "category", "color", "material")]
        return list(zip(*cols, price, frame["channel"].fillna("unknown"), frame["event_id"]))

    for channel, frame in history.groupby(history["channel"].fillna("unknown"), sort=True):
        colour, symbol = CHANNEL_STYLE.get(channel, (INK, "square"))
        fig.add_trace(go.Scatter(x=frame["timestamp"], y=frame["event_type"], mode="markers",
                                 name=channel.capitalize(), customdata=custom(frame), hovertemplate=hover,
                                 marker=dict(color=colour, symbol=symbol, size=11, opacity=0.85,
                                             line=dict(color="white", width=1))))
    cited = history[history["event_id"].isin(highlighted)]
    if len(cited):
        fig.add_trace(go.Scatter(x=cited["timestamp"], y=cited["event_type"], mode="markers",
                                 name=highlight_label, customdata=custom(cited), hovertemplate=hover,
                                 marker=dict(size=22, color="rgba(0,0,0,0)", symbol="circle",
                                             line=dict(color=GOLD, width=3))))
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=10, b=10), hovermode="closest",
                      paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)",
                      font=dict(family="Georgia, serif", color=INK),
                      legend=dict(orientation="h", y=1.12, x=0, title=None))
    fig.update_yaxes(categoryorder="array", categoryarray=[EVENT_LABELS[t] for t in EVENT_TYPES], gridcolor="#E8E1D6",
                     title=None)
    fig.update_xaxes(gridcolor="#EFE9E0", title=None)
    return fig


def gate_frame(gate_weights) -> pd.DataFrame:
    """Gate weights (a mapping expert -> weight, or a sequence/array indexed by expert)."""
    if hasattr(gate_weights, "items"):
        pairs = [(str(k), float(v)) for k, v in gate_weights.items()]
    else:
        flat = getattr(gate_weights, "tolist", lambda: gate_weights)()
        while flat and isinstance(flat[0], list):  # a (1, E) batch row
            flat = flat[0]
        pairs = [(f"expert {i}", float(w)) for i, w in enumerate(flat)]
    return pd.DataFrame(pairs, columns=["expert", "weight"])


def weighing_events(history: pd.DataFrame, top_events: list[tuple[str, float]]) -> pd.DataFrame:
    """The recommender's heaviest history events, as a small readable table."""
    weights = dict(top_events)
    rows = history[history["event_id"].isin(weights)].copy()
    rows["weight"] = rows["event_id"].map(weights)
    rows = rows.sort_values("weight", ascending=False)
    return pd.DataFrame({"date": rows["timestamp"].dt.strftime("%d %b %Y"),
                         "event": rows["event_type"].map(EVENT_LABELS),
                         "channel": rows["channel"], "item": rows["name"],
                         "weight": rows["weight"].map("{:.0%}".format)})


def rests_on(history: pd.DataFrame, cited_event_ids: list[str]) -> str:
    """The past event an explanation's reason rests on, as the card says it ("" when none)."""
    rows = history[history["event_id"].isin(cited_event_ids[:1])]
    if rows.empty:
        return ""
    row = rows.iloc[0]
    return f"Rests on: {EVENT_LABELS.get(row['event_type'], row['event_type']).lower()} {row['name']}, " \
           f"{row['timestamp']:%d %b %Y}"
