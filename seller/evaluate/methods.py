"""The explanation methods compared by `seller evaluate`, behind one small interface.

    method.explain(case, item_ids) -> list[Generated]     # one per item, same order

Every method sees the same `Case`: the client, the style and the target time; the history it
may use is the client's events strictly BEFORE the target (never the future, never the
reference text). Methods:
- template: no model. Picks the history event whose item shares most catalogue attributes with
  the candidate (ties: the latest) and fills a per-style sentence with real names and dates,
  so it is grounded by construction. On review data (no attributes) it says "The <aspect> is
  great." with the item's most frequent aspect in training clients' reviews.
- text-only: the same frozen GGUF through `SoftPromptLLM`, the same layout builder and the same
  history facts as SELLER, with zero soft prompts: what the LLM does with history as text alone.
- pepler / seller-no-seq / seller-dense / seller: trained adapters served by
  `seller.explain.Explainer` (the ADAPTER engineer's), one model directory each.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from seller.config import LLMConfig
from seller.llm.layout import LayoutConfig
from seller.llm.sampling import SamplingParams

ATTRS = ("maison", "category", "color", "material", "hardware", "collection")
VERBS = {"purchase": "bought", "try_on": "tried on", "wishlist": "wishlisted", "view": "viewed",
         "add_to_cart": "added to the basket", "return": "returned"}


@dataclass(frozen=True)
class Case:
    """One held-out (client, target, style): the true next item is candidates[true_index]."""

    case_id: str
    client_id: str
    style: str
    target_time: pd.Timestamp
    item_id: str
    reference: str
    candidates: tuple[str, ...]
    true_index: int
    profile: str  # built from FUTURE item attributes, for the utility simulator only


@dataclass
class Generated:
    text: str
    gate_weights: list[float] | None = None
    cited_event_ids: tuple[str, ...] = ()
    latency_s: float = 0.0
    alternatives: tuple[str, ...] = ()  # the card's other texts (llm.candidates), tried in order by the guard


@dataclass
class TemplateMethod:
    """Fill-in-the-blanks explanations from catalogue facts and the closest earlier event."""

    items: pd.DataFrame
    events: pd.DataFrame
    # Review data (no attributes): item -> its most frequent aspect in TRAINING clients'
    # references, "" -> the most frequent overall; the sentence is then "The <aspect> is great."
    item_aspects: dict[str, str] | None = None
    name: str = "template"
    _items: pd.DataFrame = field(init=False, repr=False)

    def __post_init__(self):
        self._items = self.items.set_index("item_id", drop=False)
        self._by_client = {c: df for c, df in self.events.groupby("client_id", sort=False)}
        self._attr_cache: dict[str, dict[str, str]] = {}

    def _val(self, item_id: str, col: str) -> str:
        v = self._items.at[item_id, col] if col in self._items else None
        return "" if v is None or pd.isna(v) else str(v).strip()

    def _attrs(self, item_id: str) -> dict[str, str]:
        if item_id not in self._attr_cache:
            self._attr_cache[item_id] = {c: self._val(item_id, c).lower() for c in ATTRS}
        return self._attr_cache[item_id]

    def _anchor(self, history: pd.DataFrame, item_id: str):
        """The earlier event whose item shares most attributes with the candidate."""
        if history.empty:
            return None, []
        mine = self._attrs(item_id)
        best, best_shared = None, []
        for pos in range(len(history) - 1, -1, -1):  # latest first: ties keep the latest
            theirs = self._attrs(history["item_id"].iat[pos])
            shared = [c for c in ATTRS if mine[c] and mine[c] == theirs[c]]
            if best is None or len(shared) > len(best_shared):
                best, best_shared = pos, shared
        return history.iloc[best], best_shared

    def explain(self, case: Case, item_ids) -> list[Generated]:
        df = self._by_client.get(case.client_id, self.events.iloc[0:0])
        history = df[df["timestamp"] < case.target_time]
        out = []
        for item_id in item_ids:
            t0 = time.perf_counter()
            if self.item_aspects is not None:
                aspect = self.item_aspects.get(item_id) or self.item_aspects.get("", "quality")
                verb = "are" if aspect.endswith("s") and not aspect.endswith("ss") else "is"
                out.append(Generated(f"The {aspect} {verb} great.",
                                     latency_s=time.perf_counter() - t0))
                continue
            ev, shared = self._anchor(history, item_id)
            out.append(Generated(self._sentence(case.style, item_id, ev, shared),
                                 cited_event_ids=(ev["event_id"],) if ev is not None else (),
                                 latency_s=time.perf_counter() - t0))
        return out

    def _sentence(self, style: str, item_id: str, ev, shared: list[str]) -> str:
        name = self._val(item_id, "name") or item_id
        desc = " ".join(v for v in (self._val(item_id, "color"), self._val(item_id, "material")) if v)
        by = self._val(item_id, "maison")
        # Luxury names often carry colour and material already ("Tote in Black Calfskin").
        what = name + (f" in {desc}" if desc and desc.lower() not in name.lower() else "") + (
            f" by {by}" if by else "")
        if ev is None:
            return f"{what} is a fitting next piece."
        past = self._val(ev["item_id"], "name") or ev["item_id"]
        verb = VERBS.get(ev["event_type"], ev["event_type"])
        ts = ev["timestamp"]
        when = f"{ts.day} {ts.strftime('%B')} {ts.year}"
        link = (" and ".join(self._val(item_id, c) for c in shared[:2])
                if shared else "a clear line of taste")
        if style == "style":
            return f"{what} continues the taste shown by the {past} the client {verb} on {when}."
        if style == "occasion":
            return f"{what} suits the season ahead, as the {past} the client {verb} on {when} did."
        return f"{what} shares {link} with the {past} the client {verb} on {when}."


@dataclass
class TextOnlyMethod:
    """History facts as text, no soft prompts, same GGUF and layout as SELLER."""

    items: pd.DataFrame
    events: pd.DataFrame
    llm: object  # seller.llm.runtime.SoftPromptLLM
    max_facts: int = 3  # history lines (select_fact_events) in place of soft prompts
    max_tokens: int = LLMConfig.max_target_tokens  # the training config's llm.max_target_tokens
    sampling: SamplingParams = field(default_factory=SamplingParams)  # the config's llm.sampling()
    stop: tuple[str, ...] = ()  # the config's llm.stop
    item_aspects: dict[str, list[str]] = field(default_factory=dict)  # as the trained methods' prompts
    layout: LayoutConfig = field(default_factory=LayoutConfig)  # the config's system turn (facts.layout_config)
    name: str = "text-only"

    def __post_init__(self):
        self._items = self.items.set_index("item_id", drop=False)
        self._by_client = {c: df for c, df in self.events.groupby("client_id", sort=False)}

    def explain(self, case: Case, item_ids) -> list[Generated]:
        from seller.prompt import history_facts, instruction, item_text
        from seller.llm.layout import build_layout

        df = self._by_client.get(case.client_id, self.events.iloc[0:0])
        history = df[df["timestamp"] < case.target_time]
        facts, ids = history_facts(history, self._items, self.max_facts)
        layouts = [build_layout(self.llm.tokenizer, instruction=instruction(case.style),
                                history=facts, item=item_text(self._items.loc[i], self.item_aspects.get(i, ())),
                                n_soft=0,
                                max_positions=self.llm.n_ctx // max(1, len(item_ids))
                                - self.max_tokens, config=self.layout)
                   for i in item_ids]
        t0 = time.perf_counter()
        texts = self.llm.generate_many(layouts, None, max_tokens=self.max_tokens,
                                       sampling=self.sampling, stop=self.stop)
        per = (time.perf_counter() - t0) / len(item_ids)
        return [Generated(t.strip(), None, tuple(ids), per) for t in texts]


@dataclass
class ExplainerMethod:
    """A trained adapter served by `seller.explain.Explainer` (SELLER and its ablations), with
    the history cut at the case's target (`Explainer.step(..., before_ts)`), exactly what
    training does for a reference row."""

    model_dir: Path
    name: str
    dataset: object = None  # the evaluated Dataset (shared, so it is loaded once)
    n_threads: int = 2
    sampling: SamplingParams | None = None  # None: the model's own config's
    stop: tuple[str, ...] | None = None  # None: the model's own config's
    candidates: int | None = None  # texts per card; None: the model's own config's
    alternative_sampling: SamplingParams | None = None  # None: the model's own config's
    _explainer: object = field(init=False, repr=False)

    def __post_init__(self):
        from seller.explain import Explainer

        self._explainer = Explainer.from_pretrained(self.model_dir, dataset=self.dataset,
                                                    n_threads=self.n_threads, candidates=self.candidates)
        if self.sampling is not None:  # every method of one evaluation decodes alike
            self._explainer.sampling = self.sampling
        if self.stop is not None:
            self._explainer.stop = self.stop
        if self.alternative_sampling is not None:
            self._explainer.alternative_sampling = self.alternative_sampling
        self.expert_names = list(getattr(self._explainer.adapter, "expert_names", []) or [])

    def explain(self, case: Case, item_ids) -> list[Generated]:
        ex, item_ids = self._explainer, list(item_ids)
        out: list[Generated] = []
        for i in range(0, len(item_ids), ex.cards_at_once):
            chunk = item_ids[i:i + ex.cards_at_once]
            t0 = time.perf_counter()
            st = ex.step(case.client_id, chunk, case.style, int(case.target_time.timestamp()))
            softs = [p.float().numpy() for p in st.output.soft_prompts]
            first = ex.llm.submit(st.layouts, softs, max_tokens=ex.max_tokens, sampling=ex.sampling,
                                  stop=ex.stop)  # decoded together with the alternatives, as served
            requests = ex.submit_alternatives(st.layouts, softs)
            texts = [""] * len(chunk)
            for b, piece in first:
                texts[b] += piece
            others = [ex.alternative_texts(r) for r in requests]
            per = (time.perf_counter() - t0) / len(chunk)
            out += [Generated(t.strip(), _as_list(st.output.gate_weights[b]), tuple(st.cited[b]), per,
                              tuple(others[b])) for b, t in enumerate(texts)]
        return out


def _as_list(weights) -> list[float]:
    """One row of gate weights (a tensor) as plain floats for the results JSON."""
    return weights.detach().cpu().numpy().ravel().tolist()
