"""Where llama.cpp may put a model's weights: the one place that decides, for every GGUF load.

Besides plain CPU memory, llama.cpp's CPU backend offers "extra" buffer types that re-lay weights
for faster kernels: CPU_REPACK (Q4_0, Q4_K, IQ4_NL re-laid for AVX2/AVX-512) and, when ggml was
compiled with AMX (llama-cpp-python built natively on a Sapphire Rapids class Xeon), AMX. The AMX
path kills the process with SIGILL on the first `llama_decode` in llama-cpp-python 0.3.36 (no
Python error; the kernel grants the tile permission, so it is ggml's own AMX path: upstream
ggml-org/llama.cpp PR #26954 describes the permission being requested on the main thread only).

The rule ("auto"): extra buffer types stay on, unless this llama.cpp build carries AMX kernels
(its system info says AMX_INT8 = 1) or, when the build says nothing, the CPU lists AMX. Off
costs nothing for the weights we ship (f16 copy and Q4_1 are never repacked) and only the
CPU_REPACK speed-up for Q4_0/Q4_K files; on is kept elsewhere because that speed-up is real
(benchmarks/results/llm_extra_buffers.md). A user whose machine is known good forces it with
env `SELLER_LLAMA_EXTRA_BUFFERS` or `[llm] extra_buffers` ("on" / "off"); the env wins, since
whether a CPU is safe is a fact about the machine, not the model.

`python -m seller.llm.buffers [GGUF] [--weights as-is|f16]` decodes one prompt in a child
process and prints what happened as JSON: a crash then fails the caller, never kills it.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

SETTINGS = ("auto", "on", "off")
ENV = "SELLER_LLAMA_EXTRA_BUFFERS"
CPU_AMX_FLAGS = ("amx_tile", "amx_int8")  # /proc/cpuinfo names


@dataclass(frozen=True)
class BufferDecision:
    use_extra: bool  # llama_model_params.use_extra_bufts
    setting: str  # auto | on | off, after the env override
    reason: str


def llama_features(system_info: str) -> dict[str, bool]:
    """`llama_print_system_info()` ("CPU : SSE3 = 1 | AVX2 = 1 | ...") as {feature: on}."""
    return {name: value == "1" for name, value in re.findall(r"([A-Z0-9_]+) = (\d+)", system_info)}


def cpu_flags(cpuinfo: str) -> set[str]:
    """The first `flags` line of /proc/cpuinfo as a set ("" elsewhere: an empty set)."""
    match = re.search(r"^flags\s*:(.*)$", cpuinfo, flags=re.MULTILINE)
    return set(match.group(1).split()) if match else set()


def resolve_setting(configured: str = "auto") -> str:
    """The env override if set, else the configured value; either must be one of SETTINGS."""
    env = os.environ.get(ENV, "").strip().lower()
    if env and env not in SETTINGS:
        raise ValueError(f"{ENV}={os.environ[ENV]!r}: must be one of {', '.join(SETTINGS)}")
    if configured not in SETTINGS:
        raise ValueError(f"[llm] extra_buffers = {configured!r}: must be one of {', '.join(SETTINGS)}")
    return env or configured


def decide(setting: str, features: dict[str, bool], flags: set[str]) -> BufferDecision:
    """Pure: whether weights may use the extra buffer types, and why."""
    if setting == "on":
        return BufferDecision(True, setting, "forced on")
    if setting == "off":
        return BufferDecision(False, setting, "forced off")
    if features.get("AMX_INT8"):
        return BufferDecision(False, setting, "this llama.cpp build has AMX kernels (AMX_INT8 = 1), "
                              "whose first decode dies with SIGILL in llama-cpp-python 0.3.36")
    if not features and any(f in flags for f in CPU_AMX_FLAGS):
        return BufferDecision(False, setting, "the CPU has AMX and llama.cpp reports no features")
    return BufferDecision(True, setting, "no AMX kernels in this llama.cpp build")


def machine_cpu() -> dict:
    """What this machine runs: CPU model, AMX flags, and the features llama.cpp reports."""
    from seller.llm.native import lib

    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    name = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, flags=re.MULTILINE)
    features = llama_features(lib().llama_print_system_info().decode("utf-8", "replace"))
    return {"model_name": name.group(1).strip() if name else "unknown",
            "cpu_amx": sorted(f for f in cpu_flags(cpuinfo) if f.startswith("amx")),
            "llama_cpp_features": sorted(k for k, on in features.items() if on),
            "features": features, "flags": cpu_flags(cpuinfo)}


def current_decision(configured: str = "auto") -> BufferDecision:
    cpu = machine_cpu()
    return decide(resolve_setting(configured), cpu["features"], cpu["flags"])


# -- a decode in a child process ----------------------------------------------------------------
def probe_in_child(gguf: Path | None = None, weights: str = "as-is", timeout: float = 300) -> dict:
    """Load `gguf` (default: the shipped model) as SoftPromptLLM would and decode one prompt in
    a child process. Returns {"ok", "returncode", "signal", ...the child's report}; never raises
    on a crash, so a SIGILL is a result, not the end of the caller."""
    cmd = [sys.executable, "-m", "seller.llm.buffers", "--weights", weights]
    if gguf:
        cmd.append(str(gguf))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return child_report(proc.returncode, proc.stdout, proc.stderr)


def child_report(returncode: int, stdout: str, stderr: str) -> dict:
    """What a probe child's exit means: its JSON line when it exited 0, else how it died."""
    report = {"ok": False, "returncode": returncode,
              "signal": signal.Signals(-returncode).name if returncode < 0 else None,
              "stderr_tail": stderr[-2000:]}
    lines = stdout.strip().splitlines()
    if returncode == 0 and lines:
        report |= json.loads(lines[-1])
        report["ok"] = True
    return report


def _probe(gguf: str | None, weights: str) -> dict:
    import numpy as np

    from seller.llm.layout import Layout, Segment
    from seller.llm.runtime import SoftPromptLLM

    with SoftPromptLLM(gguf, n_ctx=256, n_threads=1, n_seq_max=1, weights=weights) as llm:
        ids = llm.tokenize("The silk scarf picks up the gold hardware of the tote")
        logits = llm.last_logits(Layout((Segment("tokens", tuple(ids)),)))
        return {"weights": weights, "served_file": llm.served_path.name, "n_logits": int(logits.size),
                "n_vocab": llm.tokenizer.n_vocab, "finite": bool(np.isfinite(logits).all()),
                "weight_buffers": llm.weight_buffers, "decision": asdict(llm.buffer_decision)}


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description="Decode one prompt with a GGUF and report as JSON.")
    p.add_argument("gguf", nargs="?", help="GGUF file (default: the shipped SmolLM2)")
    p.add_argument("--weights", choices=("as-is", "f16"), default="as-is")
    a = p.parse_args()
    print(json.dumps(_probe(a.gguf, a.weights)))
