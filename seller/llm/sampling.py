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
    names_from_prompt: bool = False  # every capitalised word mid-sentence must too (NameGuard)

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

    def prepare(self, token_ids) -> frozenset[str]:
        """What `restrict` needs of a prompt: its numbers."""
        return self.numbers(token_ids)

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


_CAPITAL = frozenset(range(ord("A"), ord("Z") + 1))
# bytes of a word: ASCII letters, UTF-8 lead bytes of Latin letters (À-ɏ) and continuation bytes
_LETTER = _CAPITAL | frozenset(range(ord("a"), ord("z") + 1)) | frozenset(range(0x80, 0xC0)) | \
    frozenset(range(0xC3, 0xCA))
_SENTENCE_END = b".!?"
_PROMPT_WORD = re.compile(rb"[A-Z][A-Za-z\x80-\xbf\xc3-\xc9]*")


class NameGuard:
    """Decoding constraint: inside a sentence, a capitalised word is one its prompt holds.

    A maison, a piece's name, a collection, a colour or a month the explanation writes mid-sentence
    is a fact; the prompt spells each one it may cite ("Related to the item: ... Calisse Pearl
    Earrings (Hallorand, ...)"). Unconstrained, the 135M LLM misspells them ("Calise") or invents
    them ("the Aulë Le Tigre"). Before each sample, `restrict` lowers to -inf the logits of tokens
    that would start a capitalised word no prompt word begins with, and, while such a word is
    being written, of every token that would leave the prompt's spelling. A sentence's first word
    is free ("This", "Like"): it is the opening, not a name. Works on the tokens' bytes, so a name
    split inside a multi-byte letter ("Galat" + "ée") is followed byte by byte.
    """

    def __init__(self, tokenizer):
        self.pieces = [tokenizer.piece(t) for t in range(tokenizer.n_vocab)]
        starts, continues = {}, {}
        for t, p in enumerate(self.pieces):
            word = p.lstrip(b" ")
            if word and word[0] in _CAPITAL and all(b in _LETTER for b in word):
                starts[t] = word
            if p and p[0] in _LETTER:
                continues.setdefault(p, []).append(t)
        self._start_ids = np.fromiter(starts, dtype=np.int64)
        self._start_words = list(starts.values())
        self._continues = continues  # piece with no leading space -> its ids
        self._continue_mask = np.zeros(tokenizer.n_vocab, dtype=bool)
        for ids in continues.values():
            self._continue_mask[ids] = True

    def prepare(self, token_ids) -> tuple[frozenset[bytes], np.ndarray]:
        """(the prompt's capitalised words, the ids of tokens that begin none of them); soft
        positions (any non-int entry) separate words."""
        text = b" ".join(b"".join(self.pieces[t] for t in run) for run in _int_runs(token_ids))
        words = frozenset(_PROMPT_WORD.findall(text))
        prefixes = {w[:k] for w in words for k in range(1, len(w) + 1)}
        blocked = [t for t, w in zip(self._start_ids.tolist(), self._start_words) if w not in prefixes]
        return words, np.asarray(blocked, dtype=np.int64)

    def restrict(self, logits: np.ndarray, prepared: tuple[frozenset[bytes], np.ndarray], output_ids) -> None:
        """Apply the constraint in place to one row of logits [n_vocab]."""
        words, blocked_starts = prepared
        text = b"".join(self.pieces[t] for t in output_ids)
        i = len(text)
        while i and text[i - 1] in _LETTER:
            i -= 1
        word, before = text[i:], text[:i].rstrip()
        if _mid_sentence(text):  # a word begun next is not a sentence's opening
            logits[blocked_starts] = -np.inf
        if not (word and word[0] in _CAPITAL and _mid_sentence(before)):
            return
        ok = [t for w in words if w.startswith(word) for k in range(len(word) + 1, len(w) + 1)
              for t in self._continues.get(w[len(word):k], ())]
        if word in words:  # whole: it may end here or go on to a longer prompt word
            mask = self._continue_mask.copy()
            mask[ok] = False
            logits[mask] = -np.inf
        elif ok:  # a prompt word's beginning: only its next letters
            keep = logits[ok].copy()
            logits[:] = -np.inf
            logits[ok] = keep


def _mid_sentence(text: bytes) -> bool:
    text = text.rstrip()
    return bool(text) and text[-1] not in _SENTENCE_END


def _int_runs(token_ids):
    run = []
    for t in token_ids:
        if isinstance(t, (int, np.integer)):
            run.append(int(t))
        else:
            if run:
                yield run
            run = []
    if run:
        yield run
