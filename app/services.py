"""What the pages share: cached loaders (data, models, feedback store) and the explanation cache.

Everything heavy loads once per server process (`st.cache_resource`) and is keyed by the setting
it came from, so changing an env var (or a test pointing at another DB) gets a fresh resource.
A missing model is reported as a `Loaded` with a notice, never replaced by made-up output.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import streamlit as st

from seller import settings
from seller.feedback.experiments import Experiment
from seller.feedback.store import FeedbackStore, FeedbackStoreError, resolve_url

NOT_INSTALLED = "Explanation model not installed"
# cards of all sessions decoded together (8 associates x 5 cards); more wait in the worker's queue
CARDS_AT_ONCE = 40
KV_CELLS_PER_CARD = 256  # a card's tail, its text and guesses, and its part of the shared prefix
BUSY_TEXT = "*All explanation slots are busy: retrying…*"
BUSY_RETRY_S = 60.0  # how long cards say so before they report the failure


@dataclass
class Loaded:
    value: Any | None  # the loaded object, or None when it is unavailable
    notice: str | None = None  # why it is unavailable, shown to the associate


def model_dir() -> Path:
    return settings.model_dir()


# -- data -------------------------------------------------------------------------------------
@st.cache_resource(show_spinner="Loading client data…")
def _dataset(data_dir: str | None):
    from seller.data import dataset
    return dataset.load_dataset(data_dir) if data_dir else dataset.load_sample()


def dataset():
    """Clients, items and events: env `SELLER_DATA` (a store dir) or the repo's sample_data/."""
    return _dataset(settings.data_dir())


# -- models -----------------------------------------------------------------------------------
@st.cache_resource(show_spinner="Loading the explanation model…")
def _explainer(directory: str, data_dir: str | None) -> Loaded:
    try:
        from seller.explain import Explainer
    except ImportError as e:
        return Loaded(None, f"{NOT_INSTALLED}: the seller.explain module is missing ({e}).")
    if not Path(directory).is_dir():
        return Loaded(None, f"{NOT_INSTALLED}: no model folder at {directory}.")
    try:
        # the app's dataset, so page and model agree on ids; a model trained on another catalog
        # fails here with the recommender's catalog-mismatch message
        return Loaded(Explainer.from_pretrained(
            directory, dataset=_dataset(data_dir), n_threads=settings.threads(),
            n_gpu_layers=settings.gpu_layers(), weights=settings.llm_weights(),
            n_seq_max=CARDS_AT_ONCE, n_ctx=KV_CELLS_PER_CARD * CARDS_AT_ONCE))
    except FileNotFoundError as e:  # a folder without a trained model
        return Loaded(None, f"{NOT_INSTALLED}: {e}")
    except Exception as e:  # a broken model folder is a notice on the page, not a crash
        return Loaded(None, f"{NOT_INSTALLED}: loading {directory} failed: {type(e).__name__}: {e}")


def explainer() -> Loaded:
    return _explainer(str(model_dir()), settings.data_dir())


@st.cache_resource(show_spinner="Loading the recommender…")
def _recommender(directory: str, data_dir: str | None) -> Loaded:
    try:
        from seller.recommend import Recommender
    except ImportError as e:
        return Loaded(None, f"No recommender installed: the seller.recommend module is missing ({e}).")
    for candidate in (Path(directory) / "recommender", Path(directory)):
        if (candidate / "config.json").is_file() and (candidate / "model.safetensors").is_file():
            try:
                return Loaded(Recommender.from_pretrained(candidate, _dataset(data_dir)))
            except Exception as e:
                return Loaded(None, f"Recommender at {candidate} failed to load: {type(e).__name__}: {e}")
    return Loaded(None, f"No recommender installed: no checkpoint under {directory}.")


def recommender() -> Loaded:
    """Whatever recommends: the Explainer when it exists, else the plain Recommender."""
    loaded = explainer()
    if loaded.value is not None:
        return loaded
    return _recommender(str(model_dir()), settings.data_dir())


def model_version(model) -> str:
    return str(getattr(model, "model_version", None) or "unversioned")


# -- feedback ---------------------------------------------------------------------------------
@st.cache_resource(show_spinner=False)
def _store(url: str) -> FeedbackStore:
    return FeedbackStore(url)  # an exception is not cached: the next run retries


def feedback_store() -> Loaded:
    url = resolve_url()
    try:
        return Loaded(_store(url))
    except FeedbackStoreError as e:
        return Loaded(None, str(e))


def experiment() -> Experiment:
    """The running style experiment: env `SELLER_EXPERIMENT` (name) and `SELLER_EXPERIMENT_WEIGHTS`."""
    return Experiment.from_spec(settings.experiment_name(), settings.experiment_weights())


# -- explanations -----------------------------------------------------------------------------
@dataclass
class ExplanationCache:
    """Explanations per (client, item, style, model version), shared by all sessions."""
    entries: dict = field(default_factory=dict)
    first_chunk_s: dict = field(default_factory=dict)  # measured time to first words
    lock: threading.Lock = field(default_factory=threading.Lock)


@st.cache_resource(show_spinner=False)
def explanation_cache() -> ExplanationCache:
    return ExplanationCache()


def explanation_key(model, client_id: str, item_id: str, style: str) -> tuple:
    return (client_id, item_id, style, model_version(model))


def cached_explanation(model, client_id: str, item_id: str, style: str):
    cache = explanation_cache()
    with cache.lock:
        return cache.entries.get(explanation_key(model, client_id, item_id, style))


def stream_explanations(model, client_id: str, item_ids: list[str], style: str,
                        show: Callable[[str, str], None]) -> dict:
    """Explain several items at once (parallel sequences sharing the client's prefix, decoded in
    the same batches as other sessions' cards), calling show(item_id, text so far) as words
    arrive on every card, and cache the results. While the worker's queue is full the cards say
    so and the request is retried; after BUSY_RETRY_S the BusyError reaches the caller."""
    from seller.llm.runtime import BusyError
    deadline = time.perf_counter() + BUSY_RETRY_S
    while True:
        try:
            return _stream_once(model, client_id, item_ids, style, show)
        except BusyError:
            if time.perf_counter() > deadline:
                raise
            for item_id in item_ids:
                show(item_id, BUSY_TEXT)
            time.sleep(1.0)


def _stream_once(model, client_id: str, item_ids: list[str], style: str,
                 show: Callable[[str, str], None]) -> dict:
    cache = explanation_cache()
    start = time.perf_counter()
    texts = dict.fromkeys(item_ids, "")
    stream = model.explain_many(client_id, list(item_ids), style, stream=True)
    try:
        for i, chunk in stream:
            item_id = item_ids[i]
            if not texts[item_id].strip() and chunk.strip():
                with cache.lock:
                    cache.first_chunk_s.setdefault(explanation_key(model, client_id, item_id, style),
                                                   time.perf_counter() - start)
            texts[item_id] += chunk
            show(item_id, texts[item_id])
    finally:
        stream.close()  # a session that stopped reading (a rerun, a closed tab) drops its request
    results = dict(zip(item_ids, stream.explanations))
    with cache.lock:
        for item_id, exp in results.items():
            cache.entries[explanation_key(model, client_id, item_id, style)] = exp
    return results
