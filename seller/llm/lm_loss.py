"""Cross-entropy of the frozen LLM on the reference explanation, paying for gradients only where
they exist.

The layout puts [chat prefix + instruction + history facts] before the soft prompts. Nothing
there depends on the adapter, so its keys and values are computed in one batched forward
without autograd (left-padded, as in batched generation), and only [soft prompts + item text + target] runs with gradients, on top of that
cache. Same numbers as one full forward (tested against `TorchBackbone.loss`), about half the
work, because the prefix is most of the prompt. Logits are taken only at target positions:
the LM head is 49k x 576 per position.
"""
from __future__ import annotations

from typing import Sequence

import inspect

import torch
import torch.nn.functional as F

from seller.llm.layout import Layout


def _cache_kw(decoder) -> str:
    """transformers 5 renamed the forward's `past_key_values` to `cache`; accept both."""
    return "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"


def split_layout(layout: Layout) -> tuple[list[int], list]:
    """(prefix token ids before the first soft segment, remaining segments)."""
    prefix: list[int] = []
    for i, seg in enumerate(layout.segments):
        if seg.kind == "soft":
            return prefix, list(layout.segments[i:])
        prefix += list(seg.ids)
    raise ValueError("layout has no soft-prompt segment; the prefix cache needs one")


@torch.no_grad()
def prefix_cache(backbone, prefixes: list[list[int]]):
    """Keys/values of B prompt prefixes, left-padded to one length (pads masked, as in batched
    generation). Returns (cache, prefix attention mask (B, Lmax), lengths)."""
    from transformers import DynamicCache

    B, lengths = len(prefixes), [len(p) for p in prefixes]
    Lmax, device = max(lengths), backbone.token_embeddings.device
    ids = torch.zeros(B, Lmax, dtype=torch.long, device=device)
    mask = torch.zeros(B, Lmax, dtype=torch.long, device=device)
    for b, p in enumerate(prefixes):
        ids[b, Lmax - len(p):] = torch.tensor(p, device=device)
        mask[b, Lmax - len(p):] = 1
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    cache = DynamicCache()
    decoder = backbone.model.get_decoder()
    decoder(inputs_embeds=backbone.token_embeddings[ids], attention_mask=mask, position_ids=pos,
            use_cache=True, **{_cache_kw(decoder): cache})
    return cache, mask, lengths


def explanation_loss(backbone, layouts: Sequence[Layout], soft_prompts: torch.Tensor) -> torch.Tensor:
    """Per-example mean token CE on the target, shape (B,); gradients reach `soft_prompts` (B, P, d)."""
    B, device = len(layouts), backbone.token_embeddings.device
    splits = [split_layout(l) for l in layouts]
    cache, prefix_mask, Lp = prefix_cache(backbone, [p for p, _ in splits])
    Lmax = prefix_mask.shape[1]
    rows, labels = [], []
    for b, (_, segs) in enumerate(splits):
        parts, lab, used = [], [], 0
        for seg in segs:
            if seg.kind == "soft":
                parts.append(soft_prompts[b, used:used + seg.n_soft])
                used += seg.n_soft
                lab += [-100] * seg.n_soft
            else:
                parts.append(backbone.token_embeddings[torch.tensor(seg.ids, device=device)])
                lab += list(seg.ids) if seg.kind == "target" else [-100] * len(seg.ids)
        if used != soft_prompts.shape[1]:
            raise ValueError(f"layout {b} has {used} soft slots, soft_prompts {tuple(soft_prompts.shape)}")
        rows.append(torch.cat(parts))
        labels.append(torch.tensor(lab, device=device))
    Ls = max(len(r) for r in rows)
    emb = soft_prompts.new_zeros(B, Ls, backbone.n_embd)
    mask = torch.cat([prefix_mask, torch.zeros(B, Ls, dtype=torch.long, device=device)], dim=1)
    lab = torch.full((B, Ls), -100, dtype=torch.long, device=device)
    for b, (r, l) in enumerate(zip(rows, labels)):
        emb[b, :len(r)] = r
        lab[b, :len(l)] = l
        mask[b, Lmax:Lmax + len(r)] = 1
    # continue each prefix
    pos = torch.tensor(Lp, device=device).unsqueeze(1) + torch.arange(Ls, device=device).unsqueeze(0)
    decoder = backbone.model.get_decoder()
    hidden = decoder(inputs_embeds=emb, attention_mask=mask, position_ids=pos, use_cache=True,
                     **{_cache_kw(decoder): cache}).last_hidden_state
    target = lab[:, 1:]  # position t predicts token t + 1
    keep = target != -100
    if not keep.any():
        raise ValueError("no target tokens: build the layouts with target=...")
    logits = backbone.model.get_output_embeddings()(hidden[:, :-1][keep]).float()  # (N, V)
    tok_loss = F.cross_entropy(logits, target[keep], reduction="none")
    row = torch.arange(B, device=device).unsqueeze(1).expand_as(target)[keep]
    per_row = torch.zeros(B, device=device).index_add(0, row, tok_loss)
    return per_row / keep.sum(1).clamp(min=1)
