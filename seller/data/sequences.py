"""Time-ordered per-client sequences and the splits every recommender is trained and judged on.

API (stable; the recommender, adapter and evaluation build on it):

    build_sequences(dataset, max_len=None) -> dict[str, ClientSequence]   # client_id -> sequence
    gap_buckets(timestamps, n_buckets=GAP_BUCKETS) -> np.ndarray           # (T,) int64
    leave_one_out(sequences) -> Split      # last event = test, second-to-last = valid
    temporal_split(sequences, cutoff, valid_cutoff=None) -> Split
    holdout_clients(client_ids, fraction, seed) -> (kept_ids, heldout_ids)

A `ClientSequence` holds one client's events as parallel numpy arrays, oldest first. Items are
row positions in `dataset.items` (so the whole catalog is one matrix the model can index); event
types index `schema.EVENT_TYPES`; channels are 0 = unknown, 1 = online, 2 = boutique.

Order: events are sorted by timestamp with a *stable* sort, so events with the same timestamp
keep the order in which they appear in `dataset.events` (the original file order, which the
loaders preserve). `max_len` keeps the most recent events, because the next item depends most on
the latest behaviour.

Time gaps: the gap to the previous event, bucketed on a log2 scale of minutes (bucket 0 = no
previous event). Luxury journeys mix minutes (a browsing session) with months (a season), and a
log scale gives both the same resolution per octave.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from seller.data.schema import CHANNELS, EVENT_TYPES

GAP_BUCKETS = 24  # bucket 0 = first event; 1..23 cover 0 min .. 2^22 min (~8 years)
_TYPE_INDEX = {t: i for i, t in enumerate(EVENT_TYPES)}
_CHANNEL_INDEX = {c: i + 1 for i, c in enumerate(CHANNELS)}  # 0 = unknown / missing


@dataclass(frozen=True)
class ClientSequence:
    """One client's events, oldest first. All arrays have the same length T."""

    client_id: str
    items: np.ndarray  # (T,) int64 row index into dataset.items
    event_types: np.ndarray  # (T,) int64 index into EVENT_TYPES
    channels: np.ndarray  # (T,) int64, 0 unknown, 1 online, 2 boutique
    timestamps: np.ndarray  # (T,) int64 unix seconds, UTC
    event_ids: np.ndarray  # (T,) object, the dataset's event_id strings

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, s: slice) -> "ClientSequence":
        """A slice of the sequence (e.g. `seq[:-1]` is the history before the last event)."""
        if not isinstance(s, slice):
            raise TypeError(f"ClientSequence takes a slice, got {type(s).__name__}")
        return ClientSequence(self.client_id, self.items[s], self.event_types[s], self.channels[s],
                              self.timestamps[s], self.event_ids[s])

    def gap_buckets(self, n_buckets: int = GAP_BUCKETS) -> np.ndarray:
        return gap_buckets(self.timestamps, n_buckets)

    def permuted(self, order: np.ndarray) -> "ClientSequence":
        """Events reordered by `order` while timestamps stay sorted (the shuffled-order control)."""
        return ClientSequence(self.client_id, self.items[order], self.event_types[order],
                              self.channels[order], self.timestamps, self.event_ids[order])


@dataclass(frozen=True)
class Target:
    """A next-item prediction task: given `history`, the client's next item is `item`."""

    client_id: str
    history: ClientSequence
    item: int
    event_id: str
    timestamp: int


@dataclass
class Split:
    train: dict[str, ClientSequence]  # what a model may learn from
    valid: list[Target] = field(default_factory=list)  # for early stopping / model selection
    test: list[Target] = field(default_factory=list)  # reported figures only


def gap_buckets(timestamps: np.ndarray, n_buckets: int = GAP_BUCKETS) -> np.ndarray:
    """(T,) unix seconds -> (T,) int64 log2-of-minutes bucket of the gap to the previous event."""
    ts = np.asarray(timestamps, dtype=np.int64)
    out = np.zeros(len(ts), dtype=np.int64)
    if len(ts) > 1:
        minutes = np.maximum(np.diff(ts), 0) / 60.0
        out[1:] = 1 + np.minimum(np.floor(np.log2(1.0 + minutes)), n_buckets - 2).astype(np.int64)
    return out


def build_sequences(dataset, max_len: int | None = None) -> dict[str, ClientSequence]:
    """dataset.events -> {client_id: ClientSequence}, clients in order of their first event.

    Clients without events get no entry (the recommender's cold-start path handles them).
    """
    if max_len is not None and max_len < 1:
        raise ValueError(f"max_len must be >= 1 or None, got {max_len}")
    ev = dataset.events
    item_row = pd.Index(dataset.items["item_id"].astype(str))
    items = item_row.get_indexer(ev["item_id"].astype(str))
    if (items < 0).any():
        bad = ev["item_id"].iloc[int(np.argmax(items < 0))]
        raise KeyError(f"event for unknown item_id {bad!r} in dataset {dataset.name!r}")
    types = ev["event_type"].map(_TYPE_INDEX)
    if types.isna().any():
        bad = ev["event_type"][types.isna()].iloc[0]
        raise ValueError(f"unknown event_type {bad!r} in dataset {dataset.name!r}; "
                         f"expected one of {EVENT_TYPES}")
    channels = ev["channel"].map(_CHANNEL_INDEX).fillna(0) if "channel" in ev else 0
    ts = pd.to_datetime(ev["timestamp"], utc=True)
    seconds = (ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    event_ids = ev["event_id"].astype(str) if "event_id" in ev else pd.Series(
        [f"e{i}" for i in range(len(ev))], index=ev.index)
    frame = pd.DataFrame({
        "client_id": ev["client_id"].astype(str).to_numpy(),
        "item": items.astype(np.int64),
        "type": types.to_numpy(dtype=np.int64),
        "channel": np.asarray(channels, dtype=np.int64) * np.ones(len(ev), dtype=np.int64),
        "ts": seconds.to_numpy(dtype=np.int64),
        "event_id": event_ids.to_numpy(dtype=object),
    })
    # Stable sort: equal timestamps keep file order; groupby(sort=False) keeps client order.
    frame = frame.sort_values("ts", kind="stable")
    out: dict[str, ClientSequence] = {}
    groups = dict(tuple(frame.groupby("client_id", sort=False)))
    for cid in pd.unique(frame["client_id"].to_numpy()):
        g = groups[cid]
        if max_len is not None:
            g = g.iloc[-max_len:]
        out[cid] = ClientSequence(cid, g["item"].to_numpy(), g["type"].to_numpy(),
                                  g["channel"].to_numpy(), g["ts"].to_numpy(),
                                  g["event_id"].to_numpy())
    return out


def _target(seq: ClientSequence, i: int) -> Target:
    return Target(seq.client_id, seq[:i], int(seq.items[i]), str(seq.event_ids[i]),
                  int(seq.timestamps[i]))


def leave_one_out(sequences: dict[str, ClientSequence]) -> Split:
    """Last event -> test, second-to-last -> valid, the rest -> train (the SASRec protocol).

    Clients with fewer than 3 events stay whole in train (too short to judge), as in SASRec.
    The test history includes the valid event: at test time everything before is known.
    """
    split = Split(train={})
    for cid, seq in sequences.items():
        if len(seq) < 3:
            split.train[cid] = seq
            continue
        split.train[cid] = seq[:-2]
        split.valid.append(_target(seq, len(seq) - 2))
        split.test.append(_target(seq, len(seq) - 1))
    return split


def temporal_split(sequences: dict[str, ClientSequence], cutoff,
                   valid_cutoff=None) -> Split:
    """Events before `cutoff` train; each client's first event at/after it is a test target.

    With `valid_cutoff` (< cutoff), train stops at `valid_cutoff` and each client's first event
    in [valid_cutoff, cutoff) is a valid target. Timestamps are anything pandas reads as UTC.
    Histories of targets hold every event before the target's period starts, never after.
    """
    cut = _unix(cutoff)
    vcut = _unix(valid_cutoff) if valid_cutoff is not None else cut
    if vcut > cut:
        raise ValueError(f"valid_cutoff {valid_cutoff} is after cutoff {cutoff}")
    split = Split(train={})
    for cid, seq in sequences.items():
        n_train = int(np.searchsorted(seq.timestamps, vcut, side="left"))
        n_before_test = int(np.searchsorted(seq.timestamps, cut, side="left"))
        if n_train:
            split.train[cid] = seq[:n_train]
        if n_train < n_before_test:
            split.valid.append(Target(cid, seq[:n_train], int(seq.items[n_train]),
                                      str(seq.event_ids[n_train]), int(seq.timestamps[n_train])))
        if n_before_test < len(seq):
            split.test.append(Target(cid, seq[:n_before_test], int(seq.items[n_before_test]),
                                     str(seq.event_ids[n_before_test]),
                                     int(seq.timestamps[n_before_test])))
    return split


def holdout_clients(client_ids, fraction: float, seed: int = 0) -> tuple[list[str], list[str]]:
    """Seeded split of client ids into (kept, held out); the same seed gives the same split."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    ids = sorted(str(c) for c in client_ids)  # sorted: independent of the caller's order
    rng = np.random.default_rng(seed)
    n_out = int(round(fraction * len(ids)))
    out = set(rng.choice(len(ids), size=n_out, replace=False).tolist()) if n_out else set()
    return ([c for i, c in enumerate(ids) if i not in out], [c for i, c in enumerate(ids) if i in out])


def _unix(t) -> int:
    """A cutoff as unix seconds: ints pass through, naive datetimes are read as UTC."""
    if isinstance(t, (int, np.integer)):
        return int(t)
    ts = pd.Timestamp(t)
    return int((ts.tz_localize("UTC") if ts.tzinfo is None else ts).timestamp())
