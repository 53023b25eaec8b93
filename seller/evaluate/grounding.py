"""Grounding: is every fact an explanation cites true of the client's past or of the item?

An explanation may cite catalogue facts: a maison (brand), category, subcategory, colour,
material, hardware or collection value, an item by its full name, or a date (a month, a month
and year, an ISO date, a year). The vocabulary is the Dataset's own catalogue: every distinct
value of those item columns and every item name, matched case-insensitively on word
boundaries, longest phrase first (so "Rose Gold" is one citation, not "Rose" + "Gold", and the
words inside a matched item name are not counted again).

A citation is grounded when it is true of the client's real history (events strictly before
the target timestamp: the items they viewed, wished for, tried, bought, returned) or of the
candidate item itself. A date is grounded when some earlier event happened in that month
(and year, when given) or the candidate launched then. Everything else is a hallucination.

The kind of item an explanation says the candidate is -- "this/these" and up to three words
before a category, a subcategory or a subcategory's last word ("this pair of shoes", "this
bag") -- must be the candidate's: its category must be that word's (a category's own name, or
the category of the subcategories that are or end with it). "This pair of shoes" on a blouse
is a hallucination even when the client bought shoes before.

Reported (see `summarise`):
- hallucination_rate: hallucinated citations / all citations (claim level, the headline);
- explanation_hallucination_rate: share of explanations with at least one hallucination;
- history_citation_rate: share of explanations citing a real earlier event, i.e. an earlier
  item by name, a date of an earlier event, or an attribute true of the history but not of
  the candidate (a fact that can only have come from the sequence);
- invalid_cited_event_rate: share of the generator's `cited_event_ids` that are not this
  client's events before the target (the metadata must be as honest as the text).
Dates written relatively ("last week") are not checked; public data without item attributes
(Musical Instruments) has an empty vocabulary, so grounding is reported as not applicable.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

ATTRIBUTE_COLUMNS = ("maison", "category", "subcategory", "color", "material", "hardware",
                     "collection")
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december")
_MONTH_ALT = "|".join(m.capitalize() for m in MONTHS) + "|" + "|".join(
    m[:3].capitalize() for m in MONTHS if len(m) > 3)
# Capitalised month names only; "May" alone is the modal verb too often, so it needs a year,
# a day or a preposition before it.
_DATE = re.compile(
    rf"(?P<iso>\b(?P<iy>(?:19|20)\d\d)-(?P<im>[01]\d)-[0-3]\d\b)"
    rf"|(?P<month>\b(?:{_MONTH_ALT})\b)\.?(?:\s+(?P<day>[0-3]?\d)(?:st|nd|rd|th)?\b,?)?"
    rf"(?:\s+(?P<year>(?:19|20)\d\d)\b)?"
    rf"|(?P<lone_year>\b(?:19|20)\d\d\b)")
_MAY_CONTEXT = re.compile(r"\b(?:in|since|last|this|of|early|late|mid|on|from|until)\s+$", re.I)


@dataclass(frozen=True)
class Citation:
    kind: str  # an ATTRIBUTE_COLUMNS name, "item" or "date"
    value: str  # canonical lowercase value (a date as "YYYY-MM", "MM" or "YYYY")
    span: str  # the text as written
    in_history: bool
    in_item: bool

    @property
    def grounded(self) -> bool:
        return self.in_history or self.in_item


@dataclass(frozen=True)
class Grounding:
    citations: tuple[Citation, ...]
    invalid_event_ids: tuple[str, ...] = ()
    cited_event_ids: tuple[str, ...] = ()

    @property
    def hallucinations(self) -> list[Citation]:
        return [c for c in self.citations if not c.grounded]

    @property
    def cites_history(self) -> bool:
        return any(c.in_history and (c.kind in ("item", "date") or not c.in_item)
                   for c in self.citations)


def _month_value(month: str) -> int:
    key = month.lower().rstrip(".")[:3]
    return next(i for i, m in enumerate(MONTHS, 1) if m.startswith(key))


_WORDS = re.compile(r"\w+")


def _key(text: str) -> str:
    """Phrase normal form: lowercase words joined by one space ("Top-Handle" -> "top handle")."""
    return " ".join(_WORDS.findall(text.lower()))


@dataclass
class GroundingChecker:
    """Checks explanations against a catalogue (`items`) and an event log (`events`), both in
    the schema's columns; events need `event_id` (assigned at load) for the id check."""

    items: pd.DataFrame
    events: pd.DataFrame
    _kinds: dict[str, frozenset[str]] = field(init=False, repr=False)

    def __post_init__(self):
        self._subjects = self._subject_words()
        alternatives = "|".join(re.escape(w).replace(r"\ ", r"\W+")
                                for w in sorted(self._subjects, key=len, reverse=True))
        self._subject_re = re.compile(  # "this", at most 3 words, then the kind of item
            rf"\b(?:this|these)\s+(?:[\w'-]+\s+){{0,3}}?(?P<kind>{alternatives})\b", re.I
        ) if self._subjects else None
        kinds: dict[str, set[str]] = {}
        self._item_facts: dict[str, set[tuple[str, str]]] = {}  # item -> {(kind, phrase)}
        cols = [c for c in ATTRIBUTE_COLUMNS if c in self.items]
        for row in self.items[["item_id", "name", *cols]].itertuples(index=False):
            facts = set()
            for kind, value in zip(["item", *cols], row[1:]):
                if isinstance(value, str) and _key(value):
                    kinds.setdefault(_key(value), set()).add(kind)
                    facts.add((kind, _key(value)))
            self._item_facts[row[0]] = facts
        self._kinds = {p: frozenset(k) for p, k in kinds.items()}
        self._max_words = max((p.count(" ") + 1 for p in kinds), default=0)
        self._launched = (dict(zip(self.items["item_id"], self.items["launched_at"]))
                          if "launched_at" in self.items else {})
        ev = self.events.sort_values(["client_id", "timestamp"], kind="stable")
        self._by_client = {
            cid: (pd.DatetimeIndex(g["timestamp"]), g["item_id"].to_numpy(),
                  g["event_id"].to_numpy() if "event_id" in g else np.array([], dtype=object))
            for cid, g in ev.groupby("client_id", sort=False)}

    def _subject_words(self) -> dict[str, frozenset[str]]:
        """Word(s) naming a kind of item -> the categories they fit ("bag" -> {handbags})."""
        out: dict[str, set[str]] = {}
        if "category" not in self.items:
            return {}
        for cat, subcat in zip(self.items["category"], self.items.get("subcategory", self.items["category"])):
            if not isinstance(cat, str) or not _key(cat):
                continue
            out.setdefault(_key(cat), set()).add(_key(cat))
            if isinstance(subcat, str) and _key(subcat):
                out.setdefault(_key(subcat), set()).add(_key(cat))
                out.setdefault(_key(subcat).split()[-1], set()).add(_key(cat))
        return {w: frozenset(c) for w, c in out.items()}

    def _subject_spans(self, text: str):
        """(phrase, start, end) of the words naming what the candidate is ("this ... bag")."""
        if self._subject_re is None:
            return []
        return [(_key(m.group("kind")), m.start("kind"), m.end("kind"))
                for m in self._subject_re.finditer(text)]

    @property
    def vocabulary_size(self) -> int:
        return len(self._kinds)

    def history(self, client_id: str, before: pd.Timestamp):
        """(times, item ids, event ids) of the client's events strictly before `before`."""
        times, items, ids = self._by_client.get(
            client_id, (pd.DatetimeIndex([], tz="UTC"), np.array([]), np.array([])))
        n = int(times.searchsorted(before, side="left"))
        return times[:n], items[:n], ids[:n]

    def _matches(self, text: str):
        """Longest catalogue phrase at each word, left to right: (phrase, start, end) spans."""
        words = list(_WORDS.finditer(text.lower()))
        i, out = 0, []
        while i < len(words):
            for n in range(min(self._max_words, len(words) - i), 0, -1):
                phrase = " ".join(w.group(0) for w in words[i:i + n])
                if phrase in self._kinds:
                    out.append((phrase, words[i].start(), words[i + n - 1].end()))
                    i += n
                    break
            else:
                i += 1
        return out

    def check(self, client_id: str, item_id: str, target_time: pd.Timestamp, text: str,
              cited_event_ids: Sequence[str] = ()) -> Grounding:
        if item_id not in self._item_facts:
            raise KeyError(f"grounding: item_id {item_id!r} is not in the catalogue")
        times, past_items, past_ids = self.history(client_id, target_time)
        hist_facts = set().union(*(self._item_facts.get(i, set()) for i in set(past_items)))
        item_facts = self._item_facts[item_id]
        citations, masked = [], text
        matches = self._matches(text)
        names = [(a, b) for phrase, a, b in matches if "item" in self._kinds[phrase]]
        subjects = [(p, a, b) for p, a, b in self._subject_spans(text)  # not inside an item's name
                    if not any(x <= a and b <= y for x, y in names)]
        category = next((v for k, v in item_facts if k == "category"), None)
        for phrase, a, b in subjects:  # what the text says the candidate is: the candidate's alone
            kind = next((k for k in ("category", "subcategory") if (k, phrase) in item_facts), "category")
            fits = category is not None and category in self._subjects[phrase]
            citations.append(Citation(kind, phrase, text[a:b], False, fits))
            masked = masked[:a] + " " * (b - a) + masked[b:]
        for phrase, a, b in matches:
            if any(a < y and x < b for _, x, y in subjects):
                continue  # already checked as the candidate's kind
            kinds = self._kinds[phrase]
            in_h = any((k, phrase) in hist_facts for k in kinds)
            in_i = any((k, phrase) in item_facts for k in kinds)
            kind = "item" if "item" in kinds else sorted(kinds)[0]
            citations.append(Citation(kind, phrase, text[a:b], in_h, in_i))
            # Dates inside a matched name ("Kelly 2019") belong to the name, not the calendar.
            masked = masked[:a] + " " * (b - a) + masked[b:]
        citations += self._dates(masked, times, self._launched.get(item_id))
        valid = set(past_ids)
        invalid = tuple(e for e in cited_event_ids if e not in valid)
        return Grounding(tuple(citations), invalid, tuple(cited_event_ids))

    def _dates(self, text: str, times: pd.DatetimeIndex, launched) -> list[Citation]:
        out = []
        for m in _DATE.finditer(text):
            if m.group("iso"):
                year, month = int(m.group("iy")), int(m.group("im"))
            elif m.group("month"):
                if m.group("month").lower() == "may" and not (
                        m.group("day") or m.group("year") or _MAY_CONTEXT.search(text[:m.start()])):
                    continue
                month = _month_value(m.group("month"))
                year = int(m.group("year")) if m.group("year") else None
            else:
                year, month = int(m.group("lone_year")), None

            def hit(t) -> bool:
                return (t is not None and not pd.isna(t) and (month is None or t.month == month)
                        and (year is None or t.year == year))

            value = "-".join(f"{x:02d}" if i else str(x) for i, x in
                             ((0, year), (1, month)) if x is not None)
            seen = np.ones(len(times), dtype=bool)
            if month is not None:
                seen &= np.asarray(times.month == month)
            if year is not None:
                seen &= np.asarray(times.year == year)
            in_history = bool(seen.any())
            out.append(Citation("date", value, m.group(0).strip(), in_history, hit(launched)))
        return out


def summarise(results: Sequence[Grounding]) -> dict:
    """Aggregate rates over explanations (see the module docstring for definitions)."""
    if not results:
        raise ValueError("no explanations to summarise")
    cited = sum(len(r.citations) for r in results)
    halluc = sum(len(r.hallucinations) for r in results)
    ids = sum(len(r.cited_event_ids) for r in results)
    return {
        "citations_per_explanation": cited / len(results),
        "hallucination_rate": halluc / cited if cited else 0.0,
        "explanation_hallucination_rate":
            sum(bool(r.hallucinations) for r in results) / len(results),
        "history_citation_rate": sum(r.cites_history for r in results) / len(results),
        "invalid_cited_event_rate":
            sum(len(r.invalid_event_ids) for r in results) / ids if ids else 0.0,
    }
