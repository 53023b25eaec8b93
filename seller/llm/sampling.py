"""Sampling parameters and stop-string handling for the llama.cpp runtime."""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class SamplingParams:
    """How the next token is chosen. temperature 0 = greedy (the filters are then unused)."""

    temperature: float = 0.0   # greedy by default: the same client gets the same explanation
    top_k: int = 40            # 0 = off; llama.cpp's default
    top_p: float = 0.95        # 1 = off; nucleus sampling
    min_p: float = 0.05        # 0 = off; drops tokens < min_p * p(best), robust for small LMs
    repeat_penalty: float = 1.1  # 1 = off; a 135M model loops without a mild penalty
    repeat_last_n: int = 64    # tokens the penalty looks back over (one explanation's length)
    seed: int = 0              # fixed seed: sampled explanations are repeatable
    ignore_eos: bool = False   # decode exactly max_tokens (benchmarks), as vLLM's option

    def __post_init__(self):
        checks = {
            "temperature": math.isfinite(self.temperature) and self.temperature >= 0,
            "top_k": self.top_k >= 0,
            "top_p": 0 < self.top_p <= 1,
            "min_p": 0 <= self.min_p < 1,
            "repeat_penalty": math.isfinite(self.repeat_penalty) and self.repeat_penalty > 0,
            "repeat_last_n": self.repeat_last_n >= 0,
            "seed": self.seed >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"SamplingParams.{name}={getattr(self, name)!r} is out of range")


GREEDY = SamplingParams(repeat_penalty=1.0)  # plain argmax: what parity tests compare


class StopMatcher:
    """Feeds text pieces in, yields only text that is safe to emit before any stop string.

    Holds back the longest tail that could still begin a stop string, so a streamed answer
    never shows half of a stop string and equals the non-streamed one.
    """

    def __init__(self, stops):
        self.stops = tuple(s for s in stops if s)
        self._buf = ""
        self.stopped = False

    def push(self, piece: str) -> str:
        if self.stopped:
            return ""
        self._buf += piece
        hits = [i for i in (self._buf.find(s) for s in self.stops) if i >= 0]
        if hits:
            out, self._buf, self.stopped = self._buf[: min(hits)], "", True
            return out
        hold = max((k for s in self.stops for k in range(1, len(s))
                    if self._buf.endswith(s[:k])), default=0)
        out = self._buf[: len(self._buf) - hold]
        self._buf = self._buf[len(out):]
        return out

    def flush(self) -> str:
        out, self._buf = ("" if self.stopped else self._buf), ""
        return out
