"""Text quality of generated explanations against references, the way PETER reports it.

Every metric is a pure function of lists of strings (or token lists), so a report can be
recomputed from the saved explanations alone.

Tokenisation (`tokenize`): lowercase, keep runs of letters/digits (with an inner apostrophe,
"doesn't"), drop punctuation. PETER scores text that its data pipeline already lowercased and
tokenised; we apply one tokeniser to references and hypotheses alike, so both sides are
comparable and punctuation earns no n-gram credit.

Where PETER (lileipisces/PETER, utils.py with the TensorFlow-NMT `bleu.py` and the
google/seq2seq `rouge.py`) differs from the maintained libraries, we follow PETER:

- BLEU-n: PETER's `compute_bleu` is corpus BLEU with uniform weights over orders 1..n, clipped
  counts against one reference, the standard brevity penalty and no smoothing (any zero
  precision gives 0), times 100. sacrebleu's `BLEU(max_ngram_order=n, smooth_method="none",
  tokenize="none", effective_order=False)` on our pre-tokenised, space-joined text computes
  exactly that, so we call sacrebleu (BLEU-1 is `max_ngram_order=1`).
- ROUGE-1/2: PETER averages per-pair F-scores where n-grams are SETS (a repeated n-gram counts
  once) and F = 2PR/(P+R+1e-8). rouge-score counts n-grams as multisets, so `peter_rouge`
  reimplements PETER's set version (a few lines); rouge-score's standard F1 is also reported
  (`rouge*_std`) as a cross-check.
- ROUGE-L: PETER's sentence-level LCS F-measure weights recall and precision with
  beta = P/R: F = (1+b^2)RP / (R + b^2 P). rouge-score uses beta = 1. Same split as above:
  PETER's is the headline, rouge-score's F1 is `rougeL_std`.
- All ROUGE figures are F-measures times 100, averaged over pairs, as PETER prints them.
- PETER truncates references to 15 tokens and generates 15; we score full texts unless
  `max_tokens` is given (the Musical Instruments report sets it to 15 for comparability).

Feature metrics follow PETER's definitions, with "features" being attribute words/phrases:
- FMR: share of explanations that mention at least one of their target item's features
  (PETER: the review's single ground-truth feature; ours: any of the item's attribute words).
- FCR: distinct features mentioned across all explanations / size of the feature vocabulary.
- DIV: mean over pairs of explanations of the number of features they share (lower = more
  diverse), PETER's `feature_diversity`.
- USR: distinct token sequences / number of explanations.
Repetition is the share of repeated bigrams inside an explanation (1 - distinct/total),
averaged; length is the mean token count.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def tokenize(text: str, max_tokens: int | None = None) -> list[str]:
    """Lowercased word tokens, punctuation dropped; optionally the first `max_tokens`."""
    tokens = _TOKEN.findall(text.lower())
    return tokens if max_tokens is None else tokens[:max_tokens]


def _check_pairs(hypotheses: Sequence, references: Sequence) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    if not hypotheses:
        raise ValueError("no explanations to score")


# ----------------------------------------------------------------------------- BLEU
def bleu(hypotheses: Sequence[list[str]], references: Sequence[list[str]], n: int = 4) -> float:
    """PETER's corpus BLEU-n (uniform weights 1..n, brevity penalty, no smoothing), x100."""
    from sacrebleu.metrics import BLEU

    _check_pairs(hypotheses, references)
    if sum(len(h) for h in hypotheses) == 0:
        return 0.0  # PETER's compute_bleu would divide by zero; nothing generated scores 0
    metric = BLEU(max_ngram_order=n, smooth_method="none", tokenize="none",
                  effective_order=False)
    hyps = [" ".join(h) for h in hypotheses]
    refs = [[" ".join(r) for r in references]]
    return float(metric.corpus_score(hyps, refs).score)


# ----------------------------------------------------------------------------- ROUGE (PETER)
def _ngram_set(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


def _lcs_length(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_n_pair(hyp: list[str], ref: list[str], n: int) -> float:
    """PETER's ROUGE-N F-score of one pair (n-gram sets, F = 2PR/(P+R+1e-8))."""
    h, r = _ngram_set(hyp, n), _ngram_set(ref, n)
    overlap = len(h & r)
    p = overlap / len(h) if h else 0.0
    rc = overlap / len(r) if r else 0.0
    return 2.0 * p * rc / (p + rc + 1e-8)


def rouge_l_pair(hyp: list[str], ref: list[str]) -> float:
    """PETER's sentence-level ROUGE-L F-measure with beta = P/R."""
    if not hyp or not ref:
        return 0.0  # seq2seq's version divides by zero here
    lcs = _lcs_length(hyp, ref)
    r, p = lcs / len(ref), lcs / len(hyp)
    beta = p / (r + 1e-12)
    return (1 + beta**2) * r * p / (r + beta**2 * p + 1e-12)


def peter_rouge(hypotheses: Sequence[list[str]], references: Sequence[list[str]]) -> dict:
    """ROUGE-1/2/L F-measures averaged over pairs, x100, as PETER reports them."""
    _check_pairs(hypotheses, references)
    pairs = list(zip(hypotheses, references))
    return {
        "rouge1": 100 * float(np.mean([rouge_n_pair(h, r, 1) for h, r in pairs])),
        "rouge2": 100 * float(np.mean([rouge_n_pair(h, r, 2) for h, r in pairs])),
        "rougeL": 100 * float(np.mean([rouge_l_pair(h, r) for h, r in pairs])),
    }


def standard_rouge(hypotheses: Sequence[list[str]], references: Sequence[list[str]]) -> dict:
    """rouge-score's F1 (multiset n-grams, beta = 1) on the same tokens, x100: a cross-check."""
    from rouge_score import rouge_scorer

    class _Whitespace:  # our tokens are final; stop rouge-score from re-tokenising
        def tokenize(self, text):
            return text.split()

    _check_pairs(hypotheses, references)
    keys = ("rouge1", "rouge2", "rougeL")
    scorer = rouge_scorer.RougeScorer(list(keys), tokenizer=_Whitespace())
    sums = dict.fromkeys(keys, 0.0)
    for h, r in zip(hypotheses, references):
        scores = scorer.score(" ".join(r), " ".join(h))  # (target, prediction)
        for k in keys:
            sums[k] += scores[k].fmeasure
    return {f"{k}_std": 100 * v / len(hypotheses) for k, v in sums.items()}


# ----------------------------------------------------------------------------- diversity
def unique_sentence_ratio(hypotheses: Sequence[list[str]]) -> float:
    """USR: distinct token sequences / number of explanations."""
    if not hypotheses:
        raise ValueError("no explanations to score")
    return len({tuple(h) for h in hypotheses}) / len(hypotheses)


def repetition(tokens: list[str]) -> float:
    """Share of repeated bigrams in one text (0 = no bigram repeats)."""
    bigrams = [tuple(tokens[i:i + 2]) for i in range(len(tokens) - 1)]
    return 1.0 - len(set(bigrams)) / len(bigrams) if bigrams else 0.0


# ----------------------------------------------------------------------------- features
def feature_vocabulary(phrases: Iterable[str]) -> set[tuple[str, ...]]:
    """Attribute strings -> set of token tuples ("Rose Gold" -> ("rose", "gold"))."""
    return {t for t in (tuple(tokenize(p)) for p in phrases if p) if t}


def detect_features(tokens: list[str], vocabulary: set[tuple[str, ...]]) -> set[tuple[str, ...]]:
    """The vocabulary features (single words or phrases) that occur in `tokens`."""
    lengths = {len(f) for f in vocabulary}
    found = set()
    for n in lengths:
        found |= _ngram_set(tokens, n) & vocabulary
    return found


def feature_matching_ratio(mentioned: Sequence[set], targets: Sequence[set]) -> float:
    """FMR: share of explanations mentioning at least one of their own item's features."""
    _check_pairs(mentioned, targets)
    return sum(bool(m & t) for m, t in zip(mentioned, targets)) / len(mentioned)


def feature_coverage_ratio(mentioned: Sequence[set], vocabulary: set) -> float:
    """FCR: distinct features mentioned across all explanations / vocabulary size."""
    if not vocabulary:
        raise ValueError("empty feature vocabulary")
    return len(set().union(*mentioned) & vocabulary) / len(vocabulary) if mentioned else 0.0


def feature_diversity(mentioned: Sequence[set]) -> float:
    """DIV: mean number of features shared by a pair of explanations (lower = more diverse)."""
    if len(mentioned) < 2:
        raise ValueError("DIV needs at least two explanations")
    total = sum(len(a & b) for a, b in combinations(mentioned, 2))
    return total / (len(mentioned) * (len(mentioned) - 1) / 2)


# ----------------------------------------------------------------------------- semantic
class SentenceEncoder:
    """MiniLM sentence embeddings (unit-normalised), loaded once from the folder the item
    encoder uses (`seller.encoders.text.minilm_path`: env SELLER_MINILM, else the package's)."""

    def __init__(self, path: str | None = None, batch_size: int = 64):
        from sentence_transformers import SentenceTransformer

        from seller.encoders.text import minilm_path
        self.model = SentenceTransformer(str(path or minilm_path()), device="cpu")
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(N, 384) float32, each row of unit length."""
        return self.model.encode(list(texts), batch_size=self.batch_size,
                                 normalize_embeddings=True, convert_to_numpy=True)


def semantic_similarity(encoder: SentenceEncoder, hypotheses: Sequence[str],
                        references: Sequence[str]) -> np.ndarray:
    """Per-pair cosine similarity of MiniLM embeddings, shape (N,)."""
    _check_pairs(hypotheses, references)
    emb = encoder.encode(list(hypotheses) + list(references))  # one batch, one vector space
    return (emb[:len(hypotheses)] * emb[len(hypotheses):]).sum(axis=1)


# ----------------------------------------------------------------------------- all together
@dataclass(frozen=True)
class TextMetricsConfig:
    max_tokens: int | None = None  # PETER truncates to 15; None scores the full texts
    bleu_orders: tuple[int, ...] = (1, 4)  # PETER reports BLEU-1 and BLEU-4


def text_metrics(hypotheses: Sequence[str], references: Sequence[str],
                 item_features: Sequence[Iterable[str]], vocabulary: Iterable[str],
                 encoder: SentenceEncoder | None = None,
                 config: TextMetricsConfig = TextMetricsConfig()) -> dict:
    """Every text metric for one method. `item_features[i]` are the attribute strings of the
    item explained by `hypotheses[i]`; `vocabulary` is every attribute string of the catalogue.
    Semantic similarity is skipped (absent) when no encoder is given."""
    _check_pairs(hypotheses, references)
    if len(item_features) != len(hypotheses):
        raise ValueError(f"{len(item_features)} feature sets for {len(hypotheses)} explanations")
    hyp = [tokenize(t, config.max_tokens) for t in hypotheses]
    ref = [tokenize(t, config.max_tokens) for t in references]
    vocab = feature_vocabulary(vocabulary)
    mentioned = [detect_features(h, vocab) for h in hyp]
    targets = [feature_vocabulary(f) for f in item_features]
    out = {f"bleu{n}": bleu(hyp, ref, n) for n in config.bleu_orders}
    out |= peter_rouge(hyp, ref) | standard_rouge(hyp, ref)
    out |= {
        "usr": unique_sentence_ratio(hyp),
        "fmr": feature_matching_ratio(mentioned, targets),
        "fcr": feature_coverage_ratio(mentioned, vocab) if vocab else float("nan"),
        "div": feature_diversity(mentioned) if len(mentioned) > 1 else float("nan"),
        "length": float(np.mean([len(h) for h in hyp])),
        "repetition": float(np.mean([repetition(h) for h in hyp])),
    }
    if encoder is not None:
        out["semantic"] = float(np.mean(semantic_similarity(encoder, hypotheses, references)))
    return out
