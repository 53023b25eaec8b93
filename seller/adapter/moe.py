"""MoE adapter: a gate picks top-k of E bottleneck experts that write P soft prompts.

    fused context (B, d_fused) ++ style (B, d_style) = x
    gate:    logits = x W_g (+ noise * softplus(x W_n) while training), keep top-k, softmax
    experts: e_i(x) = W2_i gelu(W1_i x)   -> (P x n_embd)   for every expert i
    prompts: rms_match(base + sum_i g_i e_i(x), token RMS)  -> (B, P, n_embd)

`base` is a learned prompt initialised from real token embeddings (prompt tuning's best init),
so training starts from something the LLM can read and experts learn the per-client residual.
The Switch load-balancing loss (Fedus et al. 2021) keeps every expert in use. All experts are
computed densely: E x 64 x 4608 MACs per sample is noise next to the LLM, and DDP then sees
every parameter in the graph. `DenseAdapter` is the same with one wider MLP (the "without MoE"
ablation); `kind = "no-sequence"` feeds mean-pooled history item vectors instead of sequence
states (the "without sequence" ablation).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from seller.adapter.base import AdapterInputs, AdapterOutput, AdapterShape, SoftPromptAdapter, rms_match
from seller.adapter.fusion import CandidateHistoryFusion
from seller.config import AdapterConfig


class _FusedAdapter(SoftPromptAdapter):
    """Shared front: fusion of candidate, history and style; a base prompt; output scaling."""

    def __init__(self, cfg: AdapterConfig, shape: AdapterShape, init_prompts: torch.Tensor | None = None):
        super().__init__()
        self.cfg, self.shape = cfg, shape
        self.mean_history = cfg.kind == "no-sequence"
        d_state = shape.d_item if self.mean_history else shape.d_state
        self.fusion = CandidateHistoryFusion(shape.d_item, d_state, cfg.d_fused, cfg.d_style, cfg.n_heads,
                                             shape.n_styles, cfg.dropout)
        if init_prompts is None:
            init_prompts = torch.randn(cfg.n_prompts, shape.n_embd) * shape.embed_rms
        assert init_prompts.shape == (cfg.n_prompts, shape.n_embd), init_prompts.shape
        self.base = nn.Parameter(init_prompts.clone().float())  # (P, n_embd)
        self.d_in = cfg.d_fused + cfg.d_style

    @property
    def n_soft_prompts(self) -> int:
        return self.cfg.n_prompts

    def _context(self, inp: AdapterInputs):
        """Returns (x (B, d_in), attention (B, T))."""
        if self.mean_history:  # order-free: raw item vectors, summary = their mean
            m = inp.mask.unsqueeze(-1).float()
            states = inp.history_items
            summary = (states * m).sum(1) / m.sum(1).clamp(min=1.0)
        else:
            states, summary = inp.states, inp.summary
        f = self.fusion(inp.item, states, inp.mask, summary, inp.style)
        return torch.cat([f.context, f.style], dim=-1), f.attention

    def _prompts(self, delta: torch.Tensor) -> torch.Tensor:
        B = delta.shape[0]
        x = self.base.unsqueeze(0) + delta.view(B, self.cfg.n_prompts, self.shape.n_embd)
        return rms_match(x, self.shape.embed_rms)  # (B, P, n_embd)


class MoEAdapter(_FusedAdapter):
    def __init__(self, cfg: AdapterConfig, shape: AdapterShape, init_prompts: torch.Tensor | None = None):
        super().__init__(cfg, shape, init_prompts)
        E, h, out = cfg.n_experts, cfg.hidden, cfg.n_prompts * shape.n_embd
        self.gate = nn.Linear(self.d_in, E)
        self.gate_noise = nn.Linear(self.d_in, E)
        self.w1 = nn.Parameter(torch.randn(E, self.d_in, h) * self.d_in**-0.5)
        self.b1 = nn.Parameter(torch.zeros(E, h))
        # small output init: experts start as gentle edits of the base prompt
        self.w2 = nn.Parameter(torch.randn(E, h, out) * 0.02 * shape.embed_rms * h**-0.5)
        self.b2 = nn.Parameter(torch.zeros(E, out))

    def route(self, x: torch.Tensor):
        """x (B, d_in) -> (gates (B, E) top-k renormalised, probs (B, E) full softmax, topk index (B, k))."""
        logits = self.gate(x)
        if self.training and self.cfg.gate_noise > 0:
            logits = logits + torch.randn_like(logits) * F.softplus(self.gate_noise(x)) * self.cfg.gate_noise
        probs = F.softmax(logits, dim=-1)
        top_val, top_idx = logits.topk(self.cfg.top_k, dim=-1)
        gates = torch.zeros_like(logits).scatter(-1, top_idx, F.softmax(top_val, dim=-1))
        return gates, probs, top_idx

    def balance_loss(self, probs: torch.Tensor, top_idx: torch.Tensor) -> torch.Tensor:
        """Switch loss E * sum_i f_i * P_i: f_i share of routed slots, P_i mean gate probability.
        Equals 1 when routing is uniform; grows as experts collapse."""
        E = probs.shape[-1]
        routed = torch.zeros_like(probs).scatter(-1, top_idx, 1.0)  # (B, E) 1 where chosen
        f = routed.mean(0) / self.cfg.top_k
        return E * (f * probs.mean(0)).sum()

    def forward(self, inp: AdapterInputs) -> AdapterOutput:
        x, attention = self._context(inp)  # (B, d_in), (B, T)
        gates, probs, top_idx = self.route(x)
        hidden = F.gelu(torch.einsum("bd,edh->beh", x, self.w1) + self.b1)  # (B, E, h)
        experts = torch.einsum("beh,eho->beo", hidden, self.w2) + self.b2  # (B, E, P*n_embd)
        delta = torch.einsum("be,beo->bo", gates, experts)
        return AdapterOutput(self._prompts(delta), gates, attention, self.balance_loss(probs, top_idx))


class DenseAdapter(_FusedAdapter):
    """One MLP with the experts' total hidden width (E x hidden), so capacity matches the MoE."""

    def __init__(self, cfg: AdapterConfig, shape: AdapterShape, init_prompts: torch.Tensor | None = None):
        super().__init__(cfg, shape, init_prompts)
        h = cfg.hidden * cfg.n_experts
        self.mlp = nn.Sequential(nn.Linear(self.d_in, h), nn.GELU(), nn.Linear(h, cfg.n_prompts * shape.n_embd))
        nn.init.normal_(self.mlp[2].weight, std=0.02 * shape.embed_rms * h**-0.5)
        nn.init.zeros_(self.mlp[2].bias)

    def forward(self, inp: AdapterInputs) -> AdapterOutput:
        x, attention = self._context(inp)
        gates = x.new_ones(x.shape[0], 1)
        return AdapterOutput(self._prompts(self.mlp(x)), gates, attention, x.new_zeros(()))
