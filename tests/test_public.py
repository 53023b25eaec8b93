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


def test_ml100k_writes_as_a_store_and_benchmarks_as_a_path(shared_data, tmp_path, monkeypatch, capsys):
    """`python -m seller.data.public ml-100k --store OUT`: films as a name-only catalogue (genre,
    year), through seller import's validation; the store then serves as a --dataset PATH."""
    import argparse
    import json

    from seller.bench import rec
    from seller.data.dataset import load_dataset
    from seller.data.public import client_subset, main
    monkeypatch.setenv("SELLER_SHARED_DATA", str(shared_data))
    store = tmp_path / "ml"
    assert main(["ml-100k", "--store", str(store), "--csv", str(tmp_path / "csv")]) == 0
    assert "events: 100000 read, 100000 imported, 0 rejected" in capsys.readouterr().out
    ml = load_dataset(store)
    toy = ml.item("1")
    assert (toy.name, toy.category, toy.subcategory, toy.launched_at.year) == ("Toy Story", "film", "animation film", 1995)
    assert toy.maison is None and toy.color is None and toy.material is None and toy.collection is None
    assert set(ml.events["event_type"]) == {"purchase"} and len(ml.clients) == 943
    sub = client_subset(ml, 50)  # --max-clients: a seeded draw of whole clients, every film kept
    assert len(sub.clients) == 50 and set(sub.events["client_id"]) == set(sub.clients["client_id"])
    assert len(sub.items) == 1682 and sub.events["event_id"].is_unique
    assert len(sub.events) == ml.events["client_id"].isin(set(sub.clients["client_id"])).sum()
    assert main(["ml-100k", "--store", str(store)]) == 1  # exists: refused, untouched
    assert "--force" in capsys.readouterr().err and load_dataset(store).events.equals(ml.events)
    parser = argparse.ArgumentParser()
    rec.add_arguments(parser)
    out = tmp_path / "rec.json"
    assert rec.run(parser.parse_args(["--dataset", str(store), "--models", "popularity,item-knn",
                                      "--max-clients", "200", "--out", str(out)])) == 0
    result = json.loads(out.read_text())
    assert result["dataset"] == "ml" and result["data"] == str(store) and result["n_items"] == 1682
    assert all(0 < m["HR@10"] <= 1 for m in result["models"].values())
