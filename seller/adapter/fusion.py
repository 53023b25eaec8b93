"""Fusion: which past events relate to this candidate item, for this explanation style.

The candidate item's semantic vector is the query of a small multi-head attention over the
client's per-event states (from `SequentialUserEncoder`). A learned "null" slot lets the item
attend to nothing when no event relates to it (and makes empty histories well defined). The
attended history, the sequence summary, the item itself and an explanation-style embedding
are then mixed into one context vector for the adapter's gate and experts.

The attention weights over real events (averaged over heads) are returned: they are the
events the explanation "weighed most" and become `Explanation.cited_event_ids`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class FusionOutput:
    context: torch.Tensor  # (B, d_fused) fused candidate + history + style context
    style: torch.Tensor  # (B, d_style) the style embedding (the gate sees it again, unmixed)
    attention: torch.Tensor  # (B, T) weight of each history event, heads averaged; sums to <= 1


class CandidateHistoryFusion(nn.Module):
    def __init__(self, d_item: int, d_state: int, d_fused: int, d_style: int, n_heads: int,
                 n_styles: int, dropout: float):
        super().__init__()
        assert d_fused % n_heads == 0
        self.n_heads, self.d_head = n_heads, d_fused // n_heads
        self.q = nn.Linear(d_item, d_fused)
        self.kv = nn.Linear(d_state, 2 * d_fused)
        self.null_kv = nn.Parameter(torch.randn(2, n_heads, 1, self.d_head) * 0.02)  # "no event relates"
        self.style_emb = nn.Embedding(n_styles, d_style)
        self.summary_proj = nn.Linear(d_state, d_fused)
        self.item_proj = nn.Linear(d_item, d_fused)
        self.mix = nn.Sequential(
            nn.LayerNorm(3 * d_fused + d_style),
            nn.Linear(3 * d_fused + d_style, d_fused),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(d_fused, d_fused),
        )
        self.norm = nn.LayerNorm(d_fused)

    def forward(self, item: torch.Tensor, states: torch.Tensor, mask: torch.Tensor,
                summary: torch.Tensor, style: torch.Tensor) -> FusionOutput:
        """item (B, d_item); states (B, T, d_state); mask (B, T) True = real event;
        summary (B, d_state); style (B,) long index into the style table."""
        B, T, _ = states.shape
        H, Dh = self.n_heads, self.d_head
        q = self.q(item).view(B, H, 1, Dh)  # (B, H, 1, Dh)
        k, v = self.kv(states).view(B, T, 2, H, Dh).permute(2, 0, 3, 1, 4)  # each (B, H, T, Dh)
        k = torch.cat([self.null_kv[0].expand(B, H, 1, Dh), k], dim=2)  # (B, H, 1+T, Dh)
        v = torch.cat([self.null_kv[1].expand(B, H, 1, Dh), v], dim=2)
        scores = (q @ k.transpose(-1, -2)) / Dh**0.5  # (B, H, 1, 1+T)
        keep = torch.cat([mask.new_ones(B, 1), mask], dim=1).view(B, 1, 1, T + 1)
        weights = F.softmax(scores.masked_fill(~keep, float("-inf")), dim=-1)
        attended = (weights @ v).reshape(B, H * Dh)  # (B, d_fused)
        style_vec = self.style_emb(style)  # (B, d_style)
        x = torch.cat([attended, self.summary_proj(summary), self.item_proj(item), style_vec], dim=-1)
        context = self.norm(attended + self.mix(x))  # residual keeps the attended history in view
        attention = weights[:, :, 0, 1:].mean(dim=1)  # (B, T) drop the null slot, average heads
        return FusionOutput(context=context, style=style_vec, attention=attention)
