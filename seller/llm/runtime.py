"""Serving: llama.cpp decodes a `Layout` whose soft prompts go in as input embeddings.

`SoftPromptLLM` is the public face. One worker thread owns the llama.cpp context; every call
(`submit`, and `generate` / `stream` / `generate_many` / `stream_many` on top of it) queues a
request, and the worker decodes all live requests' sequences in the same decode calls
(continuous batching: a waiting request is admitted between two decode calls as soon as
sequence ids and KV cells are free, and a finished sequence gives both back at once). A
request decodes the layouts' segments as consecutive batches (tokens, embeddings, tokens...)
with continuous positions, then samples. A cache sequence keeps the last admitted request's
first prompt, so the next request reuses its longest common prefix (the chat prefix; for the
same client, its whole history) and decodes only the rest. Within a request, the prefix its
layouts share is decoded once on its first sequence, then the first sequence's own tail (so
its first words go out at once); each other sequence gets a copy of every cell it shares with
the first (`llama_memory_seq_cp`: the common prefix, and more when it cites the same event),
then the other tails are prefilled together, and from then on each decode call carries one
token per live sequence of every request. A request alone decodes exactly the calls it did
before the worker existed, so its text is unchanged.

Under greedy sampling each batch also carries up to `draft_tokens` guessed next tokens per
sequence (prompt lookup: what followed the last n-gram where it occurred before in the
sequence's own prompt or output; explanations copy item names and dates from their facts).
The logits at each guess check it: tokens are accepted while the greedy choice equals the
guess, the rest are dropped from the KV cache. Every token is still the greedy choice at its
position, so the output is the one plain decoding gives; a sequence advances by up to
1 + draft_tokens tokens per batch (fewer guesses when many sequences are live: GUESS_ROWS).

With `SamplingParams.numbers_from_prompt` each sample first passes through a `NumberGuard`
(seller.llm.sampling): digits that would write a number the sequence's prompt does not hold get
-inf logits, in llama.cpp's own logits buffer, before the sampler chain reads them;
`names_from_prompt` does the same with a `NameGuard` for capitalised words mid-sentence.

Parallel output equals one-at-a-time output, and output with guesses equals output without,
under greedy decoding on the f16 serving weights (tested) -- up to float rounding: a position's
logits can differ in the last bits with the batch it was computed in, which flips a greedy
near-tie now and then (re-running the 32-case evaluation after the cell borrowing changed its
SELLER ROUGE-L by 0.01). On Q4_1 weights ("as-is") batch composition moves logits by up to 0.5
through 8-bit activation quantization and flips near-ties far more often.
"""
from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from seller.llm import resolve_gguf
from seller.llm.layout import Layout
from seller.llm.native import Batch, Closeable, Context, LoraAdapter, Model, Sampler, lib
from seller.llm.sampling import NameGuard, NumberGuard, SamplingParams, StopMatcher
from seller.llm.tokenizer import Detokenizer, Tokenizer
from seller.llm.weights import serving_gguf

log = logging.getLogger(__name__)


# Most rows a decode call fills with guesses. Guesses ride along for free while a call is bound
# by reading the weights (a few sequences); with many sequences live (several requests) the call
# is bound by compute on CPU, and each guess costs about what a kept token saves.
GUESS_ROWS = 64


class BusyError(RuntimeError):
    """Too many requests already wait for the llama.cpp worker: retry shortly."""


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
    n_seq_max: most sequences decoding at once, all requests together (a request of more ->
    ValueError; others wait for free ones); n_batch: positions per decode call;
    max_waiting: requests that may wait for free sequences before `submit` raises
    `BusyError`; weights: "f16" serves the GGUF's weights widened to f16 (faster on CPU,
    closer to training; see seller.llm.weights), "as-is" serves the file's own quantization; lora: a GGUF LoRA
    adapter applied on top (one trained with the adapter, see seller.llm.lora); draft_tokens:
    prompt-lookup guesses checked per sequence and batch under greedy sampling (0 = off);
    extra_buffers: "auto" | "on" | "off", whether weights may use llama.cpp's extra CPU buffer
    types (seller.llm.buffers: off where the AMX path would crash).
    `path` is the GGUF given (or resolved); `served_path` the file llama.cpp loaded;
    `weight_buffers` where its weights went and `buffer_decision` why.
    Thread-safe: one worker thread owns the llama.cpp context and decodes the requests of
    every caller together (see `submit`). Use `with` or `close()`.
    """

    def __init__(self, gguf_path: str | Path | None = None, *, n_ctx: int = 2048,
                 n_threads: int | None = None, n_gpu_layers: int = 0, n_seq_max: int = 8,
                 n_batch: int = 512, weights: str = "f16", lora: str | Path | None = None,
                 draft_tokens: int = 3, max_waiting: int = 16, extra_buffers: str = "auto"):
        if not (1 <= n_seq_max <= n_batch and n_ctx >= 16):
            raise ValueError(f"need 1 <= n_seq_max <= n_batch and n_ctx >= 16; got "
                             f"n_seq_max={n_seq_max}, n_batch={n_batch}, n_ctx={n_ctx}")
        if not 0 <= draft_tokens <= n_batch // n_seq_max - 1:
            raise ValueError(f"draft_tokens must be in [0, n_batch // n_seq_max - 1] = "
                             f"[0, {n_batch // n_seq_max - 1}], got {draft_tokens}")
        self.draft_tokens = draft_tokens
        self.max_waiting = max_waiting
        self._free_slots = list(range(n_seq_max))  # sequence ids no live request holds
        self._live: list[_Group] = []  # admitted requests, oldest first (worker only)
        self._waiting: deque[DecodeRequest] = deque()  # submitted, not yet admitted
        self._queue = threading.Lock()  # guards _waiting, _worker and _closing
        self._closing = False
        self._worker: threading.Thread | None = None  # runs while requests wait or decode
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
        # one sequence id more than callers get: the cache sequence, which keeps the last
        # admitted request's first prompt for the next one to reuse
        self._ctx = Context(self._model, n_ctx=n_ctx, n_batch=n_batch, n_seq_max=n_seq_max + 1,
                            n_threads=n_threads or os.cpu_count() or 1)
        self._cache_seq = n_seq_max
        self.n_ctx = self._ctx.n_ctx
        self.lora_path = Path(lora) if lora else None
        self._lora = LoraAdapter(self._model, self.lora_path) if lora else None
        if self._lora is not None:
            self._ctx.use_lora(self._lora)
        self._tokens = Batch(n_batch)
        self._embds = Batch(n_batch, n_embd=self.n_embd)
        self._lock = threading.Lock()  # held by whoever uses the context: the worker's steps
        self.last_run: RunStats | None = None
        self._kv_keys: list = []  # per position: what the cache sequence's KV cells hold now
        self._guards: dict[type, NumberGuard | NameGuard] = {}  # built on first use (they read the vocabulary)

    # -- lifetime ----------------------------------------------------------------------
    def close(self) -> None:
        """Stop the worker (requests still waiting or decoding get a RuntimeError), then free
        the llama.cpp objects."""
        if hasattr(self, "_queue"):  # not when __init__ failed before that
            self._stop_worker()
        for h in ("_tokens", "_embds", "_ctx", "_lora", "_model"):  # all before the model they use
            if getattr(self, h, None) is not None:
                getattr(self, h).close()

    def _stop_worker(self) -> None:
        with self._queue:
            self._closing = True
            waiting, self._waiting = list(self._waiting), deque()
            worker = self._worker
        if worker is not None:
            worker.join()
        closed = RuntimeError("the SoftPromptLLM was closed before this request finished")
        for req in waiting:
            req._out.put(closed)
        for g in list(self._live):
            self._release(g, closed)

    @contextlib.contextmanager
    def _idle_context(self):
        """The context to itself, for calls that rewrite the whole KV cache (only between
        requests: a live one would lose its cells)."""
        with self._lock:
            if self._live:
                raise RuntimeError(f"{len(self._live)} requests are decoding: reset() and "
                                   "last_logits() run only between requests")
            yield

    def reset(self) -> None:
        """Forget the KV cache: the next call decodes its whole prompt (cold-start timings)."""
        with self._idle_context():
            self._ctx.clear()
            self._kv_keys = []

    # -- public API ----------------------------------------------------------------------
    def tokenize(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    def stream(self, layout: Layout, soft_prompts=None, *, max_tokens: int = 64,
               sampling: SamplingParams = SamplingParams(), stop: Sequence[str] = ()
               ) -> Iterator[str]:
        """Yield the explanation's text piece by piece (soft_prompts: [P, n_embd])."""
        for _, piece in self.stream_many([layout], [soft_prompts], max_tokens=max_tokens,
                                         sampling=sampling, stop=stop):
            if piece:  # not the end-of-sequence mark: one text, its end is the stream's
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
        """generate_many, streamed: yields (layout index, text piece) as tokens come, and
        (index, "") once that layout's text is over. The
        first layout's first words come before the other layouts are prefilled. Submitted on
        the first next(); stopping early (closing the iterator) drops the request."""
        yield from self.submit(layouts, soft_prompts, max_tokens=max_tokens, sampling=sampling,
                               stop=stop)

    def submit(self, layouts: Sequence[Layout], soft_prompts=None, *, max_tokens: int = 64,
               sampling: SamplingParams = SamplingParams(), stop: Sequence[str] = ()
               ) -> "DecodeRequest":
        """Queue layouts for the worker, which decodes them together with every other
        caller's (continuous batching: a request joins between two decode calls of the live
        ones, and its first layout's first words come out before its other layouts are
        prefilled). Iterate the returned request for its (layout index, piece) pairs.
        BusyError when max_waiting requests already wait for free sequences."""
        softs = [None] * len(layouts) if soft_prompts is None else list(soft_prompts)
        if len(softs) != len(layouts):
            raise ValueError(f"{len(layouts)} layouts but {len(softs)} soft-prompt arrays")
        req = DecodeRequest(layouts, softs, max_tokens, sampling, tuple(stop))
        with self._queue:
            if self._closing:
                raise RuntimeError("this SoftPromptLLM is closed")
            if len(self._waiting) >= self.max_waiting:
                raise BusyError(f"{len(self._waiting)} requests already wait for the llama.cpp "
                                f"worker (max_waiting={self.max_waiting}); retry shortly")
            self._waiting.append(req)
            if self._worker is None:
                self._worker = threading.Thread(target=self._serve, name="llama.cpp worker",
                                                daemon=True)
                self._worker.start()
        return req

    def last_logits(self, layout: Layout, soft_prompts=None) -> np.ndarray:
        """Logits [n_vocab] after the layout's last position, a training target included
        (for parity checks against TorchBackbone.last_logits)."""
        with self._idle_context():
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

    def guards(self, sampling: SamplingParams) -> list:
        """The decoding constraints `sampling` asks for, each built once per model."""
        wanted = [NumberGuard] * sampling.numbers_from_prompt + [NameGuard] * sampling.names_from_prompt
        for kind in wanted:
            if kind not in self._guards:
                self._guards[kind] = kind(self.tokenizer)
        return [self._guards[kind] for kind in wanted]

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


    # -- the decode worker: every request's sequences advance in the same decode calls ------
    def _serve(self) -> None:
        """The worker thread: steps while requests wait or decode, then ends (the next submit
        starts another), so an idle SoftPromptLLM holds no thread."""
        while True:
            with self._queue:
                if self._closing or not (self._waiting or self._live):
                    self._worker = None
                    return
            with self._lock:
                try:
                    self._step()
                except Exception as e:  # a fault outside any one request: fail the live ones, go on
                    log.exception("llama.cpp worker step failed")
                    for g in list(self._live):
                        self._release(g, e)

    def _step(self) -> None:
        """Drop abandoned requests, admit waiting ones that fit (prefix and first tail: their
        first words), prefill the other tails of those just admitted, then one decode call
        advancing every live sequence of every request."""
        for g in [g for g in self._live if g.req.cancelled]:
            self._release(g)
        for g in self._admissible():
            self._guarded([g], self._admit)  # one by one: a failed admission fails only its own
        tails = [g for g in self._live if g.phase == "tails"]
        if tails:
            self._guarded(tails, self._prefill_tails)
        decoding = [g for g in self._live if g.phase == "decoding"]
        if decoding:
            self._guarded(decoding, self._decode_step)

    def _guarded(self, groups: list["_Group"], work) -> None:
        """Run work(groups); an exception fails those requests only (their consumers get it)."""
        try:
            work(groups)
        except Exception as e:
            for g in groups:
                if g in self._live:
                    self._release(g, e)

    def _admissible(self) -> list["_Group"]:
        """Waiting requests (first come, first served) that fit beside the live ones: enough
        free sequence ids and KV cells. A request that fails its checks gets its error now."""
        out = []
        while True:
            with self._queue:
                if not self._waiting:
                    return out
                req = self._waiting[0]
                if req.cancelled:
                    self._waiting.popleft()
                    req._out.put(_END)  # for a consumer that cancelled and still reads
                    continue
            try:
                g = req._group or _Group.plan(self, req)
            except Exception as e:  # bad input: the caller's error, not the worker's
                with self._queue:
                    self._waiting.popleft()
                req._out.put(e)
                continue
            if g is None:  # nothing to decode
                with self._queue:
                    self._waiting.popleft()
                req._out.put(_END)
                continue
            req._group = g
            reserved = sum(h.need for h in self._live + out)
            if len(g.seqs) > len(self._free_slots) - sum(len(h.seqs) for h in out) or \
                    reserved + g.need > self.n_ctx:
                return out  # waits for sequences to finish
            with self._queue:
                self._waiting.popleft()
            out.append(g)

    def _reuse_cached_prefix(self, keys: list, cap: int, slot: int, alone: bool) -> int:
        """Give `slot` the longest prefix (<= cap positions) of `keys` that the cache sequence
        holds (the last admitted request's first prompt), dropping the rest of it; returns its
        length (0: none). alone: no other request is live, so a miss clears the whole cache."""
        held, n = self._kv_keys, 0
        self._kv_keys = []  # until this admission's prefill succeeds
        limit = min(len(held), len(keys), max(cap, 0))
        while n < limit and held[n] == keys[n]:
            n += 1
        L, mem, cache = lib(), self._ctx.memory, self._cache_seq
        if n == 0 or not L.llama_memory_seq_rm(mem, cache, n, -1):
            if alone:
                self._ctx.clear()
            else:
                L.llama_memory_seq_rm(mem, cache, -1, -1)
            return 0
        self._ctx.seq_cp(cache, slot, 0, n)
        return n

    def _admit(self, groups: list["_Group"]) -> None:
        """Take sequence ids, decode the prefix the request's layouts share (beyond what the
        cache holds) and the first layout's own tail: its first words go out now."""
        g, = groups
        alone = not self._live
        self._live.append(g)
        g.slots = [self._free_slots.pop(0) for _ in g.seqs]  # lowest ids first
        g.held = set(range(len(g.seqs)))
        first, seq0 = g.slots[0], g.seqs[0]
        g.reused = self._reuse_cached_prefix(g.keys[0], g.shared if len(g.seqs) > 1
                                             else seq0.n_positions - 1, first, alone)
        if g.shared > g.reused:
            self._prefill({first: seq0.span(g.reused, g.shared)})
        g.borrowed[0] = max(g.shared, g.reused)
        self._prefill({first: seq0.span(g.borrowed[0], seq0.n_positions)},
                      lambda _, row: g.sample(0, row))
        self._ctx.seq_cp(first, self._cache_seq, 0, seq0.n_positions)
        self._kv_keys = g.keys[0]  # the cache sequence mirrors this whole first prompt now
        g.t_first = time.perf_counter() - g.req.t0
        g.emit(0)
        if len(g.seqs) > 1:
            g.phase = "tails"
        else:
            self._start_decoding(g)

    def _prefill_tails(self, groups: list["_Group"]) -> None:
        """Every other layout of these requests takes all it shares with the request's first
        layout, then their tails are prefilled together."""
        tails, owner = {}, {}
        for g in groups:
            keys0, n0 = g.keys[0], g.seqs[0].n_positions
            for s in range(1, len(g.seqs)):
                n, last = g.shared, min(g.seqs[s].n_positions - 1, n0)
                while n < last and g.keys[s][n] == keys0[n]:
                    n += 1
                self._ctx.seq_cp(g.slots[0], g.slots[s], 0, n)
                g.borrowed[s] = n
                tails[g.slots[s]] = g.seqs[s].span(n, g.seqs[s].n_positions)
                owner[g.slots[s]] = (g, s)
        self._prefill(tails, lambda slot, row: owner[slot][0].sample(owner[slot][1], row))
        for g in groups:
            for s in range(1, len(g.seqs)):
                g.emit(s)
            self._start_decoding(g)

    def _start_decoding(self, g: "_Group") -> None:
        """Prefill done: sequences that already stopped give their cells back (none borrows
        from them any more), and so does each one that stops from now on."""
        g.phase = "decoding"
        for s in sorted(g.held - set(g.nxt)):
            g.free(s)
        if not g.nxt:
            self._release(g)

    def _decode_step(self, groups: list["_Group"]) -> None:
        """One decode call: per live sequence its sampled token, then guesses at what follows
        (prompt lookup, fewer per sequence when many are live: GUESS_ROWS); guesses are kept
        while the greedy choice agrees."""
        batch, fed = self._tokens, {}
        batch.clear()
        guesses = max(0, GUESS_ROWS // sum(len(g.nxt) for g in groups) - 1)
        for g in groups:
            for s, tok in g.nxt.items():
                g.seen[s].append(tok)
                fed[g, s] = [(t, batch.add_token(t, g.pos[s] + j, g.slots[s], logits=True))
                             for j, t in enumerate([tok] + draft(g.seen[s], min(g.drafts, guesses)))]
        self._ctx.decode(batch)
        for g in groups:
            g.steps += 1
            for s in sorted(g.nxt):
                for j, (_, row) in enumerate(fed[g, s]):
                    g.pos[s] += 1  # fed[g, s][j] is in the KV cache now
                    g.sample(s, row)
                    guessed = j + 1 < len(fed[g, s]) and g.nxt[s] == fed[g, s][j + 1][0]
                    if not guessed:
                        break
                    g.seen[s].append(g.nxt[s])  # right guess: its KV cell stays valid
                    g.emit(s)
                    if s not in g.nxt:
                        break
                if s in g.nxt:
                    if len(fed[g, s]) > 1:  # drop the cells of the wrong guesses
                        lib().llama_memory_seq_rm(self._ctx.memory, g.slots[s], g.pos[s], -1)
                    g.emit(s)
            if not g.nxt:
                self._release(g)

    def _release(self, g: "_Group", error: BaseException | None = None) -> None:
        """Retire a request: done, abandoned, or failed (`error` goes to its consumer)."""
        self._live.remove(g)
        for s in sorted(g.held):
            g.free(s)
        for smp in g.samplers:
            smp.close()
        if error is not None:
            # its cells may be half written: the cache sequence must not offer them again
            lib().llama_memory_seq_rm(self._ctx.memory, self._cache_seq, -1, -1)
            self._kv_keys = []
            g.req._out.put(error)
            return
        if not g.req.cancelled:
            g.req.stats = self.last_run = g.stats()
        g.req._out.put(_END)


_END = object()  # end of a request's pieces


class DecodeRequest:
    """One call's layouts in the shared decode loop (`SoftPromptLLM.submit`). Iterate for
    (layout index, text piece) as tokens come; an error of this request is raised here.
    `cancel()` -- or leaving the iteration early -- drops it and frees its sequences."""

    def __init__(self, layouts, softs, max_tokens: int, sampling: SamplingParams,
                 stop: tuple[str, ...]):
        self.layouts, self.softs = list(layouts), softs
        self.max_tokens, self.sampling, self.stop = max_tokens, sampling, stop
        self.t0 = time.perf_counter()
        self.stats: RunStats | None = None  # set once every sequence has stopped
        self._out: queue.SimpleQueue = queue.SimpleQueue()
        self._cancelled = threading.Event()
        self._group: _Group | None = None  # the worker's plan, once it has read the request

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        """Drop the request: the worker frees its sequences before its next decode call."""
        self._cancelled.set()

    def __iter__(self) -> Iterator[tuple[int, str]]:
        try:
            while (item := self._out.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.cancel()  # a no-op once finished; a consumer that stops early frees its cells


class _Group:
    """The worker's state for one request: its sequences, their KV ids, samplers, output."""

    def __init__(self, llm: SoftPromptLLM, req: DecodeRequest, seqs: list[_Seq]):
        self.llm, self.req, self.seqs = llm, req, seqs
        self.keys = [q.keys() for q in seqs]
        shared = 0  # common prefix, leaving each sequence >= 1 own position for its logits
        limit = min(q.n_positions for q in seqs) - 1 if len(seqs) > 1 else 0
        while shared < limit and all(k[shared] == self.keys[0][shared] for k in self.keys):
            shared += 1
        self.shared = shared
        sampling, max_tokens = req.sampling, req.max_tokens
        self.drafts = llm.draft_tokens if sampling.temperature <= 0 else 0
        self.need = shared + sum(q.n_positions - shared + max_tokens + self.drafts for q in seqs)
        if self.need > llm.n_ctx:
            raise ValueError(f"{len(seqs)} sequences need {self.need} KV cells (shared prefix "
                             f"{shared}) but n_ctx={llm.n_ctx}: raise n_ctx or generate fewer "
                             "at once")
        self.seen = {s: q.lookup_tokens() for s, q in enumerate(seqs)}  # prompt, then output
        self.guards = llm.guards(sampling)
        self.prepared = {s: [g.prepare(self.seen[s]) for g in self.guards] for s in self.seen}
        n_vocab = llm._model.n_vocab
        self.samplers = [Sampler(replace(sampling, seed=sampling.seed + s), n_vocab)
                         for s in range(len(seqs))]
        self.nxt: dict[int, int] = {}  # sequence -> its sampled, not yet emitted token
        self.pos = {s: q.n_positions for s, q in enumerate(seqs)}
        self.detok = {s: Detokenizer(llm.tokenizer) for s in self.pos}
        self.stops = {s: StopMatcher(req.stop) for s in self.pos}
        self.count = dict.fromkeys(self.pos, 0)
        self.slots: list[int] = []  # per sequence: its KV sequence id, once admitted
        self.held: set[int] = set()  # sequences whose id and cells are still taken
        self.borrowed: dict[int, int] = {}  # per sequence: prompt positions already in the cache
        self.reused, self.steps, self.t_first, self.phase = 0, 0, 0.0, "new"

    @classmethod
    def plan(cls, llm: SoftPromptLLM, req: DecodeRequest) -> "_Group | None":
        """The request checked and laid out (ValueError naming the bad input); None when there
        is nothing to decode."""
        seqs = llm._prepare(req.layouts, req.softs, req.max_tokens)
        return cls(llm, req, seqs) if seqs and req.max_tokens > 0 else None

    def free(self, s: int) -> None:
        """Give sequence s's KV cells (those no other sequence uses) and its id back."""
        self.held.discard(s)
        llm = self.llm
        lib().llama_memory_seq_rm(llm._ctx.memory, self.slots[s], -1, -1)
        llm._free_slots.append(self.slots[s])
        llm._free_slots.sort()

    def sample(self, s: int, row: int) -> None:
        """Sample sequence s's next token from batch row `row`; seen[s] ends with the token at
        that row."""
        ctx = self.llm._ctx
        for guard, prepared in zip(self.guards, self.prepared[s]):
            guard.restrict(ctx.logits_view(row), prepared, self.seen[s][self.seqs[s].n_positions:])
        self.nxt[s] = self.samplers[s].sample(ctx, row)

    def emit(self, s: int) -> None:
        """Turn sequence s's sampled token into text for the consumer; retire s when it stops."""
        tok, out = self.nxt[s], self.req._out
        done = self.llm.tokenizer.is_eog(tok) and not self.req.sampling.ignore_eos
        if not done:
            self.count[s] += 1
            piece = self.stops[s].push(self.detok[s].push(tok))
            if piece:
                out.put((s, piece))
            done = self.stops[s].stopped or self.count[s] >= self.req.max_tokens
        if done:
            tail = self.stops[s].push(self.detok[s].flush()) + self.stops[s].flush()
            if tail:
                out.put((s, tail))
            out.put((s, ""))  # sequence s is over (a text piece is never empty)
            del self.nxt[s]
            if self.phase == "decoding":  # before that, its cells may still be borrowed
                self.free(s)

    def stats(self) -> RunStats:
        return RunStats(tuple(q.n_positions for q in self.seqs), self.shared, self.reused,
                        tuple(self.count.values()), self.t_first,
                        time.perf_counter() - self.req.t0, self.steps,
                        tuple(q.n_positions - self.borrowed[s] for s, q in enumerate(self.seqs)))
