"""`fallback`: the grounded sentence the app shows when a generated text fails the claim
verifier (seller/fallback.py), evaluated as a method of its own beside the template."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from seller.evaluate.methods import Case, Generated
from seller.fallback import GroundedSentenceBuilder


@dataclass
class FallbackMethod:
    dataset: object  # seller.data.dataset.Dataset
    name: str = "fallback"
    _builder: GroundedSentenceBuilder = field(init=False, repr=False)

    def __post_init__(self):
        # as the app's cards: what other clients did, up to each case's target time
        self._builder = GroundedSentenceBuilder(self.dataset.items, self.dataset.events)

    def explain(self, case: Case, item_ids) -> list[Generated]:
        history = self.dataset.client_history(case.client_id, before=case.target_time)
        out = []
        for item_id in item_ids:
            t0 = time.perf_counter()
            s = self._builder.build(item_id, history, case.style, case.target_time)
            out.append(Generated(s.text, cited_event_ids=(s.cited_event_id,) if s.cited_event_id else (),
                                 latency_s=time.perf_counter() - t0))
        return out
