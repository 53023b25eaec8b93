"""What a card may show: the model's first text that passes every claim of the verifier (its
greedy text, then the alternatives decoded when it fails), else a sentence built from the same
evidence (seller.fallback), labelled as such on the card. One function for serving and for
evaluation, so the "as shown" figures are what associates read.

    guard = CardGuard(dataset.items, dataset.events)
    shown = guard.shown(text, item_id, history, style, today, cited_event_id, alternatives)
    shown.text, shown.grounded, shown.chosen, shown.raw.passed, shown.cited_event_id
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import pandas as pd

from seller.fallback import GroundedSentenceBuilder
from seller.verify import ClaimVerifier, Verification


@dataclass(frozen=True)
class ShownText:
    text: str
    grounded: bool  # the model's text failed a claim: this sentence was built from the evidence
    checked: Verification  # of the text shown
    raw: Verification  # of the model's own text
    cited_event_id: str | None  # the past event the reason rests on
    chosen: int | None = 0  # which model text is shown: 0 its first, n its n-th alternative; None grounded


class CardGuard:
    def __init__(self, items: pd.DataFrame, events: pd.DataFrame | None = None):
        """`events`: every client's events, for the co-occurrence reason and its check on
        pieces that share nothing with the client's (None: that reason is not used)."""
        self.builder = GroundedSentenceBuilder(items, events)
        self.verifier = ClaimVerifier(items, follow_ons=self.builder.follow_ons if events is not None else None)

    def shown(self, text: str, item_id: str, history: pd.DataFrame | None, style: str, today,
              cited_event_id: str | None = None, alternatives: Iterable[str] = ()) -> ShownText:
        """`history`: the client's events (those before `today` count); `cited_event_id`: the
        event the model was given, which the grounded sentence prefers as its evidence;
        `alternatives`: the model's other texts for the card, in order, read only while none
        before passes (a lazy iterable is never drawn from when `text` passes)."""
        raw = self.verifier.verify(text, item_id, history, today)
        if raw.passed and text.strip():
            return ShownText(text, False, raw, raw, cited_event_id)
        for n, other in enumerate(alternatives, start=1):
            checked = self.verifier.verify(other, item_id, history, today)
            if checked.passed and other.strip():
                return ShownText(other, False, checked, raw, cited_event_id, n)
        built = self.builder.build(item_id, history, style, today, cited_event_id)
        return ShownText(built.text, True, self.verifier.verify(built.text, item_id, history, today),
                         raw, built.cited_event_id, None)
