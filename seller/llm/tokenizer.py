"""The ONE tokenizer for both runtimes: llama.cpp's, read from the GGUF (vocabulary only).

Training (transformers) and serving (llama.cpp) take token ids from here, so they cannot
disagree on tokenization; loading only the vocabulary takes a fraction of a second.
"""
from __future__ import annotations

import codecs
from pathlib import Path

from seller.llm import resolve_gguf
from seller.llm.native import Model


class Tokenizer:
    """Text <-> token ids, the chat template and end-of-generation ids of one GGUF."""

    def __init__(self, model: Model):
        self._model = model  # a vocab-only model or a full one (SoftPromptLLM shares its own)
        self.n_vocab = model.n_vocab
        self.bos_id = model.bos() if model.add_bos() else None  # None: the model wants no BOS
        self.eos_id = model.eos()
        self.chat_template = model.chat_template()
        self.eog_ids = frozenset(t for t in range(self.n_vocab) if model.is_eog(t))

    @classmethod
    def from_gguf(cls, path: str | Path | None = None) -> "Tokenizer":
        return cls(Model(resolve_gguf(path), vocab_only=True))

    def encode(self, text: str, *, special: bool = False) -> list[int]:
        """Token ids of `text` (no BOS). special=True only for our own template text, so client
        data can never smuggle in control tokens such as <|im_end|>."""
        return self._model.tokenize(text, special=special) if text else []

    def piece(self, token: int) -> bytes:
        return self._model.piece(token)

    def decode(self, ids, *, special: bool = False) -> str:
        """Text of `ids`; special=True also renders control tokens such as <|im_end|>."""
        return b"".join(self._model.piece(int(t), special=special) for t in ids).decode(
            "utf-8", "replace")

    def is_eog(self, token: int) -> bool:
        return token in self.eog_ids


class Detokenizer:
    """Incremental ids -> text that never splits a multi-byte UTF-8 character."""

    def __init__(self, tokenizer: Tokenizer):
        self._tok = tokenizer
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")

    def push(self, token: int) -> str:
        return self._utf8.decode(self._tok.piece(token))

    def flush(self) -> str:
        return self._utf8.decode(b"", final=True)
