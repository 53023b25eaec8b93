"""A/B/n experiments on explanation styles: assignment and the statistics of thumbs-up rates.

Assignment is a pure function of (experiment name, associate, client): the same associate sees
the same style for the same client on every page load and every server, with no state to store,
and a new experiment name reshuffles everyone. Statistics take the store's votes frame (one row
per associate and explanation, `vote` in {+1, -1}, `variant`, `created_at`).
"""
from __future__ import annotations

import bisect
import hashlib
import math
from dataclasses import dataclass
from itertools import accumulate

import pandas as pd
from scipy import stats

from seller.data.schema import EXPLANATION_STYLES


def hash_unit(*parts: str) -> float:
    """A uniform number in [0, 1) determined by `parts` (sha256, stable across runs and hosts)."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class Experiment:
    name: str = "explanation-style-1"  # salt of the hash: renaming starts a fresh assignment
    variants: tuple[str, ...] = EXPLANATION_STYLES  # each variant is the style it serves
    weights: tuple[float, ...] | None = None  # traffic shares; None splits evenly

    def __post_init__(self):
        if len(self.variants) < 1 or len(set(self.variants)) != len(self.variants):
            raise ValueError(f"Experiment.variants must be distinct and non-empty, got {self.variants!r}")
        if self.weights is not None:
            if len(self.weights) != len(self.variants):
                raise ValueError(f"Experiment.weights has {len(self.weights)} entries for "
                                 f"{len(self.variants)} variants {self.variants!r}")
            if any(not math.isfinite(w) or w < 0 for w in self.weights) or sum(self.weights) <= 0:
                raise ValueError(f"Experiment.weights must be finite, >= 0 and not all 0, got {self.weights!r}")

    @property
    def shares(self) -> tuple[float, ...]:
        weights = self.weights or (1.0,) * len(self.variants)
        return tuple(w / sum(weights) for w in weights)

    @classmethod
    def from_spec(cls, name: str, spec: str) -> "Experiment":
        """Parse "feature=2,style=1,occasion=1" (the env/CLI form) into an experiment."""
        variants, weights = [], []
        for part in filter(None, (p.strip() for p in spec.split(","))):
            variant, sep, weight = part.partition("=")
            try:
                weights.append(float(weight) if sep else 1.0)
            except ValueError:
                raise ValueError(f"experiment weights {spec!r}: weight of {variant.strip()!r} "
                                 f"is not a number: {weight!r}") from None
            variants.append(variant.strip())
        return cls(name=name, variants=tuple(variants), weights=tuple(weights))

    def assign(self, associate_id: str, client_id: str) -> str:
        u = hash_unit(self.name, associate_id, client_id)
        edges = list(accumulate(self.shares))
        return self.variants[min(bisect.bisect_right(edges, u), len(self.variants) - 1)]


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (sound at small n and at 0 or n)."""
    if n <= 0:
        return (0.0, 1.0)
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, n={n}], got {successes}")
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (max(0.0, centre - half), min(1.0, centre + half))


def variant_rates(votes: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per variant: votes, ups, downs, thumbs-up rate and its Wilson interval."""
    rows = []
    for variant, group in votes.groupby("variant", sort=True):
        n, up = len(group), int((group["vote"] > 0).sum())
        low, high = wilson_interval(up, n, confidence)
        rows.append({"variant": variant, "votes": n, "up": up, "down": n - up,
                     "rate": up / n, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=["variant", "votes", "up", "down", "rate", "ci_low", "ci_high"])


def two_proportion_ztest(up_a: int, n_a: int, up_b: int, n_b: int) -> tuple[float, float]:
    """Pooled two-sided z-test of equal rates; returns (z, p_value). z > 0 when a's rate is higher."""
    if n_a <= 0 or n_b <= 0:
        raise ValueError(f"both groups need votes, got n_a={n_a}, n_b={n_b}")
    pooled = (up_a + up_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0:  # all up or all down in both groups: no evidence of a difference
        return 0.0, 1.0
    z = (up_a / n_a - up_b / n_b) / se
    return z, 2 * stats.norm.sf(abs(z))


@dataclass(frozen=True)
class TestResult:
    method: str  # "two-proportion z-test" or "chi-square"
    statistic: float
    p_value: float
    variants: tuple[str, ...]


def compare_variants(votes: pd.DataFrame) -> TestResult | None:
    """Do the variants' thumbs-up rates differ? None when fewer than two variants have votes."""
    table = variant_rates(votes)
    if len(table) < 2:
        return None
    names = tuple(table["variant"])
    if len(table) == 2:
        a, b = table.iloc[0], table.iloc[1]
        z, p = two_proportion_ztest(int(a.up), int(a.votes), int(b.up), int(b.votes))
        return TestResult("two-proportion z-test", z, p, names)
    counts = table[["up", "down"]].to_numpy()
    if (counts.sum(axis=0) == 0).any():  # a column of zeros: every vote the same way
        return TestResult("chi-square", 0.0, 1.0, names)
    chi2, p, _, _ = stats.chi2_contingency(counts, correction=False)
    return TestResult("chi-square", float(chi2), float(p), names)


def sample_size_per_variant(baseline_rate: float, uplift: float,
                            alpha: float = 0.05, power: float = 0.8) -> int:
    """Votes per variant to detect `baseline_rate` -> `baseline_rate + uplift` (absolute), two-sided.

    Uses Cohen's arcsine effect size h: 2*asin(sqrt(p_hat)) has variance ~1/n per group, so
    the difference of two groups of n has variance 2/n and n = 2 * ((z_alpha/2 + z_power) / h)^2.
    """
    target = baseline_rate + uplift
    if not 0 < baseline_rate < 1 or not 0 < target < 1 or uplift == 0:
        raise ValueError(f"need 0 < baseline_rate < 1, 0 < baseline_rate + uplift < 1 and uplift != 0; "
                         f"got baseline_rate={baseline_rate}, uplift={uplift}")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must be in (0, 1), got alpha={alpha}, power={power}")
    h = abs(2 * math.asin(math.sqrt(target)) - 2 * math.asin(math.sqrt(baseline_rate)))
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return math.ceil(2 * (z / h) ** 2)


def rate_over_time(votes: pd.DataFrame, freq: str = "D") -> pd.DataFrame:
    """Per period and variant: votes, ups, the period's rate and the cumulative rate so far."""
    columns = ["period", "variant", "votes", "up", "rate", "cumulative_rate"]
    if votes.empty:
        return pd.DataFrame(columns=columns)
    frame = votes.assign(period=votes["created_at"].dt.tz_convert("UTC").dt.floor(freq),
                         up=(votes["vote"] > 0).astype(int))
    out = (frame.groupby(["variant", "period"]).agg(votes=("up", "size"), up=("up", "sum"))
           .reset_index().sort_values(["variant", "period"]))
    out["rate"] = out["up"] / out["votes"]
    cum = out.groupby("variant")[["votes", "up"]].cumsum()
    out["cumulative_rate"] = cum["up"] / cum["votes"]
    return out[columns].reset_index(drop=True)


def to_csv(votes: pd.DataFrame) -> str:
    """The votes as CSV (ids, style, variant, text, vote, times; no client names are stored)."""
    return votes.to_csv(index=False)
