"""What every adapter takes and returns, and the scaling that makes soft prompts look like tokens.

An adapter turns (client history, candidate item, explanation style) into P soft-prompt
vectors in the LLM's embedding space plus the gate weights that chose them. All adapter kinds
(MoE, dense, PEPLER-style IDs, no-sequence) share these types so the trainer, the explainer
and the evaluation treat them alike.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

from seller.data.schema import EXPLANATION_STYLES


@dataclass
class AdapterShape:
    """Widths fixed by the encoders and the LLM, not chosen by the user; saved with the adapter."""
    d_item: int  # ItemSemanticEncoder output width
    d_state: int  # SequentialUserEncoder state width
    n_embd: int  # LLM embedding width (576 for SmolLM2-135M)
    embed_rms: float  # RMS of the LLM's input token embeddings; soft prompts are scaled to it
    n_styles: int = len(EXPLANATION_STYLES)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class AdapterInputs:
    item: torch.Tensor  # (B, d_item) candidate item vector
    states: torch.Tensor  # (B, T, d_state) per-event sequence states, left-aligned, padded
    mask: torch.Tensor  # (B, T) bool, True = real event
    summary: torch.Tensor  # (B, d_state) sequence summary
    style: torch.Tensor  # (B,) long style index
    history_items: torch.Tensor  # (B, T, d_item) item vectors of the same events (no-sequence ablation)
    client_index: torch.Tensor  # (B,) long, 0 = unknown client (PEPLER baseline)
    item_index: torch.Tensor  # (B,) long, 0 = unknown item (PEPLER baseline)

    def to(self, device) -> "AdapterInputs":
        return AdapterInputs(**{k: v.to(device) for k, v in self.__dict__.items()})


@dataclass
class AdapterOutput:
    soft_prompts: torch.Tensor  # (B, P, n_embd), per-vector RMS = the LLM's token-embedding RMS
    gate_weights: torch.Tensor  # (B, E) sums to 1 per row; E = 1 for adapters without experts
    attention: torch.Tensor | None  # (B, T) history weights for citations; None without a history path
    aux_loss: torch.Tensor  # scalar load-balancing loss (0 where there is no gate)

    def __iter__(self):  # `soft_prompts, gate_weights = adapter(x)` reads as the contract says
        return iter((self.soft_prompts, self.gate_weights))


def rms_match(x: torch.Tensor, target_rms: float, eps: float = 1e-6) -> torch.Tensor:
    """Scale each vector (last dim) to RMS `target_rms`: soft prompts far off the token scale
    saturate attention or vanish next to the text tokens."""
    return x * (target_rms / (x.pow(2).mean(dim=-1, keepdim=True) + eps).sqrt())


class SoftPromptAdapter(nn.Module):
    """What every adapter says about itself, so callers never ask which kind it is: how many
    soft prompts it writes, and the id inputs it reads."""

    @property
    def n_soft_prompts(self) -> int:
        raise NotImplementedError

    def id_indices(self, client_ids: list[str], item_ids: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(client_index (B,), item_index (B,)) long for AdapterInputs; zeros for adapters that read no ids."""
        return torch.zeros(len(client_ids), dtype=torch.long), torch.zeros(len(item_ids), dtype=torch.long)
