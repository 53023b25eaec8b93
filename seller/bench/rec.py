"""`seller bench rec`: next-item recommendation, leave-one-out, full ranking over all items.

    seller bench rec --dataset {sample,beauty,ml-100k,PATH} [--out FILE.json] [--max-clients N]

PATH: a store written by `seller import` or a folder of items/clients/events CSV files, trained
with the sample's settings (a retail book is short and sparse like it).

One run trains and scores: popularity, item-KNN (cosine co-occurrence), GRU4Rec-style (GRU,
ID only, full-softmax CE), SASRec-CE (ID only) and ours (SASRec-CE over sequence + semantics:
ID + attributes + MiniLM text + event type/channel/time gap). Metrics: HR@5/10/20 and
NDCG@5/10/20 on each client's last event, history items *not* masked (the target may repeat an
earlier item; every item competes). Ties count half (expected rank under a random tie-break),
so a model cannot profit from giving many items the same score. Also reported: train_s,
score_ms_per_user (one client at a time, encoder + full-catalog product + top-10, median), and
the same latency on a 12k-item and a generated 200k-item catalog.

Sample data adds `extras`: ours vs ID-only on test targets that are one-of-a-kind (also: only
those the client meets for the first time) or newly launched items, and a shuffled-order
control (ours trained and tested on histories whose event order is randomly permuted per
client: if order carries no signal it would match ours), ours without ID embeddings (items
known only by their semantics: what the semantic path alone does for rare pieces) and ours with
half of the ID embeddings left out of each training forward (`id_dropout` 0.5, fixed a priori).
The sample's one-of-a-kind pieces collect as many events as regular items, so their IDs are
warm; `*-one-of-a-kind-unseen` rows score each one-of-a-kind target with a model trained
without any event on that piece (no trained ID vector), as for a unique piece new to the model:
two folds, each dropping half the pieces' training events.
Results: JSON (shape in the issue) + a markdown table next to it.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

DATASETS = ("sample", "beauty", "ml-100k")
KS = (5, 10, 20)


def add_arguments(parser) -> None:
    parser.add_argument("--dataset", default="sample",
                        help=f"{', '.join(DATASETS)}, or a store / CSV folder (default sample)")
    parser.add_argument("--out", help="JSON file (default benchmarks/results/rec_<dataset>.json); "
                                      "a .md table is written beside it")
    parser.add_argument("--max-clients", type=int, default=0,
                        help="seeded subset of clients for a quick run (0 = all)")
    parser.add_argument("--max-minutes", type=float, default=20.0,
                        help="training budget per neural model")
    parser.add_argument("--models", default="popularity,item-knn,sasrec-ce-id,ours,gru4rec",
                        help="comma-separated subset of the models")
    parser.add_argument("--epochs", type=int, default=200, help="epoch cap per neural model")
    parser.add_argument("--seed", type=int, default=0)


def _load(name: str):
    if name == "sample":
        from seller.data.dataset import load_sample
        return load_sample()
    if name not in DATASETS:
        from seller.data.dataset import load_dataset
        return load_dataset(name)
    from seller.data.public import load_public
    return load_public({"beauty": "amazon_beauty"}.get(name, name))


def _configs(dataset: str, epochs: int, minutes: float, seed: int) -> dict:
    from seller.recommend import RecommenderConfig
    # Beauty/ml-100k: SASRec's published settings (dropout 0.5 on sparse Beauty, 200 events on
    # the long MovieLens histories); the sample is small and dense in signal: less dropout.
    # Beauty gets a higher lr and smaller batches: on a shared 2-core CPU an epoch takes minutes,
    # so the 20-minute budget allows few epochs and more, larger steps converge sooner.
    base = {"beauty": dict(dropout=0.5, max_len=50, lr=2e-3, batch_size=64),
            "ml-100k": dict(dropout=0.2, max_len=200),
            "sample": dict(dropout=0.2, max_len=50, batch_size=32)}.get(dataset if dataset in DATASETS else "sample")
    common = dict(base, epochs=epochs, max_minutes=minutes, seed=seed)
    id_only = dict(use_text=False, use_attributes=False, use_event_features=False)
    return {"gru4rec": RecommenderConfig(encoder="gru", **id_only, **common),
            "sasrec-ce-id": RecommenderConfig(**id_only, **common),
            "ours": RecommenderConfig(**common)}


def _subset(seqs: dict, n: int, seed: int) -> dict:
    if not n or n >= len(seqs):
        return seqs
    keys = sorted(seqs)
    pick = np.random.default_rng(seed).choice(len(keys), n, replace=False)
    return {keys[i]: seqs[keys[i]] for i in sorted(pick)}


def rank_metrics(scores, targets) -> dict:
    """seller.recommend.rank_metrics (ties count half) at KS, rounded for the tables."""
    from seller.recommend import rank_metrics as full_ranking
    return {k: round(v, 5) for k, v in full_ranking(scores, targets, KS).items()}


def _popularity(train, n_items):
    counts = np.bincount(np.concatenate([s.items for s in train.values()]), minlength=n_items)
    return counts.astype(np.float32)


def _item_knn(train, n_items):
    from scipy import sparse
    rows = np.concatenate([np.full(len(s), i) for i, s in enumerate(train.values())])
    cols = np.concatenate([s.items for s in train.values()])
    X = sparse.csr_matrix((np.ones(len(cols), np.float32), (rows, cols)),
                          shape=(len(train), n_items))
    X.data[:] = 1.0  # binary: repeated items count once
    co = (X.T @ X).tocsr().astype(np.float32)
    norm = np.sqrt(np.maximum(co.diagonal(), 1.0))
    co.setdiag(0)
    co.eliminate_zeros()
    return sparse.diags(1 / norm) @ co @ sparse.diags(1 / norm)  # cosine


def _score_static(kind, model, histories, n_items, batch=2048):
    """Scores of the non-neural baselines, (B, N) torch tensor."""
    import torch
    from scipy import sparse
    if kind == "popularity":
        return torch.from_numpy(np.tile(model, (len(histories), 1)))
    rows = np.concatenate([np.full(len(h[-50:]), i) for i, h in enumerate(histories)])
    cols = np.concatenate([h.items[-50:] for h in histories])
    H = sparse.csr_matrix((np.ones(len(cols), np.float32), (rows, cols)),
                          shape=(len(histories), n_items))
    return torch.from_numpy(np.asarray((H @ model).todense(), dtype=np.float32))


def _latency_ms(fn, n: int = 50) -> float:
    """Median ms of fn(), single-threaded: a serving worker scores one client per thread, and
    on a shared machine two-thread OpenMP sync for tiny ops only measures the neighbours' load."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    fn()  # warm-up
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    torch.set_num_threads(threads)
    return round(float(np.median(times)) * 1000, 3)


def _neural_latency(model, histories, segments) -> float:
    """One client at a time: encoder + full-catalog product + top-10 (item vectors cached)."""
    import torch
    model.eval()
    with torch.no_grad():
        v = model.item_vectors()
    i = [0]

    def one():
        j = i[0] % len(histories)
        i[0] += 1
        with torch.no_grad():
            s = model.user_encoder(model.make_batch([histories[j]], [segments[j]], v)).summary
            torch.topk(s @ v.T, 10)
    return _latency_ms(one)


def catalog_latency(model, histories, n_items: int, seed: int = 0) -> float:
    """Per-client latency against a generated catalog of n_items (random features + text)."""
    import torch
    g = torch.Generator().manual_seed(seed)
    enc = model.item_encoder
    n_f = enc.catalog_attributes.shape[1]
    # each attribute drawn from its own vocabulary (Beauty has none: only the unknown bucket)
    attrs = (torch.stack([torch.randint(0, emb.num_embeddings, (n_items,), generator=g)
                          for emb in enc.attributes], 1) if enc.config.use_attributes
             else torch.zeros(n_items, n_f, dtype=torch.long))
    with torch.no_grad():
        v = enc(attrs,
                torch.randint(0, enc.featurizer.n_price_bands, (n_items,), generator=g),
                torch.zeros(n_items, dtype=torch.long),
                torch.randn(n_items, enc.catalog_text.shape[1], generator=g))
        real = model.item_vectors()
    h = histories[0]

    def one():  # the client's events come from the real catalog; candidates are the generated one
        with torch.no_grad():
            s = model.user_encoder(model.make_batch([h], [0], real)).summary
            torch.topk(s @ v.T, 10)
    return _latency_ms(one, 30)



def _evaluate(name, kind, split, dataset, config, text_vectors, log):
    """Train one model on split.train (early stop on split.valid), score split.test."""
    import torch
    from seller.recommend import segment_index, train_recommender
    n_items = len(dataset.items)
    histories = [t.history for t in split.test]
    y = torch.tensor([t.item for t in split.test])
    t0 = time.time()
    if kind in ("popularity", "item-knn"):
        model = _popularity(split.train, n_items) if kind == "popularity" else \
            _item_knn(split.train, n_items)
        train_s = time.time() - t0
        scores = _score_static(kind, model, histories, n_items)
        ms = _latency_ms(lambda: _score_static(kind, model, histories[:1], n_items))
        model = None
    else:
        model = train_recommender(dataset, config, train=split.train, valid=split.valid,
                                  text_vectors=text_vectors, log=lambda m: log(f"   {name}: {m}"))
        train_s = time.time() - t0
        seg = segment_index(dataset, model.segments)
        segments = [seg.get(t.client_id, 0) for t in split.test]
        scores = model.score_histories(histories, segments)
        ms = _neural_latency(model, histories, segments)
    metrics = rank_metrics(scores, y)
    metrics.update(train_s=round(train_s, 1), score_ms_per_user=ms)
    log(f"{name}: " + ", ".join(f"{k} {v}" for k, v in metrics.items()))
    return metrics, model


def last_n_out(sequences: dict, n: int):
    """Each client's last n events are test targets (each from everything before it), the
    event before them is the valid target, the rest trains: more targets than leave-one-out,
    which the rare one-of-a-kind / newly launched subgroups of the small sample need."""
    from seller.data.sequences import Split, Target
    split = Split(train={})
    for cid, seq in sequences.items():
        if len(seq) < n + 3:
            split.train[cid] = seq
            continue
        cut = len(seq) - n
        split.train[cid] = seq[:cut - 1]
        split.valid.append(Target(cid, seq[:cut - 1], int(seq.items[cut - 1]),
                                  str(seq.event_ids[cut - 1]), int(seq.timestamps[cut - 1])))
        for i in range(cut, len(seq)):
            split.test.append(Target(cid, seq[:i], int(seq.items[i]), str(seq.event_ids[i]),
                                     int(seq.timestamps[i])))
    return split


def _shuffled(split, seed: int):
    """The same split with every history's event order randomly permuted (timestamps kept)."""
    from seller.data.sequences import Split, Target
    rng = np.random.default_rng(seed)
    perm = lambda s: s.permuted(rng.permutation(len(s)))  # noqa: E731
    return Split({c: perm(s) for c, s in split.train.items()},
                 [Target(t.client_id, perm(t.history), t.item, t.event_id, t.timestamp)
                  for t in split.valid],
                 [Target(t.client_id, perm(t.history), t.item, t.event_id, t.timestamp)
                  for t in split.test])


def _without_items(split, drop: np.ndarray):
    """The same split with every training event on an item where `drop` (bool per item row) is
    true removed, so those items get no trained ID vector; valid/test targets are unchanged."""
    from seller.data.sequences import ClientSequence, Split

    def keep(s):
        k = ~drop[s.items]
        return ClientSequence(s.client_id, s.items[k], s.event_types[k], s.channels[k],
                              s.timestamps[k], s.event_ids[k])
    trimmed = {c: keep(s) for c, s in split.train.items()}
    return Split({c: s for c, s in trimmed.items() if len(s)}, split.valid, split.test)


def target_groups(dataset, targets) -> tuple[dict[str, np.ndarray], "pd.Timestamp"]:
    """Boolean masks over `targets` for the sample extras, and the newly-launched cut-off."""
    import pandas as pd
    items = dataset.items
    y = np.array([t.item for t in targets], dtype=np.int64)
    new_after = pd.to_datetime(dataset.events["timestamp"], utc=True).quantile(0.9)  # last 10% of events
    launched = pd.to_datetime(items["launched_at"], utc=True)
    one_of_a_kind = items["one_of_a_kind"].fillna(False).astype(bool).to_numpy()[y]
    # a piece the client already viewed or tried is easy for any model (the next funnel step);
    # what the semantic path should add shows on pieces the client meets for the first time
    first_seen = np.array([t.item not in set(t.history.items.tolist()) for t in targets], dtype=bool)
    return {"all": np.ones(len(y), bool), "one_of_a_kind": one_of_a_kind,
            "one_of_a_kind_first_seen": one_of_a_kind & first_seen,
            "newly_launched": (launched >= new_after).fillna(False).to_numpy()[y]}, new_after


def sample_extras(dataset, configs, text_vectors, seed, log) -> dict:
    """Ours vs ID-only on one-of-a-kind and newly launched targets; shuffled-order control;
    ours without ID embeddings and with ID dropout; ours vs ID-only on unique pieces unseen in
    training."""
    from dataclasses import replace

    import pandas as pd
    import torch
    from seller.data.sequences import build_sequences
    from seller.recommend import segment_index, train_recommender
    split = last_n_out(build_sequences(dataset), 10)
    y = torch.tensor([t.item for t in split.test])
    groups, new_after = target_groups(dataset, split.test)
    out = {"protocol": "last-10-out per client (each target from all earlier events)",
           "newly_launched_after": str(new_after), "n_targets": {}, "models": {}}
    for g, mask in groups.items():
        out["n_targets"][g] = int(mask.sum())
    runs = {"ours": (configs["ours"], split), "sasrec-ce-id": (configs["sasrec-ce-id"], split),
            "ours-shuffled-order": (configs["ours"], _shuffled(split, seed)),
            "ours-without-id": (replace(configs["ours"], use_id=False), split),
            "ours-id-dropout": (replace(configs["ours"], id_dropout=0.5), split)}
    for name, (config, sp) in runs.items():
        model = train_recommender(dataset, config, train=sp.train, valid=sp.valid,
                                  text_vectors=text_vectors, log=lambda m: log(f"   {name}: {m}"))
        seg = segment_index(dataset, model.segments)
        scores = model.score_histories([t.history for t in sp.test],
                                       [seg.get(t.client_id, 0) for t in sp.test])
        res = _group_metrics(scores, y, groups)
        out["models"][name] = res
        log(f"extras {name}: {res}")
    # Unique pieces new to the model, in two folds: half the one-of-a-kind pieces lose their
    # training events, the other half stay (so the model still sees the kind win sometimes);
    # each one-of-a-kind target is scored by the model that never trained on its piece.
    unique = dataset.items["one_of_a_kind"].fillna(False).astype(bool).to_numpy()
    fold = np.random.default_rng(seed).integers(0, 2, len(unique))
    for name in ("ours", "sasrec-ce-id"):
        scores = torch.zeros(len(split.test), len(dataset.items))
        for f in (0, 1):
            unseen = unique & (fold == f)
            sp = _without_items(split, unseen)
            model = train_recommender(dataset, configs[name], train=sp.train, valid=sp.valid,
                                      text_vectors=text_vectors,
                                      log=lambda m: log(f"   {name}-unseen: {m}"))
            seg = segment_index(dataset, model.segments)
            rows = [i for i, t in enumerate(split.test) if unseen[t.item]]
            if rows:
                targets = [split.test[i] for i in rows]
                scores[rows] = model.score_histories([t.history for t in targets],
                                                     [seg.get(t.client_id, 0) for t in targets])
        res = _group_metrics(scores, y, {g: groups[g] for g in ("one_of_a_kind",
                                                               "one_of_a_kind_first_seen")})
        out["models"][f"{name}-one-of-a-kind-unseen"] = res
        log(f"extras {name}-one-of-a-kind-unseen: {res}")
    return out


def _group_metrics(scores, y, groups: dict) -> dict:
    """HR@10 / NDCG@10 over each non-empty group of targets (boolean masks over rows)."""
    import torch
    res = {}
    for g, mask in groups.items():
        sel = torch.from_numpy(mask)
        if sel.any():
            m = rank_metrics(scores[sel], y[sel])
            res[g] = {"HR@10": m["HR@10"], "NDCG@10": m["NDCG@10"]}
    return res


def markdown(result: dict) -> str:
    cols = [f"{m}@{k}" for m in ("HR", "NDCG") for k in KS] + ["train_s", "score_ms_per_user"]
    lines = [f"# Next-item recommendation: {result['dataset']}", "",
             f"{result['protocol']}; {result['n_users']} clients, {result['n_items']} items.", "",
             "| model | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, m in result["models"].items():
        lines.append(f"| {name} | " + " | ".join(str(m.get(c, "")) for c in cols) + " |")
    if result.get("latency_ms"):
        lines += ["", "Scoring latency per client (ours, encoder + product + top-10, median ms): "
                  + ", ".join(f"{k}: {v}" for k, v in result["latency_ms"].items())]
    ex = result.get("extras")
    if ex:
        lines += ["", f"## Sample extras ({ex['protocol']}; newly launched = launched after "
                      f"{ex['newly_launched_after']})", "",
                  "| model | " + " | ".join(f"{g} HR@10 / NDCG@10 (n={n})"
                                            for g, n in ex["n_targets"].items()) + " |",
                  "|---" * (len(ex["n_targets"]) + 1) + "|"]
        for name, res in ex["models"].items():
            lines.append(f"| {name} | " + " | ".join(
                f"{res[g]['HR@10']} / {res[g]['NDCG@10']}" if g in res else "-"
                for g in ex["n_targets"]) + " |")
    if result.get("configs"):
        lines += ["", "Configs: " + json.dumps(result["configs"])]
    return "\n".join(lines) + "\n"


def run(args) -> int:
    import torch
    from seller.data.sequences import build_sequences, leave_one_out
    from seller.encoders.item import item_text
    from seller.encoders.text import embed_texts
    torch.set_num_threads(2)
    log = lambda m: print(m, flush=True)  # noqa: E731
    dataset = _load(args.dataset)
    seqs = _subset(build_sequences(dataset), args.max_clients, args.seed)
    split = leave_one_out(seqs)
    configs = _configs(args.dataset, args.epochs, args.max_minutes, args.seed)
    log(f"{dataset.name}: {len(seqs)} clients, {len(dataset.items)} items, "
        f"{len(split.test)} test targets")
    text_vectors = None

    def texts():  # MiniLM only when a model needs it (disk-cached after the first run)
        nonlocal text_vectors
        if text_vectors is None:
            t0 = time.time()
            text_vectors = embed_texts([item_text(r) for _, r in dataset.items.iterrows()])
            log(f"MiniLM text vectors in {time.time() - t0:.1f}s")
        return text_vectors
    result = {"dataset": dataset.name if args.dataset not in DATASETS else args.dataset,
              "protocol": "leave-one-out (last event test, second-to-last valid), full ranking "
                          "over all items, history not masked, ties count half",
              "n_users": len(split.test), "n_items": len(dataset.items), "models": {},
              "configs": {k: asdict(c) for k, c in configs.items()}}
    if dataset.source and args.dataset not in DATASETS:
        from seller.paths import shown_path
        result["data"] = shown_path(dataset.source)
    out = Path(args.out) if args.out else Path("benchmarks/results") / f"rec_{result['dataset']}.json"
    ours = None
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        kind = name if name in ("popularity", "item-knn") else "neural"
        if kind == "neural" and name not in configs:
            raise SystemExit(f"unknown model {name!r}; choose from popularity, item-knn, "
                             f"{', '.join(configs)}")
        result["models"][name], model = _evaluate(name, kind, split, dataset, configs.get(name),
                                                  texts() if name == "ours" else None, log)
        if name == "ours":
            ours = model
        _write(result, out)  # after every model: a long run's finished figures survive a stop
    if ours is not None:
        hist = [t.history for t in split.test[:50]]
        result["latency_ms"] = {f"{n // 1000}k_items": catalog_latency(ours, hist, n, args.seed)
                                for n in (12_000, 200_000)}
    if args.dataset == "sample":
        result["extras"] = sample_extras(dataset, configs, texts(), args.seed, log)
    _write(result, out)
    log(markdown(result))
    return 0


def _write(result: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
