"""Simulated click-through: hand-checked softmax choices, controls and bootstrap."""
import math

import numpy as np
import pandas as pd
import pytest

from seller.evaluate.utility import (ChoiceCase, UtilityConfig, bootstrap_ci, choice_rates,
                                     future_profile, summarise)

ITEMS = pd.DataFrame([
    ("I1", "Kelly 28", "Hermès", "bag", "Black", "Leather", "a lovely description"),
    ("I2", "Tank", "Cartier", "watch", None, "Steel", "x"),
], columns=["item_id", "name", "maison", "category", "color", "material", "description"])


def bag_of_words(texts):
    """A small deterministic encoder: unit-normalised word counts over the texts' vocabulary."""
    vocab = sorted({w for t in texts for w in t.lower().split()})
    m = np.array([[t.lower().split().count(w) for w in vocab] for t in texts], dtype=float)
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)


def test_profile_uses_future_item_attributes_only():
    p = future_profile(ITEMS, ["I1", "I2"])
    assert p == "Hermès bag Black Leather; Cartier watch Steel"
    assert "Kelly" not in p and "description" not in p  # no free text a generator could copy
    with pytest.raises(KeyError, match="I9"):
        future_profile(ITEMS, ["I9"])


def test_review_profile_uses_the_given_item_words():
    words = {"I1": "strings tuner", "I2": ""}  # I2: no training client named an aspect
    assert future_profile(ITEMS, ["I1", "I2"], words) == "strings tuner"
    assert future_profile(ITEMS, ["I2"], words) == ""  # such a case has no profile: not scored
    with pytest.raises(KeyError, match="I9"):
        future_profile(ITEMS, ["I9"], words)


def test_choice_probabilities_by_hand():
    case = ChoiceCase("C1", "feature", ("black leather bag", "steel watch"), 0, "black leather bag")
    df = choice_rates([case], bag_of_words, UtilityConfig(k=2, temperature=0.5))
    p = math.exp(2) / (math.exp(2) + 1)  # cos 1 vs 0 at temperature 0.5
    assert df.loc[0, "with"] == pytest.approx(p)
    assert df.loc[0, "shuffled"] == pytest.approx(1 - p)  # the true item wears the other text
    assert df.loc[0, "without"] == 0.5


def test_item_blind_text_gives_no_lift():
    cases = [ChoiceCase(f"C{i}", "style", ("a lovely choice",) * 4, i % 4, "black bag")
             for i in range(8)]
    df = choice_rates(cases, bag_of_words)
    assert np.allclose(df["with"], 0.25) and np.allclose(df["shuffled"], 0.25)
    s = summarise(df, UtilityConfig(n_bootstrap=200))
    assert s["lift"] == pytest.approx(0.0) and s["lift_ci"] == pytest.approx((0.0, 0.0))


def test_summary_per_style_and_ci_contains_mean():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"case_id": range(60), "style": ["feature", "occasion"] * 30, "k": 4,
                       "with": rng.uniform(0.2, 0.6, 60), "without": 0.25,
                       "shuffled": rng.uniform(0.2, 0.3, 60)})
    s = summarise(df, UtilityConfig(n_bootstrap=500))
    lo, hi = s["lift_ci"]
    assert lo < s["lift"] < hi and set(s["by_style"]) == {"feature", "occasion"}
    assert s["by_style"]["feature"]["n"] == 30
    assert bootstrap_ci([0.3] * 5, 100, 0) == pytest.approx((0.3, 0.3))


def test_bootstrap_statistic_sees_the_same_resamples_as_the_mean():
    values = np.random.default_rng(3).uniform(0, 100, 37)
    mean_ci = bootstrap_ci(values, 400, 7)
    assert bootstrap_ci(values, 400, 7, statistic=lambda ix: values[ix].mean()) == mean_ci
    lo, hi = bootstrap_ci(values, 400, 7, statistic=lambda ix: values[ix].max())
    assert lo <= hi == values.max()
    with pytest.raises(ValueError, match="no values"):
        bootstrap_ci([], 10, 0)


def test_bad_config_and_case_name_the_field():
    with pytest.raises(ValueError, match="k must be >= 2"):
        UtilityConfig(k=1)
    with pytest.raises(ValueError, match="true_index 3"):
        ChoiceCase("C1", "feature", ("a", "b"), 3, "p")


@pytest.mark.slow
def test_minilm_client_prefers_the_explanation_matching_its_future():
    from seller.evaluate.text import SentenceEncoder

    enc = SentenceEncoder()
    profile = future_profile(ITEMS, ["I1"])
    case = ChoiceCase("C1", "feature", ("A Tank watch in polished steel for every day.",
                                        "A black Hermès leather bag for your evenings."),
                      1, profile)
    df = choice_rates([case], enc.encode, UtilityConfig(k=2))
    assert df.loc[0, "with"] > 0.6 > df.loc[0, "shuffled"]
