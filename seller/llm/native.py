"""One Python class per llama.cpp C handle: each owns its handle, frees it exactly once, and
turns return codes into exceptions. `llama_cpp` (the raw ctypes bindings) is imported lazily
so `import seller.llm` stays cheap.

The shape follows llama-cpp-python's own `_internals.py`; we use the low-level API because the
high-level `Llama` object cannot decode input embeddings (`llama_batch.embd`).
"""
from __future__ import annotations

import ctypes
import functools
import logging
import re
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


@functools.cache
def lib():
    """The raw bindings, with the backend initialised and native logging routed to `log`."""
    import llama_cpp

    @llama_cpp.llama_log_callback
    def _on_log(level, text, user_data):  # llama.cpp is chatty on stderr: route to logging
        if _load_log.lines is not None:
            _load_log.lines.append(text.decode("utf-8", "replace"))
        if level == 4:  # GGML_LOG_LEVEL_ERROR (ggml.h: 1 debug, 2 info, 3 warn, 5 continuation)
            log.warning("llama.cpp: %s", text.decode("utf-8", "replace").rstrip())
        elif level == 3:
            log.debug("llama.cpp: %s", text.decode("utf-8", "replace").rstrip())

    lib._log_callback = _on_log  # keep the ctypes callback alive as long as the library
    llama_cpp.llama_log_set(_on_log, ctypes.c_void_p(0))
    llama_cpp.llama_backend_init()
    return llama_cpp


class _LoadLog:
    """llama.cpp's messages while one model loads: the only place it says where weights went."""

    def __init__(self):
        self.lock = threading.Lock()  # one load at a time, so lines are that load's
        self.lines: list[str] | None = None


_load_log = _LoadLog()
_BUFFER_LINE = re.compile(r"load_tensors:\s+(\S+) model buffer size =\s+([\d.]+) MiB")


class Closeable:
    """Base: a context manager whose `close()` also runs on garbage collection."""

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may already be gone
            pass


class Handle(Closeable):
    """A native handle: `close()` frees it exactly once."""

    _ptr = None

    def _free(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:
        if self._ptr is not None:
            self._free()
            self._ptr = None


class Model(Handle):
    """`llama_model*`: weights (or only the vocabulary) of one GGUF file.

    extra_buffers ("auto" | "on" | "off", overridden by env SELLER_LLAMA_EXTRA_BUFFERS): whether
    weights may go to llama.cpp's extra CPU buffer types; seller.llm.buffers decides and says
    why (`buffer_decision`). `weight_buffers`: buffer type -> MiB, as llama.cpp placed them."""

    def __init__(self, path: Path, *, vocab_only: bool = False, n_gpu_layers: int = 0,
                 extra_buffers: str = "auto"):
        from seller.llm.buffers import current_decision

        L = lib()
        self.buffer_decision = current_decision(extra_buffers)
        params = L.llama_model_default_params()
        params.vocab_only = vocab_only
        params.n_gpu_layers = n_gpu_layers
        params.use_extra_bufts = self.buffer_decision.use_extra
        self.path = Path(path)
        with _load_log.lock:
            _load_log.lines = []
            try:
                self._ptr = L.llama_model_load_from_file(str(path).encode(), params)
            finally:
                lines, _load_log.lines = _load_log.lines, None
        self.weight_buffers: dict[str, float] = {}
        for m in filter(None, map(_BUFFER_LINE.search, lines)):
            self.weight_buffers[m.group(1)] = self.weight_buffers.get(m.group(1), 0) + float(m.group(2))
        if not vocab_only:
            log.info("%s: weights in %s; extra buffer types %s (%s)", self.path.name,
                     self.weight_buffers, "on" if self.buffer_decision.use_extra else "off",
                     self.buffer_decision.reason)
        if not self._ptr:
            raise RuntimeError(f"llama.cpp could not load the GGUF model {path} "
                               "(unsupported architecture or corrupt tensors)")
        self.vocab = L.llama_model_get_vocab(self._ptr)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        self.n_embd = L.llama_model_n_embd(self._ptr)
        self.n_ctx_train = L.llama_model_n_ctx_train(self._ptr)

    def _free(self) -> None:
        lib().llama_model_free(self._ptr)

    def meta(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(1 << 16)
        n = lib().llama_model_meta_val_str(self._ptr, key.encode(), buf, len(buf))
        return None if n < 0 else buf.value.decode("utf-8", "replace")

    def chat_template(self) -> str | None:
        raw = lib().llama_model_chat_template(self._ptr, None)
        return raw.decode("utf-8") if raw else None

    def tokenize(self, text: str, *, special: bool) -> list[int]:
        """Token ids of `text`; `special` parses markers like <|im_start|> as special tokens
        (only for our own template text, never for client data). Never adds BOS."""
        L, data = lib(), text.encode("utf-8")
        cap = len(data) + 8
        buf = (L.llama_token * cap)()
        n = L.llama_tokenize(self.vocab, data, len(data), buf, cap, False, special)
        if n < 0:  # buffer too small: -n is the size needed
            cap = -n
            buf = (L.llama_token * cap)()
            n = L.llama_tokenize(self.vocab, data, len(data), buf, cap, False, special)
        if n < 0:
            raise RuntimeError(f"llama_tokenize failed ({n}) on a text of {len(data)} bytes")
        return list(buf[:n])

    def piece(self, token: int, *, special: bool = False) -> bytes:
        """Raw bytes of one token (may be part of a multi-byte UTF-8 character)."""
        L = lib()
        buf = ctypes.create_string_buffer(64)
        n = L.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = L.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, special)
        return buf.raw[:n]

    def is_eog(self, token: int) -> bool:
        return bool(lib().llama_vocab_is_eog(self.vocab, token))

    def bos(self) -> int:
        return int(lib().llama_vocab_bos(self.vocab))

    def eos(self) -> int:
        return int(lib().llama_vocab_eos(self.vocab))

    def add_bos(self) -> bool:
        return bool(lib().llama_vocab_get_add_bos(self.vocab))


class Context(Handle):
    """`llama_context*`: the KV cache and compute buffers for up to `n_seq_max` sequences."""

    def __init__(self, model: Model, *, n_ctx: int, n_batch: int, n_seq_max: int,
                 n_threads: int):
        L = lib()
        params = L.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = n_batch
        params.n_ubatch = n_batch
        params.n_seq_max = n_seq_max
        params.n_threads = n_threads
        params.n_threads_batch = n_threads
        # One KV buffer shared by all sequences: a copied prefix then costs no memory or
        # compute (cells are tagged with several seq ids), and each sequence may use all n_ctx.
        params.kv_unified = True
        # Flash attention (llama.cpp's "auto" turns it on for CPUs) accumulates in f16. Measured
        # on SmolLM2, 2 cores: 5 parallel explanations 2.63 s with it, 2.33 s without, and its
        # logits sat further from float32 transformers (max |diff| 0.055 vs 0.040).
        params.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_DISABLED
        params.no_perf = True
        self.model = model  # keep the model alive while the context exists
        self._ptr = L.llama_init_from_model(model._ptr, params)
        if not self._ptr:
            raise RuntimeError(f"llama.cpp could not create a context (n_ctx={n_ctx}, "
                               f"n_seq_max={n_seq_max}) for {model.path}")
        self.n_ctx = L.llama_n_ctx(self._ptr)
        self.memory = L.llama_get_memory(self._ptr)

    def _free(self) -> None:
        lib().llama_free(self._ptr)

    def decode(self, batch: "Batch") -> None:
        rc = lib().llama_decode(self._ptr, batch.raw)
        if rc == 1:
            raise RuntimeError("llama_decode: no KV-cache slot left (context full: raise n_ctx "
                               "or shorten the prompt)")
        if rc != 0:
            raise RuntimeError(f"llama_decode failed with code {rc}")

    def logits(self, i: int) -> np.ndarray:
        """Copy of the logits [n_vocab] of output row `i` of the last decoded batch."""
        return self.logits_view(i).copy()

    def logits_view(self, i: int) -> np.ndarray:
        """The logits of output row `i` in llama.cpp's own buffer: writes reach the samplers
        (decoding constraints); valid until the next decode."""
        ptr = lib().llama_get_logits_ith(self._ptr, i)
        if not ptr:
            raise RuntimeError(f"no logits for batch row {i}: it was not flagged for output")
        return np.ctypeslib.as_array(ptr, shape=(self.model.n_vocab,))

    def clear(self) -> None:
        lib().llama_memory_clear(self.memory, True)

    def seq_cp(self, src: int, dst: int, p0: int = -1, p1: int = -1) -> None:
        """Let sequence dst use src's cells at positions [p0, p1) (-1: open end)."""
        lib().llama_memory_seq_cp(self.memory, src, dst, p0, p1)

    def use_lora(self, adapter: "LoraAdapter", scale: float = 1.0) -> None:
        L = lib()
        rc = L.llama_set_adapters_lora(self._ptr, (L.llama_adapter_lora_p_ctypes * 1)(adapter._ptr), 1,
                                       (ctypes.c_float * 1)(scale))
        if rc != 0:
            raise RuntimeError(f"llama.cpp could not apply the LoRA {adapter.path} (code {rc})")


class LoraAdapter(Handle):
    """`llama_adapter_lora*`: a GGUF LoRA loaded on top of one model's weights."""

    def __init__(self, model: Model, path: Path):
        self.model, self.path = model, Path(path)  # the model must outlive its adapter
        if not self.path.is_file():
            raise FileNotFoundError(f"LoRA adapter {self.path} not found")
        self._ptr = lib().llama_adapter_lora_init(model._ptr, str(self.path).encode())
        if not self._ptr:
            raise RuntimeError(f"llama.cpp could not load {self.path} as a LoRA for {model.path} "
                               "(not a GGUF LoRA, or trained for another model)")

    def _free(self) -> None:
        lib().llama_adapter_lora_free(self._ptr)


class Batch(Handle):
    """`llama_batch`: up to `capacity` positions of either token ids or embeddings (never both
    in one batch, a llama.cpp rule), each tagged with one sequence id."""

    def __init__(self, capacity: int, *, n_embd: int = 0):
        self.capacity, self.n_embd = capacity, n_embd
        self.raw = lib().llama_batch_init(capacity, n_embd, 1)
        self._ptr = True  # llama_batch is a struct by value; mark it as owned
        self.n = 0

    def _free(self) -> None:
        lib().llama_batch_free(self.raw)

    def clear(self) -> None:
        self.n = self.raw.n_tokens = 0

    def _add(self, pos: int, seq_id: int, logits: bool) -> int:
        if self.n >= self.capacity:
            raise RuntimeError(f"batch full ({self.capacity} positions)")
        i, r = self.n, self.raw
        r.pos[i] = pos
        r.n_seq_id[i] = 1
        r.seq_id[i][0] = seq_id
        r.logits[i] = logits
        self.n = r.n_tokens = i + 1
        return i

    def add_token(self, token: int, pos: int, seq_id: int, logits: bool = False) -> int:
        i = self._add(pos, seq_id, logits)
        self.raw.token[i] = token
        return i

    def add_embeddings(self, rows: np.ndarray, pos0: int, seq_id: int,
                       logits_last: bool = False) -> int:
        """Add rows [n, n_embd] at positions pos0..pos0+n-1; returns the last row's index."""
        n = len(rows)
        if self.n + n > self.capacity:
            raise RuntimeError(f"batch full ({self.capacity} positions)")
        start = self.n
        flat = np.ascontiguousarray(rows, dtype=np.float32).reshape(-1)
        ctypes.memmove(ctypes.addressof(self.raw.embd.contents) + start * self.n_embd * 4,
                       flat.ctypes.data, flat.nbytes)
        for k in range(n):
            self._add(pos0 + k, seq_id, logits_last and k == n - 1)
        return self.n - 1


class Sampler(Handle):
    """`llama_sampler*` chain for one sequence (penalties keep per-sequence state)."""

    def __init__(self, params, n_vocab: int):
        L = lib()
        self._ptr = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
        add = functools.partial(L.llama_sampler_chain_add, self._ptr)
        if params.repeat_penalty != 1.0:
            add(L.llama_sampler_init_penalties(n_vocab, params.repeat_last_n,
                                               params.repeat_penalty, 0.0, 0.0))
        if params.temperature <= 0.0:
            add(L.llama_sampler_init_greedy())
            return
        if params.top_k > 0:
            add(L.llama_sampler_init_top_k(params.top_k))
        if params.top_p < 1.0:
            add(L.llama_sampler_init_top_p(params.top_p, 1))
        if params.min_p > 0.0:
            add(L.llama_sampler_init_min_p(params.min_p, 1))
        add(L.llama_sampler_init_temp(params.temperature))
        add(L.llama_sampler_init_dist(params.seed & 0xFFFFFFFF))

    def _free(self) -> None:
        lib().llama_sampler_free(self._ptr)  # frees the samplers added to the chain too

    def sample(self, ctx: Context, i: int) -> int:
        """Sample from output row `i` of the last batch and record the token (penalties)."""
        return int(lib().llama_sampler_sample(self._ptr, ctx._ptr, i))
