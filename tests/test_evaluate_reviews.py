"""PETER-style reference extraction from review text (seller/data/review_explanations.py)."""
import gzip
import json

import pandas as pd
import pytest

from seller.data import review_explanations as R

REAL = R.default_reviews_path()


def corpus(n=12):
    """Reviews where strings/tuner/sound quality head noun phrases and 'great' never does."""
    out = []
    for i in range(n):
        out.append(f"The strings are great. My tuner is accurate. I like the sound quality. "
                   f"This is a great buy number {i}. The sound is warm. The strings and the tuner last.")
    return out


def test_split_sentences_handles_glued_full_stops():
    assert R.split_sentences("Quite affordable.I did not know.  Great!\nThe end") == [
        "Quite affordable.", "I did not know.", "Great!", "The end"]


def test_lexicon_keeps_heads_of_noun_phrases_not_adjectives():
    lex = R.build_aspect_lexicon(corpus(), R.ExtractionConfig(min_reviews=10))
    assert {"strings", "tuner", "quality", "sound quality"} <= set(lex)
    assert "great" not in lex and "works" not in lex
    assert R.build_aspect_lexicon(corpus(5), R.ExtractionConfig(min_reviews=10)) == []


def test_best_sentence_carries_most_aspects_phrase_counted_once():
    lex = {"strings", "tuner", "sound quality", "sound", "quality"}
    s, aspects = R.best_sentence("Nice. The tuner is fine here. Both the strings and the tuner "
                                 "and the sound quality are good.", lex)
    assert s.startswith("Both") and aspects == ["strings", "tuner", "sound quality"]
    assert R.best_sentence("Great! Love it so much today.", lex) is None


def test_extract_columns_match_explanations_csv(tmp_path):
    reviews = pd.DataFrame({"client_id": ["A", "B"], "item_id": ["X", "Y"],
                            "timestamp": pd.to_datetime([1, 2], unit="s", utc=True),
                            "text": ["Wow. My tuner is spot on every time.", "Nope."]})
    out = R.extract_reference_explanations(reviews, lexicon=["tuner"])
    assert list(out.columns) == ["client_id", "item_id", "target_timestamp", "style", "text",
                                 "cited_event_ids", "aspects"]
    assert out.to_dict("records")[0] | {"target_timestamp": None} == {
        "client_id": "A", "item_id": "X", "target_timestamp": None, "style": "feature",
        "text": "My tuner is spot on every time.", "cited_event_ids": "", "aspects": "tuner"}
    with pytest.raises(KeyError, match="'text'"):
        R.extract_reference_explanations(reviews.drop(columns="text"), lexicon=["tuner"])


def test_bad_review_line_is_named(tmp_path):
    path = tmp_path / "r.json.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps({"reviewerID": "A", "asin": "X", "unixReviewTime": 1,
                            "reviewText": "ok"}) + "\n")
        f.write(json.dumps({"reviewerID": "B"}) + "\n")
    with pytest.raises(ValueError, match=r"line 2"):
        R.load_reviews(path)


@pytest.mark.skipif(not REAL.exists(), reason=f"public data absent: {REAL}")
def test_real_musical_instruments_extraction():
    reviews = R.load_reviews(REAL)
    assert len(reviews) == 10261
    lex = R.build_aspect_lexicon(reviews["text"])
    assert {"strings", "tuner", "pedal", "cable"} <= set(lex[:60])
    out = R.extract_reference_explanations(reviews.head(1500), lexicon=lex)
    assert len(out) > 0.85 * 1500  # PETER-style data keeps most reviews
    lengths = out["text"].str.split().str.len()
    assert lengths.between(3, 40).all()


def test_prompt_aspects_describe_items_from_training_clients_only():
    from seller.prompt import item_text, prompt_aspects

    refs = pd.DataFrame({"client_id": ["A", "B", "B", "T", "T"], "item_id": ["X", "X", "Y", "X", "Z"],
                         "aspects": ["strings;tuner;case", "tuner", "pedal", "cable;cable", "amp"]})
    got = prompt_aspects(refs, ["A", "B"], 2)
    # T is held out: its 'cable' never outranks, its item Z gets no description at all
    assert got == {"X": ["tuner", "strings"], "Y": ["pedal"]}
    assert prompt_aspects(refs, ["A", "B"], 0) == {}
    item = pd.Series({"item_id": "X", "name": "X"})
    assert item_text(item, got["X"]) == "X, reviewers mention tuner, strings"
    assert item_text(item) == "X"  # no aspects, no description (the sample's prompts are unchanged)


def test_model_trained_with_item_aspects_needs_its_aspects_file_intact(tmp_path):
    import json

    from seller.bundle import ITEM_ASPECTS_FILE
    from seller.bundle import read_item_aspects as _item_aspects

    assert _item_aspects(tmp_path, 0) is None  # trained without descriptions: none served
    with pytest.raises(FileNotFoundError, match=rf"item_aspects = 5 but lacks {ITEM_ASPECTS_FILE}"):
        _item_aspects(tmp_path, 5)
    (tmp_path / ITEM_ASPECTS_FILE).write_text(json.dumps({"X": ["tuner"]}))
    assert _item_aspects(tmp_path, 5) == {"X": ["tuner"]}
    (tmp_path / ITEM_ASPECTS_FILE).write_text('{"X": ["tuner"')  # cut short
    with pytest.raises(ValueError, match=rf"{ITEM_ASPECTS_FILE}: not valid JSON"):
        _item_aspects(tmp_path, 5)
    (tmp_path / ITEM_ASPECTS_FILE).write_text(json.dumps({"X": "tuner"}))
    with pytest.raises(ValueError, match=r"expected \{item_id: \[aspect"):
        _item_aspects(tmp_path, 5)
