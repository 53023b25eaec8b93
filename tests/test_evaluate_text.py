"""Text metrics against hand-computed values (PETER's definitions, see seller/evaluate/text.py)."""
import math

import pytest

from seller.evaluate import text as T

HYP = T.tokenize("The strings sound great!")  # the strings sound great
REF = T.tokenize("the strings sound warm, and great.")  # the strings sound warm and great


def test_tokenize_lowercases_and_drops_punctuation():
    assert HYP == ["the", "strings", "sound", "great"]
    assert T.tokenize("It doesn't hum.") == ["it", "doesn't", "hum"]
    assert T.tokenize("a b c d", max_tokens=2) == ["a", "b"]


def test_bleu1_is_clipped_unigram_precision_times_brevity_penalty():
    # 4/4 unigrams match; c=4 < r=6 -> BP = exp(1 - 6/4)
    assert T.bleu([HYP], [REF], 1) == pytest.approx(100 * math.exp(-0.5), abs=1e-3)


def test_bleu4_is_corpus_level_without_smoothing():
    assert T.bleu([HYP], [REF], 4) == 0.0  # no matching 4-gram in the only pair
    hyp2, ref2 = list("abcde"), list("abcde")
    # corpus counts: p1 = 9/9, p2 = (2+4)/(3+4), p3 = (1+3)/(2+3), p4 = (0+2)/(1+2);
    # c = 9, r = 11 -> BP = exp(1 - 11/9)
    expected = 100 * math.exp(1 - 11 / 9) * (1 * 6 / 7 * 4 / 5 * 2 / 3) ** 0.25
    assert T.bleu([HYP, hyp2], [REF, ref2], 4) == pytest.approx(expected, abs=1e-3)


def test_peter_rouge_by_hand():
    r = T.peter_rouge([HYP], [REF])
    assert r["rouge1"] == pytest.approx(80.0, abs=1e-4)  # P=1, R=4/6
    assert r["rouge2"] == pytest.approx(50.0, abs=1e-4)  # P=2/3, R=2/5
    # LCS 4: R=2/3, P=1, beta=P/R=1.5 -> (1+2.25)*R*P/(R+2.25*P)
    assert r["rougeL"] == pytest.approx(100 * 3.25 * (2 / 3) / (2 / 3 + 2.25), abs=1e-4)


def test_standard_rouge_differs_where_peter_uses_sets_and_beta():
    std = T.standard_rouge([HYP], [REF])
    assert std["rougeL_std"] == pytest.approx(80.0, abs=1e-4)  # beta = 1 F1
    rep, one = ["good"] * 3, ["good"]
    assert T.peter_rouge([rep], [one])["rouge1"] == pytest.approx(100.0, abs=1e-4)  # sets
    assert T.standard_rouge([rep], [one])["rouge1_std"] == pytest.approx(50.0, abs=1e-4)


def test_usr_div_fcr_fmr_repetition_by_hand():
    assert T.unique_sentence_ratio([["a", "b"], ["a", "b"], ["c"]]) == pytest.approx(2 / 3)
    x, y = ("x",), ("y",)
    mentioned = [{x}, {x, y}, set()]
    assert T.feature_diversity(mentioned) == pytest.approx(1 / 3)  # 1 + 0 + 0 over 3 pairs
    assert T.feature_coverage_ratio(mentioned, {x, y, ("z",)}) == pytest.approx(2 / 3)
    assert T.feature_matching_ratio(mentioned, [{y}, {y}, {x}]) == pytest.approx(1 / 3)
    assert T.repetition(["a", "b", "a", "b"]) == pytest.approx(1 / 3)
    assert T.repetition(["a"]) == 0.0


def test_feature_phrases_are_detected_as_phrases():
    vocab = T.feature_vocabulary(["Rose Gold", "leather", None, ""])
    assert vocab == {("rose", "gold"), ("leather",)}
    assert T.detect_features(T.tokenize("A rose gold clasp on leather"), vocab) == vocab
    assert T.detect_features(T.tokenize("gold and rose"), vocab) == set()


def test_text_metrics_bundle_and_bad_input():
    out = T.text_metrics(["The strings sound great", "a leather strap"],
                         ["the strings sound warm and great", "a brown leather strap"],
                         [["strings"], ["leather", "brown"]], ["strings", "leather", "brown"])
    assert out["fmr"] == 1.0 and out["fcr"] == pytest.approx(2 / 3)
    assert out["length"] == pytest.approx(3.5) and out["usr"] == 1.0
    assert "semantic" not in out
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        T.text_metrics(["a", "b"], ["a"], [[], []], [])


@pytest.mark.slow
def test_minilm_semantic_similarity_ranks_paraphrase_above_unrelated():
    enc = T.SentenceEncoder()
    sims = T.semantic_similarity(enc, ["These strings sound bright and warm",
                                       "The invoice was paid late"],
                                 ["The strings have a warm, bright tone"] * 2)
    assert sims.shape == (2,) and sims[0] > sims[1] + 0.3
