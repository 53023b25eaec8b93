"""Public loaders: counts match ../shared/data/README.md; the data model is respected."""
import pandas as pd
import pytest

from seller.data.public import PublicDataMissing, load_public, public_data_dir
from seller.data.schema import EVENT_COLUMNS, ITEM_COLUMNS
from seller.data.sequences import build_sequences

_loaded = {}


def load(name, root):
    """Each dataset once per test session (Beauty takes seconds to parse)."""
    if name not in _loaded:
        _loaded[name] = load_public(name, root)
    return _loaded[name]


COUNTS = {"amazon_beauty": (22_363, 12_101, 198_502), "ml-100k": (943, 1_682, 100_000),
          "amazon_musical_instruments": (1_429, 900, 10_261)}


@pytest.mark.parametrize("name", list(COUNTS))
def test_counts_match_readme(shared_data, name):
    ds = load(name, shared_data)
    users, items, events = COUNTS[name]
    assert (ds.events["client_id"].nunique(), len(ds.clients)) == (users, users)
    assert (ds.events["item_id"].nunique(), len(ds.items)) == (items, items)
    assert len(ds.events) == events
    assert [c.name for c in ITEM_COLUMNS] == list(ds.items.columns)
    assert [c.name for c in EVENT_COLUMNS] + ["event_id"] == list(ds.events.columns[:6])
    assert str(ds.events["timestamp"].dt.tz) == "UTC"
    ev = ds.events
    ordered = ev.sort_values(["client_id", "timestamp"], kind="stable")
    assert (ordered.index == ev.index).all()  # sorted by (client, time, file order)


def test_beauty_order_preserved(shared_data):
    ds = load("amazon_beauty", shared_data)
    first = (shared_data / "amazon_beauty" / "sequential.txt").read_text().split("\n")[1].split()
    seq = build_sequences(ds)[first[0]]
    assert ds.items["item_id"].iloc[seq.items].tolist() == first[1:]
    assert ds.items.set_index("item_id").loc["1", "name"].startswith("OPI Nail Lacquer")


def test_musical_instruments_keeps_reviews(shared_data):
    ds = load("amazon_musical_instruments", shared_data)
    ev = ds.events
    assert {"rating", "review_summary", "review_text"} <= set(ev.columns)
    assert ev["rating"].between(1, 5).all() and ev["review_text"].str.len().mean() > 100
    row = ev[(ev["client_id"] == "A2IBPI20UZIR0U") & (ev["item_id"] == "1384719342")].iloc[0]
    assert row["review_summary"] == "good" and row["rating"] == 5.0
    assert row["timestamp"] == pd.Timestamp(1393545600, unit="s", tz="UTC")


def test_ml100k_attributes(shared_data):
    ds = load("ml-100k", shared_data)
    toy = ds.items.set_index("item_id").loc["1"]
    assert toy["name"] == "Toy Story" and toy["category"] == "Animation"
    assert toy["collection"] == "1995" and toy["maison"] is None


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(PublicDataMissing, match=str(tmp_path)):
        public_data_dir("ml-100k", tmp_path)
    with pytest.raises(ValueError, match="unknown public dataset"):
        load_public("netflix", tmp_path)
