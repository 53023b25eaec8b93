"""Training: the GGUF as a frozen transformers model that takes soft prompts as embeddings.

transformers dequantizes the GGUF into a float32 `*ForCausalLM` (about 35 s cold on 2 cores);
the result is cached as safetensors under a folder keyed by the GGUF's sha256, so the cost is
paid once per model file. Gradients flow only into the soft prompts passed in.
"""
from __future__ import annotations

import inspect
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from seller.llm import default_cache_dir, resolve_gguf
from seller.paths import sha256_file
from seller.llm.layout import Layout
from seller.llm.tokenizer import Tokenizer

log = logging.getLogger(__name__)
_DONE = "converted.ok"  # written last: a cache folder without it is incomplete


def _load_converted(folder: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)


def _save_converted(model, folder: Path) -> None:
    # transformers refuses save_pretrained on a GGUF-loaded model; the dequantized weights are
    # plain float32 tensors, so write them with safetensors and a config without the GGUF flag.
    from safetensors.torch import save_model

    config = model.config.to_dict()
    config.pop("quantization_config", None)
    model.config.__class__.from_dict(config).save_pretrained(folder)
    save_model(model, str(folder / "model.safetensors"))  # handles tied embeddings


def load_causal_lm(gguf: Path, cache_dir: Path | None = None):
    """The GGUF as a float32 transformers model, via the sha256-keyed conversion cache."""
    from transformers import AutoModelForCausalLM

    cache = (cache_dir or default_cache_dir()) / "backbones" / sha256_file(gguf)[:32]
    if (cache / _DONE).is_file():
        try:
            return _load_converted(cache)
        except Exception as e:  # corrupt or from an incompatible version: rebuild it
            log.warning("backbone cache %s unreadable (%s); converting the GGUF again", cache, e)
    shutil.rmtree(cache, ignore_errors=True)
    log.info("dequantizing %s with transformers (once per file)", gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                 dtype=torch.float32)
    tmp = None
    try:  # write to a temp folder, then rename: readers never see half a cache
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cache.parent, prefix=".tmp-"))
        _save_converted(model, tmp)
        (tmp / _DONE).write_text(gguf.name + "\n")
        tmp.rename(cache)
    except OSError as e:  # a read-only home must not stop training
        log.warning("could not cache the converted backbone at %s: %s", cache, e)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return model


class TorchBackbone:
    """A frozen causal LM fed with [token embeddings | soft prompts] per `Layout`."""

    def __init__(self, model, tokenizer: Tokenizer, path: Path):
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer  # the llama.cpp tokenizer: same ids as serving
        self.path = path
        self.token_embeddings = model.get_input_embeddings().weight  # (V, d), frozen
        self.n_embd = self.token_embeddings.shape[1]
        # Soft prompts are scaled to this: the RMS of the values inputs_embeds receives.
        self.embedding_rms = float(self.token_embeddings.pow(2).mean().sqrt())
        if self.token_embeddings.shape[0] < tokenizer.n_vocab:
            raise ValueError(f"{path}: embedding table has {self.token_embeddings.shape[0]} "
                             f"rows but the tokenizer {tokenizer.n_vocab} tokens")

    @classmethod
    def from_gguf(cls, path: str | Path | None = None, cache_dir: str | Path | None = None
                  ) -> "TorchBackbone":
        gguf = resolve_gguf(path)
        model = load_causal_lm(gguf, Path(cache_dir) if cache_dir else None)
        return cls(model, Tokenizer.from_gguf(gguf), gguf)

    @property
    def chat_template(self) -> str | None:
        return self.tokenizer.chat_template

    def embed(self, layouts: Sequence[Layout], soft_prompts: torch.Tensor | None = None):
        """inputs_embeds (B, T, d), attention_mask (B, T), labels (B, T); right-padded.

        soft_prompts: (B, P, d) with P == every layout's n_soft, or None when P == 0.
        """
        if soft_prompts is not None:
            self._check_soft(soft_prompts, len(layouts))
            soft_prompts = soft_prompts.to(self.token_embeddings)  # dtype/device; keeps grads
        rows, labels = [], []
        for b, layout in enumerate(layouts):
            parts, used = [], 0
            for seg in layout.segments:
                if seg.kind == "soft":
                    parts.append(soft_prompts[b, used: used + seg.n_soft])
                    used += seg.n_soft
                else:
                    ids = torch.tensor(seg.ids, device=self.token_embeddings.device)
                    parts.append(self.token_embeddings[ids])
            if used != (0 if soft_prompts is None else soft_prompts.shape[1]):
                raise ValueError(f"layout {b} has {used} soft-prompt slots but soft_prompts "
                                 f"has shape {tuple(getattr(soft_prompts, 'shape', ()))}")
            rows.append(torch.cat(parts))
            labels.append(torch.tensor(layout.labels()))
        T = max(len(r) for r in rows)
        emb = torch.zeros(len(rows), T, self.n_embd, dtype=rows[0].dtype, device=rows[0].device)
        mask = torch.zeros(len(rows), T, dtype=torch.long, device=emb.device)
        lab = torch.full((len(rows), T), -100, dtype=torch.long, device=emb.device)
        for b, (r, l) in enumerate(zip(rows, labels)):
            emb[b, : len(r)] = r
            mask[b, : len(r)] = 1
            lab[b, : len(l)] = l
        return emb, mask, lab

    def _check_soft(self, soft: torch.Tensor, batch: int) -> None:
        if soft.ndim != 3 or soft.shape[0] != batch or soft.shape[2] != self.n_embd:
            raise ValueError(f"soft_prompts shape {tuple(soft.shape)}, expected "
                             f"({batch}, P, {self.n_embd})")
        if not torch.isfinite(soft).all():
            raise ValueError("soft_prompts contain NaN or inf values")

    def _hidden(self, emb, mask):
        return self.model.get_decoder()(inputs_embeds=emb, attention_mask=mask).last_hidden_state

    def loss(self, layouts: Sequence[Layout], soft_prompts: torch.Tensor | None) -> torch.Tensor:
        """Mean cross-entropy over all target tokens of the batch; grads flow to soft_prompts."""
        emb, mask, labels = self.embed(layouts, soft_prompts)
        hidden = self._hidden(emb, mask)                       # (B, T, d)
        target = labels[:, 1:]                                 # position t predicts t + 1
        keep = target != -100
        if not keep.any():
            raise ValueError("no target tokens: build the layouts with target=...")
        logits = self.model.get_output_embeddings()(hidden[:, :-1][keep])  # (N, V) only
        return F.cross_entropy(logits.float(), target[keep])

    @torch.no_grad()
    def last_logits(self, layouts: Sequence[Layout], soft_prompts: torch.Tensor | None = None
                    ) -> torch.Tensor:
        """Logits (B, V) after each layout's last position."""
        emb, mask, _ = self.embed(layouts, soft_prompts)
        hidden = self._hidden(emb, mask)
        last = mask.sum(1) - 1
        return self.model.get_output_embeddings()(hidden[torch.arange(len(last)), last]).float()

    @torch.no_grad()
    def generate_greedy(self, layout: Layout, soft_prompts: torch.Tensor | None = None,
                        max_tokens: int = 32, ignore_eos: bool = False) -> list[int]:
        """Greedy continuation (token ids, end-of-turn excluded); soft_prompts: (P, d).
        ignore_eos decodes exactly max_tokens (benchmarks)."""
        soft = None if soft_prompts is None else torch.as_tensor(
            soft_prompts, device=self.token_embeddings.device)[None]
        emb, _, _ = self.embed([layout.prompt()], soft)
        out = self.model(inputs_embeds=emb, use_cache=True, logits_to_keep=1)
        # transformers 5.x renamed past_key_values to cache (argument and output field)
        key = "cache" if "cache" in inspect.signature(self.model.forward).parameters \
            else "past_key_values"
        ids: list[int] = []
        while max_tokens > 0:
            tok = int(out.logits[0, -1].argmax())
            if self.tokenizer.is_eog(tok) and not ignore_eos:
                break
            ids.append(tok)
            if len(ids) >= max_tokens:
                break
            out = self.model(input_ids=torch.tensor([[tok]], device=emb.device),
                             use_cache=True, **{key: getattr(out, key)})
        return ids
