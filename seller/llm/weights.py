"""Serving weights: llama.cpp serves the GGUF's own weights widened to f16.

The shipped GGUF stores SmolLM2 as Q4_1. On the 2 CPU cores we target, llama.cpp's Q4_1 kernels
prefill ~230 tok/s and 5 parallel explanations of 48 tokens take ~3.0 s; the same weights in
f16 prefill ~410 tok/s and take ~2.3 s (benchmarks/results/llm_cpu.md). Widening loses nothing that matters:
every Q4_1 value (scale * q + min) is rounded once to f16 (relative error <= 2^-11), and f16
activations replace Q4_1's 8-bit activation quantization, so serving sits closer to the float32
transformers backbone that training uses (parity tests run on the served file). It is also why
parallel sequences decode bit-identical to one at a time.

The copy is derived once per source file (sha256-keyed, in the seller cache) with llama.cpp's
own quantize routine, written to a temp name and renamed, so readers never see half a file.
"""
from __future__ import annotations

import ctypes
import logging
import os
import tempfile
from pathlib import Path

from seller.llm import default_cache_dir
from seller.paths import sha256_file

log = logging.getLogger(__name__)

WEIGHTS = ("f16", "as-is")  # what SoftPromptLLM(weights=...) accepts
FTYPES = {"F16": 1, "Q4_0": 2}  # llama.h enum llama_ftype (LLAMA_FTYPE_MOSTLY_*)


def serving_gguf(gguf: Path, weights: str = "f16", cache_dir: Path | None = None) -> Path:
    """The file llama.cpp should load for `gguf`: itself ("as-is") or its f16 copy ("f16").
    If the copy cannot be written (read-only cache), serve the source as-is with a warning."""
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    if weights == "as-is":
        return gguf
    folder = (cache_dir or default_cache_dir()) / "serving"
    target = folder / f"{sha256_file(gguf)[:32]}-f16.gguf"
    if target.is_file():
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".gguf")
        os.close(fd)
    except OSError as e:
        log.warning("cannot write the f16 serving copy under %s (%s); serving %s as-is",
                    folder, e, gguf)
        return gguf
    try:
        quantize_copy(gguf, Path(tmp), "F16")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    log.info("serving copy of %s written to %s", gguf.name, target)
    return target


def quantize_copy(src: Path, dst: Path, ftype: str) -> Path:
    """Write `src`'s weights to `dst` as `ftype` (a key of FTYPES) with llama.cpp's own routine."""
    from seller.llm.native import lib

    L = lib()
    params = L.llama_model_quantize_default_params()
    params.ftype = FTYPES[ftype]
    params.allow_requantize = True  # the source is already quantized: dequantize, then f16
    params.nthread = os.cpu_count() or 1
    rc = L.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0:
        raise RuntimeError(f"llama.cpp could not write a {ftype} copy of {src} (code {rc})")
    return dst
