"""Sampling parameters and stop-string handling for the llama.cpp runtime."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np


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
    numbers_from_prompt: bool = False  # every number written must occur in the prompt (NumberGuard)

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


class NumberGuard:
    """Decoding constraint: every run of digits the model writes is one its prompt contains.

    An explanation's dates and figures come from its facts (on the sample data every one of
    the 1,698 references obeys this); a small LLM otherwise fills them from its own knowledge
    ("the iconic 1920s watch", "February 2027") and the grounding check counts an invented
    date. Before each sample, `restrict` lowers to -inf the logits of digit tokens that would
    start or extend a number no prompt number begins with, and while the digits written so far
    are only the start of a prompt number ("20" of "2025"), of every token that is not its
    next digit. Digits are whole tokens in SmolLM2 (ids 32-41); other vocabularies' digit
    tokens are checked piece by piece.
    """

    _DIGITS = re.compile(r"\d+")

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        pieces = {t: tokenizer.piece(t).decode("utf-8", "replace") for t in range(tokenizer.n_vocab)}
        self.digit_pieces = {t: p for t, p in pieces.items() if self._DIGITS.search(p)}
        self._digit_ids = np.fromiter(self.digit_pieces, dtype=np.int64)

    def numbers(self, token_ids) -> frozenset[str]:
        """The digit runs in a prompt (None entries, soft-prompt positions, separate runs)."""
        text, out = [], set()
        for t in list(token_ids) + [None]:
            if t is None:
                out.update(self._DIGITS.findall("".join(text)))
                text = []
            else:
                text.append(self.tokenizer.piece(t).decode("utf-8", "replace"))
        return frozenset(out)

    def trailing_digits(self, output_ids) -> str:
        """The digits the output ends with (a number being written), "" if none."""
        tail = ""
        for t in reversed(output_ids):
            piece = self.digit_pieces.get(t)
            if piece is None:
                break
            tail = piece + tail
            if not piece.isdigit():
                break
        m = re.search(r"\d+$", tail)
        return m.group() if m else ""

    def allowed(self, numbers: frozenset[str], output_ids) -> tuple[np.ndarray, bool]:
        """(digit token ids that may come next, whether other tokens may): other tokens may
        unless the output ends with an unfinished prompt number."""
        run = self.trailing_digits(output_ids)
        prefixes = {n[:k] for n in numbers for k in range(1, len(n) + 1)}
        ok = []
        for t, piece in self.digit_pieces.items():
            groups = list(self._DIGITS.finditer(run + piece))
            closed = [g.group() for g in groups if g.end() < len(run + piece)]
            last = groups[-1].group() if groups[-1].end() == len(run + piece) else None
            if all(g in numbers for g in closed) and (last is None or last in prefixes):
                ok.append(t)
        return np.asarray(ok, dtype=np.int64), not run or run in numbers

    def restrict(self, logits: np.ndarray, numbers: frozenset[str], output_ids) -> None:
        """Apply the constraint in place to one row of logits [n_vocab]."""
        ok, others = self.allowed(numbers, output_ids)
        if others:
            logits[np.setdiff1d(self._digit_ids, ok)] = -np.inf
        elif ok.size:  # in the middle of a prompt number: only its next digits
            keep = logits[ok].copy()
            logits[:] = -np.inf
            logits[ok] = keep
