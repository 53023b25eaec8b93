"""Grounding on a crafted catalogue: true citations pass, invented or future ones are caught."""
import pandas as pd
import pytest

from seller.evaluate.grounding import GroundingChecker, summarise

ITEMS = pd.DataFrame([
    ("I001", "Kelly 28", "Hermès", "bag", "Black", "Leather", "Gold", pd.Timestamp("2024-01-15", tz="UTC")),
    ("I002", "Tank Watch", "Cartier", "watch", "Silver", "Steel", None, pd.NaT),
    ("I003", "Rose Gold Ring", "Cartier", "jewellery", "Rose Gold", "Gold", None, pd.NaT),
    ("I004", "Speedy 30", "Louis Vuitton", "bag", "Brown", "Canvas", None, pd.NaT),
], columns=["item_id", "name", "maison", "category", "color", "material", "hardware", "launched_at"])
EVENTS = pd.DataFrame([
    ("C001", "I002", "view", pd.Timestamp("2024-03-05", tz="UTC"), "e0"),
    ("C001", "I003", "purchase", pd.Timestamp("2024-04-10", tz="UTC"), "e1"),
    ("C001", "I004", "purchase", pd.Timestamp("2024-06-01", tz="UTC"), "e2"),  # the future
    ("C002", "I004", "view", pd.Timestamp("2024-02-01", tz="UTC"), "e3"),
], columns=["client_id", "item_id", "event_type", "timestamp", "event_id"])
TARGET = pd.Timestamp("2024-06-01", tz="UTC")


@pytest.fixture(scope="module")
def checker():
    return GroundingChecker(ITEMS, EVENTS)


def test_grounded_sentence_cites_history_and_item(checker):
    g = checker.check("C001", "I001", TARGET,
                      "Like the Tank Watch you viewed in March 2024, this black Hermès bag "
                      "pairs with your Rose Gold Ring.", cited_event_ids=["e0", "e1"])
    kinds = sorted((c.kind, c.value) for c in g.citations)
    assert kinds == [("category", "bag"), ("color", "black"), ("date", "2024-03"),
                     ("item", "rose gold ring"), ("item", "tank watch"), ("maison", "hermès")]
    assert g.hallucinations == [] and g.cites_history and g.invalid_event_ids == ()


def test_hallucinated_and_future_facts_are_caught(checker):
    g = checker.check("C001", "I001", TARGET,
                      "Since you bought the Speedy 30 in February, this Louis Vuitton canvas "
                      "piece will feel familiar.", cited_event_ids=["e2", "e99"])
    bad = sorted((c.kind, c.value) for c in g.hallucinations)
    # Speedy 30 / Louis Vuitton / canvas exist only in the FUTURE; February is C002's month.
    assert bad == [("date", "02"), ("item", "speedy 30"), ("maison", "louis vuitton"),
                   ("material", "canvas")]
    assert not g.cites_history and g.invalid_event_ids == ("e2", "e99")


def test_attribute_only_in_candidate_does_not_count_as_history(checker):
    g = checker.check("C001", "I001", TARGET, "A black leather bag with gold hardware.")
    assert not g.hallucinations and not g.cites_history
    g2 = checker.check("C001", "I001", TARGET, "It echoes the steel of your watch.")
    assert not g2.hallucinations and g2.cites_history  # steel: history only


def test_may_as_a_verb_is_not_a_date_and_launch_month_grounds(checker):
    g = checker.check("C001", "I001", TARGET, "You may like it; it launched in January 2024.")
    dates = [c for c in g.citations if c.kind == "date"]
    assert [(c.value, c.in_item, c.in_history) for c in dates] == [("2024-01", True, False)]
    g2 = checker.check("C001", "I001", TARGET, "Seen in May.")
    assert [c.value for c in g2.citations] == ["05"] and g2.hallucinations


def test_summary_rates(checker):
    ok = checker.check("C001", "I001", TARGET, "Like the Tank Watch, a black bag.", ["e0"])
    bad = checker.check("C001", "I001", TARGET, "A Louis Vuitton bag.", ["e2"])
    s = summarise([ok, bad])
    assert s["hallucination_rate"] == pytest.approx(1 / 5)  # 3 + 2 citations, 1 invented
    assert s["explanation_hallucination_rate"] == 0.5
    assert s["history_citation_rate"] == 0.5
    assert s["invalid_cited_event_rate"] == 0.5


def test_unknown_item_is_a_clear_error(checker):
    with pytest.raises(KeyError, match="I999"):
        checker.check("C001", "I999", TARGET, "text")


def test_sample_references_are_fully_grounded():
    """The sample generator promises real citations only: the checker must agree on every row."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "sample_data" / "explanations.csv"
    from seller.data.dataset import load_sample

    ds = load_sample()
    refs = pd.read_csv(path, dtype=str)
    checker = GroundingChecker(ds.items, ds.events)
    results = [checker.check(r.client_id, r.item_id, pd.Timestamp(r.target_timestamp), r.text,
                             str(r.cited_event_ids).split(";"))
               for r in refs.itertuples(index=False)]
    s = summarise(results)
    assert s["citations_per_explanation"] > 2
    assert s["hallucination_rate"] == 0.0 and s["invalid_cited_event_rate"] == 0.0
    assert s["history_citation_rate"] > 0.95


KIND_ITEMS = pd.DataFrame([
    ("I010", "Lune Tote in Black Calfskin", "handbags", "tote", "Black"),
    ("I011", "Vela Silk Blouse in Ivory", "ready-to-wear", "blouse", "Ivory"),
    ("I012", "Cendre Loafers in Tan Suede", "shoes", "loafers", "Tan"),
    ("I013", "Orla Shoulder Bag in Red", "handbags", "shoulder bag", "Red"),
], columns=["item_id", "name", "category", "subcategory", "color"])
KIND_EVENTS = pd.DataFrame([("C001", "I012", "purchase", pd.Timestamp("2024-03-05", tz="UTC"), "e0")],
                           columns=["client_id", "item_id", "event_type", "timestamp", "event_id"])


def test_what_the_text_says_the_candidate_is_must_be_the_candidates_kind():
    checker = GroundingChecker(KIND_ITEMS, KIND_EVENTS)
    # the client bought shoes, but the candidate is a blouse: "this pair of shoes" is invented
    g = checker.check("C001", "I011", TARGET, "This pair of shoes suits her taste.")
    assert [(c.kind, c.value, c.in_item) for c in g.hallucinations] == [("category", "shoes", False)]
    # the same word about the past is history, and grounded
    g = checker.check("C001", "I011", TARGET, "It goes with the shoes she bought.")
    assert not g.hallucinations and g.cites_history
    # a subcategory's last word fits its category: a tote is "this bag"; loafers are shoes
    for item, text in [("I010", "This black bag is a classic."),
                       ("I013", "This shoulder bag is a classic."),
                       ("I012", "These loafers echo her taste."),
                       ("I012", "This pair of shoes echoes her taste.")]:
        g = checker.check("C001", item, TARGET, text)
        assert not g.hallucinations, (item, text, g.citations)
        assert any(c.in_item and c.kind in ("category", "subcategory") for c in g.citations)
    # a bag named on a pair of loafers, inside "this" + three words
    g = checker.check("C001", "I012", TARGET, "This new and lovely bag suits her.")
    assert [c.value for c in g.hallucinations] == ["bag"]
    # an item's full name is checked as the item, not as what "this" is
    g = checker.check("C001", "I010", TARGET, "Like this Cendre Loafers in Tan Suede, it is soft.")
    assert [(c.kind, c.in_history) for c in g.citations] == [("item", True)]
