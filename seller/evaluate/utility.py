"""Practical utility: would an explanation help a client pick what they actually go on to want?

The simulator. For each held-out client (and style) the client is shown K candidates: the true
next item plus K-1 of the recommender's other top items, each with the explanation a method
wrote for it. The simulated client knows only its own held-out FUTURE behaviour: a profile
text made of the catalogue attributes (maison, category, subcategory, colour, material,
hardware, collection) of the items of its next `n_future` events. It embeds each explanation
and its profile with MiniLM and chooses candidate j with probability
softmax_j(cos(explanation_j, profile) / temperature). We record the expected probability of
choosing the true item (no sampling noise).

Three conditions, same cases:
- with explanations: as above;
- without (no text): nothing distinguishes the candidates, the choice is uniform, 1/K;
- shuffled (control): each candidate carries another candidate's explanation of the same case
  (a random cyclic shift, never the identity), so the text distribution is unchanged and only
  the assignment is wrong; fluent but item-blind text scores the same with or without
  shuffling, so a gain here must come from item-specific content.
Lift = rate(with) - rate(without) and rate(with) - rate(shuffled), with 95% bootstrap CIs
over cases, overall and per style.

Why it cannot leak the reference: the simulator's inputs are the explanations under test and
item attributes of the client's future events read from the catalogue; no function here takes
a reference explanation, and the profile uses no free text at all (not even item names or
descriptions, which a generator could copy). The generator, for its part, is given only events
before the target, so it cannot see the profile either. The temperature is fixed a priori
(MiniLM cosines of short related texts differ by 0.05-0.2, so 0.05 lets a clearly better match
dominate without turning choice into argmax); it is never tuned on the test clients.

Review data (Musical Instruments) has no catalogue attributes. There the words standing for an
item are its `REVIEW_PROFILE_ASPECTS` most frequent aspects in TRAINING clients' reference
sentences (the aspect words PETER's features are made of). A test client's own reviews, the
references scored, never enter a profile: test clients are all held out of training. These
words play the catalogue attributes' part: with `data.item_aspects` the prompts name each
candidate's top aspects, as the sample's prompts name its maison, hardware and collection,
so on both datasets an explanation that describes the true item well matches the future.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

PROFILE_COLUMNS = ("maison", "category", "subcategory", "color", "material", "hardware",
                   "collection")
# Review data: aspects per future item in the profile, fixed before any evaluation run (a
# 5-core item has a handful of recurring aspects; five keep its main ones, not its long tail).
REVIEW_PROFILE_ASPECTS = 5


@dataclass(frozen=True)
class UtilityConfig:
    k: int = 4  # candidates shown: the true next item + 3 others, a short list a client reads
    temperature: float = 0.05  # softmax temperature on cosine (see module docstring)
    n_future: int = 3  # future events in the profile: the next purchase intent, not a lifetime
    n_bootstrap: int = 2000  # bootstrap resamples for the 95% CIs
    seed: int = 0  # fixes the shuffles and the bootstrap

    def __post_init__(self):
        if self.k < 2:
            raise ValueError(f"UtilityConfig.k must be >= 2 to have a choice, got {self.k}")
        if self.temperature <= 0:
            raise ValueError(f"UtilityConfig.temperature must be > 0, got {self.temperature}")
        if self.n_future < 1:
            raise ValueError(f"UtilityConfig.n_future must be >= 1, got {self.n_future}")


@dataclass(frozen=True)
class ChoiceCase:
    """One choice: K explanations (one per candidate), which one is the true next item, and
    the client's profile built by `future_profile`."""

    case_id: str
    style: str
    explanations: tuple[str, ...]
    true_index: int
    profile: str

    def __post_init__(self):
        if len(self.explanations) < 2:
            raise ValueError(f"case {self.case_id}: a choice needs at least 2 candidates")
        if not 0 <= self.true_index < len(self.explanations):
            raise ValueError(f"case {self.case_id}: true_index {self.true_index} outside "
                             f"{len(self.explanations)} candidates")


def future_profile(items: pd.DataFrame, future_item_ids: Sequence[str],
                   item_words: Mapping[str, str] | None = None) -> str:
    """Profile text from the catalogue attributes of the client's future items (no free text).
    `item_words` (item -> words) stands in for the attributes where the catalogue has none:
    review data's training-client aspects (see the module docstring)."""
    if not future_item_ids:
        raise ValueError("future_profile: the client has no held-out future events")
    table = items.set_index("item_id")
    missing = [i for i in future_item_ids if i not in table.index]
    if missing:
        raise KeyError(f"future_profile: item_id {missing[0]!r} is not in the catalogue")
    if item_words is not None:
        return "; ".join(w for w in (item_words.get(i, "") for i in future_item_ids) if w)
    parts = []
    for item_id in future_item_ids:
        row = table.loc[item_id]
        values = [str(row[c]) for c in PROFILE_COLUMNS if c in row and pd.notna(row[c])
                  and str(row[c]).strip()]
        if values:
            parts.append(" ".join(values))
    return "; ".join(parts)


def softmax(x: np.ndarray, temperature: float) -> np.ndarray:
    z = np.asarray(x, dtype=np.float64) / temperature
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def _shift(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random cyclic shift that moves every position (a derangement)."""
    return np.roll(np.arange(n), int(rng.integers(1, n)))


def choice_rates(cases: Sequence[ChoiceCase], encode: Callable[[list[str]], np.ndarray],
                 config: UtilityConfig = UtilityConfig()) -> pd.DataFrame:
    """Per case: probability the true item is chosen with, without and with shuffled
    explanations. `encode(texts)` returns unit-length rows (e.g. SentenceEncoder.encode)."""
    if not cases:
        raise ValueError("no choice cases")
    texts = [t for c in cases for t in c.explanations]
    emb = encode(texts + [c.profile for c in cases])
    expl, prof = emb[:len(texts)], emb[len(texts):]
    rng = np.random.default_rng(config.seed)
    rows, start = [], 0
    for i, c in enumerate(cases):
        k = len(c.explanations)
        sims = expl[start:start + k] @ prof[i]  # (K,)
        start += k
        shuffled = sims[_shift(k, rng)]
        rows.append({
            "case_id": c.case_id, "style": c.style, "k": k,
            "with": softmax(sims, config.temperature)[c.true_index],
            "without": 1.0 / k,
            "shuffled": softmax(shuffled, config.temperature)[c.true_index],
        })
    return pd.DataFrame(rows)


# A 95% percentile interval, cut at exactly these quantiles (not (1 - 0.95) / 2, which is
# 0.025000000000000022 in floating point).
CI_QUANTILES = (0.025, 0.975)


def bootstrap_ci(values: Sequence | Iterable[float], n_bootstrap: int, seed: int,
                 statistic: Callable[[np.ndarray], float] | None = None) -> tuple[float, float]:
    """95% percentile bootstrap CI over `n_bootstrap` resamples (with replacement) of `values`.

    The statistic is the mean of `values` unless `statistic` is given; it then receives each
    resample as indices into `values` (a ratio of two sums, corpus BLEU: statistics of several
    aligned lists), and `values` only fixes how many there are. Every evaluation CI comes from
    here, so the same seed draws the same resamples whatever the statistic."""
    v = list(values)
    if not v:
        raise ValueError("bootstrap of no values")
    rng = np.random.default_rng(seed)
    resamples = rng.integers(0, len(v), size=(n_bootstrap, len(v)))
    if statistic is None:
        stats = np.asarray(v, dtype=np.float64)[resamples].mean(axis=1)
    else:
        stats = [statistic(ix) for ix in resamples]
    lo, hi = np.quantile(stats, CI_QUANTILES)
    return float(lo), float(hi)


def _summary(df: pd.DataFrame, config: UtilityConfig) -> dict:
    lift_none = df["with"] - df["without"]
    lift_shuf = df["with"] - df["shuffled"]
    return {
        "n": int(len(df)),
        "rate_with": float(df["with"].mean()),
        "rate_without": float(df["without"].mean()),
        "rate_shuffled": float(df["shuffled"].mean()),
        "lift": float(lift_none.mean()),
        "lift_ci": bootstrap_ci(lift_none, config.n_bootstrap, config.seed),
        "lift_vs_shuffled": float(lift_shuf.mean()),
        "lift_vs_shuffled_ci": bootstrap_ci(lift_shuf, config.n_bootstrap, config.seed),
    }


def summarise(per_case: pd.DataFrame, config: UtilityConfig = UtilityConfig()) -> dict:
    """Overall and per-style choice rates and lifts with bootstrap CIs."""
    out = _summary(per_case, config)
    out["by_style"] = {s: _summary(g, config) for s, g in per_case.groupby("style", sort=True)}
    return out
