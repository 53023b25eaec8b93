"""Experiment assignment and statistics, checked against independent computations."""
import hashlib
import math
from collections import Counter

import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_confint, proportion_effectsize, proportions_ztest

from seller.feedback.experiments import (Experiment, compare_variants, hash_unit, rate_over_time,
                                         sample_size_per_variant, to_csv, two_proportion_ztest,
                                         variant_rates, wilson_interval)


def test_assignment_is_a_deterministic_hash():
    exp = Experiment(name="exp-a")
    u = int.from_bytes(hashlib.sha256("exp-a\x1fA01\x1fC001".encode()).digest()[:8], "big") / 2**64
    assert hash_unit("exp-a", "A01", "C001") == u
    assert exp.assign("A01", "C001") == exp.variants[int(u * 3)]
    assert Experiment(name="exp-a").assign("A01", "C001") == exp.assign("A01", "C001")
    renamed = Experiment(name="exp-b")
    pairs = [(f"A{a}", f"C{c:03d}") for a in range(10) for c in range(100)]
    moved = sum(exp.assign(*p) != renamed.assign(*p) for p in pairs)
    assert 0.55 < moved / len(pairs) < 0.78  # a fresh draw moves about 2/3 of pairs


def test_assignment_follows_weights():
    exp = Experiment(variants=("feature", "style", "occasion", "off"), weights=(6, 3, 1, 0))
    pairs = [(f"A{a}", f"C{c:04d}") for a in range(20) for c in range(1000)]
    shares = Counter(exp.assign(*p) for p in pairs)
    assert shares["off"] == 0
    for variant, expected in zip(exp.variants[:3], (0.6, 0.3, 0.1)):
        assert abs(shares[variant] / len(pairs) - expected) < 0.01, (variant, shares)


@pytest.mark.parametrize("kwargs, message", [
    (dict(variants=("a", "a")), "distinct"),
    (dict(variants=("a", "b"), weights=(1,)), "1 entries for 2 variants"),
    (dict(variants=("a", "b"), weights=(1, -1)), "weights must be"),
    (dict(variants=("a", "b"), weights=(0, 0)), "weights must be"),
])
def test_bad_experiments_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Experiment(**kwargs)


@pytest.mark.parametrize("up, n", [(0, 10), (10, 10), (7, 10), (81, 263), (1, 1), (500, 1000)])
def test_wilson_matches_statsmodels(up, n):
    low, high = wilson_interval(up, n)
    ref_low, ref_high = proportion_confint(up, n, alpha=0.05, method="wilson")
    assert low == pytest.approx(ref_low, abs=1e-12) and high == pytest.approx(ref_high, abs=1e-12)


def test_wilson_known_value():
    # 0 of n: the upper bound is z^2 / (n + z^2) exactly
    z2 = stats.norm.ppf(0.975) ** 2
    assert wilson_interval(0, 10) == (0.0, pytest.approx(z2 / (10 + z2)))
    assert wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(11, 10)


@pytest.mark.parametrize("a, b", [((45, 100), (30, 100)), ((520, 1000), (480, 990)), ((3, 7), (6, 9))])
def test_ztest_matches_statsmodels_and_chi_square(a, b):
    z, p = two_proportion_ztest(a[0], a[1], b[0], b[1])
    ref_z, ref_p = proportions_ztest([a[0], b[0]], [a[1], b[1]])
    assert z == pytest.approx(ref_z, rel=1e-10) and p == pytest.approx(ref_p, rel=1e-10)
    table = [[a[0], a[1] - a[0]], [b[0], b[1] - b[0]]]
    chi2, chi_p, _, _ = stats.chi2_contingency(table, correction=False)
    assert z * z == pytest.approx(chi2, rel=1e-10) and p == pytest.approx(chi_p, rel=1e-10)


def votes_frame(counts: dict[str, tuple[int, int]], start="2025-01-01") -> pd.DataFrame:
    rows = []
    for variant, (up, down) in counts.items():
        for i in range(up + down):
            rows.append({"variant": variant, "vote": 1 if i < up else -1,
                         "created_at": pd.Timestamp(start, tz="UTC") + pd.Timedelta(hours=i)})
    return pd.DataFrame(rows)


def test_variant_rates_and_comparison():
    votes = votes_frame({"feature": (30, 10), "style": (20, 20), "occasion": (5, 15)})
    rates = variant_rates(votes).set_index("variant")
    assert rates.loc["feature", ["votes", "up", "down"]].tolist() == [40, 30, 10]
    assert rates.loc["feature", "rate"] == 0.75
    assert (rates.loc["style", "ci_low"], rates.loc["style", "ci_high"]) == wilson_interval(20, 40)
    result = compare_variants(votes)
    chi2, p, _, _ = stats.chi2_contingency([[30, 10], [5, 15], [20, 20]], correction=False)
    assert result.method == "chi-square"
    assert result.statistic == pytest.approx(chi2) and result.p_value == pytest.approx(p)
    pair = compare_variants(votes[votes.variant != "occasion"])
    assert pair.method == "two-proportion z-test" and pair.variants == ("feature", "style")
    assert pair.statistic == pytest.approx(proportions_ztest([30, 20], [40, 40])[0])
    assert compare_variants(votes[votes.variant == "style"]) is None
    same = compare_variants(votes_frame({"a": (5, 0), "b": (7, 0), "c": (1, 0)}))
    assert (same.statistic, same.p_value) == (0.0, 1.0)


@pytest.mark.parametrize("base, uplift", [(0.5, 0.1), (0.6, 0.05), (0.2, -0.05), (0.05, 0.01)])
def test_sample_size_matches_statsmodels_power(base, uplift):
    n = sample_size_per_variant(base, uplift)
    h = proportion_effectsize(base + uplift, base)
    ref = NormalIndPower().solve_power(effect_size=h, alpha=0.05, power=0.8, ratio=1)
    assert n == math.ceil(ref) or n == math.ceil(ref) + 1  # statsmodels adds the far tail
    assert NormalIndPower().power(h, nobs1=n, alpha=0.05) >= 0.8
    assert NormalIndPower().power(h, nobs1=n - 2, alpha=0.05) < 0.8


def test_sample_size_known_value_and_errors():
    # h(0.5 -> 0.6) = 0.2013579; 2 * ((1.959964 + 0.841621) / h)^2 = 387.2 -> 388
    assert sample_size_per_variant(0.5, 0.1) == 388
    assert sample_size_per_variant(0.5, 0.05) > 4 * 380
    with pytest.raises(ValueError, match="uplift"):
        sample_size_per_variant(0.95, 0.1)
    with pytest.raises(ValueError, match="power"):
        sample_size_per_variant(0.5, 0.1, power=1.0)


def test_rate_over_time_per_day_and_cumulative():
    votes = votes_frame({"feature": (30, 18)})  # 48 hourly votes: day 1 all up, day 2 6 up
    out = rate_over_time(votes, freq="D")
    assert out["votes"].tolist() == [24, 24]
    assert out["rate"].tolist() == [1.0, 0.25]
    assert out["cumulative_rate"].tolist() == [1.0, 30 / 48]
    assert rate_over_time(votes.iloc[:0]).empty


def test_csv_export_round_trips():
    votes = votes_frame({"feature": (2, 1)}).assign(client_id="C001")
    back = pd.read_csv(pd.io.common.StringIO(to_csv(votes)))
    assert back.columns.tolist() == ["variant", "vote", "created_at", "client_id"]
    assert back["vote"].tolist() == [1, 1, -1]


def test_experiment_from_spec():
    exp = Experiment.from_spec("e", "feature=2, style=1,occasion")
    assert exp.variants == ("feature", "style", "occasion") and exp.shares == (0.5, 0.25, 0.25)
    with pytest.raises(ValueError, match="'style' is not a number"):
        Experiment.from_spec("e", "feature=2,style=x")
