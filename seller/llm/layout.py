"""The ONE prompt layout, used by training (transformers) and serving (llama.cpp).

    [chat prefix + instruction][history facts, oldest first][P soft prompts]
    [item text + assistant turn start][target + end-of-turn]   <- target only when training

Why this order: the chat prefix comes first so a sequence never starts with soft prompts
(design notes: soft prompts at position 0 broke parity between the runtimes). The client's
history comes before the soft prompts because the soft prompts depend on the candidate item:
this way N explanations for one client share [prefix + instruction + history] in llama.cpp's
KV cache and only [soft prompts + item] differ per sequence.

A layout is a tuple of segments (token-id runs and soft-prompt runs); soft-prompt *values* are
passed next to it (shape [P, n_embd]) so one layout serves any adapter output. Each history
fact is its own segment, so a layout that is too long drops its oldest facts first.
"""
from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass, field, replace
from typing import Literal, Sequence

log = logging.getLogger(__name__)

SegmentKind = Literal["tokens", "history", "soft", "target"]
_SENTINEL = "\x00SELLER-SPLIT\x00"


@dataclass(frozen=True)
class Segment:
    """A run of positions: token ids (kinds tokens/history/target) or `n_soft` soft prompts."""

    kind: SegmentKind
    ids: tuple[int, ...] = ()
    n_soft: int = 0

    def __len__(self) -> int:
        return self.n_soft if self.kind == "soft" else len(self.ids)


@dataclass(frozen=True)
class LayoutConfig:
    """Fixed texts around the caller's instruction, facts and item."""

    system: str = ("You are a client advisor at a luxury house. Explain briefly why the item "
                   "suits the client, citing only facts from their history.")  # grounding cue
    history_header: str = "Client history, oldest first:\n"  # tells the LLM the facts' order
    soft_header: str = "Client profile:"  # text before the soft prompts: they sit mid-sentence
    item_header: str = "\nItem: "  # after the soft prompts, before the candidate's text


@dataclass(frozen=True)
class Layout:
    """An ordered tuple of segments; see the module docstring for the order."""

    segments: tuple[Segment, ...]
    n_dropped: int = field(default=0, compare=False)  # history facts dropped to fit n_ctx

    def __post_init__(self):
        if not self.segments or self.segments[0].kind == "soft" or not len(self.segments[0]):
            raise ValueError("a layout must start with at least one token (BOS / chat prefix), "
                             "never with soft prompts")

    @property
    def n_positions(self) -> int:
        return sum(len(s) for s in self.segments)

    @property
    def n_soft(self) -> int:
        return sum(s.n_soft for s in self.segments)

    @property
    def n_history(self) -> int:
        return sum(s.kind == "history" for s in self.segments)

    def labels(self) -> list[int]:
        """Per position: the target token id, -100 elsewhere (transformers shifts them)."""
        out: list[int] = []
        for s in self.segments:
            out += list(s.ids) if s.kind == "target" else [-100] * len(s)
        return out

    def prompt(self) -> "Layout":
        """This layout without its target (what serving decodes)."""
        return replace(self, segments=tuple(s for s in self.segments if s.kind != "target"))

    def fit(self, max_positions: int) -> "Layout":
        """Drop the oldest history facts until the layout has <= max_positions positions."""
        excess = self.n_positions - max_positions
        if excess <= 0:
            return self
        kept, dropped = [], 0
        for s in self.segments:
            if s.kind == "history" and excess > 0:
                excess -= len(s)
                dropped += 1
            else:
                kept.append(s)
        if excess > 0:
            raise ValueError(
                f"prompt needs {self.n_positions} positions but only {max_positions} fit even "
                f"without history; shorten the instruction/item text or raise n_ctx")
        log.warning("layout: dropped the %d oldest history facts (of %d) to fit %d positions",
                    dropped, self.n_history, max_positions)
        return Layout(tuple(kept), n_dropped=self.n_dropped + dropped)


@dataclass(frozen=True)
class ChatFormat:
    """Token ids around the user message, read from the GGUF's chat template."""

    prefix: tuple[int, ...]   # BOS + system turn + user turn start
    suffix: tuple[int, ...]   # user turn end + assistant turn start
    end: tuple[int, ...]      # what ends an assistant turn (training target ends with it)

    @classmethod
    def from_tokenizer(cls, tok, system: str) -> "ChatFormat":
        per_tok = _FORMATS.setdefault(tok, {})  # rendering the template once per tokenizer
        if system not in per_tok:
            per_tok[system] = cls._build(tok, system)
        return per_tok[system]

    @classmethod
    def _build(cls, tok, system: str) -> "ChatFormat":
        if tok.chat_template:
            head = _render(tok, [{"role": "system", "content": system},
                                 {"role": "user", "content": _SENTINEL}], True)
            full = _render(tok, [{"role": "system", "content": system},
                                 {"role": "user", "content": "x"},
                                 {"role": "assistant", "content": _SENTINEL}], False)
            before, after = head.split(_SENTINEL)
            prefix, suffix = tok.encode(before, special=True), tok.encode(after, special=True)
            tail = tok.encode(full.split(_SENTINEL)[1], special=True)
            eog = [i for i, t in enumerate(tail) if tok.is_eog(t)]
            end = tail[: eog[0] + 1] if eog else [tok.eos_id]
        else:  # a base model without a template: plain text turns
            prefix = tok.encode(system + "\n\n")
            suffix, end = tok.encode("\nExplanation:"), [tok.eos_id]
        if tok.bos_id is not None and prefix[:1] != [tok.bos_id]:
            prefix = [tok.bos_id] + prefix
        return cls(tuple(prefix), tuple(suffix), tuple(end))


_FORMATS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _render(tok, messages, add_generation_prompt: bool) -> str:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(msg):
        raise ValueError(f"chat template: {msg}")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(tok.chat_template).render(
        messages=messages, add_generation_prompt=add_generation_prompt, bos_token="",
        eos_token="", raise_exception=raise_exception)


def build_layout(tokenizer, *, instruction: str, history: Sequence[str], item: str,
                 n_soft: int, target: str | None = None, max_positions: int | None = None,
                 config: LayoutConfig = LayoutConfig()) -> Layout:
    """Build the layout of one (client, item) prompt.

    tokenizer: seller.llm.tokenizer.Tokenizer (the same for training and serving).
    instruction: the task, e.g. the explanation style ("Explain by occasion.").
    history: one text line per fact, OLDEST FIRST (the first ones are dropped to fit).
    item: the candidate item's text. n_soft: P, the number of soft prompts (0 for none).
    target: the reference explanation (training); adds a "target" segment ending the turn.
    max_positions: drop oldest history until the layout fits (e.g. n_ctx - max_new_tokens).
    """
    if n_soft < 0:
        raise ValueError(f"n_soft must be >= 0, got {n_soft}")
    chat = ChatFormat.from_tokenizer(tokenizer, config.system)
    enc = tokenizer.encode  # client data: special=False, so it cannot inject control tokens
    segs = [Segment("tokens", chat.prefix + tuple(enc(instruction.strip() + "\n\n")))]
    if history:
        segs.append(Segment("tokens", tuple(enc(config.history_header))))
        segs += [Segment("history", tuple(enc(line.strip() + "\n"))) for line in history]
    if n_soft:
        segs.append(Segment("tokens", tuple(enc(config.soft_header))))
        segs.append(Segment("soft", n_soft=n_soft))
    segs.append(Segment("tokens", tuple(enc(config.item_header + item.strip())) + chat.suffix))
    if target is not None:
        segs.append(Segment("target", tuple(enc(target.strip())) + chat.end))
    layout = Layout(tuple(_merge(segs)))
    return layout.fit(max_positions) if max_positions is not None else layout


def _merge(segs: list[Segment]):
    """Join adjacent plain-token runs (fewer, larger batches); drop empty runs."""
    out: list[Segment] = []
    for s in segs:
        if not len(s):
            continue
        if out and s.kind == out[-1].kind == "tokens":
            out[-1] = Segment("tokens", out[-1].ids + s.ids)
        else:
            out.append(s)
    return out
