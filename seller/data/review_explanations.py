"""Reference explanations from review text, the PETER way, for Amazon Musical Instruments.

PETER (Li et al., ACL 2021) and PEPLER train and score on one sentence per review: the
sentence in which the Sentires toolkit found an item feature (an aspect such as "strings",
"tuner", "sound quality"). Sentires needs a POS tagger and a sentiment lexicon we do not ship,
so we reproduce the idea with a documented, dependency-free pipeline:

1. Sentences: split each review on . ! ? and line breaks, also where a full stop is glued to
   the next sentence ("affordable.I did"), which this data often has.
2. Aspect lexicon (`build_aspect_lexicon`), nouns and noun phrases frequent across reviews.
   Without a tagger, a word counts as a noun when it often heads a determiner phrase: at least
   `min_determiner_share` of its occurrences close a phrase opened by a determiner or
   possessive one or two words before, right before a function word or punctuation ("the
   strings are", "my tuner .", "the sound quality with"), which adjectives rarely do ("the
   right size"); it is not a stopword, not in a short list of adjectives
   and quantity words that also follow determiners ("the best", "a lot"), does not look like an
   adjective or adverb by suffix (-ly, -ous, -ful, -able, -ible, -ive, -less, -est), and it
   appears in at least `min_reviews` reviews. Noun phrases are adjacent noun pairs
   ("sound quality", "patch cable") seen in at least `min_reviews` reviews. The lexicon keeps
   the `max_aspects` most frequent entries.
3. Per review, the reference explanation is the sentence of `min_words`..`max_words` words
   carrying the most distinct aspects (a phrase counts once, not again for its words); ties go
   to the earlier sentence. Reviews with no such sentence are dropped, as PETER drops reviews
   in which Sentires found no feature.
The output has the columns of sample_data/explanations.csv (client_id, item_id,
target_timestamp, style, text, cited_event_ids) plus `aspects`; the style is "feature"
because review sentences describe item features. Ids are the raw reviewerID and asin.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

REVIEWS_FILE = "amazon_musical_instruments/reviews_Musical_Instruments_5.json.gz"

STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before
being below between both but by can could did do does doing don down during each few for
from further had has have having he her here hers herself him himself his how i if in into
is it its itself just me more most my myself no nor not now of off on once only or other our
ours ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were
what when where which while who whom why will with would you your yours yourself yourselves
im ive it's i'm i've don't doesn't didn't can't won't isn't wasn't thing things one ones way
""".split())
# "that" is left out: it is a relative pronoun as often as a determiner ("that came with").
DETERMINERS = frozenset(
    "the a an this these those my your his her its our their each every another".split())
# Words that follow determiners as often as nouns do but are not item aspects.
NOT_ASPECTS = frozenset("""
best same only other first last next whole little few lot bit couple great good nice new old
better worse least most much many big small price money time times review reviews amazon
product products item items star stars problem problems issue issues reason thing stuff way
day days year years month months week weeks end part kind sort type sure fact case job work
order purchase buy deal one two three four five try back must needs helps others second built
plus inside outside past left mind guy guys friend friends son house place point idea opinion
matter purpose rest chance person world future sense night hour dollar bunch pair number
ability ease company market user test results show store variety amount choice option life
experience name difference side step trick copy picture description rating
""".split())
_ADJ_SUFFIX = re.compile(r"(?:ly|ous|ful|able|ible|ive|less|est)$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[a-z][.!?])(?=[A-Z])|\n+")
_WORD = re.compile(r"[a-z][a-z']*")
_WORD_OR_PUNCT = re.compile(r"[a-z][a-z']*|[.,!?;:()]")


@dataclass(frozen=True)
class ExtractionConfig:
    min_reviews: int = 10  # an aspect must recur across reviews, not be one reviewer's word
    min_determiner_share: float = 0.1  # heads of 'the X .'-shaped phrases; adjectives rarely are
    max_aspects: int = 300  # Sentires-sized lexicons on 5-core Amazon data are a few hundred
    min_words: int = 4  # shorter "sentences" are fragments ("Great!")
    max_words: int = 30  # PETER generates 15 words; longer run-ons are several thoughts


def default_reviews_path() -> Path:
    from seller.paths import shared_data_dir
    return shared_data_dir() / REVIEWS_FILE


def load_reviews(path: str | Path | None = None) -> pd.DataFrame:
    """Raw reviews as a frame (client_id, item_id, timestamp, rating, text), in file order."""
    from seller.data.public import read_review_records
    path = Path(path) if path else default_reviews_path()
    if not path.exists():
        raise FileNotFoundError(f"Musical Instruments reviews not found at {path} "
                                "(set SELLER_SHARED_DATA to the folder holding it)")
    raw = read_review_records(path)
    df = raw.rename(columns={"client": "client_id", "item": "item_id"})[
        ["client_id", "item_id", "rating", "text"]]
    df["timestamp"] = pd.to_datetime(raw["ts"], unit="s", utc=True)
    return df


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def words(sentence: str) -> list[str]:
    return _WORD.findall(sentence.lower())


def _is_noun_shaped(w: str) -> bool:
    suffix = _ADJ_SUFFIX.search(w)
    adjective_like = suffix is not None and suffix.start() >= 3  # "cable" keeps its noun
    return (len(w) >= 3 and w not in STOPWORDS and w not in NOT_ASPECTS
            and "'" not in w and not adjective_like)


def _ends_phrase(token: str) -> bool:
    return token in STOPWORDS or not token[0].isalpha()


def build_aspect_lexicon(reviews: Iterable[str],
                         config: ExtractionConfig = ExtractionConfig()) -> list[str]:
    """Frequent nouns and noun pairs across reviews (see the module docstring), most frequent
    first; phrases are space-joined ("sound quality")."""
    count, heads, docs = Counter(), Counter(), Counter()
    tokenised = []
    for review in reviews:
        toks = _WORD_OR_PUNCT.findall(review.lower()) + ["."]
        tokenised.append(toks)
        docs.update(set(toks))
        count.update(toks)
        # w heads a phrase "DET w END" or "DET x w END" (compounds: "the sound quality .")
        heads.update(w for i, w in enumerate(toks[1:-1], 1) if _ends_phrase(toks[i + 1]) and (
            toks[i - 1] in DETERMINERS or (i > 1 and toks[i - 2] in DETERMINERS)))
    nouns = {w for w, c in count.items()
             if _is_noun_shaped(w) and docs[w] >= config.min_reviews
             and heads[w] / c >= config.min_determiner_share}
    pair_count, pair_docs = Counter(), Counter()
    for toks in tokenised:
        pairs = [(a, b) for a, b in zip(toks, toks[1:]) if a in nouns and b in nouns and a != b]
        pair_count.update(pairs)
        pair_docs.update(set(pairs))
    phrases = {" ".join(p): c for p, c in pair_count.items() if pair_docs[p] >= config.min_reviews}
    scored = {w: count[w] for w in nouns} | phrases
    return sorted(scored, key=lambda a: (-scored[a], a))[:config.max_aspects]


def find_aspects(sentence_words: Sequence[str], lexicon: set[str]) -> list[str]:
    """Distinct aspects in a sentence, phrases first (their words are not counted again)."""
    found, i = [], 0
    while i < len(sentence_words):
        pair = " ".join(sentence_words[i:i + 2])
        if i + 1 < len(sentence_words) and pair in lexicon:
            found.append(pair)
            i += 2
        else:
            if sentence_words[i] in lexicon:
                found.append(sentence_words[i])
            i += 1
    return list(dict.fromkeys(found))


def best_sentence(review: str, lexicon: set[str],
                  config: ExtractionConfig = ExtractionConfig()) -> tuple[str, list[str]] | None:
    """The sentence carrying the most distinct aspects (earliest on ties), or None."""
    best = None
    for s in split_sentences(review):
        w = words(s)
        if not config.min_words <= len(w) <= config.max_words:
            continue
        aspects = find_aspects(w, lexicon)
        if aspects and (best is None or len(aspects) > len(best[1])):
            best = (s, aspects)
    return best


def extract_reference_explanations(reviews: pd.DataFrame,
                                   config: ExtractionConfig = ExtractionConfig(),
                                   lexicon: Sequence[str] | None = None) -> pd.DataFrame:
    """One reference explanation per review that has an aspect sentence. `reviews` has
    client_id, item_id, timestamp and text (as `load_reviews` returns). Pass `lexicon` to
    reuse one built on training reviews only."""
    for col in ("client_id", "item_id", "timestamp", "text"):
        if col not in reviews:
            raise KeyError(f"extract_reference_explanations: reviews lack column {col!r}")
    lex = set(lexicon if lexicon is not None else build_aspect_lexicon(reviews["text"], config))
    rows = []
    for r in reviews.itertuples(index=False):
        found = best_sentence(r.text, lex, config)
        if found:
            rows.append((r.client_id, r.item_id, r.timestamp, "feature", found[0], "",
                         ";".join(found[1])))
    return pd.DataFrame(rows, columns=["client_id", "item_id", "target_timestamp", "style",
                                       "text", "cited_event_ids", "aspects"])


def item_aspects(refs: pd.DataFrame, train_clients: Iterable[str]) -> dict[str, list[str]]:
    """item -> its aspects in TRAINING clients' reference sentences, most frequent first; ""
    -> the same over all items (["quality"] when there is none). Ties keep first-seen order.
    Held-out clients' reviews never count, so whatever is built on this (the template, the
    simulated client's profiles, the prompts' item descriptions) cannot see a test reference."""
    rows = refs[refs["client_id"].astype(str).isin(set(map(str, train_clients)))]
    per_item: dict[str, Counter] = {}
    overall = Counter()
    for item, aspects in zip(rows["item_id"].astype(str), rows["aspects"].astype(str)):
        found = [a for a in aspects.split(";") if a]
        per_item.setdefault(item, Counter()).update(found)
        overall.update(found)
    out = {i: [a for a, _ in c.most_common()] for i, c in per_item.items() if c}
    out[""] = [a for a, _ in overall.most_common()] or ["quality"]
    return out
