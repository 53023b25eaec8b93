"""Loaders for the public benchmark data in ../shared/data into SELLER's data model.

API:
    load_public(name, root=None) -> Dataset     # name in PUBLIC_DATASETS
    load_amazon_beauty(root=None) / load_ml100k(root=None) / load_musical_instruments(root=None)
    public_data_dir(name, root=None) -> Path    # raises PublicDataMissing naming the path
    ml100k_catalogue(root=None) / names_only(dataset) -> Dataset   # store shapes (below)
    export_csv(dataset, folder)                 # items/clients/events .csv, as seller import reads
    python -m seller.data.public {ml-100k,sample-names-only} --store OUT [--csv DIR] [--max-clients N] [--force]

Every loader returns a `Dataset` with the schema's columns; attributes a dataset lacks are left
empty (None). Mapping decisions:
- amazon_beauty: sequential.txt gives order only. Timestamps are synthesized as one day per
  step (the user's i-th item at 2014-01-01 + i days): order and ties are exactly preserved,
  time-gap features are constant and carry no information (documented, not hidden). A 5-core
  review implies a purchase: event_type "purchase", channel "online". name = title (ASIN when
  the title is missing).
- ml-100k: a rating means the film was watched: event_type "view"; unix-second timestamps;
  name = title, category = first genre, collection = release year, description = title, year
  and genres (the text the MiniLM encoder reads).
- amazon_musical_instruments: a review is a purchase; unix-day timestamps; items have only
  their ASIN (name = ASIN). The review itself is kept in three extra event columns,
  `rating` (float), `review_summary` and `review_text`, for PETER-style explanation extraction.
Events are ordered by (client, timestamp, file order) and carry event_id "e<row>".
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd

from seller.data.schema import CLIENT_COLUMNS, EVENT_COLUMNS, ITEM_COLUMNS

PUBLIC_DATASETS = ("amazon_beauty", "ml-100k", "amazon_musical_instruments")
_ALIASES = {"beauty": "amazon_beauty", "ml100k": "ml-100k", "musical_instruments":
            "amazon_musical_instruments", "mi": "amazon_musical_instruments"}
_BEAUTY_EPOCH = pd.Timestamp("2014-01-01", tz="UTC")


class PublicDataMissing(FileNotFoundError):
    """The shared public-data folder (or one dataset in it) is absent."""


def public_data_dir(name: str, root=None) -> Path:
    from seller.paths import SHARED_DATA_ENV, shared_data_dir
    name = _ALIASES.get(name, name)
    if name not in PUBLIC_DATASETS:
        raise ValueError(f"unknown public dataset {name!r}; choose from {PUBLIC_DATASETS}")
    base = Path(root) if root is not None else shared_data_dir()
    d = base / name
    if not d.is_dir():
        raise PublicDataMissing(f"public dataset folder {d} is absent (set {SHARED_DATA_ENV} to "
                                "the folder holding amazon_beauty/, ml-100k/, ...)")
    return d


def load_public(name: str, root=None):
    name = _ALIASES.get(name, name)
    loader = {"amazon_beauty": load_amazon_beauty, "ml-100k": load_ml100k,
              "amazon_musical_instruments": load_musical_instruments}
    if name not in loader:
        raise ValueError(f"unknown public dataset {name!r}; choose from {PUBLIC_DATASETS}")
    return loader[name](root)


def _frame(columns, data: dict, n: int) -> pd.DataFrame:
    """A schema-shaped frame: given columns, the rest empty (None / NaN / NaT / False)."""
    out = {}
    for c in columns:
        if c.name in data:
            out[c.name] = data[c.name]
        elif c.kind == "float":
            out[c.name] = np.full(n, np.nan)
        elif c.kind == "datetime":
            out[c.name] = pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns, UTC]")
        elif c.kind == "bool":
            out[c.name] = np.zeros(n, dtype=bool)
        else:
            out[c.name] = pd.Series([None] * n, dtype=object)
    return pd.DataFrame(out)


def _events(client, item, event_type: str, ts: pd.Series, extra: dict | None = None) -> pd.DataFrame:
    n = len(client)
    ev = _frame(EVENT_COLUMNS, {"client_id": pd.Series(client, dtype=str).to_numpy(dtype=object),
                                "item_id": pd.Series(item, dtype=str).to_numpy(dtype=object),
                                "event_type": np.full(n, event_type, dtype=object),
                                "channel": np.full(n, "online", dtype=object),
                                "timestamp": pd.Series(ts).reset_index(drop=True)}, n)
    for k, v in (extra or {}).items():
        ev[k] = pd.Series(v).reset_index(drop=True)
    # (client, timestamp, file order): a stable sort on the first two keeps the third
    ev = ev.sort_values(["client_id", "timestamp"], kind="stable").reset_index(drop=True)
    ev.insert(len(EVENT_COLUMNS), "event_id", [f"e{i}" for i in range(len(ev))])
    return ev


def _dataset(items, clients, events, name):
    from seller.data.dataset import Dataset
    return Dataset(items=items, clients=clients, events=events, name=name)


def load_amazon_beauty(root=None):
    d = public_data_dir("amazon_beauty", root)
    clients, items, order = [], [], []
    with open(d / "sequential.txt", encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            parts = line.split()
            if len(parts) < 2:
                raise ValueError(f"{d / 'sequential.txt'}, line {line_no}: expected "
                                 f"'user_id item_id ...', got {line.strip()!r}")
            clients += [parts[0]] * (len(parts) - 1)
            items += parts[1:]
            order += range(len(parts) - 1)
    meta = pd.read_csv(d / "items.csv", dtype=str, keep_default_na=False)
    used = sorted(set(items), key=int)
    title = dict(zip(meta["item_id"], meta["title"]))
    asin = dict(zip(meta["item_id"], meta["asin"]))
    names = [title.get(i) or asin.get(i) or f"item {i}" for i in used]
    item_frame = _frame(ITEM_COLUMNS, {"item_id": used, "name": names}, len(used))
    users = sorted(set(clients), key=int)
    client_frame = _frame(CLIENT_COLUMNS, {"client_id": users}, len(users))
    ts = _BEAUTY_EPOCH + pd.to_timedelta(np.asarray(order), unit="D")
    return _dataset(item_frame, client_frame, _events(clients, items, "purchase", pd.Series(ts)),
                    "amazon_beauty")


def _atomic(path: Path) -> pd.DataFrame:
    """RecBole atomic file: tab-separated, header `name:type`."""
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    df.columns = [c.split(":")[0] for c in df.columns]
    return df


def load_ml100k(root=None):
    d = public_data_dir("ml-100k", root)
    inter = _atomic(d / "ml-100k.inter")
    movies = _atomic(d / "ml-100k.item")
    users = _atomic(d / "ml-100k.user")
    genres = movies["class"].str.split()
    desc = [f"{t} ({y}). Genres: {', '.join(g)}." for t, y, g in
            zip(movies["movie_title"], movies["release_year"], genres)]
    items = _frame(ITEM_COLUMNS, {
        "item_id": movies["item_id"].to_numpy(dtype=object),
        "name": movies["movie_title"].to_numpy(dtype=object),
        "category": [g[0] if g else None for g in genres],
        "collection": movies["release_year"].replace("", None).to_numpy(dtype=object),
        "description": desc}, len(movies))
    clients = _frame(CLIENT_COLUMNS, {"client_id": users["user_id"].to_numpy(dtype=object)},
                     len(users))
    ts = pd.to_datetime(inter["timestamp"].astype(float).astype(np.int64), unit="s", utc=True)
    return _dataset(items, clients, _events(inter["user_id"], inter["item_id"], "view", ts),
                    "ml-100k")


def read_review_records(path) -> pd.DataFrame:
    """Amazon review JSON lines (gzip) as a raw frame: client, item, ts (unix s), rating,
    summary, text; in file order. A bad line raises ValueError naming the file and line."""
    rows = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            try:
                r = json.loads(line)
                rows.append((r["reviewerID"], r["asin"], int(r["unixReviewTime"]),
                             float(r.get("overall", "nan")), r.get("summary") or "",
                             r.get("reviewText") or ""))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                raise ValueError(f"{path}, line {line_no}: bad review record ({e})") from e
    return pd.DataFrame(rows, columns=["client", "item", "ts", "rating", "summary", "text"])


def load_musical_instruments(root=None):
    d = public_data_dir("amazon_musical_instruments", root)
    raw = read_review_records(d / "reviews_Musical_Instruments_5.json.gz")
    item_ids = sorted(raw["item"].unique())
    items = _frame(ITEM_COLUMNS, {"item_id": item_ids, "name": item_ids}, len(item_ids))
    client_ids = sorted(raw["client"].unique())
    clients = _frame(CLIENT_COLUMNS, {"client_id": client_ids}, len(client_ids))
    ts = pd.to_datetime(raw["ts"], unit="s", utc=True)
    events = _events(raw["client"], raw["item"], "purchase", ts,
                     {"rating": raw["rating"], "review_summary": raw["summary"],
                      "review_text": raw["text"]})
    return _dataset(items, clients, events, "amazon_musical_instruments")


# -- ML-100K as a retailer's store: a second catalogue shape for `seller fit` and the app ----------
def _film_kind(genre: str | None) -> str | None:
    """"comedy film", "documentary", "film noir": what "this ..." calls a film of that genre."""
    if not genre or genre == "unknown":
        return None
    genre = genre.lower().replace("film-noir", "film noir")
    return genre if genre in ("documentary", "musical", "western", "film noir") else f"{genre} film"


def ml100k_catalogue(root=None):
    """ML-100K shaped like a retail catalogue: category "film", subcategory the first genre
    ("comedy film"), launched_at the release year's 1 January (UTC), the title, year and genres
    in the description. A rating means the film was watched, the client took it: a "purchase"
    (online), so serving never recommends a film already seen and the reference miner has its
    targets; the score is not kept. No maison, colour or material: every film is known by its
    name, genre and year only."""
    data = load_ml100k(root)
    events = data.events.assign(event_type="purchase")
    items = data.items.copy()
    years = pd.to_numeric(items["collection"], errors="coerce")
    items["launched_at"] = pd.to_datetime(years.astype("Int64").astype(str) + "-01-01",
                                          errors="coerce", utc=True)
    items["subcategory"] = [_film_kind(g) for g in items["category"]]
    items["category"] = "film"
    items["collection"] = None
    return _dataset(items, data.clients, events, "ml-100k")


def export_csv(dataset, folder) -> dict[str, Path]:
    """The dataset as items.csv, clients.csv and events.csv in `folder`, the files
    `seller import` reads (timestamps ISO 8601 with their UTC offset)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for table, columns in (("items", ITEM_COLUMNS), ("clients", CLIENT_COLUMNS), ("events", EVENT_COLUMNS)):
        frame = getattr(dataset, table)[[c.name for c in columns]].copy()
        for c in columns:
            if c.kind == "datetime":
                frame[c.name] = frame[c.name].map(lambda t: t.isoformat() if pd.notna(t) else "")
        files[table] = folder / f"{table}.csv"
        frame.to_csv(files[table], index=False)
    return files


def names_only(dataset, name: str | None = None):
    """The same clients and events with every item known by its id and name alone (no maison,
    category, colour, material, price, description...): how a bare catalogue export looks."""
    items = dataset.items[["item_id", "name"]].reindex(columns=dataset.items.columns)
    items["one_of_a_kind"] = False
    return _dataset(items, dataset.clients, dataset.events, name or f"{dataset.name}-names-only")


def _sample_names_only(root=None):
    from seller.data.dataset import load_sample
    return names_only(load_sample())


def client_subset(dataset, n: int, seed: int = 0):
    """`n` clients drawn at random (seeded) with all their events; the catalogue stays whole."""
    if n <= 0 or n >= len(dataset.clients):
        return dataset
    import numpy as np
    ids = dataset.clients["client_id"].to_numpy()
    keep = set(ids[np.sort(np.random.default_rng(seed).choice(len(ids), n, replace=False))])
    events = dataset.events[dataset.events["client_id"].isin(keep)].reset_index(drop=True)
    events["event_id"] = [f"e{i}" for i in range(len(events))]
    return _dataset(dataset.items, dataset.clients[dataset.clients["client_id"].isin(keep)].reset_index(drop=True),
                    events, dataset.name)


# what `python -m seller.data.public NAME --store OUT` writes
STORE_SHAPES = {"ml-100k": ml100k_catalogue, "sample-names-only": _sample_names_only}


def main(argv=None) -> int:
    """`python -m seller.data.public {ml-100k,sample-names-only} --store OUT [--csv DIR] [--force]`:
    write a public dataset (or the sample with its items known by name only) as a SELLER store,
    through `seller import`'s own validation."""
    import argparse
    import sys
    import tempfile

    from seller.data.importer import DataValidationError, OutputExistsError, run_import
    parser = argparse.ArgumentParser(prog="python -m seller.data.public", description=main.__doc__)
    parser.add_argument("name", choices=sorted(STORE_SHAPES))
    parser.add_argument("--store", required=True, help="store folder to write (as seller import --out)")
    parser.add_argument("--csv", help="also keep the importable CSV files in this folder")
    parser.add_argument("--force", action="store_true", help="replace an existing store at --store")
    parser.add_argument("--root", help="folder holding ml-100k/ (default: SELLER_SHARED_DATA or ../shared/data)")
    parser.add_argument("--max-clients", type=int, default=0,
                        help="keep this many clients (seeded draw, all their events; 0 = all)")
    args = parser.parse_args(argv)
    dataset = client_subset(STORE_SHAPES[args.name](args.root), args.max_clients)
    with tempfile.TemporaryDirectory() as tmp:
        files = export_csv(dataset, args.csv or tmp)
        try:
            summary = run_import(files["items"], files["clients"], files["events"], args.store,
                                 force=args.force, progress=False)
        except (DataValidationError, OutputExistsError) as e:
            print(f"seller.data.public: {e}", file=sys.stderr)
            return 1
    for line in summary.lines():
        print(line)
    print(f"store written to {summary.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
