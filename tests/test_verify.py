"""The claim verifier: the issue's four bad cards fail on their named fault, every true
sample reference passes, a reference with one fact changed fails on that fact, and odd input
(no attributes, no history, no claims, accented names) never raises."""
import random

import pandas as pd
import pytest

from seller.data.dataset import load_sample
from seller.verify import CLAIM_TYPES, ClaimVerifier, summarise

SHOWN = pd.Timestamp("2026-12-01", tz="UTC")  # the day the issue's cards were read


@pytest.fixture(scope="module")
def sample():
    return load_sample()


@pytest.fixture(scope="module")
def verifier(sample):
    return ClaimVerifier.from_dataset(sample)


FACTS = ("kind", "name", "date", "verb", "attribute", "word", "time")


def failed(result, kind=None):
    return [c.text for c in result.failed if kind is None or c.type == kind]


def facts_failed(result):
    """Failed fact claims (coherence and evidence left aside: short probes cite no event)."""
    return [c.text for c in result.failed if c.type in FACTS]


def rules_failed(result):
    return sorted({c.reason.split(":")[0] for c in result.failed if c.type == "coherence"})


def test_issue_card_overcoat_fails_on_the_invented_purchase(sample, verifier):
    # C001 viewed the passport holder on 12 May 2026 and tried it on the 13th; never bought it
    text = ("This 13 May 2026, tried on Valmonde Passport Holder in Silver Metallic Calfskin "
            "(Aubrelle, rose gold hardware) and has since been ordered again.")
    r = verifier.verify(text, "I0218", sample.client_history("C001", before=SHOWN), SHOWN)
    assert facts_failed(r) == ["ordered"]
    assert rules_failed(r) == ["bare name", "date as subject"]
    assert {c.type for c in r.claims if c.verdict == "pass"} >= {"verb", "date", "name", "attribute"}


def test_issue_card_ankle_boots_fails_on_the_invented_maker(sample, verifier):
    text = ("This pair of ankle boots, made by the Aulë Le Tigre, are a variant of the iconic "
            "Ankle Boots, which were created in 14 June 2026.")
    r = verifier.verify(text, "I0162", sample.client_history("C001", before=SHOWN), SHOWN)
    assert failed(r, "name") == ["Aulë Le Tigre"]
    assert failed(r, "date") == ["14 June 2026"]  # not the boots' launch, no event of theirs
    assert not failed(r, "kind")  # they are ankle boots, and they come in pairs


def test_issue_card_blouse_fails_on_kind_pair_word_and_name(sample, verifier):
    text = ("This pair of aubret-style shoes, made by the Gemma Blossom, looks like it will suit "
            "the client's needs.")
    r = verifier.verify(text, "I0198", sample.client_history("C001", before=SHOWN), SHOWN)
    assert set(failed(r, "kind")) == {"shoes", "pair of"}
    assert failed(r, "word") == ["aubret"]
    assert failed(r, "name") == ["Gemma Blossom"]


def test_issue_card_twilly_fails_on_the_gloves(sample, verifier):
    text = "This winter, this pair of gloves makes the most for the upcoming summer."
    r = verifier.verify(text, "I0113", sample.client_history("C001", before=SHOWN), SHOWN)
    assert set(failed(r, "kind")) == {"gloves", "pair of"}
    assert not failed(r, "time")  # winter is under way on 1 December, summer still ahead


def test_a_season_already_past_fails_and_the_coming_one_passes(sample, verifier):
    history = sample.client_history("C001", before=SHOWN)
    summer = verifier.verify("This summer, this twilly is the piece to wear.", "I0113", history, SHOWN)
    assert failed(summer, "time") == ["This summer"]
    july = pd.Timestamp("2026-07-01", tz="UTC")
    assert not facts_failed(verifier.verify("This summer, this twilly is the piece to wear.", "I0113",
                                            sample.client_history("C001", before=july), july))
    assert not facts_failed(verifier.verify("This spring, this twilly is the piece to wear.", "I0113",
                                            history, SHOWN))


def test_every_true_sample_reference_passes_the_facts_and_most_read_well(sample, verifier):
    """Every fact of every reference is true and each rests on a past event; a reader found 40%
    of them unusable, mostly for stacked openers and echoes, so those (and only those) fail
    the coherence rules, on about one in eight."""
    refs = pd.read_csv("sample_data/explanations.csv")
    refs["target_timestamp"] = pd.to_datetime(refs["target_timestamp"], utc=True)
    results = [verifier.verify(r.text, r.item_id,
                               sample.client_history(r.client_id, before=r.target_timestamp),
                               r.target_timestamp) for r in refs.itertuples()]
    bad = [(r.text, [(c.type, c.text, c.reason) for c in r.failed if c.type != "coherence"])
           for r in results]
    assert [b for b in bad if b[1]] == []
    rules = {rule for r in results for rule in rules_failed(r)}
    assert rules <= {"stacked openers", "echo"}
    summary = summarise(results)
    assert 0.80 <= summary["associate_ready_rate"] < 0.95 and summary["claims_per_explanation"] > 3
    assert set(summary["failing_rate"]) == set(CLAIM_TYPES)


def _shift_day(cited_day: str) -> tuple[str, pd.Timestamp]:
    day, month, year = cited_day.split()
    moved = f"{int(day) % 28 + 1} {month} {year}"
    return moved, pd.Timestamp(moved)


def test_one_changed_fact_fails_on_that_fact(sample, verifier):
    """Mutations of true references: the cited event's day moved, its verb changed."""
    refs = pd.read_csv("sample_data/explanations.csv")
    refs["target_timestamp"] = pd.to_datetime(refs["target_timestamp"], utc=True)
    rng = random.Random(0)
    rows = [refs.iloc[i] for i in rng.sample(range(len(refs)), 60)]
    caught = {"date": 0, "verb": 0}
    tried = {"date": 0, "verb": 0}
    for r in rows:
        history = sample.client_history(r.client_id, before=r.target_timestamp)
        claims = verifier.verify(r.text, r.item_id, history, r.target_timestamp).claims
        date_claim = next((c for c in claims if c.type == "date" and c.item_id), None)
        if date_claim is not None:
            days = {t.date() for t in history[history["item_id"] == date_claim.item_id]["timestamp"]}
            moved, when = _shift_day(date_claim.text)
            if when.date() not in days and when < r.target_timestamp.tz_localize(None):
                tried["date"] += 1
                text = r.text[:date_claim.start] + moved + r.text[date_claim.end:]
                got = verifier.verify(text, r.item_id, history, r.target_timestamp)
                caught["date"] += moved in failed(got, "date")
        verb = next((c for c in claims if c.type == "verb" and c.verdict == "pass"), None)
        if verb is not None and verb.text.lower() not in ("returned",):
            had = set(history[history["item_id"] == verb.item_id]["event_type"])
            if "return" not in had:
                tried["verb"] += 1
                changed = r.text[:verb.start] + "returned" + r.text[verb.end:]
                got = verifier.verify(changed, r.item_id, history, r.target_timestamp)
                caught["verb"] += "returned" in failed(got, "verb")
    assert tried["date"] > 30 and tried["verb"] > 30
    assert caught == tried


def test_another_pieces_colour_given_to_the_candidate_fails(sample, verifier):
    history = sample.client_history("C001", before=SHOWN)  # the passport holder is Silver Metallic
    r = verifier.verify("This overcoat in Silver Metallic echoes the Valmonde Passport Holder in "
                        "Silver Metallic Calfskin the client tried on on 13 May 2026.",
                        "I0218", history, SHOWN)
    assert failed(r, "attribute") == ["Silver Metallic"]
    assert not facts_failed(verifier.verify("This overcoat in Acid Yellow linen is from Noctelle.",
                                            "I0218", history, SHOWN))


def test_a_misspelt_name_fails_with_a_suggestion(sample, verifier):
    history = sample.client_history("C001", before=SHOWN)
    r = verifier.verify("This overcoat follows the Valmonde Pasport Holder the client viewed.",
                        "I0218", history, SHOWN)
    assert r.failed and "did you mean" in r.failed[0].reason


def test_odd_input_never_raises_and_says_what_it_could_not_check():
    items = pd.DataFrame({"item_id": ["X1", "X2"], "name": ["Galatée", "Lisière Tote in Noir"],
                          "category": [None, "handbags"], "subcategory": [None, "tote"]})
    v = ClaimVerifier(items)
    bare = v.verify("This scarf by Galatée suits the season.", "X1", None, SHOWN)
    assert [c.verdict for c in bare.claims if c.type == "kind"] == ["unchecked"]
    assert "no category" in next(c.reason for c in bare.claims if c.type == "kind")
    one = pd.DataFrame({"item_id": ["X2"], "event_type": ["view"],
                        "timestamp": [pd.Timestamp("2026-11-02", tz="UTC")]})
    r = v.verify("After the Lisière Tote in Noir viewed on 2 November 2026, this piece follows.",
                 "X1", one, SHOWN)
    assert r.passed and {"name", "verb", "date"} <= {c.type for c in r.claims}
    assert v.verify("", "X1", None, SHOWN).claims == ()
    lovely = v.verify("Lovely.", "X1", one, SHOWN)  # no claim but the missing reason
    assert [c.type for c in lovely.failed] == ["evidence"]
    assert v.verify("Lovely.", "X1", None, SHOWN).unchecked[0].type == "evidence"
    unknown = v.verify("This tote is lovely.", "NOPE", one, SHOWN)
    assert "not in the catalogue" in unknown.unchecked[0].reason
    future = v.verify("The Lisière Tote in Noir viewed on 3 December 2026.", "X1", one, SHOWN)
    assert "after today" in future.failed[0].reason


def test_a_pieces_name_given_as_a_maker_fails(sample, verifier):
    history = sample.client_history("C001", before=SHOWN)
    r = verifier.verify("This overcoat was crafted by the renowned jeweller, Valmonde Passport Holder.",
                        "I0218", history, SHOWN)
    assert failed(r, "name") == ["Valmonde Passport Holder"]


def test_a_date_right_before_a_name_is_that_pieces(sample, verifier):
    history = sample.client_history("C001", before=SHOWN)  # the passport holder: tried on 13 May 2026
    ok = verifier.verify("This overcoat follows the 13 May 2026 Valmonde Passport Holder.",
                         "I0218", history, SHOWN)
    assert ok.passed and any(c.type == "date" and c.item_id == "I0086" for c in ok.claims)
    january = pd.Timestamp("2026-01-10", tz="UTC")
    far = verifier.verify("With the upcoming autumn, this overcoat is ready.", "I0218",
                          sample.client_history("C001", before=january), january)
    assert failed(far, "time") == ["the upcoming autumn"]


def test_this_followed_by_another_pieces_name_fails(sample, verifier):
    history = sample.client_history("C001", before=SHOWN)
    r = verifier.verify("This 2025 Valmonde Passport Holder looks like a traditional coat.",
                        "I0218", history, SHOWN)
    assert failed(r, "kind") == ["Valmonde Passport Holder"]
    assert not facts_failed(verifier.verify("This Marcelle Overcoat comes from Noctelle.", "I0218",
                                            history, SHOWN))


# The 8 model texts that passed every fact check yet a blind reader rated unusable
# (reports/claims/sample-16/as_shown_reading), and the rule each now fails on.
READ_UNUSABLE = [
    ("C058", "2025-08-31T23:09:40Z", "I0189", "This kitten heeled on 6 August 2025, the same as "
     "Galatée Bucket Bag in Cognac Canvas bought on 6 August 2025.", "repeated phrase"),
    ("C071", "2025-05-12T19:01:02Z", "I0085", "For a pair of Perrine Ankle Boots in Noir Satin, this "
     "item is the perfect choice for the upcoming summer outing.", "prompt label"),
    ("C060", "2026-02-26T15:16:59Z", "I0140", "The client's choice of pair of silk sweaters has been "
     "reflected in the pair of Silk Shawl and 2 February 2026, viewed on the 2 February 2026 Cendre "
     "Knit Sweater in Ivory Silk Crepe.", "repeated phrase"),
    ("C071", "2025-07-28T00:59:05Z", "I0174", "This 2025 Satin Pumps in Noir Satin shoes, a luxury "
     "item from the Riviera collection, is also an Eulalie Neroli Extrait.", "another piece's identity"),
    ("C071", "2024-12-02T12:15:22Z", "I0073", "This pouch, a pair of matching Perrine Ankle Boots in "
     "Noir Satin (Veyrac, ruthenium hardware), is about to be paired with the Perrine Ankle Boots in "
     "Noir Satin (Signature collection).", "another piece's identity"),
    ("C058", "2025-10-22T17:28:56Z", "I0080", "This year, the item is ready to start the new journey. "
     "The Calisse Cocktail Dress bought in Blush Silk Crepe buys this passport held by the same way "
     "that the 29 September 2025 came around.", "prompt label"),
    ("C069", "2026-01-15T19:07:31Z", "I0144", "This 14 January 2026, viewed Tiphaine Stole in Blush "
     "Silk Chiffon, Aubrelle silks, Riviera collection, found a new partner.", "date as subject"),
    ("C071", "2026-04-21T12:49:28Z", "I0301", "This dress watch is a modern and stylish choice of the "
     "client's taste.", None),  # no past event: fails on evidence
]
# Cards the same reader rated usable as they stand.
READ_USABLE = [
    ("C071", "2026-04-21T12:49:28Z", "I0248", "Their recent choices lean to pieces from the Fracture "
     "collection, the Belvane Bucket Bag they bought on 30 March 2026 among them; this bangle "
     "continues that line."),
    ("C005", "2025-03-28T01:53:13Z", "I0037", "Like the Roseline Pendant Necklace the client "
     "wishlisted on 1 March 2025, this weekender comes from the Signature collection."),
    ("C071", "2025-07-28T00:59:05Z", "I0295", "This dress watch comes from the Riviera collection, a "
     "match for the Eulalie Neroli Extrait they viewed on 23 May 2025."),
    ("C058", "2025-12-17T10:51:38Z", "I0099", "Pieces with rose gold hardware keep returning in their "
     "choices, as the Galatée Shoulder Bag they viewed on 20 November 2025 shows; this cosmetic pouch "
     "is one more."),
    ("C058", "2026-02-03T18:21:51Z", "I0023", "This crossbody bag shares its ruthenium hardware with "
     "the Roseline Pendant Necklace the client viewed on 6 January 2026."),
]


@pytest.mark.parametrize("client, day, item, text, rule", READ_UNUSABLE)
def test_word_salad_with_no_false_fact_fails_on_coherence(sample, verifier, client, day, item, text, rule):
    when = pd.Timestamp(day)
    r = verifier.verify(text, item, sample.client_history(client, before=when), when)
    assert facts_failed(r) == [] and not r.passed
    if rule is None:
        assert [c.type for c in r.failed] == ["evidence"]
    else:
        assert rule in rules_failed(r)
        fault = next(c for c in r.failed if c.reason.startswith(rule))
        assert text[fault.start:fault.end] == fault.text and fault.text.strip()


@pytest.mark.parametrize("client, day, item, text", READ_USABLE)
def test_cards_read_as_usable_pass(sample, verifier, client, day, item, text):
    when = pd.Timestamp(day)
    r = verifier.verify(text, item, sample.client_history(client, before=when), when)
    assert r.passed, [(c.type, c.text, c.reason) for c in r.failed]
    assert next(c for c in r.claims if c.type == "evidence").verdict == "pass"


def test_the_issues_quoted_faults_fail_on_their_rule(sample, verifier):
    history = sample.client_history("C001", before=SHOWN)
    cases = {
        "echo": "This overcoat has been noted as a note added to the note this one.",
        "stacked openers": "For what comes next, with an upcoming journey coming up, as the Valmonde "
                           "Passport Holder they tried on 13 May 2026 suggests, this overcoat is ready in time.",
        "self comparison": "Marcelle Overcoat in Acid Yellow Linen by Noctelle shares Noctelle with the "
                           "Marcelle Overcoat in Acid Yellow Linen the client viewed on 8 July 2026.",
        "dangling": "After the Valmonde Passport Holder they tried on 13 May 2026, this overcoat is seen in.",
    }
    for rule, text in cases.items():
        assert rule in rules_failed(verifier.verify(text, "I0218", history, SHOWN)), rule
    both = verifier.verify(cases["stacked openers"], "I0218", history, SHOWN)
    assert "echo" in rules_failed(both)  # "upcoming ... coming up"
    idiom = verifier.verify("Side by side with the Valmonde Passport Holder they tried on 13 May "
                            "2026, this overcoat reads as a set.", "I0218", history, SHOWN)
    assert idiom.passed


def test_a_reason_resting_on_a_returned_piece_fails(sample, verifier):
    # C056 bought the Arcane Tote (I0055) on 25 February 2026 and returned it on 3 March
    day = pd.Timestamp("2026-03-04 06:23", tz="UTC")
    text = ("Launched on 9 February 2026, this bangle arrives in time for spring and would go well "
            "with the Arcane Tote they bought on 25 February 2026: both come with palladium hardware.")
    r = verifier.verify(text, "I0250", sample.client_history("C056", before=day), day)
    evidence = [c for c in r.claims if c.type == "evidence"]
    assert [c.verdict for c in evidence] == ["fail"] and "returned on 3 March 2026" in evidence[0].reason
    before = pd.Timestamp("2026-03-02", tz="UTC")  # read before the return, the same text rests on a purchase
    assert not failed(verifier.verify(text, "I0250", sample.client_history("C056", before=before), before),
                      "evidence")


def test_a_date_broken_into_digits_fails(sample, verifier):
    # served on 1 December 2026, an alternative wrote the year and the reading day's "1" as a date
    day = pd.Timestamp("2026-12-01", tz="UTC")
    text = "Like the Arcane Jewellery Necklace they viewed on 2026-1: a detail from Noctelle, this travel spray comes from Noctelle."
    r = verifier.verify(text, "I0325", sample.client_history("C005", before=day), day)
    assert failed(r, "date") == ["2026-1"]
    whole = verifier.verify("They viewed it on 2026-03-15.", "I0325", sample.client_history("C005", before=day), day)
    assert "2026-03-15" not in [c.text for c in whole.claims if c.reason == "not a calendar date"]
