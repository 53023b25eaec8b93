"""Prepared, not yet run to the end: does the frozen LLM's own fluency score separate the
rated groups? Per-token log-likelihood of each text under the GGUF (no soft prompt, a neutral
associate instruction as the user turn), for the blind reading's cards by group, the issue's
quoted bad texts and a sample of references. On this session's shared 2-core machine (load 12-15)
a text took 3 to 110 s, so only 4 texts were scored; run it on a quiet machine:

    PYTHONPATH=. python reports/claims/coherence-16/fluency.py > reports/claims/coherence-16/fluency.md
"""
import random
from pathlib import Path

import numpy as np
import pandas as pd

from seller.llm import resolve_gguf
from seller.llm.layout import ChatFormat
from seller.llm.native import Batch, Context, Model
from seller.llm.tokenizer import Tokenizer
from seller.llm.weights import serving_gguf

READING = Path(__file__).resolve().parent.parent / "sample-16" / "as_shown_reading"
INSTRUCTION = "Write one sentence a luxury boutique associate says to a client about a recommended piece."


class FluencyScorer:
    def __init__(self, n_ctx: int = 512):
        self.model = Model(serving_gguf(resolve_gguf(None), "f16"))
        self.tok = Tokenizer(self.model)
        self.ctx = Context(self.model, n_ctx=n_ctx, n_batch=n_ctx, n_seq_max=1, n_threads=2)
        self.batch = Batch(n_ctx)
        chat = ChatFormat.from_tokenizer(self.tok, "You are a helpful assistant.")
        self.prefix = list(chat.prefix) + self.tok.encode(INSTRUCTION) + list(chat.suffix)

    def score(self, text: str) -> float:
        """Mean log-probability per token of `text` after the prefix."""
        ids = self.tok.encode(text.strip())
        self.ctx.clear()
        self.batch.clear()
        for i, t in enumerate(self.prefix + ids):
            self.batch.add_token(t, i, 0, logits=i >= len(self.prefix) - 1)
        self.ctx.decode(self.batch)
        lps = []
        for j, t in enumerate(ids):
            logits = self.ctx.logits(len(self.prefix) - 1 + j).astype(np.float64)
            top = logits.max()
            lps.append(logits[t] - top - np.log(np.exp(logits - top).sum()))
        return float(np.mean(lps))


def groups() -> list[tuple[str, str]]:
    cards = pd.read_csv(READING / "key.csv").merge(pd.read_csv(READING / "ratings.csv"), on="card_id").merge(
        pd.read_csv(READING / "sheet.csv")[["card_id", "text"]], on="card_id")
    out = []
    for c in cards.itertuples():
        if c.method == "seller" and not c.grounded:
            out.append(("model text, passed the fact checks, unusable", c.text))
        else:
            out.append(("usable or one fix" if c.verdict != "unusable" else "other unusable", c.text))
    refs = pd.read_csv("sample_data/explanations.csv")["text"].tolist()
    return out + [("reference", t) for t in random.Random(0).sample(refs, 100)]


def main() -> None:
    scorer = FluencyScorer()
    rows = pd.DataFrame([(g, t, scorer.score(t)) for g, t in groups()], columns=["group", "text", "mean_logp"])
    print("| group | n | mean log-prob per token (median) | min | max |\n|---|---|---|---|---|")
    for g, s in rows.groupby("group")["mean_logp"]:
        print(f"| {g} | {len(s)} | {s.median():.2f} | {s.min():.2f} | {s.max():.2f} |")
    rows.to_csv(Path(__file__).with_name("fluency_scores.csv"), index=False)


if __name__ == "__main__":
    main()
