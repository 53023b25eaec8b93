"""ItemSemanticEncoder: an item vector from what the item *is*, so unseen items still get one.

API (stable):

    featurizer = ItemFeaturizer.fit(items_df, warm_item_ids=...)  # vocabularies, price bands
    enc = ItemSemanticEncoder(ItemEncoderConfig(d_item=64), featurizer)
    enc.set_catalog(items_df)           # featurize + MiniLM text once; stored as buffers
    enc.catalog_vectors()   -> (N_items, d_item)   # the whole catalog, rows in items_df order
    enc.encode(other_items) -> (M, d_item)         # any items, including never-seen ones

vector = sum of attribute embeddings (maison, category, subcategory, colour, material, hardware,
collection, season, one-of-a-kind) + price-band embedding + Linear(MiniLM(name. description))
+ an ID embedding for warm items only. Index 0 of every vocabulary is "unknown": a missing value
and a value never seen when the featurizer was fitted land there, so an item with missing
attributes is still encoded, from whatever it has. Items that were not warm (too few training
events, or new) get the shared cold ID row (zeros), so their vector is purely semantic and a
just-launched piece can be recommended from its description and attributes.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

ATTRIBUTE_FIELDS = ("maison", "category", "subcategory", "color", "material", "hardware",
                    "collection", "season", "one_of_a_kind")


@dataclass
class ItemEncoderConfig:
    d_item: int = 64  # = d_model of the sequence encoder; 64 is SASRec's size on Beauty-scale data
    use_attributes: bool = True  # categorical attributes + price band
    use_text: bool = True  # MiniLM embedding of name + description
    use_id: bool = True  # ID embedding for warm items (memorises item-specific taste)
    text_dim: int = 384  # all-MiniLM-L6-v2 output size
    # share of items whose ID embedding a training forward leaves out, so the semantic path
    # also learns to score without one (new and rare pieces have no warm ID); 0 = off
    id_dropout: float = 0.0

    def __post_init__(self):
        if self.d_item < 1:
            raise ValueError(f"d_item must be >= 1, got {self.d_item}")
        if not (self.use_attributes or self.use_text or self.use_id):
            raise ValueError("an item encoder needs at least one of use_attributes, use_text, use_id")
        if not 0 <= self.id_dropout < 1:
            raise ValueError(f"id_dropout must be in [0, 1), got {self.id_dropout}")


def _clean(value) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    text = str(value).strip().lower()
    return text or None


def item_text(row) -> str:
    """The text MiniLM reads for an item: "name. description" (missing parts left out)."""
    parts = [str(row[c]).strip() for c in ("name", "description")
             if c in row and _clean(row[c]) is not None]
    return ". ".join(parts)


@dataclass
class ItemFeaturizer:
    """Fitted vocabularies: attribute values, log-price band edges, warm item ids (JSON-able)."""

    vocab: dict[str, list[str]] = field(default_factory=dict)  # field -> values (index = pos + 1)
    price_edges: list[float] = field(default_factory=list)  # log-price quantile edges
    warm_ids: list[str] = field(default_factory=list)  # items with an ID embedding (index = pos+1)

    @classmethod
    def fit(cls, items: pd.DataFrame, warm_item_ids=(), n_price_bands: int = 8) -> "ItemFeaturizer":
        vocab = {}
        for f in ATTRIBUTE_FIELDS:
            values = items[f].map(_clean).dropna() if f in items else pd.Series([], dtype=object)
            vocab[f] = sorted(set(values))
        prices = pd.to_numeric(items["price"], errors="coerce") if "price" in items else None
        edges: list[float] = []
        if prices is not None and prices.gt(0).sum() >= n_price_bands:
            logp = np.log(prices[prices > 0].to_numpy(dtype=float))
            edges = np.unique(np.quantile(logp, np.linspace(0, 1, n_price_bands + 1)[1:-1])).tolist()
        return cls(vocab, edges, [str(i) for i in warm_item_ids])

    @property
    def n_price_bands(self) -> int:
        return len(self.price_edges) + 2  # + unknown (0) + the band above the last edge

    def transform(self, items: pd.DataFrame) -> dict[str, np.ndarray]:
        """items -> {"attributes": (N, F), "price_band": (N,), "id": (N,)} int64 indices."""
        n = len(items)
        attrs = np.zeros((n, len(ATTRIBUTE_FIELDS)), dtype=np.int64)
        for j, f in enumerate(ATTRIBUTE_FIELDS):
            if f in items:
                index = {v: i + 1 for i, v in enumerate(self.vocab.get(f, []))}
                attrs[:, j] = [index.get(_clean(v), 0) for v in items[f]]
        band = np.zeros(n, dtype=np.int64)
        if "price" in items and self.price_edges:
            p = pd.to_numeric(items["price"], errors="coerce").to_numpy(dtype=float)
            ok = p > 0  # NaN compares False: unknown price -> band 0
            band[ok] = 1 + np.searchsorted(self.price_edges, np.log(p[ok]), side="right")
        warm = {v: i + 1 for i, v in enumerate(self.warm_ids)}
        ids = np.array([warm.get(str(v), 0) for v in items["item_id"]], dtype=np.int64)
        return {"attributes": attrs, "price_band": band, "id": ids}

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "ItemFeaturizer":
        return cls(d["vocab"], d["price_edges"], d["warm_ids"])


class ItemSemanticEncoder(nn.Module):
    """(attributes, price band, text vector, warm id) -> item vector (N, d_item)."""

    def __init__(self, config: ItemEncoderConfig, featurizer: ItemFeaturizer):
        super().__init__()
        self.config, self.featurizer = config, featurizer
        d = config.d_item
        if config.use_attributes:
            self.attributes = nn.ModuleList(
                nn.Embedding(len(featurizer.vocab.get(f, [])) + 1, d) for f in ATTRIBUTE_FIELDS)
            self.price = nn.Embedding(featurizer.n_price_bands, d)
        if config.use_text:
            self.text = nn.Linear(config.text_dim, d)
        if config.use_id:
            self.ids = nn.Embedding(len(featurizer.warm_ids) + 1, d, padding_idx=0)  # 0 = cold
        # ID rows start at unit-ish norm (they must tell items apart from step one); attribute
        # tables smaller, since ten of them are summed per item
        for m in self.modules():
            if isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=1.0 / math.sqrt(d) if m is getattr(self, "ids", None)
                                else 0.3 / math.sqrt(d))
                if m.padding_idx is not None:
                    m.weight.data[m.padding_idx].zero_()
        self._catalog_size = 0

    def forward(self, attributes: torch.Tensor, price_band: torch.Tensor, ids: torch.Tensor,
                text: torch.Tensor | None) -> torch.Tensor:
        """attributes (N, F), price_band (N,), ids (N,) long; text (N, text_dim) -> (N, d_item)."""
        out = 0
        if self.config.use_attributes:
            for j, emb in enumerate(self.attributes):
                out = out + emb(attributes[:, j])
            out = out + self.price(price_band)
        if self.config.use_text:
            out = out + self.text(text)
        if self.config.use_id:
            id_vectors = self.ids(ids)
            if self.training and self.config.id_dropout > 0:
                keep = torch.rand(len(ids), 1, device=ids.device) >= self.config.id_dropout
                id_vectors = id_vectors * keep
            out = out + id_vectors
        return out

    # -- the catalog, kept as buffers so a checkpoint scores without re-running MiniLM ----------
    def set_catalog(self, items: pd.DataFrame, text_vectors: np.ndarray | None = None) -> None:
        """Featurize `items` (and embed their text unless given) into buffers; rows = items order."""
        feats = self.featurizer.transform(items)
        if self.config.use_text and text_vectors is None:
            from seller.encoders.text import embed_texts
            text_vectors = embed_texts([item_text(r) for _, r in items.iterrows()])
        self.register_buffer("catalog_attributes", torch.from_numpy(feats["attributes"]))
        self.register_buffer("catalog_price_band", torch.from_numpy(feats["price_band"]))
        self.register_buffer("catalog_ids", torch.from_numpy(feats["id"]))
        text = (torch.from_numpy(np.asarray(text_vectors, dtype=np.float32))
                if self.config.use_text else torch.zeros(len(items), 0))
        self.register_buffer("catalog_text", text)
        self._catalog_size = len(items)

    def empty_catalog(self, n_items: int) -> None:
        """Zero buffers of the right shapes, for from_pretrained to load into."""
        self.register_buffer("catalog_attributes", torch.zeros(n_items, len(ATTRIBUTE_FIELDS),
                                                               dtype=torch.long))
        self.register_buffer("catalog_price_band", torch.zeros(n_items, dtype=torch.long))
        self.register_buffer("catalog_ids", torch.zeros(n_items, dtype=torch.long))
        width = self.config.text_dim if self.config.use_text else 0
        self.register_buffer("catalog_text", torch.zeros(n_items, width))
        self._catalog_size = n_items

    def catalog_vectors(self) -> torch.Tensor:
        """(N_items, d_item) for the catalog given to set_catalog."""
        if not self._catalog_size:
            raise RuntimeError("ItemSemanticEncoder has no catalog: call set_catalog(items) first")
        return self(self.catalog_attributes, self.catalog_price_band, self.catalog_ids,
                    self.catalog_text)

    @torch.no_grad()
    def encode(self, items: pd.DataFrame) -> torch.Tensor:
        """Any items (new ones too) -> (M, d_item); runs MiniLM for their text (disk-cached)."""
        feats = self.featurizer.transform(items)
        text = None
        if self.config.use_text:
            from seller.encoders.text import embed_texts
            text = torch.from_numpy(embed_texts([item_text(r) for _, r in items.iterrows()]))
        return self(torch.from_numpy(feats["attributes"]), torch.from_numpy(feats["price_band"]),
                    torch.from_numpy(feats["id"]), text)
