"""Next-item recommender: sequence encoder x item semantic encoder, scored over the whole catalog.

API (stable; the adapter, explainer and app build on it):

    rec = train_recommender(dataset, RecommenderConfig(...))        # -> Recommender
    rec.recommend(client_id, k=10, exclude_purchased=True) -> list[Recommendation]
        Recommendation(item_id, score, top_events=[(event_id, weight), ...])
    rec.encode_client(client_id) -> ClientEncoding(event_ids, states, summary, attention)
    rec.history(client_id) -> ClientSequence;  rec.segment_of(client_id) -> int
    rec.make_batch(histories, segments, item_vectors) -> HistoryBatch  (for rec.user_encoder)
    rec.item_vectors() -> (N_items, d)          # rows in dataset.items order (rec.item_ids)
    rec.score_histories(histories, segments) -> (B, N_items)
    rec.save_pretrained(dir);  Recommender.from_pretrained(dir, dataset)

Scoring is one matrix product: summary (B, d) @ item_vectors.T (d, N). Training is SASRec-CE:
every position of every training window predicts the next event's item with a full softmax over
all catalog items (Petrov & Macdonald 2023 show this, not BCE with one negative, is what makes
SASRec strong). The output layer is the item encoder itself, so semantic item vectors are what
the summary is compared with, and an item nobody bought can still score.

top_events: for each recommended item, the history events whose input vectors contributed most
to that item's score, by gradient x input (the dot product of d score / d event vector with the
event vector), normalised over the positive contributions to sum to 1. It is item-specific
(unlike the summary's attention, which is one map for all items) and works for both encoders.

Checkpoints: `config.json` (config, featurizer vocabularies, segments, catalog fingerprint =
sha256 of the ordered item ids) + `model.safetensors` (weights and the catalog's feature/text
buffers, so serving needs no MiniLM). Loading against a different catalog raises ValueError.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from seller.config import RecommenderConfig
from seller.data.schema import EVENT_TYPES
from seller.data.sequences import ClientSequence, build_sequences, leave_one_out
from seller.encoders.item import ItemEncoderConfig, ItemFeaturizer, ItemSemanticEncoder
from seller.encoders.sequence import HistoryBatch, SequenceEncoderConfig
from seller.encoders.user import build_user_encoder

PURCHASE = EVENT_TYPES.index("purchase")
FORMAT_VERSION = 1


@dataclass
class Recommendation:
    item_id: str
    score: float
    top_events: list[tuple[str, float]]  # (event_id, weight), heaviest first


@dataclass
class ClientEncoding:
    event_ids: list[str]  # the events encoded (most recent max_len), oldest first
    states: torch.Tensor  # (T+1, d), position 0 = start-of-history token
    summary: torch.Tensor  # (d,)
    attention: torch.Tensor | None  # (T+1,) or None (GRU)


def catalog_fingerprint(item_ids) -> str:
    return hashlib.sha256("\n".join(map(str, item_ids)).encode()).hexdigest()[:16]


class CatalogMismatchError(ValueError):
    """A recommender bound to a dataset whose catalogue is not the one it was trained on: names
    both catalogues (digest, items, dataset) and the command that trains on this one."""

    def __init__(self, what: str, trained: dict, dataset, trained_ids: list[str] | None = None):
        from seller.paths import shown_path
        ids = dataset.items["item_id"].astype(str).tolist()
        differ = ""
        if trained_ids is not None:
            differ = (f"; items only in the model: {sorted(set(trained_ids) - set(ids))[:3]}, only in the "
                      f"dataset: {sorted(set(ids) - set(trained_ids))[:3]}")
        store = shown_path(dataset.source) if dataset.source else "STORE"
        super().__init__(
            f"{what} was trained on catalogue {trained['fingerprint']} ({trained['n_items']} items, "
            f"dataset {trained.get('dataset') or 'unnamed'!r}) but dataset {dataset.name!r} has catalogue "
            f"{catalog_fingerprint(ids)} ({len(ids)} items){differ}; serve it with the store it was trained on "
            f"(SELLER_DATA / --data), or train a model on this one: "
            f"seller fit --data {store} --out models/{dataset.name}")


class Recommender(nn.Module):
    def __init__(self, config: RecommenderConfig, featurizer: ItemFeaturizer, item_ids: list[str],
                 segments: list[str]):
        super().__init__()
        self.config, self.item_ids, self.segments = config, list(item_ids), list(segments)
        self.fingerprint = catalog_fingerprint(self.item_ids)
        self.item_encoder = ItemSemanticEncoder(ItemEncoderConfig(
            config.d_model, config.use_attributes, config.use_text, config.use_id,
            id_dropout=config.id_dropout), featurizer)
        self.user_encoder = build_user_encoder(SequenceEncoderConfig(
            config.encoder, config.d_model, config.n_layers, config.n_heads, config.dropout,
            config.max_len, len(segments) + 1, config.use_event_features))
        self._vectors: torch.Tensor | None = None
        self._sequences: dict[str, ClientSequence] = {}
        self._client_segment: dict[str, int] = {}
        self._dataset_name = ""

    # -- data binding ---------------------------------------------------------------------------
    def attach(self, dataset) -> "Recommender":
        """Bind client histories and segments of `dataset` (its catalog must be this model's)."""
        self._check_catalog(dataset)
        self._sequences = build_sequences(dataset)
        self._client_segment = segment_index(dataset, self.segments)
        self._dataset_name = dataset.name
        return self

    def _check_catalog(self, dataset) -> None:
        ids = dataset.items["item_id"].astype(str).tolist()
        if catalog_fingerprint(ids) != self.fingerprint:
            raise CatalogMismatchError(
                "this recommender", {"fingerprint": self.fingerprint, "n_items": len(self.item_ids),
                                     "dataset": self._dataset_name}, dataset, self.item_ids)

    def segment_of(self, client_id: str) -> int:
        """The client's segment index for HistoryBatch.segments (0 = unknown tier)."""
        return self._client_segment.get(str(client_id), 0)

    def history(self, client_id: str) -> ClientSequence:
        cid = str(client_id)
        if cid in self._sequences:
            return self._sequences[cid]
        if cid in self._client_segment:
            return _empty_sequence(cid)  # a known client without events: cold-start path
        from seller.data.dataset import UnknownIdError
        raise UnknownIdError("client_id", cid, self._dataset_name)

    # -- model ----------------------------------------------------------------------------------
    def item_vectors(self) -> torch.Tensor:
        """(N, d) catalog vectors; cached in eval mode (serving must not redo 12k items per call)."""
        if self.training:
            return self.item_encoder.catalog_vectors()
        if self._vectors is None:
            with torch.no_grad():
                self._vectors = self.item_encoder.catalog_vectors()
        return self._vectors

    def train(self, mode: bool = True) -> "Recommender":
        self._vectors = None  # weights may change: recompute on the next eval call
        return super().train(mode)

    def load_state_dict(self, *args, **kwargs):
        self._vectors = None
        return super().load_state_dict(*args, **kwargs)

    def make_batch(self, histories: list[ClientSequence], segments: list[int],
                   item_vectors: torch.Tensor) -> HistoryBatch:
        """Right-padded batch of the most recent max_len events of each history."""
        L = self.config.max_len
        hs = [h[-L:] if len(h) > L else h for h in histories]
        gaps = [h.gap_buckets()[-L:] if len(h) > L else h.gap_buckets() for h in histories]
        T = max(1, max(len(h) for h in hs))
        arr = np.zeros((4, len(hs), T), dtype=np.int64)
        for b, (h, g) in enumerate(zip(hs, gaps)):
            n = len(h)
            arr[0, b, :n], arr[1, b, :n], arr[2, b, :n], arr[3, b, :n] = (
                h.items, h.event_types, h.channels, g)
        items = torch.from_numpy(arr[0])
        return HistoryBatch(item_vectors[items], torch.from_numpy(arr[1]), torch.from_numpy(arr[2]),
                            torch.from_numpy(arr[3]), torch.tensor([len(h) for h in hs]),
                            torch.tensor(segments, dtype=torch.long))

    @torch.no_grad()
    def score_histories(self, histories: list[ClientSequence], segments: list[int] | None = None,
                        batch_size: int = 512) -> torch.Tensor:
        """(B, N_items) scores: summary @ item_vectors.T, in batches."""
        self.eval()
        v = self.item_vectors()
        segments = segments if segments is not None else [0] * len(histories)
        out = []
        for i in range(0, len(histories), batch_size):
            batch = self.make_batch(histories[i:i + batch_size], segments[i:i + batch_size], v)
            out.append(self.user_encoder(batch).summary @ v.T)
        return torch.cat(out) if out else torch.zeros(0, len(self.item_ids))

    def recommend(self, client_id: str, k: int = 10, exclude_purchased: bool = True,
                  n_top_events: int = 3) -> list[Recommendation]:
        """Top-k items for a client of the attached dataset, with the events that weighed most."""
        seq = self.history(client_id)
        seg = self.segment_of(client_id)
        scores = self.score_histories([seq], [seg])[0]
        if exclude_purchased and len(seq):
            bought = np.unique(seq.items[seq.event_types == PURCHASE])
            scores[torch.from_numpy(bought)] = float("-inf")
        k = min(k, int(torch.isfinite(scores).sum()))
        top = torch.topk(scores, k)
        events = self.attribute(seq, seg, top.indices, n_top_events)
        return [Recommendation(self.item_ids[i], float(s), e)
                for i, s, e in zip(top.indices.tolist(), top.values.tolist(), events)]

    def attribute(self, seq: ClientSequence, segment: int, items: torch.Tensor,
                  n_top: int = 3) -> list[list[tuple[str, float]]]:
        """Gradient x input of each item's score w.r.t. the event vectors (one backward pass)."""
        if len(seq) == 0 or n_top == 0:
            return [[] for _ in items]
        self.eval()
        v = self.item_vectors()
        seq = seq[-self.config.max_len:]
        batch = self.make_batch([seq] * len(items), [segment] * len(items), v)
        batch.event_vectors = batch.event_vectors.detach().requires_grad_(True)
        with torch.enable_grad():
            summary = self.user_encoder(batch).summary  # (K, d)
            (summary * v[items]).sum().backward()  # rows are independent: one pass, K gradients
        contrib = (batch.event_vectors.grad * batch.event_vectors).sum(-1).detach()  # (K, T)
        out = []
        for row in contrib:
            pos = row.clamp(min=0)
            total = float(pos.sum()) or 1.0
            order = torch.argsort(row, descending=True)[:n_top]
            out.append([(str(seq.event_ids[j]), float(pos[j]) / total) for j in order.tolist()
                        if row[j] > 0])
        return out

    @torch.no_grad()
    def encode_client(self, client_id: str) -> ClientEncoding:
        """States, summary and attention of one client's (most recent max_len) history."""
        self.eval()
        seq = self.history(client_id)[-self.config.max_len:]
        seg = self.segment_of(client_id)
        out = self.user_encoder(self.make_batch([seq], [seg], self.item_vectors()),
                                need_attention=True)
        att = out.attention[0, :len(seq) + 1] if out.attention is not None else None
        return ClientEncoding([str(e) for e in seq.event_ids], out.states[0, :len(seq) + 1],
                              out.summary[0], att)

    # -- persistence ----------------------------------------------------------------------------
    def save_pretrained(self, directory) -> Path:
        from safetensors.torch import save_file
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        meta = {"format_version": FORMAT_VERSION, "config": asdict(self.config),
                "featurizer": self.item_encoder.featurizer.to_json(), "segments": self.segments,
                "catalog": {"fingerprint": self.fingerprint, "n_items": len(self.item_ids),
                            "dataset": self._dataset_name}}
        (d / "config.json").write_text(json.dumps(meta, indent=1))
        state = {k: t.detach().contiguous() for k, t in self.state_dict().items()}
        save_file(state, str(d / "model.safetensors"))
        return d

    @classmethod
    def from_pretrained(cls, directory, dataset) -> "Recommender":
        """Load a checkpoint and bind it to `dataset`, whose catalog must be the trained one."""
        from safetensors.torch import load_file
        d = Path(directory)
        if not (d / "config.json").is_file() or not (d / "model.safetensors").is_file():
            raise FileNotFoundError(f"no recommender checkpoint in {d} "
                                    "(expected config.json and model.safetensors)")
        meta = json.loads((d / "config.json").read_text())
        ids = dataset.items["item_id"].astype(str).tolist()
        if catalog_fingerprint(ids) != meta["catalog"]["fingerprint"]:
            raise CatalogMismatchError(f"checkpoint {d}", meta["catalog"], dataset)
        model = cls(RecommenderConfig(**meta["config"]),
                    ItemFeaturizer.from_json(meta["featurizer"]), ids, meta["segments"])
        model.item_encoder.empty_catalog(len(ids))
        model.load_state_dict(load_file(str(d / "model.safetensors")))
        return model.attach(dataset).eval()


def _empty_sequence(client_id: str) -> ClientSequence:
    z = np.zeros(0, dtype=np.int64)
    return ClientSequence(client_id, z, z, z, z, np.zeros(0, dtype=object))


def segment_index(dataset, segments: list[str]) -> dict[str, int]:
    """client_id -> segment index (tier position + 1; 0 = unknown tier)."""
    index = {s: i + 1 for i, s in enumerate(segments)}
    tiers = dataset.clients["tier"] if "tier" in dataset.clients else [None] * len(dataset.clients)
    return {str(c): index.get(t, 0) for c, t in zip(dataset.clients["client_id"], tiers)}


# -- training ----------------------------------------------------------------------------------
def training_windows(sequences: dict[str, ClientSequence], max_len: int) -> list[tuple[str, int, int]]:
    """(client_id, start, end) windows of <= max_len + 1 events tiling each sequence from its end,
    so long histories contribute every event as a target, not only their last max_len."""
    out = []
    for cid, seq in sequences.items():
        end = len(seq)
        while end > 0:
            start = max(0, end - max_len - 1)
            out.append((cid, start, end))
            end = start
    return out


def _train_batch(model: Recommender, sequences, windows, segments, v: torch.Tensor):
    """Inputs [start, e_s .. e_{end-2}] predict targets [e_s .. e_{end-1}]; the start token's
    target counts only when the window starts at the client's first event."""
    hist, targets = [], []
    for cid, s, e in windows:
        seq = sequences[cid]
        hist.append(seq[s:e - 1])
        targets.append((seq.items[s:e], s == 0))
    batch = model.make_batch(hist, [segments.get(c, 0) for c, _, _ in windows], v)
    # gaps inside a window must be measured against the real previous event, not the window edge
    for b, (cid, s, e) in enumerate(windows):
        if s > 0:
            g = sequences[cid].gap_buckets()[s:e - 1]
            batch.gap_buckets[b, :len(g)] = torch.tensor(g)
    T1 = batch.event_vectors.shape[1] + 1
    y = torch.full((len(windows), T1), -100, dtype=torch.long)
    for b, (items, first) in enumerate(targets):
        y[b, :len(items)] = torch.tensor(items)
        if not first:
            y[b, 0] = -100
    return batch, y


def rank_metrics(scores: torch.Tensor, targets: torch.Tensor, ks=(5, 10, 20)) -> dict[str, float]:
    """Full-ranking HR@k / NDCG@k; rank = items scoring higher than the target, plus half of
    the items tied with it (so a constant scorer earns chance, not a perfect rank)."""
    t = scores.gather(1, targets[:, None])
    rank = (scores > t).sum(1).float() + 0.5 * ((scores == t).sum(1).float() - 1)
    out = {}
    for k in ks:
        hit = (rank < k).float()
        out[f"HR@{k}"] = float(hit.mean())
        out[f"NDCG@{k}"] = float((hit / torch.log2(rank + 2)).mean())
    return out


def evaluate_targets(model: Recommender, targets, segments: dict[str, int], ks=(5, 10, 20)) -> dict[str, float]:
    scores = model.score_histories([t.history for t in targets],
                                   [segments.get(t.client_id, 0) for t in targets])
    return rank_metrics(scores, torch.tensor([t.item for t in targets]), ks)


def train_recommender(dataset, config: RecommenderConfig | None = None, train=None, valid=None,
                      text_vectors: np.ndarray | None = None, log=print) -> Recommender:
    """Train on `train` sequences (default: leave-one-out train part of `dataset`), early-stop
    on `valid` targets (default: the leave-one-out valid events), return the best epoch's model
    attached to `dataset`. `text_vectors` (N_items, 384) skips MiniLM when already computed."""
    config = config or RecommenderConfig()
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    if train is None:
        split = leave_one_out(build_sequences(dataset))
        train, valid = split.train, split.valid if valid is None else valid
    item_ids = dataset.items["item_id"].astype(str).tolist()
    counts = np.bincount(np.concatenate([s.items for s in train.values()] or [np.zeros(0, int)]),
                         minlength=len(item_ids))
    warm = [item_ids[i] for i in np.flatnonzero(counts >= config.min_id_count)]
    featurizer = ItemFeaturizer.fit(dataset.items, warm_item_ids=warm)
    tiers = dataset.clients["tier"].dropna().astype(str) if "tier" in dataset.clients else []
    model = Recommender(config, featurizer, item_ids, sorted(set(tiers)))
    model.item_encoder.set_catalog(dataset.items, text_vectors)
    segments = segment_index(dataset, model.segments)
    windows = training_windows(train, config.max_len)
    valid = list(valid or [])
    if len(valid) > config.valid_clients:
        valid = [valid[i] for i in sorted(rng.choice(len(valid), config.valid_clients, replace=False))]
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    best, best_state, bad, t0 = -1.0, None, 0, time.time()
    for epoch in range(config.epochs):
        model.train()
        order, total, n = rng.permutation(len(windows)), 0.0, 0
        for i in range(0, len(order), config.batch_size):
            v = model.item_vectors()
            batch, y = _train_batch(model, train, [windows[j] for j in order[i:i + config.batch_size]],
                                    segments, v)
            states = model.user_encoder(batch).states  # (B, T+1, d)
            keep = y >= 0
            loss = F.cross_entropy(states[keep] @ v.T, y[keep])  # full softmax over the catalog
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, n = total + float(loss.detach()) * int(keep.sum()), n + int(keep.sum())
            if time.time() - t0 > 60 * config.max_minutes:
                break  # out of budget: keep what this epoch learned, judge it, stop
        minutes = (time.time() - t0) / 60
        if valid:
            ndcg = evaluate_targets(model, valid, segments, ks=(10,))["NDCG@10"]
            log(f"epoch {epoch + 1} loss {total / max(n, 1):.4f} valid NDCG@10 {ndcg:.4f} "
                f"({minutes:.1f} min)")
            if ndcg > best:
                best, bad = ndcg, 0
                best_state = {k: t.detach().clone() for k, t in model.state_dict().items()}
            else:
                bad += 1
        else:
            log(f"epoch {epoch + 1} loss {total / max(n, 1):.4f} ({minutes:.1f} min)")
        if bad >= config.patience or minutes >= config.max_minutes:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.attach(dataset).eval()


@torch.no_grad()
def sequence_loss(model: Recommender, sequences: dict[str, ClientSequence]) -> float:
    """Mean full-softmax cross-entropy of `model` on every next-event target of `sequences`."""
    model.eval()
    v = model.item_vectors()
    windows = training_windows(sequences, model.config.max_len)
    total, n = 0.0, 0
    for i in range(0, len(windows), 256):
        batch, y = _train_batch(model, sequences, windows[i:i + 256], model._client_segment, v)
        keep = y >= 0
        states = model.user_encoder(batch).states
        total += float(F.cross_entropy(states[keep] @ v.T, y[keep], reduction="sum"))
        n += int(keep.sum())
    return total / max(n, 1)
