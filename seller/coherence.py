"""Coherence: what a strict reader rejects in a text that states no false fact.

A blind reading of the cards the app showed (reports/claims/sample-16/as_shown_reading) found
every model text that passed the fact checks still unusable: word salad, a phrase said twice,
a piece compared with itself. Each rule below is one such fault, read from the text and the
verifier's own parse (which spans name which piece, which verbs are attached to which piece):

- repeated phrase: the same date, the same piece's name or the same four words said twice
  ("viewed on 2 February 2026 ... the 2 February 2026");
- echo: one word again a few words on ("a note added to the note", "wardrobe, a coordinated
  wardrobe", "an upcoming journey coming up");
- self comparison: the candidate named as a piece to compare it with ("X shares ... with the
  X the client viewed"), or its own past event given as the reason with no other piece;
- another piece's identity: the candidate said to be another piece ("is also an Eulalie
  Neroli Extrait", "This pouch, a pair of ... Ankle Boots");
- date as subject: a day standing where the piece should ("This 13 May 2026, tried on ...");
- stacked openers: two or more introductory phrases before the sentence gets to its subject
  ("For what comes next, with an upcoming journey coming up, as ... suggests, this ...");
- dangling: a sentence that stops on a word that needs more ("... this one is seen in.",
  "... Suede purchased.", a final comma or colon);
- run-on fragments: catalogue words strung between commas with no verb ("..., Aubrelle silks,
  Riviera collection, found a new partner");
- no main clause: a sentence with no finite verb at all;
- prompt label: "the item", the prompt's label for the candidate, which no associate says
  (no sample reference does; the model copies it from its prompt);
- bare name: a past piece named with no article before it ("..., viewed Eulalie Neroli
  Extrait", "Roseline Pendant Necklace viewed on ..., this bag"): every reference writes "the
  X" or "the pair of X".
`coherence_faults` returns (start, end, rule, reason) per fault; seller.verify turns each
into a "coherence" claim. The rules were set on the rated cards and the 1,698 sample
references (reports/claims/coherence-16/README.md says how many references fail and why).
"""
from __future__ import annotations

import re
from typing import NamedTuple

RULES = ("repeated phrase", "echo", "self comparison", "another piece's identity",
         "date as subject", "stacked openers", "dangling", "run-on fragments", "no main clause",
         "prompt label", "bare name")

_WORD = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")
_SENTENCE = re.compile(r"[^.!?;]+(?:[.!?;]+|$)")
# words that never end a finished sentence
_OPEN_ENDS = frozenset({
    "the", "a", "an", "of", "to", "with", "and", "or", "but", "by", "for", "in", "on", "at",
    "as", "from", "into", "this", "that", "these", "which", "who", "whose", "their", "its",
    "his", "her", "our", "your", "than", "like", "is", "are", "was", "were", "be", "been",
    "has", "have", "had", "will", "would", "can", "could", "so", "such", "very"})
# words too common to count as an echo
_COMMON = frozenset({
    "this", "that", "these", "those", "with", "from", "their", "they", "them", "there", "which",
    "what", "when", "where", "while", "have", "been", "were", "will", "would", "more", "most",
    "piece", "pieces", "same", "also", "into", "than", "then", "each", "other", "over", "both",
    "just", "only", "even", "very", "much", "such", "like", "ahead", "after", "before",
    "client", "client's", "collection"})
# finite verbs and auxiliaries no sentence of ours is without (an -s/-ed form counts too)
_AUXILIARIES = frozenset({
    "is", "are", "was", "were", "be", "has", "have", "had", "does", "do", "did", "can", "will",
    "would", "could", "should", "may", "might", "must", "shall", "keep", "lean", "come", "go",
    "suit", "make", "fit", "share", "show", "bring", "match", "began", "came", "grew", "found",
    "took", "made", "brought", "became", "went", "kept", "set", "put", "wore", "chose", "saw"})
_ARTICLES = frozenset({"the", "of", "their", "her", "his", "its", "a", "an"})
# an event verb ending a sentence has lost its day ("... Noir Satin purchased.")
_VERB_ENDS = frozenset({"viewed", "bought", "purchased", "ordered", "acquired", "tried", "wishlisted",
                        "saved", "returned", "browsed"})
_IDIOM_LINKS = frozenset({"by", "for", "to", "after", "upon", "in", "and"})
_RELATIVE = re.compile(r"\s*(?:which|who|whose|that|where|such as|including|like)\b", re.I)
_DETERMINERS = frozenset({"the", "a", "an", "this", "these", "its", "their", "of", "in", "with",
                          "and", "from", "by", "for", "two", "both", "all", "other", "many"})


class Span(NamedTuple):
    start: int
    end: int
    item_id: str | None = None


class Fault(NamedTuple):
    start: int
    end: int
    rule: str  # one of RULES
    reason: str


def _sentences(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in _SENTENCE.finditer(text) if m.group(0).strip()]


def _inside(pos: int, spans) -> bool:
    return any(s.start <= pos < s.end for s in spans)


def coherence_faults(text: str, candidate_id: str, names: list[Span], subjects: list[Span],
                     dates: list[Span], verbs: list[Span], catalogue: list[Span]) -> list[Fault]:
    """names: spans naming a piece (item_id set); subjects: "this <kind>" spans of the
    candidate; dates: written days (item_id = their value); verbs: event verbs with the piece
    they are attached to; catalogue: every span of catalogue vocabulary (names, attributes,
    kinds)."""
    words = list(_WORD.finditer(text))
    faults: list[Fault] = []
    faults += _repeats(text, words, candidate_id, names, dates)
    faults += _echoes(words, catalogue, dates)
    faults += _self_reason(candidate_id, names, verbs)
    faults += _identity(text, candidate_id, names, subjects)
    faults += [Fault(w.start(), w.end(), "prompt label", "the prompt's word for a piece, not an "
                     "associate's") for w in words if w.group(0).lower() in ("item", "items")]
    faults += [Fault(n.start, n.end, "bare name", "a past piece named with no article before it")
               for n in names if n.item_id != candidate_id and _word_before(text, n.start) not in _ARTICLES]
    for a, b in _sentences(text):
        sentence = [w for w in words if a <= w.start() < b]
        if not sentence:
            continue
        faults += _date_subject(text, a, b, dates)
        faults += _openers(text, a, b, subjects)
        faults += _dangling(text, a, b, sentence)
        faults += _fragments(text, a, b, catalogue, dates, verbs)
        faults += _no_clause(text, a, b, sentence, catalogue, dates)
    seen, out = set(), []
    for f in sorted(faults):
        if (f.start, f.rule) not in seen:  # one fault per place and rule
            seen.add((f.start, f.rule))
            out.append(f)
    return out


def _word_before(text: str, pos: int) -> str:
    """The word before `pos`, past a date right before it ("the 13 May 2026 Valmonde ...")."""
    head = re.sub(r"(?:\b\d{1,2}\s+[^\W\d_]+\s+)?\b(?:19|20)\d\d\s*$", "", text[max(0, pos - 60):pos])
    before = _WORD.findall(head)
    return before[-1].lower() if before else ""


def _repeats(text, words, candidate_id, names, dates) -> list[Fault]:
    out = []
    for kind, spans, what in (("date", dates, "the same day"), ("name", names, "the same piece")):
        first: dict = {}
        for s in spans:
            key = s.item_id if kind == "name" else text[s.start:s.end].lower()
            if key in first:
                if kind == "name" and key == candidate_id:
                    out.append(Fault(s.start, s.end, "self comparison",
                                     "the candidate is named as a piece to compare it with"))
                else:
                    out.append(Fault(s.start, s.end, "repeated phrase", f"{what} written twice"))
            else:
                first[key] = s
    keys = [w.group(0).lower() for w in words]
    seen: dict[tuple, int] = {}
    for i in range(len(keys) - 3):
        gram = tuple(keys[i:i + 4])
        if gram in seen and seen[gram] + 4 <= i and not _inside(words[i].start(), names + dates):
            out.append(Fault(words[i].start(), words[i + 3].end(), "repeated phrase",
                             "the same four words said twice"))
        seen.setdefault(gram, i)
    return out


def _stem(word: str) -> str:
    w = word.lower().replace("’", "'")
    w = w[:-2] if w.endswith("'s") else w
    for suffix in ("ing", "ed", "es", "s"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 4:
            return w[: -len(suffix)]
    return w


def _echoes(words, catalogue, dates, window: int = 5) -> list[Fault]:
    """A content word (or its stem inside a longer word: upcoming / coming) again within
    `window` words, outside catalogue phrases (a shared colour is said twice on purpose)."""
    out = []
    free = [(j, w) for j, w in enumerate(words)
            if not _inside(w.start(), catalogue + dates) and len(w.group(0)) >= 4
            and w.group(0).lower() not in _COMMON]
    for x, (i, a) in enumerate(free):
        for j, b in free[x + 1:]:
            if j - i > window:
                break
            if j - i == 2 and words[i + 1].group(0).lower() in _IDIOM_LINKS:
                continue  # "side by side", "detail for detail": one idiom, said on purpose
            wa, wb = a.group(0).lower(), b.group(0).lower()
            sa, sb = _stem(wa), _stem(wb)
            if sa == sb or (min(len(wa), len(wb)) >= 5 and (wa.endswith(wb) or wb.endswith(wa))):
                out.append(Fault(a.start(), b.end(), "echo",
                                 f"{b.group(0)!r} right after {a.group(0)!r}"))
    return out


def _self_reason(candidate_id, names, verbs) -> list[Fault]:
    """The candidate's own past event as the whole reason: no other piece to compare with."""
    own = [v for v in verbs if v.item_id == candidate_id]
    others = [n for n in names if n.item_id and n.item_id != candidate_id]
    if own and not others:
        return [Fault(own[0].start, own[0].end, "self comparison",
                      "the reason is the candidate's own event; no other piece of the history")]
    return []


def _identity(text, candidate_id, names, subjects) -> list[Fault]:
    """"<candidate> is (also) an <other piece>", "this <kind>, a <other piece>"."""
    out = []
    for n in names:
        if n.item_id is None or n.item_id == candidate_id:
            continue
        before = text[max(0, n.start - 30):n.start]
        copula = re.search(r"\b(?:is|are|was|were|becomes?)\s+(?:also\s+|just\s+|like\s+)?"
                           r"(?:an?|the)?\s*(?:pair\s+of\s+)?(?:\w+\s+)?$", before, re.I)
        apposed = any(0 <= n.start - s.end <= 30 and re.fullmatch(
            r",\s*(?:an?|the)\s+(?:pair\s+of\s+)?(?:\w+\s+)?", text[s.end:n.start], re.I)
            for s in subjects)
        if (copula and not re.search(r"\blike\b", copula.group(0), re.I)) or apposed:
            out.append(Fault(n.start, n.end, "another piece's identity",
                             "the candidate is said to be another piece"))
    return out


def _date_subject(text, a, b, dates) -> list[Fault]:
    for d in dates:
        if a <= d.start < b and re.fullmatch(r"\s*(?:this|these|the)\s+", text[a:d.start], re.I) \
                and re.match(r"\s*,", text[d.end:b]):
            return [Fault(a + len(text[a:d.start]) - len(text[a:d.start].lstrip()), d.end,
                          "date as subject", "a day stands where the piece should")]
    return []


def _openers(text, a, b, subjects) -> list[Fault]:
    """Two or more introductory phrases, comma after comma, before the subject that opens the
    main clause ("this <kind>" right after a comma); a relative clause ("which ...", "such
    as ...") belongs to the phrase before it."""
    subject = next((s for s in subjects if a <= s.start < b
                    and re.search(r",\s*$", text[a:s.start])), None)
    if subject is None:
        return []
    chunks = text[a:subject.start].split(",")[:-1]
    leading = sum(1 for c in chunks if not _RELATIVE.match(c))
    if leading >= 2:
        return [Fault(a, subject.start, "stacked openers",
                      f"{leading} introductory phrases before the subject")]
    return []


def _dangling(text, a, b, sentence) -> list[Fault]:
    tail = text[sentence[-1].end():b].strip()
    last = sentence[-1].group(0).lower()
    end = sentence[-1].end()
    if tail[:1] in (",", ":", "-", "—", "(") or (not tail and b == len(text) and len(sentence) > 3):
        return [Fault(sentence[-1].start(), end, "dangling", "the sentence breaks off")]
    if last in _OPEN_ENDS or last in _VERB_ENDS:
        return [Fault(sentence[-1].start(), end, "dangling", f"the sentence stops on {last!r}")]
    return []


def _fragments(text, a, b, catalogue, dates, verbs) -> list[Fault]:
    """Two or more comma chunks holding only catalogue words (a list of tags, not a sentence)."""
    chunks, start = [], a
    for m in re.finditer(r",", text[a:b]):
        chunks.append((start, a + m.start()))
        start = a + m.end()
    chunks.append((start, b))
    bare = 0
    for x, y in chunks[1:]:  # the first chunk is the sentence's own start
        ws = list(_WORD.finditer(text, x, y))
        tagged = [w for w in ws if _inside(w.start(), catalogue + dates + verbs)]
        if ws and len(tagged) >= len(ws) - 1 and not any(_inside(w.start(), verbs) for w in ws):
            bare += 1
            if bare >= 2:
                return [Fault(x, y, "run-on fragments",
                              "catalogue words strung between commas, with no verb")]
        else:
            bare = 0
    return []


def _no_clause(text, a, b, sentence, catalogue, dates, shortest: int = 6) -> list[Fault]:
    """No finite verb: no auxiliary, no -s or -ed form outside catalogue names and after no
    determiner (a plural noun), no common past form. Short sentences ("The details line
    up.") are left alone: the word lists cannot tell their verb."""
    if len(sentence) < shortest:
        return []
    prev = ""
    for w in sentence:
        word = w.group(0).lower()
        if word in _AUXILIARIES:
            return []
        free = not _inside(w.start(), catalogue + dates)
        if free and len(word) > 3 and prev not in _DETERMINERS and (
                word.endswith(("s", "ed")) and not word.endswith(("ss", "us", "'s", "’s"))):
            return []
        prev = word
    return [Fault(a, b, "no main clause", "the sentence has no finite verb")]
