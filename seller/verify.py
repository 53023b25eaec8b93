"""Claim by claim: is every thing an explanation says true of the candidate, the client's
history and the day the card is read?

    verifier = ClaimVerifier(dataset.items)            # once per catalogue
    result = verifier.verify(text, item_id, history, today)
    result.passed        # associate-ready: no claim failed
    result.claims        # every claim: type, character span, verdict, reason

`history` is the client's events (columns item_id, event_type, timestamp; tz-aware), and only
those strictly before `today` count. Claim types (CLAIM_TYPES):
- kind: what "this/these ... <word>" calls the candidate must be its kind ("this bag" on a
  handbag, "this tote" only on a tote), and "a pair of" only fits pieces that come in pairs.
- name: each capitalised phrase must be a name, maison, collection, colour, material or
  hardware of the candidate or of an item in the client's history (or in their catalogue
  descriptions); an opening English word of a sentence ("After", "This") is not a name. A
  catalogue piece the client never touched fails, and so does a piece's name given as a maker
  ("crafted by the jeweller Boréale Twilly").
- date: a written day must be a day the item it is attached to had an event (of the attached
  verb's type when the verb is right), or the candidate's launch day; never after today.
- verb: "viewed / tried on / wishlisted / bought / put in the basket / returned" attached to an
  item must be an event type that item really had.
- attribute: a colour, material, maison, collection or hardware value given to an item (the
  nearest item mention in its sentence; the candidate when none) must be that item's own.
- word: every other word must be English (pyspellchecker's English list) or catalogue vocabulary.
- time: a season ("this summer") must be the current or the next one on `today`, an
  a "next" or "upcoming" one no further than two ahead; a festive occasion must be close ahead. Other occasions (a wedding) are unchecked: the data holds no calendar.
- coherence: what a strict reader rejects in a text with no false fact (a phrase said twice,
  a piece compared with itself, stacked openers, a sentence that breaks off...): one failed
  claim per fault, its rule first in the reason (seller.coherence.RULES).
- evidence: the reason rests on a past event, a verb or day attached to another piece of the
  client's history that they really did ("the Oriel Tote they viewed on 3 May 2026").
- pattern: "N other clients who chose <piece> went on to it" / "..., as it has for N other
  clients" (seller.fallback's co-occurrence reason, for items known only by name): at least N
  clients other than this one went on from that piece to the candidate (`follow_ons`, from
  seller.fallback.follow_ons over every client's events).
What cannot be checked (an item without attributes, an empty history, a pattern without the
events) is reported as an "unchecked" claim with its reason; a common colour, material or
hardware word (COMMON_ATTRIBUTE_WORDS) given to a piece whose catalogue row records none is one
too, never a silent pass. The verifier never raises on odd text or odd names.
"""
from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import asdict, dataclass
from datetime import date, datetime
from functools import lru_cache

import pandas as pd

from seller.coherence import Span, coherence_faults

CLAIM_TYPES = ("kind", "name", "date", "verb", "attribute", "word", "time", "pattern", "coherence",
               "evidence")
ATTRIBUTES = ("maison", "collection", "color", "material", "hardware")
NAME_COLUMNS = ("name", "stem", "line")  # full name, name before " in ", its first word
EVENT_VERBS = {  # phrase -> event type; longest phrases are tried first
    "viewed": "view", "looked at": "view", "browsed": "view",
    "tried on": "try_on", "tried": "try_on",
    "wishlisted": "wishlist", "saved": "wishlist", "wished for": "wishlist",
    "added to the wishlist": "wishlist", "added to their wishlist": "wishlist",
    "put in the basket": "add_to_cart", "added to the basket": "add_to_cart",
    "added to the cart": "add_to_cart", "added to their basket": "add_to_cart",
    "bought": "purchase", "purchased": "purchase", "ordered": "purchase", "acquired": "purchase",
    "returned": "return",
}
EVENT_WORDS = {"view": "viewed", "wishlist": "wishlisted", "try_on": "tried on",
               "add_to_cart": "put in the basket", "purchase": "bought", "return": "returned"}
# Everyday words for kinds of pieces -> the catalogue category they fit (generic: any piece of
# that category); the catalogue's own categories and subcategories are added at load.
GENERIC_KINDS = {
    "bag": "handbags", "handbag": "handbags", "purse": "handbags",
    "shoe": "shoes", "footwear": "shoes",
    "scarf": "silks", "silk": "silks",
    "jewel": "jewellery", "jewelry": "jewellery",
    "watch": "watches", "timepiece": "watches",
    "perfume": "fragrance", "scent": "fragrance",
    "garment": "ready-to-wear",
}
ANY_KIND = frozenset({"piece"})  # "this piece": what a candidate of any kind may be called
# Kinds no catalogue category fits unless the catalogue itself names them.
FOREIGN_KINDS = ("glove", "hat", "cap", "sunglass", "umbrella", "tie", "sock", "glass",
                 "jacket", "coat", "dress", "skirt", "shirt", "jumper", "cardigan", "bracelet",
                 "necklace", "ring", "earring", "boot", "sandal", "heel", "wallet", "candle")
# Everyday attribute words: on a piece whose catalogue row has no such column they are claims
# nothing can check (a catalogue's own values are read as its attributes first).
COMMON_ATTRIBUTE_WORDS = {
    **dict.fromkeys(("black", "white", "red", "blue", "green", "yellow", "pink", "purple", "brown",
                     "grey", "gray", "beige", "navy", "ivory", "cream", "burgundy", "orange", "tan",
                     "camel", "cognac", "khaki", "turquoise", "emerald", "scarlet"), "color"),
    **dict.fromkeys(("leather", "calfskin", "lambskin", "suede", "silk", "cotton", "wool",
                     "cashmere", "linen", "denim", "satin", "velvet", "canvas", "tweed", "nylon",
                     "crocodile", "python", "ostrich", "platinum", "titanium", "ceramic"), "material"),
    **dict.fromkeys(("gold", "silver", "palladium", "brass", "ruthenium"), "hardware"),
}
# the co-occurrence phrasings of seller.fallback: "<n> other clients who chose <piece> went on to"
# (the piece follows) and "<...piece...>, as it has for <n> other clients" (the piece precedes)
_OTHERS_CHOSE = re.compile(r"\b(?P<n>\w+) other clients who chose\b", re.I)
_AS_FOR_OTHERS = re.compile(r"\bas it has for (?P<n>\w+) other clients\b", re.I)
NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")  # counts as written
SEASONS = ("winter", "spring", "summer", "autumn")  # meteorological, northern hemisphere
FESTIVE = {"christmas": (12, 25), "the holidays": (12, 31), "the festive season": (12, 31),
           "new year": (12, 31), "valentine's day": (2, 14)}
OCCASION_WORDS = ("wedding", "gala", "journey", "trip", "holiday", "party", "dinner", "anniversary")
# The project's own wording that no English list spells (the trade's verbs).
TRADE_WORDS = frozenset({"wishlisted", "wishlist", "crossbody", "pavé", "carré", "extrait",
                         "avant-garde", "haute", "couture"})
SENTENCE_CONNECTORS = frozenset({"in", "of", "de", "du", "la", "le", "les", "des", "d", "et"})
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december")
_MONTH = "|".join(m.capitalize() for m in MONTHS)
_DATE = re.compile(
    rf"\b(?P<iso>(?P<iy>(?:19|20)\d\d)-(?P<im>[01]\d)-(?P<id>[0-3]\d))\b"
    rf"|\b(?:(?P<d1>[0-3]?\d)(?:st|nd|rd|th)?(?:\s+of)?\s+)?(?P<month>{_MONTH})"
    rf"(?:\s+(?P<d2>[0-3]?\d)(?:st|nd|rd|th)?\b,?)?(?:\s+(?P<year>(?:19|20)\d\d)\b)?")
# a year run into other digits that make no whole ISO day ("viewed on 2026-1"): no date a client hears
_BROKEN_DATE = re.compile(r"\b(?:19|20)\d\d[-/.]\d{1,2}(?:[-/.]\d{1,2})?\b")
_WORD = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*")
_SENTENCE_END = re.compile(r"[.!?;:](?:\s|$)")
_TIME = re.compile(r"\b(?P<mod>this|next|the coming|the upcoming|coming|upcoming|last)?\s*"
                   r"(?P<season>spring|summer|autumn|fall|winter)\b", re.I)
_FESTIVE = re.compile(r"\b(?:" + "|".join(re.escape(k) for k in FESTIVE) + r")\b", re.I)
_OCCASION = re.compile(r"\b(?:" + "|".join(OCCASION_WORDS) + r")s?\b", re.I)
_SUBJECT = re.compile(r"\b(?:this|these)\s+(?:(?:19|20)\d\d\s+)?", re.I)  # "this 2025 X" too
_PAIR = re.compile(r"\bpairs?\s+of\b", re.I)
_MAKER = re.compile(r"\b(?:made|crafted|designed|created)\s+by\s+(?:the\s+)?(?:[\w-]+\s+){0,3}$"
                    r"|\b(?:jewell?er|maker|designer|artist|craftsman)\W+(?:named\s+)?$", re.I)
_POSSESSIVE = re.compile(r"['’]s$")
# British spellings the (American) list lacks: colour -> color, realise -> realize, centre -> center
_BRITISH = ((re.compile(r"our(s|ed|ing|ful)?$"), r"or\1"), (re.compile(r"is(e|es|ed|ing)$"), r"iz\1"),
            (re.compile(r"tre(s)?$"), r"ter\1"), (re.compile(r"ogue(s)?$"), r"og\1"))
_AVOID_LOWER = frozenset({"none", "clear"})  # catalogue values that are plain words in lower case


@dataclass(frozen=True)
class Claim:
    type: str  # one of CLAIM_TYPES
    start: int  # character span in the text: text[start:end]
    end: int
    text: str
    verdict: str  # "pass" | "fail" | "unchecked"
    reason: str
    item_id: str | None = None  # the item the claim is about, when one is

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Verification:
    text: str
    claims: tuple[Claim, ...]

    @property
    def failed(self) -> tuple[Claim, ...]:
        return tuple(c for c in self.claims if c.verdict == "fail")

    @property
    def unchecked(self) -> tuple[Claim, ...]:
        return tuple(c for c in self.claims if c.verdict == "unchecked")

    @property
    def passed(self) -> bool:
        """Associate-ready: no claim failed (unchecked claims do not count against it)."""
        return not self.failed

    def to_dict(self) -> dict:
        return {"text": self.text, "passed": self.passed,
                "claims": [c.to_dict() for c in self.claims]}


def _key(text: str) -> str:
    """Phrase normal form: NFC, case-folded words joined by one space ("Top-Handle" -> "top handle")."""
    return " ".join(re.findall(r"[^\W_]+", unicodedata.normalize("NFC", text).casefold()))


def _singular(word: str) -> str:
    for suffix, repl in (("ies", "y"), ("sses", "ss"), ("ches", "ch"), ("shes", "sh"), ("s", "")):
        if word.endswith(suffix) and len(word) > len(suffix) + 1 and not word.endswith("ss"):
            return word[: -len(suffix)] + repl
    return word


def comes_in_pairs(subcategory: str | None) -> bool:
    """Its subcategory ends in a plural (ankle boots, earrings, loafers): "a pair of" fits."""
    words = _key(subcategory or "").split()
    return bool(words) and _singular(words[-1]) != words[-1]


def _fmt_day(d: date) -> str:
    return f"{d.day} {MONTHS[d.month - 1].capitalize()} {d.year}"


def season_of(day: date) -> tuple[str, int]:
    """(season, the year its winter-spanning months count to): December 2026 is winter 2027."""
    return SEASONS[(day.month % 12) // 3], day.year + (day.month == 12)


def seasons_ahead(day: date, n: int = 2) -> list[str]:
    """The current season and the next n-1, in order."""
    i = SEASONS.index(season_of(day)[0])
    return [SEASONS[(i + j) % 4] for j in range(n)]


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """pyspellchecker's English word list (about 160k forms, inflections included), lower case."""
    from spellchecker import SpellChecker

    return frozenset(SpellChecker(language="en", distance=1).word_frequency.dictionary)


@dataclass(frozen=True)
class _Item:
    item_id: str
    facts: dict  # column -> key ("name", "stem", "line", ATTRIBUTES, "category", "subcategory")
    display: dict  # column -> the value as the catalogue writes it
    launched: date | None

    @property
    def pair(self) -> bool:
        return comes_in_pairs(self.facts.get("subcategory"))


@dataclass(frozen=True)
class _Mention:
    start: int
    end: int
    item_id: str | None  # None: an unknown or out-of-context entity
    role: str  # "item" (a name) | "candidate" (this <kind>) | an ATTRIBUTES column
    key: str


class ClaimVerifier:
    """Verifies explanation texts against one catalogue (the schema's item columns)."""

    def __init__(self, items: pd.DataFrame, words: frozenset[str] | None = None,
                 follow_ons: dict[tuple[str, str], frozenset[str]] | None = None):
        """`follow_ons`: (earlier item, later item) -> the clients who went on from one to the
        other (seller.fallback.follow_ons), to check co-occurrence claims (None: unchecked)."""
        self._words = words
        self._follow_ons = follow_ons
        self._items: dict[str, _Item] = {}
        self._entities: dict[str, set[tuple[str, str]]] = {}  # key -> {(item_id, column)}
        for row in items.to_dict("records"):
            item = self._item(row)
            self._items[item.item_id] = item
            for column, key in item.facts.items():
                if key:
                    self._entities.setdefault(key, set()).add((item.item_id, column))
        self._max_words = max((k.count(" ") + 1 for k in self._entities), default=1)
        self._kinds = self._kind_words()
        descriptions = (items.set_index("item_id")["description"].dropna().astype(str)
                        if "description" in items and "item_id" in items else pd.Series(dtype=str))
        self._descriptions = {str(i): f" {_key(d)} " for i, d in descriptions.items()}
        self._vocabulary = frozenset(w for k in self._entities for w in k.split()) | frozenset(
            w for d in self._descriptions.values() for w in d.split())

    @classmethod
    def from_dataset(cls, dataset) -> "ClaimVerifier":
        return cls(dataset.items)

    @staticmethod
    def _item(row: dict) -> _Item:
        def text(column):
            v = row.get(column)
            return "" if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v).strip()

        name = text("name") or text("item_id")
        stem = re.split(r"\s+in\s+", name, maxsplit=1)[0]
        display = {c: text(c) for c in ("category", "subcategory", *ATTRIBUTES)}
        display.update(name=name, stem=stem, line=stem.split()[0] if " " in stem else "")
        facts = {c: _key(v) for c, v in display.items()}
        launched = pd.to_datetime(row.get("launched_at"), utc=True, errors="coerce")
        return _Item(text("item_id"), facts, display,
                     None if pd.isna(launched) else launched.date())

    def _kind_words(self) -> dict[str, tuple[str, frozenset[str]]]:
        """Singular kind key -> ("category", categories) or ("subcategory", subcategories)."""
        generic: dict[str, set[str]] = {}
        specific: dict[str, set[str]] = {}
        for item in self._items.values():
            cat, sub = item.facts.get("category"), item.facts.get("subcategory")
            if cat:
                generic.setdefault(_singular(cat), set()).add(cat)
            if sub:
                specific.setdefault(_singular(sub), set()).add(sub)
                specific.setdefault(_singular(sub.split()[-1]), set()).add(sub)
        cats = {c for s in generic.values() for c in s}
        for word, cat in GENERIC_KINDS.items():  # a category this catalogue lacks fits nothing
            generic.setdefault(word, set()).update({cat} & cats)
        out = {w: ("subcategory", frozenset(s)) for w, s in specific.items()}
        out.update({w: ("category", frozenset(s)) for w, s in generic.items()})
        for word in FOREIGN_KINDS:
            out.setdefault(word, ("category", frozenset()))
        return out

    # ------------------------------------------------------------------ the one entry point
    def verify(self, text: str, item_id: str, history: pd.DataFrame | None,
               today: datetime | date | str) -> Verification:
        """Every claim `text` makes about candidate `item_id` for a client with `history`
        (events before `today` count), read on `today`."""
        text = unicodedata.normalize("NFC", str(text or ""))
        if not text.strip():
            return Verification(text, ())  # nothing said, nothing to check (the guard shows none)
        day = pd.Timestamp(today)
        day = (day.tz_localize("UTC") if day.tzinfo is None else day.tz_convert("UTC"))
        claims: list[Claim] = []
        candidate = self._items.get(item_id)
        if candidate is None:
            claims.append(Claim("kind", 0, 0, "", "unchecked",
                                f"item {item_id!r} is not in the catalogue", item_id))
            candidate = _Item(str(item_id), {}, {}, None)
        events = self._events(history, day)
        context = {candidate.item_id} | {e[0] for e in events}
        dates = self._dates(text)
        tokens = [m for m in _WORD.finditer(text)
                  if not any(a <= m.start() < b for a, b, *_ in dates)]
        mentions, covered = self._mentions(text, tokens, candidate, context, events, claims)
        claims += self._names(text, tokens, covered, context)
        verbs = self._verbs(text, mentions, candidate, events, claims)
        claims += self._date_claims(text, dates, verbs, mentions, candidate, events, day)
        claims += self._attributes(text, mentions, candidate)
        claims += self._unrecorded_attributes(text, tokens, covered, mentions, candidate)
        claims += self._co_occurrence_claims(text, mentions, candidate, history)
        claims += self._words_claims(tokens, covered, text)
        claims += self._time(text, day)
        claims += self._coherence(text, tokens, covered, mentions, dates, verbs, candidate)
        claims += self._evidence(text, claims, candidate, events)
        return Verification(text, tuple(sorted(claims, key=lambda c: (c.start, c.end, c.type))))

    # ------------------------------------------------------------------ parsing
    @staticmethod
    def _events(history, day) -> list[tuple[str, str, date]]:
        if history is None or len(history) == 0:
            return []
        ts = pd.to_datetime(history["timestamp"], utc=True, errors="coerce")
        keep = ts < day
        return [(str(i), str(t), s.date()) for i, t, s, k in
                zip(history["item_id"], history["event_type"], ts, keep) if k]

    @staticmethod
    def _dates(text: str):
        """[(start, end, precision, date)], precision "day" | "month"; bare "May" is skipped."""
        out = []
        for m in _DATE.finditer(text):
            try:
                if m.group("iso"):
                    out.append((m.start(), m.end(), "day",
                                date(int(m.group("iy")), int(m.group("im")), int(m.group("id")))))
                    continue
                month = MONTHS.index(m.group("month").lower()) + 1
                day_s, year = m.group("d1") or m.group("d2"), m.group("year")
                if month == 5 and not (day_s or year):
                    continue  # "May" the verb
                if day_s and year:
                    out.append((m.start(), m.end(), "day", date(int(year), month, int(day_s))))
                else:
                    out.append((m.start(), m.end(), "month",
                                (int(year) if year else None, month)))
            except ValueError:  # "31 February 2026": a date no event can have
                out.append((m.start(), m.end(), "invalid", None))
        taken = [(a, b) for a, b, _, _ in out]
        out += [(m.start(), m.end(), "invalid", None) for m in _BROKEN_DATE.finditer(text)
                if not any(a <= m.start() < b for a, b in taken)]
        return sorted(out)

    def _mentions(self, text, tokens, candidate, context, events, claims):
        """Catalogue phrases (longest first), then "this <kind>" phrases. Returns (mentions,
        covered: token index -> what covered it); names of pieces outside the context fail."""
        keys = [_key(_POSSESSIVE.sub("", t.group(0))) for t in tokens]  # "Veyrac's" is Veyrac
        recent = {item: n for n, (item, _, _) in enumerate(events)}
        mentions, covered, i = [], {}, 0
        while i < len(tokens):
            for n in range(min(self._max_words, len(tokens) - i), 0, -1):
                entries = self._entities.get(" ".join(keys[i:i + n]))
                if entries and (n == 1 or self._contiguous(text, tokens[i:i + n])):
                    role = self._mention(text, tokens[i], tokens[i + n - 1], " ".join(keys[i:i + n]),
                                         entries, candidate, context, recent, mentions, claims)
                    covered.update({j: role for j in range(i, i + n)})
                    i += n
                    break
            else:
                i += 1
        mentions += self._subjects(text, tokens, covered, candidate, claims)
        return sorted(mentions, key=lambda m: m.start), covered

    def _mention(self, text, first, last, phrase, entries, candidate, context, recent, mentions,
                 claims):
        """One catalogue phrase: a piece's name (capitalised), else an attribute, else a kind."""
        a, b = first.start(), last.end()
        capital = first.group(0)[0].isupper()
        named = [it for it, c in entries if c in NAME_COLUMNS] if capital else []
        attrs = [c for c in ATTRIBUTES if any(c == x for _, x in entries)
                 if capital or phrase not in _AVOID_LOWER]
        mine = [it for it in named if it in context]
        if mine and _MAKER.search(text[max(0, a - 40):a]):
            claims.append(Claim("name", a, b, text[a:b], "fail", "a piece's name given as a maker",
                                mine[0]))
            return "item"
        if mine:  # the candidate first, then the latest piece of the history
            subject = candidate.item_id if candidate.item_id in mine else max(
                mine, key=lambda it: recent.get(it, -1))
            mentions.append(_Mention(a, b, subject, "item", phrase))
            claims.append(Claim("name", a, b, text[a:b], "pass", "names " + (
                "the candidate" if subject == candidate.item_id
                else "a piece of the client's history"), subject))
            return "item"
        if named and not attrs:
            claims.append(Claim("name", a, b, text[a:b], "fail", "a catalogue piece the client "
                                "never viewed, tried, wished for or bought", named[0]))
            return "item"
        if attrs:
            mentions.append(_Mention(a, b, None, attrs[0], phrase))
            return attrs[0]
        return "kind"

    @staticmethod
    def _contiguous(text, toks) -> bool:
        """Words of one phrase: only spaces or hyphens between them (no comma, no bracket)."""
        return all(re.fullmatch(r"[\s\-]+", text[x.end():y.start()]) for x, y in zip(toks, toks[1:]))

    def _kind_at(self, tokens, j):
        """The longest kind word(s) starting at token j: (n_tokens, key, (level, values))."""
        for n in (3, 2, 1):
            if j + n <= len(tokens):
                words = _key(" ".join(t.group(0) for t in tokens[j:j + n])).split()
                if not words:
                    continue
                phrase = " ".join(words[:-1] + [_singular(words[-1])])
                if phrase in self._kinds:
                    return n, phrase, self._kinds[phrase]
        return None

    def _subjects(self, text, tokens, covered, candidate, claims):
        """"this/these [up to 3 words] <kind>" -> the candidate's kind; "pair of" checked."""
        out = []
        starts = {t.start(): j for j, t in enumerate(tokens)}
        for m in _SUBJECT.finditer(text):
            j = starts.get(m.end())
            if j is None:
                continue
            for k in range(j, min(j + 4, len(tokens))):
                if covered.get(k) == "item":  # "this Valmonde ...": a name must be the candidate's
                    claims.append(self._named_subject(text, tokens[k].start(), candidate, claims))
                    break
                if not self._contiguous(text, tokens[j:k + 1]):
                    break  # a comma ends the phrase
                if _key(tokens[k].group(0)) in ANY_KIND:  # "this piece": true of any candidate
                    out.append(_Mention(m.start(), tokens[k].end(), candidate.item_id, "candidate", "piece"))
                    covered[k] = "kind"
                    break
                found = self._kind_at(tokens, k)
                if found is None:
                    continue
                n, phrase, (level, values) = found
                a, b = tokens[k].start(), tokens[k + n - 1].end()
                claims.append(self._kind_claim(text, a, b, phrase, level, values, candidate))
                out.append(_Mention(m.start(), b, candidate.item_id, "candidate", phrase))
                covered.update({x: "kind" for x in range(k, k + n)})
                pair = _PAIR.search(text, m.end(), a)
                if pair:
                    claims.append(self._pair_claim(text, pair.start(), pair.end(), candidate))
                break
        # "the pair of <name>": the named piece must come in pairs
        for pair in _PAIR.finditer(text):
            if any(c.type == "kind" and c.start == pair.start() for c in claims):
                continue
            after = [t for t in tokens if t.start() >= pair.end()][:1]
            name = next((c for c in claims if c.type == "name" and after
                         and c.start == after[0].start() and c.item_id), None)
            if name is not None:
                claims.append(self._pair_claim(text, pair.start(), pair.end(),
                                               self._items[name.item_id]))
        return out

    @staticmethod
    def _named_subject(text, start, candidate, claims) -> Claim:
        name = next(c for c in claims if c.type == "name" and c.start == start)
        ok = name.item_id == candidate.item_id
        return Claim("kind", name.start, name.end, name.text, "pass" if ok else "fail",
                     "names the candidate" if ok else "calls the candidate by another piece's name",
                     candidate.item_id)

    def _kind_claim(self, text, a, b, phrase, level, values, candidate) -> Claim:
        have = candidate.facts.get(level)
        if not candidate.facts.get("category"):
            return Claim("kind", a, b, text[a:b], "unchecked",
                         "the candidate has no category in the catalogue", candidate.item_id)
        if not values:
            return Claim("kind", a, b, text[a:b], "fail",
                         f"the catalogue sells no {phrase}; the candidate's kind is "
                         f"{candidate.display.get('subcategory') or candidate.display['category']}",
                         candidate.item_id)
        ok = have in values if have else False
        return Claim("kind", a, b, text[a:b], "pass" if ok else "fail",
                     f"the candidate's kind is {candidate.display.get('subcategory') or candidate.display['category']}",
                     candidate.item_id)

    @staticmethod
    def _pair_claim(text, a, b, item: _Item) -> Claim:
        if not item.facts.get("subcategory"):
            return Claim("kind", a, b, text[a:b], "unchecked",
                         "the piece has no subcategory to tell whether it comes in pairs", item.item_id)
        return Claim("kind", a, b, text[a:b], "pass" if item.pair else "fail",
                     f"{item.display['subcategory']}: " + ("comes in pairs" if item.pair
                                                          else "a single piece"), item.item_id)

    def _names(self, text, tokens, covered, context) -> list[Claim]:
        """Runs of capitalised words that no catalogue phrase covers ("Aulë Le Tigre")."""
        def capital(j):
            return j < len(tokens) and j not in covered and tokens[j].group(0)[0].isupper()

        runs, run = [], []
        for j, t in enumerate(tokens):
            if capital(j) and not run and self._sentence_start(text, t.start()) \
                    and self._english(t.group(0)):
                continue  # a sentence's opening word
            if capital(j) and (not run or self._contiguous(text, [run[-1], t])):
                run.append(t)
                continue
            if run and t.group(0).lower() in SENTENCE_CONNECTORS and capital(j + 1):
                run.append(t)
                continue
            if run:
                runs.append(run)
            run = [t] if capital(j) else []
        if run:
            runs.append(run)
        return [self._unknown_name(text, r, context) for r in runs]

    def _unknown_name(self, text, run, context) -> Claim:
        a, b = run[0].start(), run[-1].end()
        phrase = text[a:b]
        key = _key(_POSSESSIVE.sub("", phrase))
        told = next((i for i in sorted(context) if key and f" {key} " in self._descriptions.get(i, "")), None)
        if told is not None:
            return Claim("name", a, b, phrase, "pass", "in the catalogue description of the "
                         "candidate or of a piece of the history", told)
        known = sorted({self._items[i].display[c] for i in context if i in self._items
                        for c in (*NAME_COLUMNS, *ATTRIBUTES) if self._items[i].display.get(c)})
        near = difflib.get_close_matches(phrase, known, n=1, cutoff=0.75)
        hint = f" (did you mean {near[0]}?)" if near else ""
        return Claim("name", a, b, phrase, "fail",
                     "not a name, maison, collection, colour or material of the candidate or of "
                     f"an item in the client's history{hint}")

    @staticmethod
    def _sentence_start(text, pos) -> bool:
        before = text[:pos].rstrip(" \"'“‘(")
        return not before or before[-1] in ".!?;:"

    def _english(self, word: str) -> bool:
        words = self._words if self._words is not None else english_words()
        w = word.lower().replace("’", "'")
        w = w[:-2] if w.endswith("'s") else w
        forms = {w, _singular(w)} | {rx.sub(repl, w) for rx, repl in _BRITISH}
        return bool(forms & words) or w in TRADE_WORDS

    # ------------------------------------------------------------------ verbs and dates
    def _verbs(self, text, mentions, candidate, events, claims):
        """Each event verb, attached to the item it is about; returns [(start, end, type, item)]."""
        items = [m for m in mentions if m.role in ("item", "candidate")]
        out = []
        taken: list[tuple[int, int]] = []
        for phrase in sorted(EVENT_VERBS, key=len, reverse=True):
            for m in re.finditer(rf"\b{re.escape(phrase)}\b", text, re.I):
                if any(a < m.end() and m.start() < b for a, b in taken):
                    continue
                taken.append((m.start(), m.end()))
                out.append((m.start(), m.end(), EVENT_VERBS[phrase],
                            self._attach(text, m.start(), m.end(), items)))
        for a, b, kind, mention in out:
            claims.append(self._verb_claim(text, a, b, kind, mention, candidate, events))
        return out

    @staticmethod
    def _same_sentence(text, a, b) -> bool:
        lo, hi = min(a, b), max(a, b)
        return not _SENTENCE_END.search(text[lo:hi])

    def _attach(self, text, a, b, mentions, prefer_after: int = 12):
        """The item mention a verb or attribute at [a, b) is about: one starting right after it
        ("tried on the X"), else the nearest before it in the sentence, else the nearest after."""
        same = [m for m in mentions if self._same_sentence(text, a, m.start)]
        right_after = [m for m in same if 0 <= m.start - b <= prefer_after]
        before = [m for m in same if m.end <= a]
        after = [m for m in same if m.start >= b]
        if right_after:
            return min(right_after, key=lambda m: m.start)
        if before:
            return max(before, key=lambda m: m.end)
        return min(after, key=lambda m: m.start) if after else None

    def _verb_claim(self, text, a, b, kind, mention, candidate, events) -> Claim:
        word = text[a:b]
        if mention is None or mention.item_id is None:
            return Claim("verb", a, b, word, "unchecked", "attached to no piece of the history")
        had = [(t, d) for i, t, d in events if i == mention.item_id]
        who = "the candidate" if mention.item_id == candidate.item_id else "that piece"
        if any(t == kind for t, _ in had):
            return Claim("verb", a, b, word, "pass", f"the client {EVENT_WORDS[kind]} {who}",
                         mention.item_id)
        seen = "; ".join(f"{EVENT_WORDS.get(t, t)} {_fmt_day(d)}" for t, d in had[-4:])
        return Claim("verb", a, b, word, "fail",
                     f"the client never {EVENT_WORDS[kind]} {who}" + (f" (history: {seen})" if seen
                                                                        else ""), mention.item_id)

    def _date_claims(self, text, dates, verbs, mentions, candidate, events, day) -> list[Claim]:
        out = []
        items = [m for m in mentions if m.role in ("item", "candidate")]
        for a, b, precision, value in dates:
            span = text[a:b]
            if precision == "invalid":
                out.append(Claim("date", a, b, span, "fail", "not a calendar date"))
                continue
            verb = self._verb_for_date(text, a, b, verbs)
            # "the 15 December 2025 Belvane Bucket Bag": a name right after the date is its item
            mention = verb[3] if verb else self._attach(text, a, b, items, prefer_after=1)
            item = mention.item_id if mention else None
            days = [(t, d) for i, t, d in events if item is None or i == item]
            if verb and item and any(t == verb[2] for t, _ in days):
                days = [(t, d) for t, d in days if t == verb[2]]
            launched = candidate.launched if item in (None, candidate.item_id) else None
            if precision == "day":
                if value > day.date():
                    out.append(Claim("date", a, b, span, "fail", f"after today ({_fmt_day(day.date())})", item))
                    continue
                ok = any(d == value for _, d in days) or launched == value
            else:
                year, month = value
                ok = any(d.month == month and (year is None or d.year == year) for _, d in days) or (
                    launched is not None and launched.month == month and year in (None, launched.year))
            what = ("that piece's events" if item and item != candidate.item_id else
                    "the candidate's events or launch" if item else "any event of the client")
            out.append(Claim("date", a, b, span, "pass" if ok else "fail",
                             ("matches " if ok else "matches none of ") + what, item))
        return out

    def _verb_for_date(self, text, a, b, verbs):
        """A verb right before the date ("viewed on 3 May 2026", "(bought 3 May 2026)") or right
        after it ("3 May 2026, tried on ...")."""
        for verb in verbs:
            gap = text[verb[1]:a] if verb[1] <= a else text[b:verb[0]]
            if re.fullmatch(r"[\s,]*(?:on|in)?[\s,]*", gap):
                return verb
        return None

    # ------------------------------------------------------------------ attributes, words, time
    def _attributes(self, text, mentions, candidate) -> list[Claim]:
        items = [m for m in mentions if m.role in ("item", "candidate")]
        out = []
        for m in mentions:
            if m.role not in ATTRIBUTES:
                continue
            owner = self._attach(text, m.start, m.end, items, prefer_after=0)
            item = self._items.get(owner.item_id) if owner and owner.item_id else candidate
            who = "the candidate" if item.item_id == candidate.item_id else "that piece"
            values = [c for c in ATTRIBUTES if item.facts.get(c) == m.key or (
                c == "material" and m.key in (item.facts.get("material") or "").split())]
            if not any(item.facts.get(c) for c in ATTRIBUTES):
                out.append(Claim("attribute", m.start, m.end, text[m.start:m.end], "unchecked",
                                 f"{who} has no attributes in the catalogue", item.item_id))
                continue
            column = {"color": "colour"}.get(m.role, m.role)
            out.append(Claim("attribute", m.start, m.end, text[m.start:m.end],
                             "pass" if values else "fail",
                             f"{who}'s own {column}" if values else
                             f"not {who}'s {column} ({item.display.get(m.role) or 'none'})",
                             item.item_id))
        return out

    def _unrecorded_attributes(self, text, tokens, covered, mentions, candidate) -> list[Claim]:
        """Everyday colour / material / hardware words given to a piece that records no such
        value: unchecked, so a card on a name-only catalogue says what it could not check."""
        items = [m for m in mentions if m.role in ("item", "candidate")]
        out = []
        for j, t in enumerate(tokens):
            column = COMMON_ATTRIBUTE_WORDS.get(_key(t.group(0)))
            if j in covered or column is None:
                continue
            owner = self._attach(text, t.start(), t.end(), items, prefer_after=0)
            item = self._items.get(owner.item_id) if owner and owner.item_id else candidate
            if item is None or item.facts.get(column):
                continue  # a recorded value: read as today (catalogue words are its attributes)
            who = "the candidate" if item.item_id == candidate.item_id else "that piece"
            name = {"color": "colour"}.get(column, column)
            out.append(Claim("attribute", t.start(), t.end(), t.group(0), "unchecked",
                             f"the catalogue records no {name} for {who}", item.item_id))
        return out

    def _co_occurrence_claims(self, text, mentions, candidate, history) -> list[Claim]:
        """"N other clients who chose <piece> went on to it": N clients besides this one went
        on from that piece to the candidate."""
        client = (str(history["client_id"].iat[0]) if history is not None and len(history)
                  and "client_id" in history else None)
        pieces = [m for m in mentions if m.role == "item" and m.item_id and m.item_id != candidate.item_id]
        out = []
        for pattern, after in ((_OTHERS_CHOSE, True), (_AS_FOR_OTHERS, False)):
            for m in pattern.finditer(text):
                a, b = m.span()
                near = [x for x in pieces if self._same_sentence(text, a, x.start)
                        and (x.start >= b if after else x.end <= a)]
                piece = (min(near, key=lambda x: x.start) if after else max(near, key=lambda x: x.end)) if near else None
                word = m.group("n").lower()
                said = NUMBER_WORDS.index(word) if word in NUMBER_WORDS else int(word) if word.isdigit() else None
                if piece is None or said is None:
                    out.append(Claim("pattern", a, b, text[a:b], "unchecked",
                                     "no piece or number to count the other clients by"))
                    continue
                if self._follow_ons is None:
                    out.append(Claim("pattern", a, b, text[a:b], "unchecked",
                                     "no other clients' events to count", piece.item_id))
                    continue
                n = len(self._follow_ons.get((piece.item_id, candidate.item_id), frozenset()) - {client})
                out.append(Claim("pattern", a, b, text[a:b], "pass" if n >= said else "fail",
                                 f"{n} other client(s) went on from that piece to the candidate", piece.item_id))
        return out

    def _words_claims(self, tokens, covered, text) -> list[Claim]:
        out = []
        for j, t in enumerate(tokens):
            if j in covered or t.group(0)[0].isupper() or self._english(t.group(0)):
                continue  # catalogue phrases and capitalised words are checked as names
            for part in re.finditer(r"[^\W\d_]+(?:['’][^\W\d_]+)?", t.group(0)):
                word = part.group(0)
                if self._english(word) or _key(word) in self._vocabulary:
                    continue
                a = t.start() + part.start()
                out.append(Claim("word", a, a + len(word), word, "fail",
                                 "neither an English word nor catalogue vocabulary"))
        return out

    @staticmethod
    def _time(text, day) -> list[Claim]:
        out = []
        today = day.date()
        ahead = seasons_ahead(today)
        for m in _TIME.finditer(text):
            mod = (m.group("mod") or "").lower()
            season = {"fall": "autumn"}.get(m.group("season").lower(), m.group("season").lower())
            a, b = (m.start("mod") if m.group("mod") else m.start("season")), m.end()
            if mod == "last":
                out.append(Claim("time", a, b, text[a:b], "unchecked", "a season already past"))
            elif mod in ("next", "the coming", "the upcoming", "coming", "upcoming"):
                soon = seasons_ahead(today, 3)  # "the upcoming autumn" in January is too far
                ok = season in soon
                out.append(Claim("time", a, b, text[a:b], "pass" if ok else "fail",
                                 f"on {_fmt_day(today)} the season is {soon[0]}, then "
                                 f"{soon[1]} and {soon[2]}"))
            else:
                ok = season in ahead
                out.append(Claim("time", a, b, text[a:b], "pass" if ok else "fail",
                                 f"on {_fmt_day(today)} the season is {ahead[0]}, then {ahead[1]}"))
        for m in _FESTIVE.finditer(text):
            month, dom = FESTIVE[m.group(0).lower()]
            gap = (date(today.year, month, dom) - today).days % 366
            ok = gap <= 75
            out.append(Claim("time", m.start(), m.end(), m.group(0), "pass" if ok else "fail",
                             f"{gap} days ahead on {_fmt_day(today)}"))
        for m in _OCCASION.finditer(text):
            out.append(Claim("time", m.start(), m.end(), m.group(0), "unchecked",
                             "the data holds no calendar of the client's occasions"))
        return out

    @staticmethod
    def _evidence(text, claims, candidate, events) -> list[Claim]:
        """The reason must rest on a past event: a verb or a day attached to another piece of
        the history that the client really did (every sample reference has one)."""
        if not any(i != candidate.item_id for i, _, _ in events):
            return [Claim("evidence", 0, len(text), text, "unchecked",
                          "the client has no earlier event with another piece to rest on")]
        cited = next((c for c in claims if c.type in ("verb", "date") and c.verdict == "pass"
                      and c.item_id not in (None, candidate.item_id)), None)
        returned = {i: day for i, kind, day in events if kind == "return"}
        if cited is not None and cited.item_id in returned:  # a piece sent back is no reason to buy
            return [Claim("evidence", cited.start, cited.end, cited.text, "fail",
                          f"rests on a piece the client returned on {_fmt_day(returned[cited.item_id])}",
                          cited.item_id)]
        if cited is not None:
            return [Claim("evidence", cited.start, cited.end, cited.text, "pass",
                          "rests on the client's own event", cited.item_id)]
        return [Claim("evidence", 0, len(text), text, "fail", "names no past event of the "
                      "client's (a piece they viewed, tried on or bought) for the reason to rest on")]

    @staticmethod
    def _coherence(text, tokens, covered, mentions, dates, verbs, candidate) -> list[Claim]:
        """seller.coherence's faults, read on this parse, as failed "coherence" claims."""
        names = [Span(m.start, m.end, m.item_id) for m in mentions if m.role == "item" and m.item_id]
        subjects = [Span(m.start, m.end, m.item_id) for m in mentions if m.role == "candidate"]
        catalogue = [Span(tokens[j].start(), tokens[j].end()) for j in covered] + [
            Span(m.start, m.end) for m in mentions]
        faults = coherence_faults(
            text, candidate.item_id, names, subjects, [Span(a, b) for a, b, *_ in dates],
            [Span(a, b, m.item_id if m else None) for a, b, _, m in verbs], catalogue)
        return [Claim("coherence", f.start, f.end, text[f.start:f.end], "fail",
                      f"{f.rule}: {f.reason}") for f in faults]


def summarise(results: list[Verification]) -> dict:
    """Associate-ready rate (no failed claim), failed claims per type (per explanation and the
    share of explanations failing that type), and claims checked per explanation."""
    if not results:
        raise ValueError("no explanations to summarise")
    n = len(results)
    return {
        "n": n,
        "associate_ready_rate": sum(r.passed for r in results) / n,
        "claims_per_explanation": sum(len(r.claims) for r in results) / n,
        "unchecked_per_explanation": sum(len(r.unchecked) for r in results) / n,
        "no_claim_rate": sum(not r.claims for r in results) / n,
        "failed_per_explanation": {t: sum(c.type == t for r in results for c in r.failed) / n
                                   for t in CLAIM_TYPES},
        "failing_rate": {t: sum(any(c.type == t for c in r.failed) for r in results) / n
                         for t in CLAIM_TYPES},
    }
