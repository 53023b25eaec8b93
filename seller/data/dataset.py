"""`Dataset`: the three validated tables every other module reads, and how to load one.

Shared contract: `items`, `clients`, `events` carry exactly the schema's columns (events also an
`event_id` str); `timestamp`/`launched_at` are tz-aware UTC; ids are str. `events` is sorted by
(client_id, timestamp, original file order) with a fresh RangeIndex, so an event's position in
`events` identifies it. Treat a Dataset as read-only (load_sample returns a cached one).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from seller import paths
from seller.data.importer import (MANIFEST, STORE_FORMAT, STORE_VERSION, DataValidationError,
                                  read_table)
from seller.data.schema import TABLES, Client, Item
from seller.data.validate import validate_tables


class UnknownIdError(KeyError):
    """An item or client id that is not in the dataset. A KeyError (hence a LookupError), so
    `except KeyError` keeps working, with a readable message instead of KeyError's repr."""

    def __init__(self, kind: str, value: str, dataset: str):
        self.kind, self.value = kind, value
        super().__init__(f"unknown {kind} {value!r} in dataset {dataset!r}")

    def __str__(self) -> str:
        return self.args[0]


def _plain(value):
    """A DataFrame cell as the dataclasses want it: None for missing, datetime, float, bool."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, (np.bool_, np.floating, np.integer)):
        return value.item()
    return value


@dataclass
class Dataset:
    items: pd.DataFrame
    clients: pd.DataFrame
    events: pd.DataFrame
    name: str = "dataset"
    source: str | None = None  # the folder it was loaded from, for messages that say what to run
    # id -> row position lookups, built on first use (a dict probe beats a boolean mask per call)
    _index: dict | None = field(default=None, init=False, repr=False, compare=False)

    def _lookup(self) -> dict:
        if self._index is None:
            self._index = {
                "item": dict(zip(self.items["item_id"], range(len(self.items)))),
                "client": dict(zip(self.clients["client_id"], range(len(self.clients)))),
                "history": self.events.groupby("client_id", sort=False).indices,
            }
        return self._index

    def item(self, item_id: str) -> Item:
        pos = self._lookup()["item"].get(item_id)
        if pos is None:
            raise UnknownIdError("item_id", item_id, self.name)
        row = self.items.iloc[pos]
        values = {f.name: _plain(row[f.name]) for f in fields(Item) if f.name in row}
        values["one_of_a_kind"] = bool(values.get("one_of_a_kind") or False)
        return Item(**values)

    def client(self, client_id: str) -> Client:
        pos = self._lookup()["client"].get(client_id)
        if pos is None:
            raise UnknownIdError("client_id", client_id, self.name)
        row = self.clients.iloc[pos]
        values = {f.name: _plain(row[f.name]) for f in fields(Client) if f.name in row}
        values["consent_marketing"] = bool(values.get("consent_marketing") or False)
        return Client(**values)

    def client_history(self, client_id: str, before: datetime | str | None = None) -> pd.DataFrame:
        """The client's events in time order, strictly before `before` (tz-aware) if given.
        The index is kept: it is each event's position in `self.events`."""
        index = self._lookup()
        if client_id not in index["client"] and client_id not in index["history"]:
            raise UnknownIdError("client_id", client_id, self.name)
        history = self.events.iloc[index["history"].get(client_id, [])]
        if before is not None:
            cutoff = pd.Timestamp(before)
            if cutoff.tzinfo is None:
                raise ValueError(f"before={before!r} has no time zone; pass a tz-aware time")
            history = history[history["timestamp"] < cutoff]
        return history


def _find(folder: Path, table: str) -> Path | None:
    found = [folder / f"{table}{ext}" for ext in (".csv", ".parquet")
             if (folder / f"{table}{ext}").is_file()]
    if len(found) > 1:
        raise ValueError(f"{folder}: both {found[0].name} and {found[1].name} exist; keep one")
    return found[0] if found else None


def _load_store(folder: Path) -> Dataset:
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    if manifest.get("format") != STORE_FORMAT:
        raise ValueError(f"{folder / MANIFEST}: not a SELLER store manifest")
    if manifest.get("schema_version", 0) > STORE_VERSION:
        raise ValueError(f"{folder}: written by a newer SELLER (schema version "
                         f"{manifest['schema_version']} > {STORE_VERSION}); upgrade seller")
    frames = {}
    for table, columns in TABLES.items():
        entry = manifest["tables"][table]
        frame = pq.read_table(folder / entry["file"]).to_pandas()
        missing = [c.name for c in columns if c.name not in frame.columns]
        if missing or len(frame) != entry["rows"]:
            raise ValueError(f"{folder / entry['file']}: store is damaged ({len(frame)} rows, "
                             f"manifest says {entry['rows']}; missing columns: "
                             f"{missing or 'none'})")
        frames[table] = frame
    return Dataset(frames["items"], frames["clients"], frames["events"], name=folder.name)


def load_dataset(path: str | Path, name: str | None = None) -> Dataset:
    """A store written by `seller import`, or a folder of items/clients/events .csv/.parquet
    validated strictly (DataValidationError lists every problem)."""
    folder = Path(path).resolve()
    if (folder / MANIFEST).is_file():
        dataset = _load_store(folder)
    elif folder.is_dir() and any(_find(folder, t) for t in TABLES):
        files = {t: _find(folder, t) or folder / f"{t}.csv" for t in TABLES}
        raws = {t: read_table(p, t, progress=False) for t, p in files.items()}
        v = validate_tables(raws)
        if v.problems:
            raise DataValidationError(v.problems, f"cannot load {folder}")
        dataset = Dataset(*(v.tables[t] for t in TABLES), name=folder.name)
    else:
        raise FileNotFoundError(f"{folder}: neither a SELLER store ({MANIFEST}) nor a folder "
                                "with items, clients and events .csv/.parquet files")
    dataset.source = str(folder)
    if name:
        dataset.name = name
    return dataset


_sample_cache: dict[tuple, Dataset] = {}


def load_sample() -> Dataset:
    """The repo's sample_data/ (cached until its files change; treat it as read-only)."""
    folder = paths.SAMPLE_DATA
    stamp = tuple((p.name, p.stat().st_mtime_ns) for p in sorted(folder.glob("*"))
                  if p.stem in TABLES)
    if stamp not in _sample_cache:
        _sample_cache.clear()
        _sample_cache[stamp] = load_dataset(folder, name="sample")
    return _sample_cache[stamp]
