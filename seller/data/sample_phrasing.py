"""Reference explanations for sample_data/: many phrasings per style, every citation real.

A text is opener + core + closer. Cores are written per (style, intent) and take their facts
from slots (target item, the cited events, the matched colour or hardware, the occasion); the
openers and closers are interchangeable per style. With 8 openers, 3-4 cores and 6 closers per
style the adapter cannot learn one frozen template. Texts refer to the client as "the client" or
"they", never by name. Fixed wording avoids catalogue values ("clear" is a bottle colour), so
every colour, material, hardware, collection or maison a text names is a fact of the target
item or of the client's earlier history, as the grounding evaluation requires.
"""
from __future__ import annotations

import random
from datetime import datetime

from seller.data.sample_catalog import Item, the

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
# ~24 words is ~40 tokens: an associate reads it at a glance, and every token an explanation
# runs longer is a decode step of every card in the app (its latency target is 3 s for five)
MIN_WORDS, MAX_WORDS, AIM_WORDS = 14, 32, 24

VERBS = {"purchase": ["bought", "purchased"], "try_on": ["tried on"],
         "wishlist": ["wishlisted", "saved"], "view": ["viewed", "looked at"],
         "add_to_cart": ["put in the basket"], "return": ["returned"]}
OCCASIONS = {  # occasion -> (noun phrase, mood adjective)
    "gala": ("a black-tie gala", "formal evening"), "wedding": ("a wedding", "celebratory"),
    "travel": ("an upcoming journey", "relaxed travelling"), "season change": ("the change of season", "fresh seasonal"),
}

OPENERS = {
    "feature": ["", "On the details,", "Feature by feature,", "Looking at the materials,", "In practical terms,",
                "Detail for detail,", "Measured on its attributes,", "Put simply,"],
    "style": ["", "In terms of taste,", "Stylistically,", "Seen as a wardrobe,", "As a matter of style,",
              "Aesthetically,", "Taken as a whole look,", "Reading the client's history,"],
    "occasion": ["", "Timing matters here:", "With the calendar in mind,", "Looking ahead,", "At this moment,",
                 "For what comes next,", "Right now,", "Given the timing,"],
}
CLOSERS = {
    "feature": ["", "The details line up.", "Nothing in the finish clashes.", "It is a considered choice.",
                "Each detail has a reason.", "The craftsmanship is consistent."],
    "style": ["", "It feels coherent.", "The story holds together.", "It reads as one wardrobe.",
              "It is a confident next step.", "The direction is unmistakable."],
    "occasion": ["", "The timing is right.", "It arrives when it is needed.", "It is worth reserving now.",
                 "It suits the moment.", "There is still time to prepare."],
}
CORES = {
    ("feature", "complement"): [
        "{T} carries {match_long} as {A}, so the two are made to be worn together.",
        "{A} sets the palette, and {T} answers it with {match_long}.",
        "Matched on {match_short}: {T} sits naturally beside {A}.",
        "{T} picks up {match_the} of {A}; side by side they read as a set.",
    ],
    ("feature", "style_evolution"): [
        "{T}, from the {coll} line, goes further than {A}, which came from {acoll}.",
        "After {A}, {T} moves further along the same line, into the {coll} collection.",
        "{T} takes the {coll} shape, a real step on from {A} in the {acoll} collection.",
        "From {B} to {Ac}, each step grew bolder; {T} continues into {coll}.",
    ],
    ("feature", "occasion"): [
        "{T} suits {occ}, the same need behind {A}.",
        "{A} points to {occ}; {T} is {a_tstyle} answer to it.",
        "For {occ}, {T} adds {tmat} to the pieces gathered so far, following {Ac}{and_B}.",
    ],
    ("feature", "loyalty"): [
        "{T} is made {loyal_phrase} again, like {A}.",
        "Another piece {loyal_phrase}: {T}, which follows {Ac}{and_B}.",
        "After {Ac}{and_B}, a steady preference for pieces {loyal_phrase} shows; {T} continues it.",
        "{T} shares its making with {A}: both come {loyal_phrase}.",
    ],
    ("style", "complement"): [
        "{A} anchors a polished, coordinated look, and {T} extends it with {match_long} without competing.",
        "The look built around {A} is quietly matched; {T} completes it with {match_the}.",
        "A coordinated wardrobe is forming around {A}; {T} adds to it in {match_short}.",
    ],
    ("style", "style_evolution"): [
        "The client's taste has moved from the {astyle} mood of {A} towards {tstyle} pieces; {T} is the next step.",
        "Since {A}, their choices have grown bolder; {T} follows the drift into the {coll} collection.",
        "A steady drift, from {B} to {Ac}, leads toward bolder shapes; {T} continues it.",
        "Their choices keep growing more daring since {A}; {T}, {a_tstyle} piece, fits that path.",
    ],
    ("style", "occasion"): [
        "The pieces explored lately, such as {A}, share a {occ_mood} mood that {T} completes.",
        "{T} keeps the {occ_mood} register of {A} while adding {a_tstyle} note.",
        "A {occ_mood} wardrobe is taking shape around {Ac}{and_B}; {T} belongs in it.",
    ],
    ("style", "loyalty"): [
        "The client returns to {loyal_noun} again and again, as {A} shows; {T} speaks the same language.",
        "A loyalty to {loyal_noun}, visible in {Ac}{and_B}, makes {T} a natural fit.",
        "{T} stays true to {loyal_noun}, the thread running through {A}.",
    ],
    ("occasion", "complement"): [
        "For everyday {season} outings with {A}, {T} finishes the look.",
        "When carrying {A}, {T} makes the pairing easy this {season}.",
        "Ready for the next outing: {T} pairs with {A} for daytime and evening alike.",
    ],
    ("occasion", "style_evolution"): [
        "For {season} evenings out, {T} carries further the bolder dressing begun with {A}.",
        "As {season} arrives, {T} from {coll} offers a fresh, {tstyle} option after {A}.",
        "This {season}, {T} gives the more daring wardrobe begun with {A} its next outing.",
        "Each outing has been bolder, from {B} to {Ac}; this {season}, {T} is next.",
    ],
    ("occasion", "occasion"): [
        "Ahead of {occ}, {T} completes the preparations begun with {A}.",
        "With {occ} coming up, as {A} suggests, {T} is ready in time.",
        "{occ_cap} is near: after {Ac}{and_B}, {T} is the piece to choose.",
        "Preparing for {occ}, which {A} already hints at, {T} is the finishing piece.",
    ],
    ("occasion", "loyalty"): [
        "For the next {season} occasion, {T} brings back {loyal_noun}, chosen before with {A}.",
        "This {season}, {T} offers another moment {loyal_phrase}, after {A}.",
        "When the next occasion comes this {season}, {T} continues what {A} began.",
        "This {season}, {T} extends a run of pieces {loyal_phrase}: {Ac}{and_B}.",
    ],
}


def fmt_date(ts: datetime) -> str:
    return f"{ts.day} {MONTHS[ts.month - 1]} {ts.year}"


def season_word(ts: datetime) -> str:
    return ["winter", "spring", "summer", "autumn"][(ts.month % 12) // 3]


SHORT_VERBS = {"purchase": "bought", "try_on": "tried on", "wishlist": "wishlisted", "view": "viewed",
               "add_to_cart": "put in the basket", "return": "returned"}


def cite(rng: random.Random, item: Item, event_type: str, ts: datetime, compact: bool = False) -> str:
    """A reference to one real event: item name, what the client did, and the date.

    The compact form, "the X (bought 12 March 2026)", leaves room for a second citation.
    """
    if compact:
        return f"{the(item)} ({SHORT_VERBS[event_type]} {fmt_date(ts)})"
    verb = rng.choice(VERBS[event_type])
    return f"{the(item)} {verb}{'' if verb.endswith(' on') else ' on'} {fmt_date(ts)}"  # not 'tried on on'


def compose(rng: random.Random, style: str, intent: str, slots: dict[str, str], has_b: bool) -> tuple[str, str]:
    """Draw opener, core and closer until the text is 14-32 words; cores needing {B} need has_b.
    Most texts are the core alone: openers and closers vary the wording but cost length.

    Returns (text, core template): the template tells the caller which events the text cites.
    """
    cores = [c for c in CORES[style, intent] if has_b or "{B}" not in c]
    with_b = [c for c in cores if "B}" in c]
    # two citations ground a text better but run long: when a second event exists, try for it first
    plan = ([with_b] * 30 if has_b and with_b and rng.random() < 0.35 else []) + [cores] * 40
    best = ("", "")
    for pool in plan:
        template = rng.choice(pool)
        core = template.format(**slots)
        opener = rng.choice(OPENERS[style]) if rng.random() < 0.4 else ""
        closer = rng.choice(CLOSERS[style]) if rng.random() < 0.1 else ""
        text = (opener + " " + core[0].lower() + core[1:]) if opener else core[0].upper() + core[1:]
        if closer:
            text += " " + closer
        n = len(text.split())
        if MIN_WORDS <= n <= MAX_WORDS:
            return text, template
        if not best[0] or abs(n - AIM_WORDS) < abs(len(best[0].split()) - AIM_WORDS):
            best = (text, template)
    return best  # the caller checks the length and drops a text that never fits
