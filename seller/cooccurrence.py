"""What clients went on to after a piece: the evidence for items known only by their name.

    nexts = NextChoices(dataset.events)
    nexts.count("I0012", "I0040", before=today)   # clients whose next pieces after I0012 held I0040

A client "went on to" B after A when B is among the next WINDOW distinct pieces of their history
after an event on A. Each client counts once per pair, on the day they first did so, so a claim
read on `today` counts only what had happened by then. The grounded sentence (seller.fallback)
cites it where a candidate shares no attribute with the client's pieces, and the verifier
(seller.verify) checks it.
"""
from __future__ import annotations

from bisect import bisect_left

import pandas as pd

WINDOW = 3  # the next distinct pieces after an event: "went on to", not "ever touched later"
MIN_CLIENTS = 2  # "clients often go on to": at least this many, or it is one client's path


class NextChoices:
    def __init__(self, events: pd.DataFrame, window: int = WINDOW):
        firsts: dict[tuple[str, str, str], pd.Timestamp] = {}
        ordered = events.sort_values(["client_id", "timestamp"], kind="stable")
        for client, group in ordered.groupby("client_id", sort=False):
            items = group["item_id"].astype(str).tolist()
            times = pd.to_datetime(group["timestamp"], utc=True).tolist()
            for i, earlier in enumerate(items):
                seen: list[str] = []
                for later, when in zip(items[i + 1:], times[i + 1:]):
                    if later == earlier or later in seen:
                        continue
                    seen.append(later)
                    key = (earlier, later, str(client))
                    if key not in firsts or when < firsts[key]:
                        firsts[key] = when
                    if len(seen) == window:
                        break
        self._days: dict[tuple[str, str], list[pd.Timestamp]] = {}
        for (earlier, later, _), when in firsts.items():
            self._days.setdefault((earlier, later), []).append(when)
        for days in self._days.values():
            days.sort()

    def count(self, earlier: str, later: str, before) -> int:
        """Clients who went on to `later` after `earlier`, strictly before `before` (tz-aware)."""
        days = self._days.get((str(earlier), str(later)))
        if not days:
            return 0
        cutoff = pd.Timestamp(before)
        cutoff = cutoff.tz_localize("UTC") if cutoff.tzinfo is None else cutoff
        return bisect_left(days, cutoff)
