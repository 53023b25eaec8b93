"""Sequence builder and splits: order, stable ties, max length, gaps, LOO / temporal / clients."""
import numpy as np
import pandas as pd
import pytest

from seller.data.dataset import Dataset
from seller.data.schema import CLIENT_COLUMNS, EVENT_COLUMNS, ITEM_COLUMNS
from seller.data.sequences import (build_sequences, gap_buckets, holdout_clients, leave_one_out,
                                   temporal_split)


def make_dataset(events, n_items=6, clients=None):
    """events: [(client, item, iso time, type)] in file order."""
    items = pd.DataFrame({c.name: [None] * n_items for c in ITEM_COLUMNS})
    items["item_id"] = [f"I{i}" for i in range(n_items)]
    items["name"] = [f"piece {i}" for i in range(n_items)]
    cids = clients or sorted({e[0] for e in events})
    cl = pd.DataFrame({c.name: [None] * len(cids) for c in CLIENT_COLUMNS})
    cl["client_id"] = cids
    ev = pd.DataFrame(events, columns=["client_id", "item_id", "timestamp", "event_type"])
    ev["timestamp"] = pd.to_datetime(ev["timestamp"], utc=True)
    ev["channel"] = "online"
    ev = ev[[c.name for c in EVENT_COLUMNS]]
    ev["event_id"] = [f"e{i}" for i in range(len(ev))]
    return Dataset(items, cl, ev, name="tiny")


def test_time_order_and_stable_ties():
    ds = make_dataset([("C1", "I3", "2024-01-03", "view"), ("C1", "I1", "2024-01-01", "view"),
                       ("C1", "I4", "2024-01-02", "view"), ("C1", "I2", "2024-01-02", "purchase"),
                       ("C2", "I0", "2024-01-01", "wishlist")])
    seqs = build_sequences(ds)
    assert list(seqs) == ["C1", "C2"]
    # I4 and I2 share a timestamp: file order (I4 first) is kept
    assert seqs["C1"].items.tolist() == [1, 4, 2, 3]
    assert seqs["C1"].event_ids.tolist() == ["e1", "e2", "e3", "e0"]
    assert seqs["C1"].event_types.tolist() == [0, 0, 4, 0]
    assert np.all(np.diff(seqs["C1"].timestamps) >= 0)


def test_max_len_keeps_most_recent():
    ds = make_dataset([("C1", f"I{i}", f"2024-01-0{i + 1}", "view") for i in range(5)])
    assert build_sequences(ds, max_len=2)["C1"].items.tolist() == [3, 4]
    with pytest.raises(ValueError, match="max_len"):
        build_sequences(ds, max_len=0)


def test_unknown_item_is_named():
    ds = make_dataset([("C1", "I1", "2024-01-01", "view")])
    ds.events.loc[0, "item_id"] = "NOPE"
    with pytest.raises(KeyError, match="NOPE"):
        build_sequences(ds)


def test_gap_buckets_log_scale():
    t0 = 1_700_000_000
    ts = np.array([t0, t0, t0 + 60, t0 + 3600, t0 + 86400 * 30])
    b = gap_buckets(ts)
    assert b[0] == 0 and b[1] == 1  # first event; a zero gap is bucket 1
    assert b[2] == 2  # 1 minute -> log2(2) = 1
    assert b[2] < b[3] < b[4]  # monotone in the gap
    assert gap_buckets(np.array([t0, t0 + 10 ** 12])).max() == 23  # clipped to the last bucket


def test_leave_one_out():
    ev = [("C1", f"I{i}", f"2024-01-0{i + 1}", "view") for i in range(5)]
    ev += [("C2", "I0", "2024-01-01", "view"), ("C2", "I1", "2024-01-02", "view")]
    split = leave_one_out(build_sequences(make_dataset(ev)))
    assert split.train["C1"].items.tolist() == [0, 1, 2]
    assert [(t.client_id, t.item) for t in split.valid] == [("C1", 3)]
    assert [(t.client_id, t.item) for t in split.test] == [("C1", 4)]
    assert split.test[0].history.items.tolist() == [0, 1, 2, 3]  # includes the valid event
    assert split.train["C2"].items.tolist() == [0, 1]  # too short to judge: all in train


def test_temporal_split():
    ev = [("C1", f"I{i}", f"2024-01-0{i + 1}", "view") for i in range(5)]
    seqs = build_sequences(make_dataset(ev))
    split = temporal_split(seqs, "2024-01-04", valid_cutoff="2024-01-03")
    assert split.train["C1"].items.tolist() == [0, 1]
    assert [t.item for t in split.valid] == [2] and [t.item for t in split.test] == [3]
    assert split.test[0].history.items.tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="after cutoff"):
        temporal_split(seqs, "2024-01-02", valid_cutoff="2024-01-04")


def test_holdout_clients_seeded_and_disjoint():
    ids = [f"C{i:03d}" for i in range(50)]
    kept, out = holdout_clients(ids, 0.2, seed=7)
    assert len(out) == 10 and not set(kept) & set(out) and set(kept) | set(out) == set(ids)
    assert holdout_clients(list(reversed(ids)), 0.2, seed=7) == (kept, out)
    assert holdout_clients(ids, 0.2, seed=8)[1] != out
