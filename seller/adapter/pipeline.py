"""Everything between (client, candidate item, style) and the LLM, shared by training and serving.

    history (ClientSequence) --recommender encoders--> AdapterInputs --adapter--> soft prompts,
    gate weights, attention over the history; attention top events -> "related history" facts;
    instruction + shared history facts + related facts + candidate text -> `build_layout`.

`ExplanationPipeline.step(requests)` is that whole step, once: training (loss, validation,
sample generations, gate statistics), serving (`Explainer`), evaluation and the training
benchmark all call it, so the LLM sees the same words and the adapter the same tensors in all.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from seller.adapter.base import AdapterInputs, AdapterOutput
from seller.prompt import (evidence_fact, history_facts, instruction, item_text, layout_config,
                                  related_fact)
from seller.config import DataConfig
from seller.data.schema import EXPLANATION_STYLES
from seller.data.sequences import ClientSequence
from seller.llm.layout import Layout, build_layout


@dataclass(frozen=True)
class StepRequest:
    """One explanation to prepare: for `client_id`, of `item_id`, in `style`."""
    client_id: str
    item_id: str
    style: str
    # the history the explanation may use: events strictly before this time (unix s); None = all
    before_ts: int | None = None
    target: str | None = None  # the reference text (training and validation losses)
    gold_cited: tuple[str, ...] = ()  # the events the reference cites: the related facts when given
    today: date | None = None  # the reading day when the history is not cut (serving); None = UTC today


@dataclass
class ExplanationStep:
    """What the LLM needs for B requests, and what the losses and the cards read."""
    output: AdapterOutput  # soft prompts (B, P, n_embd), gate weights, attention, aux loss
    inputs: AdapterInputs  # the encoders' features (the joint next-item loss reads .summary)
    histories: list[ClientSequence]  # the encoder window each row saw
    gold: list[list[str]]  # the reference's cited events inside that window
    cited: list[list[str]]  # the related-history facts each prompt names, heaviest first
    layouts: list[Layout]  # empty when `step(..., layouts=False)`


class ExplanationPipeline:
    def __init__(self, dataset, recommender, adapter, tokenizer, data_cfg: DataConfig,
                 item_aspects: dict[str, list[str]] | None = None):
        """`item_aspects`: item -> words `item_text` adds (`facts.prompt_aspects`; review data)."""
        self.dataset, self.rec, self.adapter, self.tokenizer, self.cfg = dataset, recommender, adapter, tokenizer, data_cfg
        self.item_aspects = dict(item_aspects or {})
        self.layout_config = layout_config(data_cfg)
        self.items = dataset.items.set_index(dataset.items["item_id"].astype(str), drop=False)
        self.events = dataset.events.set_index(dataset.events["event_id"].astype(str), drop=False)
        self.max_len = min(data_cfg.max_history, recommender.config.max_len)
        self._rows = {iid: r for r, iid in enumerate(recommender.item_ids)}
        self.n_soft = adapter.n_soft_prompts
        self._facts: dict[tuple, tuple[list[str], list[str]]] = {}  # see _history_facts
        self._evidence = None  # seller.fallback.GroundedSentenceBuilder, when data.evidence_prompt

    def history(self, client_id: str, n_events: int | None = None) -> ClientSequence:
        """The client's first `n_events` events (all when None), cut to the encoder's window."""
        seq = self.rec.history(client_id)
        seq = seq if n_events is None else seq[:n_events]
        return seq[-self.max_len:] if len(seq) > self.max_len else seq

    def encode(self, client_ids: list[str], histories: list[ClientSequence], item_ids: list[str],
               styles: list[str]) -> AdapterInputs:
        """Encoder features for B (history, candidate, style) rows. Runs the recommender's
        encoders under the caller's grad mode (no grad unless the next-item loss is trained).
        The encoders stay on the CPU; the inputs go to the adapter's device (CUDA when training
        there)."""
        v = self.rec.item_vectors()  # (N, d)
        batch = self.rec.make_batch(histories, [self.rec.segment_of(c) for c in client_ids], v)
        out = self.rec.user_encoder(batch)
        T = batch.event_vectors.shape[1]
        mask = torch.arange(T).unsqueeze(0) < batch.lengths.unsqueeze(1)  # (B, T)
        rows = torch.tensor([self._rows[i] for i in item_ids])
        client_index, item_index = self.adapter.id_indices(client_ids, item_ids)
        return AdapterInputs(
            item=v[rows], states=out.states[:, 1:], mask=mask, summary=out.summary,
            style=torch.tensor([EXPLANATION_STYLES.index(s) for s in styles]),
            history_items=batch.event_vectors, client_index=client_index, item_index=item_index,
        ).to(next(self.adapter.parameters()).device)

    def step(self, requests: Sequence[StepRequest], model=None, encoder_grad: bool = False,
             max_target_tokens: int | None = None, layouts: bool = True) -> ExplanationStep:
        """encode -> adapter -> cited events -> layout for B requests. `model`: what runs the
        adapter (its DDP wrapper in training; default the adapter); `encoder_grad`: gradients
        through the recommender's encoders (the joint next-item loss); the reference is clipped
        to `max_target_tokens`."""
        hist = [self.history_before(r.client_id, r.before_ts) for r in requests]
        with torch.set_grad_enabled(encoder_grad):
            inp = self.encode([r.client_id for r in requests], hist, [r.item_id for r in requests],
                              [r.style for r in requests])
        out = (self.adapter if model is None else model)(inp)
        gold, cited, built = [], [], []
        for b, r in enumerate(requests):
            inside = set(hist[b].event_ids)
            gold.append([g for g in r.gold_cited if g in inside])
            att = None if out.attention is None else out.attention[b]
            reason = None
            if self.cfg.evidence_prompt:
                found = self.evidence(r.client_id, r.item_id, r.style, r.before_ts, r.today)
                cited.append([str(row["event_id"]) for row in found.rows][: max(1, self.cfg.related_facts)])
                reason = evidence_fact(found, self.items.loc[r.item_id])
            else:
                cited.append(gold[b][: self.cfg.related_facts] if gold[b] else
                             [e for e, _ in self.cited(att, hist[b], self.cfg.related_facts)])
            if layouts:
                built.append(self.layout(r.client_id, r.item_id, r.style, r.before_ts, cited[b], target=r.target,
                                         max_target_tokens=max_target_tokens, today=r.today, reason=reason))
        return ExplanationStep(out, inp, hist, gold, cited, built)

    def _reading_day(self, before_ts: int | None, today: date | None) -> date | None:
        """The day the prompt names (None when `data.date_in_prompt` is off)."""
        if not self.cfg.date_in_prompt:
            return None
        if before_ts is not None:
            return datetime.fromtimestamp(int(before_ts), timezone.utc).date()
        return today or datetime.now(timezone.utc).date()

    def evidence(self, client_id: str, item_id: str, style: str, before_ts: int | None, today: date | None):
        """seller.fallback's evidence for the candidate, from the history before the cut, read
        on the same day the prompt names."""
        from seller.fallback import GroundedSentenceBuilder
        if self._evidence is None:
            self._evidence = GroundedSentenceBuilder(self.dataset.items, self.dataset.events)
        before = None if before_ts is None else pd.Timestamp(int(before_ts), unit="s", tz="UTC")
        day = before if before is not None else pd.Timestamp(today or datetime.now(timezone.utc).date(), tz="UTC")
        return self._evidence.evidence(item_id, self.dataset.client_history(client_id, before=before), style, day)

    def history_before(self, client_id: str, before_ts: int | None) -> ClientSequence:
        """The client's events strictly before `before_ts` (all when None), cut to the window."""
        if before_ts is None:
            return self.history(client_id)
        seq = self.rec.history(client_id)
        return self.history(client_id, int(np.searchsorted(seq.timestamps, before_ts, "left")))

    def cited(self, attention: torch.Tensor | None, history: ClientSequence, k: int) -> list[tuple[str, float]]:
        """The k events the attention weighs most, heaviest first: (event_id, weight)."""
        if attention is None or len(history) == 0 or k <= 0:
            return []
        w = attention[: len(history)].detach().float()
        top = torch.argsort(w, descending=True)[:k]
        return [(str(history.event_ids[j]), float(w[j])) for j in top.tolist() if w[j] > 0]

    def _history_facts(self, client_id: str, before_ts: int | None) -> tuple[list[str], list[str]]:
        """The client's shared history facts, computed once per (client, cut-off): a client's
        candidates share them, and pandas selection costs ~20 ms a call."""
        key = (client_id, before_ts)
        if key not in self._facts:
            if len(self._facts) >= 1024:
                self._facts.clear()
            before = None if before_ts is None else pd.Timestamp(int(before_ts), unit="s", tz="UTC")
            history = self.dataset.client_history(client_id, before=before)
            self._facts[key] = history_facts(history, self.items, self.cfg.max_fact_events)
        facts, ids = self._facts[key]
        return list(facts), list(ids)

    def layout(self, client_id: str, item_id: str, style: str, before_ts: int | None,
               related_event_ids: list[str], target: str | None = None,
               max_target_tokens: int | None = None, max_positions: int | None = None,
               today: date | None = None, reason: str | None = None) -> Layout:
        """The prompt for one explanation. `before_ts` (unix s) limits the history facts to
        events strictly before it (training, evaluation: the day read is then that day's);
        None = the whole history (serving, read on `today`)."""
        facts, fact_ids = self._history_facts(client_id, before_ts)
        # related facts go last in the history: before the soft prompts, so training computes
        # them without autograd; a related event already listed moves down with its detail
        related = [e for e in related_event_ids if e in self.events.index]
        facts = [f for f, e in zip(facts, fact_ids) if e not in related]
        facts += [related_fact(self.events.loc[e], self.items.loc[self.events.loc[e, "item_id"]]) for e in related]
        facts += [reason] if reason else []
        if target is not None and max_target_tokens:
            ids = self.tokenizer.encode(target)
            if len(ids) > max_target_tokens:
                target = self.tokenizer.decode(ids[:max_target_tokens])
        return build_layout(self.tokenizer, instruction=instruction(style, self._reading_day(before_ts, today)),
                            history=facts,
                            item=item_text(self.items.loc[item_id], self.item_aspects.get(item_id, ())),
                            n_soft=self.n_soft, target=target, max_positions=max_positions,
                            config=self.layout_config)

