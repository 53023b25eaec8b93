"""SequentialUserEncoder: a client's time-ordered events -> per-position states and a summary.

API (stable; the GRU variant in gru.py has the same one):

    enc = SequentialUserEncoder(SequenceEncoderConfig(d_model=64))
    out = enc(history)            # history: HistoryBatch (see below)
    out.states     # (B, T+1, d)  position 0 is the start-of-history token, 1..T the events
    out.summary    # (B, d)       the state at each client's last position: "what comes next"
    out.attention  # (B, T+1)     last layer, head-averaged attention of the summary position
                   #              over the start token and the events (a row sums to 1)

Inputs per event: the item vector (from ItemSemanticEncoder) + event type + channel + log
time-gap bucket + position counted from the most recent event (so the newest event always has
the same position, as in SASRec's left-aligned padding). Blocks are pre-LayerNorm causal
self-attention + MLP, as in nanoGPT; sequences are right-padded, and since attention is causal
no real position ever sees a pad.

Cold start (documented path): every history starts with a start-of-history token whose vector
is a learned embedding of the client's *segment* (tier; 0 = unknown). Training predicts each
client's first event from that token alone, so an empty history yields the segment's learned
first-engagement prior (a popularity prior per segment), and a one-event history is the
ordinary path [start, event], which training also covers (every second event).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from seller.data.schema import CHANNELS, EVENT_TYPES
from seller.data.sequences import GAP_BUCKETS


@dataclass
class SequenceEncoderConfig:
    kind: Literal["transformer", "gru"] = "transformer"  # gru = GRU4Rec-style variant
    d_model: int = 64  # SASRec's size; larger overfits Beauty-scale data
    n_layers: int = 2  # SASRec default; 2 blocks capture pairwise + one level of composition
    n_heads: int = 2  # 32-d heads
    dropout: float = 0.3  # sparse data overfits fast; SASRec uses 0.5 on Beauty
    max_len: int = 50  # most recent events seen; SASRec's 50 covers >95% of Beauty histories
    n_segments: int = 1  # segment (tier) vocabulary size incl. 0 = unknown
    use_event_features: bool = True  # event type, channel, time gap (off = ID-only SASRec)

    def __post_init__(self):
        if self.kind not in ("transformer", "gru"):
            raise ValueError(f"kind must be 'transformer' or 'gru', got {self.kind!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {self.max_len}")


@dataclass
class HistoryBatch:
    """B right-padded histories of T events (the start token is added by the encoder)."""

    event_vectors: torch.Tensor  # (B, T, d) item vectors of the events
    event_types: torch.Tensor  # (B, T) long, index into EVENT_TYPES
    channels: torch.Tensor  # (B, T) long, 0 unknown 1 online 2 boutique
    gap_buckets: torch.Tensor  # (B, T) long
    lengths: torch.Tensor  # (B,) long, real events per row (0 = empty history)
    segments: torch.Tensor  # (B,) long, segment index (0 = unknown)


@dataclass
class EncoderOutput:
    states: torch.Tensor  # (B, T+1, d)
    summary: torch.Tensor  # (B, d)
    attention: torch.Tensor | None  # (B, T+1); None for encoders without attention (GRU)


class EventEmbedding(nn.Module):
    """Start token + item vector + type + channel + gap + position -> (B, T+1, d)."""

    def __init__(self, c: SequenceEncoderConfig):
        super().__init__()
        self.c = c
        self.segment = nn.Embedding(c.n_segments, c.d_model)
        self.position = nn.Embedding(c.max_len + 1, c.d_model)
        if c.use_event_features:
            self.event_type = nn.Embedding(len(EVENT_TYPES), c.d_model)
            self.channel = nn.Embedding(len(CHANNELS) + 1, c.d_model)
            self.gap = nn.Embedding(GAP_BUCKETS, c.d_model)
        for m in self.modules():
            if isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=0.02)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, h: HistoryBatch) -> torch.Tensor:
        x = h.event_vectors  # (B, T, d)
        if self.c.use_event_features:
            x = x + self.event_type(h.event_types) + self.channel(h.channels) + self.gap(h.gap_buckets)
        x = torch.cat([self.segment(h.segments)[:, None, :], x], dim=1)  # (B, T+1, d)
        t = torch.arange(x.shape[1], device=x.device)
        from_end = (h.lengths[:, None] - t[None, :]).clamp(0, self.c.max_len)  # newest event = 0
        return self.dropout(x + self.position(from_end))


class CausalSelfAttention(nn.Module):
    def __init__(self, c: SequenceEncoderConfig):
        super().__init__()
        self.n_heads, self.dropout = c.n_heads, c.dropout
        self.qkv = nn.Linear(c.d_model, 3 * c.d_model)
        self.proj = nn.Linear(c.d_model, c.d_model)

    def forward(self, x: torch.Tensor, need_weights: bool = False):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (z.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for z in (q, k, v))
        if need_weights:  # explicit path: same maths, keeps the attention map for explanations
            att = (q @ k.transpose(-2, -1)) / math.sqrt(k.shape[-1])  # (B, H, T, T)
            causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            att = att.masked_fill(~causal, float("-inf")).softmax(dim=-1)
            y, weights = att @ v, att.mean(dim=1)  # weights (B, T, T)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                               dropout_p=self.dropout if self.training else 0.0)
            weights = None
        return self.proj(y.transpose(1, 2).contiguous().view(B, T, C)), weights


class Block(nn.Module):
    def __init__(self, c: SequenceEncoderConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(c.d_model), nn.LayerNorm(c.d_model)
        self.attn = CausalSelfAttention(c)
        self.mlp = nn.Sequential(nn.Linear(c.d_model, 4 * c.d_model), nn.GELU(),
                                 nn.Linear(4 * c.d_model, c.d_model), nn.Dropout(c.dropout))
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor, need_weights: bool = False):
        a, w = self.attn(self.ln1(x), need_weights)
        x = x + self.drop(a)
        return x + self.mlp(self.ln2(x)), w


def last_position(states: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, T+1, d), (B,) -> (B, d): the state at each row's last real position."""
    return states[torch.arange(states.shape[0], device=states.device), lengths]


class SequentialUserEncoder(nn.Module):
    """SASRec-style causal Transformer over [start token, events]."""

    def __init__(self, config: SequenceEncoderConfig):
        super().__init__()
        self.config = config
        self.embed = EventEmbedding(config)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.d_model)

    def forward(self, history: HistoryBatch, need_attention: bool = False) -> EncoderOutput:
        x = self.embed(history)  # (B, T+1, d)
        weights = None
        for i, block in enumerate(self.blocks):
            x, weights = block(x, need_weights=need_attention and i == len(self.blocks) - 1)
        states = self.ln_f(x)
        attention = None
        if weights is not None:  # (B, T+1, T+1) -> the summary row (B, T+1)
            attention = weights[torch.arange(len(weights)), history.lengths]
        return EncoderOutput(states, last_position(states, history.lengths), attention)

