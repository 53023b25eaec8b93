"""Recommender: learns a planted order signal, save/load, catalog and client errors, exclusion."""
import numpy as np
import pandas as pd
import pytest
import torch

from seller.data.dataset import Dataset
from seller.data.schema import CLIENT_COLUMNS, EVENT_COLUMNS, ITEM_COLUMNS
from seller.data.sequences import build_sequences, leave_one_out
from seller.recommend import (Recommender, RecommenderConfig, evaluate_targets, segment_index,
                              sequence_loss, train_recommender)

N_ITEMS = 30


def planted_dataset(n_clients=80, length=12, seed=0):
    """Each client walks the catalog in order (item a, a+1, a+2, ...): the next item is fully
    determined by the last one, and every item is equally popular."""
    rng = np.random.default_rng(seed)
    items = pd.DataFrame({c.name: [None] * N_ITEMS for c in ITEM_COLUMNS})
    items["item_id"] = [f"I{i:02d}" for i in range(N_ITEMS)]
    items["name"] = [f"piece {i}" for i in range(N_ITEMS)]
    items["one_of_a_kind"] = False
    cids = [f"C{c:03d}" for c in range(n_clients)] + ["C_NEW"]
    clients = pd.DataFrame({c.name: [None] * len(cids) for c in CLIENT_COLUMNS})
    clients["client_id"] = cids
    clients["tier"] = ["gold" if i % 2 else "silver" for i in range(len(cids))]
    rows = []
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    for c in range(n_clients):
        a = rng.integers(N_ITEMS)
        for j in range(length):
            rows.append((f"C{c:03d}", f"I{(a + j) % N_ITEMS:02d}",
                         "purchase" if j % 3 == 2 else "view", "online", t0 + pd.Timedelta(days=j)))
    ev = pd.DataFrame(rows, columns=[c.name for c in EVENT_COLUMNS])
    ev["event_id"] = [f"e{i}" for i in range(len(ev))]
    return Dataset(items, clients, ev, name="planted")


CONFIG = RecommenderConfig(d_model=32, n_heads=2, dropout=0.1, max_len=10, epochs=25, batch_size=32,
                           lr=5e-3, patience=25, use_text=False, threads=1)


@pytest.fixture(scope="module")
def trained():
    ds = planted_dataset()
    return ds, train_recommender(ds, CONFIG, log=lambda m: None)


def test_training_lowers_loss_and_beats_popularity(trained):
    ds, rec = trained
    split = leave_one_out(build_sequences(ds))
    torch.manual_seed(0)
    fresh = Recommender(CONFIG, rec.item_encoder.featurizer, rec.item_ids, rec.segments)
    fresh.item_encoder.set_catalog(ds.items)
    fresh.attach(ds)
    assert sequence_loss(rec, split.train) < 0.5 * sequence_loss(fresh, split.train)
    seg = segment_index(ds, rec.segments)
    hr = evaluate_targets(rec, split.test, seg)["HR@5"]
    counts = np.bincount(np.concatenate([s.items for s in split.train.values()]), minlength=N_ITEMS)
    top5 = set(np.argsort(-counts)[:5])
    pop_hr = np.mean([t.item in top5 for t in split.test])
    assert hr > 0.9 and hr > pop_hr + 0.5


def test_recommend_exclusion_and_top_events(trained):
    ds, rec = trained
    seq = build_sequences(ds)["C000"]
    bought = {rec.item_ids[i] for i in seq.items[seq.event_types == 4]}
    recs = rec.recommend("C000", k=N_ITEMS, exclude_purchased=True)
    assert len(recs) == N_ITEMS - len(bought) and not {r.item_id for r in recs} & bought
    assert [r.score for r in recs] == sorted((r.score for r in recs), reverse=True)
    nxt = f"I{(seq.items[-1] + 1) % N_ITEMS:02d}"
    assert recs[0].item_id == nxt  # the planted successor of the last event
    ids = set(seq.event_ids)
    assert recs[0].top_events and all(e in ids for e, _ in recs[0].top_events)
    assert sum(w for _, w in recs[0].top_events) <= 1.0 + 1e-6
    all_recs = rec.recommend("C000", k=N_ITEMS, exclude_purchased=False)
    assert len(all_recs) == N_ITEMS


def test_score_catalog_is_batch_scoring_with_the_purchases_masked(trained):
    ds, rec = trained
    seq = build_sequences(ds)["C000"]
    first_purchase = int(np.flatnonzero(seq.event_types == 4)[0])
    before = seq[:first_purchase]  # evaluation scores the history before its target
    assert torch.isfinite(rec.score_catalog(before, 0)).all()
    scores = rec.score_catalog(seq, 0)
    bought = np.unique(seq.items[seq.event_types == 4])
    assert torch.isinf(scores[bought]).all() and torch.isfinite(scores).sum() == N_ITEMS - len(bought)
    unmasked = rec.score_catalog(seq, 0, exclude_purchased=False)
    assert torch.equal(unmasked, rec.score_histories([seq], [0])[0])
    keep = np.setdiff1d(np.arange(N_ITEMS), bought)
    assert torch.equal(scores[keep], unmasked[keep])


def test_cold_start_and_unknown_client(trained):
    ds, rec = trained
    recs = rec.recommend("C_NEW", k=5)  # known client, no events: segment prior
    assert len(recs) == 5 and all(r.top_events == [] for r in recs)
    with pytest.raises(KeyError, match="C_GHOST"):
        rec.recommend("C_GHOST")
    enc = rec.encode_client("C001")
    assert enc.states.shape[0] == len(enc.event_ids) + 1 == 11  # max_len 10 + start token
    assert torch.allclose(enc.attention.sum(), torch.tensor(1.0), atol=1e-5)


def test_save_load_identical_and_wrong_catalog(trained, tmp_path):
    ds, rec = trained
    rec.save_pretrained(tmp_path / "rec")
    loaded = Recommender.from_pretrained(tmp_path / "rec", ds)
    seqs = list(build_sequences(ds).values())[:5]
    assert torch.equal(rec.score_histories(seqs), loaded.score_histories(seqs))
    assert [r.item_id for r in rec.recommend("C003", 5)] == [r.item_id for r in loaded.recommend("C003", 5)]
    other = planted_dataset()
    other.items = other.items.iloc[:-1].reset_index(drop=True)
    other.events = other.events[other.events["item_id"] != f"I{N_ITEMS - 1:02d}"]
    with pytest.raises(ValueError, match="catalog"):
        Recommender.from_pretrained(tmp_path / "rec", other)
    with pytest.raises(FileNotFoundError, match="no recommender checkpoint"):
        Recommender.from_pretrained(tmp_path / "nothing", ds)


def test_sample_data_semantic_model(tmp_path):
    from seller.data.dataset import load_sample
    ds = load_sample()
    # text off here: MiniLM on 330 descriptions is minutes on a busy 2-core machine; the text
    # path is covered in test_encoders on a 3-item catalog
    config = RecommenderConfig(d_model=32, epochs=2, batch_size=64, patience=2, max_len=30,
                               use_text=False, threads=1)
    rec = train_recommender(ds, config, log=lambda m: None)
    cid = ds.events["client_id"].iloc[0]
    recs = rec.recommend(cid, k=10)
    assert len(recs) == 10 and len({r.item_id for r in recs}) == 10
    rec.save_pretrained(tmp_path / "s")
    again = Recommender.from_pretrained(tmp_path / "s", ds)
    assert [r.item_id for r in again.recommend(cid, 10)] == [r.item_id for r in recs]
    # a new item (not in the catalog) is encoded from its attributes and text
    new = ds.items.iloc[[0]].copy()
    new["item_id"] = "BRAND_NEW"
    assert rec.item_encoder.encode(new).shape == (1, 32)


def test_rank_metrics_count_ties_half():
    from seller.recommend import rank_metrics
    flat = torch.zeros(2, 30)  # a constant scorer: the target ties with 29 others
    assert rank_metrics(flat, torch.tensor([0, 5]), ks=(10,))["HR@10"] == 0.0  # rank 14.5
    scores = torch.tensor([[0.9, 0.5, 0.5, 0.1], [0.2, 0.8, 0.1, 0.3]])
    m = rank_metrics(scores, torch.tensor([1, 1]), ks=(1, 2))
    assert m["HR@1"] == 0.5 and m["HR@2"] == 1.0  # ranks 1.5 (one above, one tie) and 0


def test_sample_extras_separate_pieces_met_for_the_first_time():
    from seller.bench.rec import last_n_out, target_groups
    ds = planted_dataset(n_clients=1, length=3)
    ds.items["one_of_a_kind"] = ds.items["item_id"].isin(["I01", "I02"])
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    walk = ["I03", "I04", "I01", "I02", "I01"]  # the last I01 repeats an earlier try-on
    ev = pd.DataFrame([("C000", item, "view", "online", t0 + pd.Timedelta(days=d))
                       for d, item in enumerate(walk)], columns=[c.name for c in EVENT_COLUMNS])
    ev["event_id"] = [f"e{i}" for i in range(len(ev))]
    ds = Dataset(ds.items, ds.clients, ev, name="walk")
    targets = last_n_out(build_sequences(ds), 2).test
    assert [ds.items["item_id"][t.item] for t in targets] == ["I02", "I01"]
    groups, _ = target_groups(ds, targets)
    assert groups["one_of_a_kind"].tolist() == [True, True]
    assert groups["one_of_a_kind_first_seen"].tolist() == [True, False]
    assert groups["all"].tolist() == [True, True]


def test_unseen_variant_drops_only_training_events_of_the_pieces():
    from seller.bench.rec import _without_items, last_n_out
    ds = planted_dataset(n_clients=4, length=8)
    split = last_n_out(build_sequences(ds), 2)
    unique = ds.items["item_id"].isin(["I01", "I02"]).to_numpy()
    unseen = _without_items(split, unique)
    assert unseen.valid is split.valid and unseen.test is split.test
    assert not any(unique[s.items].any() for s in unseen.train.values())
    for cid, s in unseen.train.items():  # everything else kept, in order
        full = split.train[cid]
        assert s.event_ids.tolist() == [e for e, i in zip(full.event_ids, full.items) if not unique[i]]
        assert (np.diff(s.timestamps) >= 0).all()
    rec = train_recommender(ds, RecommenderConfig(d_model=16, epochs=1, use_text=False, threads=1),
                            train=unseen.train, valid=unseen.valid, log=lambda m: None)
    assert not {"I01", "I02"} & set(rec.item_encoder.featurizer.warm_ids)
