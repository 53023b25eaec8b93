"""PEPLER-style baseline (Li et al. 2023, "continuous prompt"): one user-ID and one item-ID
vector, learned directly in the LLM's embedding space, as the soft prompt. No history, no
sequence, no experts: the evaluation's answer to "does the sequence path matter?".

Ids unseen in training (held-out clients, new items) map to row 0, a shared learned "unknown"
vector. On a split by held-out clients every test client is unknown, which is exactly the
cold-start weakness of ID prompts that SELLER's sequence path addresses.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from seller.adapter.base import AdapterInputs, AdapterOutput, AdapterShape, SoftPromptAdapter, rms_match
from seller.config import AdapterConfig


class PEPLERAdapter(SoftPromptAdapter):
    def __init__(self, cfg: AdapterConfig, shape: AdapterShape, client_ids: list[str], item_ids: list[str]):
        super().__init__()
        self.cfg, self.shape = cfg, shape
        self.client_ids, self.item_ids = list(client_ids), list(item_ids)
        self._client_pos = {c: i + 1 for i, c in enumerate(self.client_ids)}
        self._item_pos = {c: i + 1 for i, c in enumerate(self.item_ids)}
        self.user = nn.Embedding(len(self.client_ids) + 1, shape.n_embd)
        self.item = nn.Embedding(len(self.item_ids) + 1, shape.n_embd)
        for emb in (self.user, self.item):
            nn.init.normal_(emb.weight, std=shape.embed_rms)

    n_soft_prompts = 2  # one user-ID and one item-ID vector

    def id_indices(self, client_ids: list[str], item_ids: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.tensor([self._client_pos.get(c, 0) for c in client_ids], dtype=torch.long),
                torch.tensor([self._item_pos.get(i, 0) for i in item_ids], dtype=torch.long))

    def forward(self, inp: AdapterInputs) -> AdapterOutput:
        x = torch.stack([self.user(inp.client_index), self.item(inp.item_index)], dim=1)  # (B, 2, n_embd)
        B = x.shape[0]
        return AdapterOutput(rms_match(x, self.shape.embed_rms), x.new_ones(B, 1), None, x.new_zeros(()))
