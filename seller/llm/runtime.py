"""Serving: llama.cpp decodes a `Layout` whose soft prompts go in as input embeddings.

`SoftPromptLLM` is the public face. Each call decodes the layout's segments as consecutive
batches (tokens, embeddings, tokens...) with continuous positions, then samples. The KV cache
keeps the longest prefix the previous call left in it (the chat prefix; for the same client,
its whole history), so only the rest is decoded again. `generate_many` / `stream_many` decode
the prefix the layouts share once on sequence 0, then the first sequence's own tail (so its
first words can be shown at once); each other sequence gets a copy of every cell it shares
with the first (`llama_memory_seq_cp`: the common prefix, and more when it cites the same
event), then the other tails are prefilled together, and then one token per live sequence
is decoded per batch.

Under greedy sampling each batch also carries up to `draft_tokens` guessed next tokens per
sequence (prompt lookup: what followed the last n-gram where it occurred before in the
sequence's own prompt or output; explanations copy item names and dates from their facts).
The logits at each guess check it: tokens are accepted while the greedy choice equals the
guess, the rest are dropped from the KV cache. Every token is still the greedy choice at its
position, so the output is the one plain decoding gives; a sequence advances by up to
1 + draft_tokens tokens per batch.

With `SamplingParams.numbers_from_prompt` each sample first passes through a `NumberGuard`
(seller.llm.sampling): digits that would write a number the sequence's prompt does not hold get
-inf logits, in llama.cpp's own logits buffer, before the sampler chain reads them.

Parallel output equals one-at-a-time output, and output with guesses equals output without,
under greedy decoding on the f16 serving weights (tested) -- up to float rounding: a position's
logits can differ in the last bits with the batch it was computed in, which flips a greedy
near-tie now and then (re-running the 32-case evaluation after the cell borrowing changed its
SELLER ROUGE-L by 0.01). On Q4_1 weights ("as-is") batch composition moves logits by up to 0.5
through 8-bit activation quantization and flips near-ties far more often.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from seller.llm import resolve_gguf
from seller.llm.layout import Layout
from seller.llm.native import Batch, Closeable, Context, LoraAdapter, Model, Sampler, lib
from seller.llm.sampling import NumberGuard, SamplingParams, StopMatcher
from seller.llm.tokenizer import Detokenizer, Tokenizer
from seller.llm.weights import serving_gguf

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunStats:
    """What the last generate / stream / generate_many call did (for latency reports)."""

    n_prompt: tuple[int, ...]     # prompt positions per sequence (after any trimming)
    n_shared: int                 # prefix positions decoded once and shared in the KV cache
    n_reused: int                 # of those, positions kept in the KV cache from the last call
    n_generated: tuple[int, ...]  # tokens sampled per sequence (end-of-turn excluded)
    first_token_s: float          # seconds from the call to the first sampled token
    total_s: float                # seconds for the whole call
    n_steps: int = 0              # decode calls after the prefill (fewer than tokens: guesses)
    n_own: tuple[int, ...] = ()   # prompt positions each sequence decoded itself (its tail)


@dataclass
class _Seq:
    """One sequence being decoded: its runs of positions ('tokens' ids | 'embd' rows)."""

    runs: list  # [(kind, data, pos0)], data: np.ndarray of ids [n] or rows [n, d]
    n_positions: int

    def keys(self) -> list:
        """One comparable key per position, to find the prefix sequences share."""
        out = []
        for kind, data, _ in self.runs:
            out += data.tolist() if kind == "tokens" else [row.tobytes() for row in data]
        return out

    def lookup_tokens(self) -> list:
        """The prompt's token ids, None at soft-prompt positions (for prompt lookup)."""
        out = []
        for kind, data, _ in self.runs:
            out += data.tolist() if kind == "tokens" else [None] * len(data)
        return out

    def span(self, a: int, b: int) -> list:
        """The runs clipped to positions [a, b)."""
        out = []
        for kind, data, pos0 in self.runs:
            lo, hi = max(a, pos0), min(b, pos0 + len(data))
            if lo < hi:
                out.append((kind, data[lo - pos0: hi - pos0], lo))
        return out


def draft(seen: list, k: int, longest: int = 4, shortest: int = 2) -> list[int]:
    """Prompt lookup: up to k tokens that followed the latest earlier occurrence of the longest
    n-gram (longest..shortest) that `seen` ends with; [] when none occurs. None marks a
    soft-prompt position, which never matches and ends a guess."""
    if k <= 0:
        return []
    for n in range(longest, shortest - 1, -1):
        key = seen[-n:]
        if len(seen) <= n or None in key:
            continue
        for start in range(len(seen) - n - 1, -1, -1):
            if seen[start: start + n] == key:
                guess = seen[start + n: start + n + k]
                return guess[: guess.index(None)] if None in guess else guess
    return []


class SoftPromptLLM(Closeable):
    """A GGUF served by llama.cpp, with soft prompts fed as embeddings.

    n_ctx: KV cells shared by all parallel sequences (unified cache); n_threads: CPU threads
    (default: all cores); n_gpu_layers: 0 = CPU, -1 = all layers on GPU (CUDA build needed);
    n_seq_max: most sequences `generate_many` runs at once; n_batch: positions per decode call;
    weights: "f16" serves the GGUF's weights widened to f16 (faster on CPU, closer to training;
    see seller.llm.weights), "as-is" serves the file's own quantization; lora: a GGUF LoRA
    adapter applied on top (one trained with the adapter, see seller.llm.lora); draft_tokens:
    prompt-lookup guesses checked per sequence and batch under greedy sampling (0 = off);
    extra_buffers: "auto" | "on" | "off", whether weights may use llama.cpp's extra CPU buffer
    types (seller.llm.buffers: off where the AMX path would crash).
    `path` is the GGUF given (or resolved); `served_path` the file llama.cpp loaded;
    `weight_buffers` where its weights went and `buffer_decision` why.
    Not thread-safe by design; calls are serialised by a lock. Use `with` or `close()`.
    """

    def __init__(self, gguf_path: str | Path | None = None, *, n_ctx: int = 2048,
                 n_threads: int | None = None, n_gpu_layers: int = 0, n_seq_max: int = 8,
                 n_batch: int = 512, weights: str = "f16", lora: str | Path | None = None,
                 draft_tokens: int = 3, extra_buffers: str = "auto"):
        if not (1 <= n_seq_max <= n_batch and n_ctx >= 16):
            raise ValueError(f"need 1 <= n_seq_max <= n_batch and n_ctx >= 16; got "
                             f"n_seq_max={n_seq_max}, n_batch={n_batch}, n_ctx={n_ctx}")
        if not 0 <= draft_tokens <= n_batch // n_seq_max - 1:
            raise ValueError(f"draft_tokens must be in [0, n_batch // n_seq_max - 1] = "
                             f"[0, {n_batch // n_seq_max - 1}], got {draft_tokens}")
        self.draft_tokens = draft_tokens
        self.path = resolve_gguf(gguf_path)
        self.served_path = serving_gguf(self.path, weights)
        if n_gpu_layers != 0 and not lib().llama_supports_gpu_offload():
            log.warning("n_gpu_layers=%d but this llama.cpp build has no GPU support: running "
                        "on CPU (rebuild with CMAKE_ARGS=-DGGML_CUDA=on)", n_gpu_layers)
        self._model = Model(self.served_path, n_gpu_layers=n_gpu_layers, extra_buffers=extra_buffers)
        self.weight_buffers, self.buffer_decision = self._model.weight_buffers, self._model.buffer_decision
        self.tokenizer = Tokenizer(self._model)
        self.n_embd = self._model.n_embd
        self.n_seq_max = n_seq_max
        self._ctx = Context(self._model, n_ctx=n_ctx, n_batch=n_batch, n_seq_max=n_seq_max,
                            n_threads=n_threads or os.cpu_count() or 1)
        self.n_ctx = self._ctx.n_ctx
        self.lora_path = Path(lora) if lora else None
        self._lora = LoraAdapter(self._model, self.lora_path) if lora else None
        if self._lora is not None:
            self._ctx.use_lora(self._lora)
        self._tokens = Batch(n_batch)
        self._embds = Batch(n_batch, n_embd=self.n_embd)
        self._lock = threading.Lock()
        self.last_run: RunStats | None = None
        self._kv_keys: list = []  # per position: what sequence 0's KV cells hold now
        self._number_guard: NumberGuard | None = None  # built on first use (reads the vocabulary)

    # -- lifetime ----------------------------------------------------------------------
    def close(self) -> None:
        for h in ("_tokens", "_embds", "_ctx", "_lora", "_model"):  # all before the model they use
            if getattr(self, h, None) is not None:
                getattr(self, h).close()

    def reset(self) -> None:
        """Forget the KV cache: the next call decodes its whole prompt (cold-start timings)."""
        with self._lock:
            self._ctx.clear()
            self._kv_keys = []

    # -- public API ----------------------------------------------------------------------
    def tokenize(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    def stream(self, layout: Layout, soft_prompts=None, *, max_tokens: int = 64,
               sampling: SamplingParams = SamplingParams(), stop: Sequence[str] = ()
               ) -> Iterator[str]:
        """Yield the explanation's text piece by piece (soft_prompts: [P, n_embd])."""
        for _, piece in self._run([layout], [soft_prompts], max_tokens, sampling, stop):
            yield piece

    def generate(self, layout: Layout, soft_prompts=None, *, max_tokens: int = 64,
                 sampling: SamplingParams = SamplingParams(), stop: Sequence[str] = ()) -> str:
        """The whole explanation (== "".join(stream(...)))."""
        return "".join(self.stream(layout, soft_prompts, max_tokens=max_tokens,
                                   sampling=sampling, stop=stop))

    def generate_many(self, layouts: Sequence[Layout], soft_prompts=None, *,
                      max_tokens: int = 64, sampling: SamplingParams = SamplingParams(),
                      stop: Sequence[str] = ()) -> list[str]:
        """One text per layout, decoded as parallel sequences sharing their common prefix.

        soft_prompts: None, or one [P, n_embd] per layout (a list or an [N, P, n_embd] array).
        Sequence i samples with seed sampling.seed + i. More than n_seq_max -> ValueError.
        """
        out = [""] * len(layouts)
        for s, piece in self.stream_many(layouts, soft_prompts, max_tokens=max_tokens,
                                         sampling=sampling, stop=stop):
            out[s] += piece
        return out

    def stream_many(self, layouts: Sequence[Layout], soft_prompts=None, *,
                    max_tokens: int = 64, sampling: SamplingParams = SamplingParams(),
                    stop: Sequence[str] = ()) -> Iterator[tuple[int, str]]:
        """generate_many, streamed: yields (layout index, text piece) as tokens come. The
        first layout's first words come before the other layouts are prefilled."""
        softs = [None] * len(layouts) if soft_prompts is None else list(soft_prompts)
        if len(softs) != len(layouts):
            raise ValueError(f"{len(layouts)} layouts but {len(softs)} soft-prompt arrays")
        return self._run(layouts, softs, max_tokens, sampling, stop)

    def last_logits(self, layout: Layout, soft_prompts=None) -> np.ndarray:
        """Logits [n_vocab] after the layout's last position, a training target included
        (for parity checks against TorchBackbone.last_logits)."""
        with self._lock:
            seq = self._prepare([layout], [soft_prompts], max_tokens=0, keep_target=True)[0]
            self._ctx.clear()
            self._kv_keys = []
            got = []
            self._prefill({0: seq.runs}, lambda _, i: got.append(self._ctx.logits(i)))
            return got[0]

    # -- internals -----------------------------------------------------------------------
    def _soft_array(self, layout: Layout, soft, where: str) -> np.ndarray | None:
        if layout.n_soft == 0:
            if soft is not None and np.size(soft):
                raise ValueError(f"{where}: layout has no soft-prompt slots but soft prompts "
                                 "were given")
            return None
        if soft is None:
            raise ValueError(f"{where}: layout has {layout.n_soft} soft-prompt slots but no "
                             "soft prompts were given")
        if hasattr(soft, "detach"):  # a torch tensor from the adapter
            soft = soft.detach().float().cpu().numpy()
        arr = np.asarray(soft, dtype=np.float32)
        if arr.shape != (layout.n_soft, self.n_embd):
            raise ValueError(f"{where}: soft prompts have shape {tuple(arr.shape)}, expected "
                             f"({layout.n_soft}, {self.n_embd}) = (P slots, model n_embd)")
        if not np.isfinite(arr).all():
            raise ValueError(f"{where}: soft prompts contain NaN or inf values")
        return arr

    def _prepare(self, layouts, softs, max_tokens: int, keep_target: bool = False
                 ) -> list[_Seq]:
        if not layouts:
            return []
        if len(layouts) > self.n_seq_max:
            raise ValueError(f"{len(layouts)} parallel sequences requested but this "
                             f"SoftPromptLLM was built with n_seq_max={self.n_seq_max}")
        if max_tokens < 0:
            raise ValueError(f"max_tokens must be >= 0, got {max_tokens}")
        seqs = []
        for k, (layout, soft) in enumerate(zip(layouts, softs)):
            where = f"layout {k}"
            soft = self._soft_array(layout, soft, where)  # check before any trimming
            layout = (layout if keep_target else layout.prompt()).fit(self.n_ctx - max_tokens)
            runs, pos, row = [], 0, 0
            for seg in layout.segments:
                if seg.kind == "soft":
                    runs.append(("embd", soft[row: row + seg.n_soft], pos))
                    row += seg.n_soft
                else:
                    bad = [t for t in seg.ids if not 0 <= t < self._model.n_vocab]
                    if bad:
                        raise ValueError(f"{where}: token id {bad[0]} outside the vocabulary "
                                         f"(n_vocab={self._model.n_vocab})")
                    runs.append(("tokens", np.asarray(seg.ids, dtype=np.int64), pos))
                pos += len(seg)
            seqs.append(_Seq(runs, pos))
        return seqs

    def _keep_kv_prefix(self, keys: list, cap: int) -> int:
        """Trim the KV cache to the longest prefix (<= cap positions) that sequence 0 already
        holds for `keys`, dropping every other sequence; returns its length (0: cleared)."""
        held, n = self._kv_keys, 0
        self._kv_keys = []  # until this call's prefill succeeds
        limit = min(len(held), len(keys), max(cap, 0))
        while n < limit and held[n] == keys[n]:
            n += 1
        L, mem = lib(), self._ctx.memory
        if n == 0 or not L.llama_memory_seq_rm(mem, 0, n, -1):
            self._ctx.clear()
            return 0
        for s in range(1, self.n_seq_max):
            L.llama_memory_seq_rm(mem, s, -1, -1)
        return n

    def _prefill(self, runs_by_seq: dict, on_logits=None) -> None:
        """Decode the runs of one or more sequences ({seq id: runs}) in order: each decode
        call takes the next run of every sequence whose next run has the same kind (tokens or
        embeddings, never both), chunked to the batch capacity. on_logits(seq, row) runs right
        after the batch holding a sequence's last position (before the next decode overwrites
        the logits); None: no logits wanted (a shared prefix)."""
        pending = {s: list(t) for s, t in runs_by_seq.items()}  # (kind, data, pos0) to do
        while any(pending.values()):
            kind = next(p[0][0] for p in pending.values() if p)
            batch = self._embds if kind == "embd" else self._tokens
            batch.clear()
            finals = {}
            for s, runs in pending.items():
                if not runs or runs[0][0] != kind or batch.n == batch.capacity:
                    continue
                _, data, pos0 = runs[0]
                take = min(len(data), batch.capacity - batch.n)
                last = on_logits is not None and take == len(data) and len(runs) == 1
                if kind == "embd":
                    row = batch.add_embeddings(data[:take], pos0, s, logits_last=last)
                else:
                    for j, t in enumerate(data[:take].tolist()):
                        row = batch.add_token(t, pos0 + j, s, logits=last and j == take - 1)
                if last:
                    finals[s] = row
                if take == len(data):
                    runs.pop(0)
                else:
                    runs[0] = (kind, data[take:], pos0 + take)
            self._ctx.decode(batch)
            for s, row in finals.items():
                on_logits(s, row)

    def _run(self, layouts, softs, max_tokens: int, sampling: SamplingParams,
             stop: Sequence[str]) -> Iterator[tuple[int, str]]:
        """Yield (sequence index, text piece) until every sequence has stopped."""
        with self._lock:
            t0 = time.perf_counter()
            seqs = self._prepare(layouts, softs, max_tokens)
            if not seqs or max_tokens == 0:
                return
            keys = [q.keys() for q in seqs]
            shared = 0  # common prefix, leaving each sequence >= 1 own position for its logits
            limit = min(q.n_positions for q in seqs) - 1 if len(seqs) > 1 else 0
            while shared < limit and all(k[shared] == keys[0][shared] for k in keys):
                shared += 1
            drafts = self.draft_tokens if sampling.temperature <= 0 else 0
            need = shared + sum(q.n_positions - shared + max_tokens + drafts for q in seqs)
            if need > self.n_ctx:
                raise ValueError(f"{len(seqs)} sequences need {need} KV cells (shared prefix "
                                 f"{shared}) but n_ctx={self.n_ctx}: raise n_ctx or generate "
                                 "fewer at once")
            ctx = self._ctx
            # keep what sequence 0 already holds of this call's first positions (the same
            # client's history, or at least the chat prefix), leaving >= 1 position to decode
            reused = self._keep_kv_prefix(keys[0], shared if len(seqs) > 1
                                          else seqs[0].n_positions - 1)
            if shared > reused:
                self._prefill({0: seqs[0].span(reused, shared)})
            seen = {s: q.lookup_tokens() for s, q in enumerate(seqs)}  # prompt, then output
            guard, numbers = None, {}
            if sampling.numbers_from_prompt:
                guard = self._number_guard = self._number_guard or NumberGuard(self.tokenizer)
                numbers = {s: guard.numbers(seen[s]) for s in seen}
            samplers = [Sampler(replace(sampling, seed=sampling.seed + s), self._model.n_vocab)
                        for s in range(len(seqs))]
            try:
                nxt: dict[int, int] = {}  # sequence -> its sampled, not yet emitted token
                pos = {s: q.n_positions for s, q in enumerate(seqs)}
                detok = {s: Detokenizer(self.tokenizer) for s in pos}
                stops = {s: StopMatcher(stop) for s in pos}
                count = dict.fromkeys(pos, 0)

                def sample(s: int, row: int) -> None:
                    """Sample sequence s's next token from batch row `row`; seen[s] ends with
                    the token at that row."""
                    if guard is not None:
                        guard.restrict(ctx.logits_view(row), numbers[s],
                                       seen[s][seqs[s].n_positions:])
                    nxt[s] = samplers[s].sample(ctx, row)

                def emit(s: int) -> Iterator[tuple[int, str]]:
                    """Turn sequence s's sampled token into text; retire s when it stops."""
                    tok = nxt[s]
                    done = self.tokenizer.is_eog(tok) and not sampling.ignore_eos
                    if not done:
                        count[s] += 1
                        piece = stops[s].push(detok[s].push(tok))
                        if piece:
                            yield s, piece
                        done = stops[s].stopped or count[s] >= max_tokens
                    if done:
                        tail = stops[s].push(detok[s].flush()) + stops[s].flush()
                        if tail:
                            yield s, tail
                        del nxt[s]

                # sequence 0's tail first and alone: its first words show before the others'
                # tails are prefilled (together)
                borrowed = {0: max(shared, reused)}  # per sequence: prompt positions already in the cache
                self._prefill({0: seqs[0].span(borrowed[0], seqs[0].n_positions)}, sample)
                self._kv_keys = keys[0]  # sequence 0's whole prompt is in the KV cache now
                t_first = time.perf_counter() - t0
                yield from emit(0)
                tails = {}
                for s in range(1, len(seqs)):  # each takes all it shares with sequence 0
                    n, last = shared, min(seqs[s].n_positions - 1, seqs[0].n_positions)
                    while n < last and keys[s][n] == keys[0][n]:
                        n += 1
                    ctx.seq_cp(0, s, 0, n)
                    borrowed[s], tails[s] = n, seqs[s].span(n, seqs[s].n_positions)
                self._prefill(tails, sample)
                for s in sorted(tails):
                    yield from emit(s)
                steps = 0
                while nxt:  # per live sequence: its sampled token, then guesses at what follows
                    batch, fed = self._tokens, {}
                    batch.clear()
                    for s, tok in nxt.items():
                        seen[s].append(tok)
                        fed[s] = [(t, batch.add_token(t, pos[s] + j, s, logits=True))
                                  for j, t in enumerate([tok] + draft(seen[s], drafts))]
                    ctx.decode(batch)
                    steps += 1
                    for s in sorted(nxt):
                        for j, (_, row) in enumerate(fed[s]):
                            pos[s] += 1  # fed[s][j] is in the KV cache now
                            sample(s, row)
                            guessed = j + 1 < len(fed[s]) and nxt[s] == fed[s][j + 1][0]
                            if not guessed:
                                break
                            seen[s].append(nxt[s])  # right guess: its KV cell stays valid
                            yield from emit(s)
                            if s not in nxt:
                                break
                        if s in nxt:
                            if len(fed[s]) > 1:  # drop the cells of the wrong guesses
                                lib().llama_memory_seq_rm(ctx.memory, s, pos[s], -1)
                            yield from emit(s)
                self.last_run = RunStats(tuple(q.n_positions for q in seqs), shared, reused,
                                         tuple(count.values()), t_first,
                                         time.perf_counter() - t0, steps,
                                         tuple(q.n_positions - borrowed[s] for s, q in enumerate(seqs)))
            finally:
                for smp in samplers:
                    smp.close()
