"""The committed sample_data/ is what the seeded generator writes, and it keeps its promises:
schema columns, counts, planted intents that only order reveals, explanations citing real past
events of the same client and never a client's name."""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from seller.data.generate_sample import EXPLANATION_COLUMNS, INTENT_COLUMNS, _read, generate, order_check
from seller.data.sample_catalog import COLD_START, COLLECTIONS, HORIZON
from seller.data.sample_phrasing import MAX_WORDS, MIN_WORDS, fmt_date
from seller.data.schema import CHANNELS, CLIENT_COLUMNS, EVENT_COLUMNS, EVENT_TYPES, EXPLANATION_STYLES, ITEM_COLUMNS

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
FILES = ("items.csv", "clients.csv", "events.csv", "intents.csv", "explanations.csv")
CATEGORIES = {"handbags", "small leather goods", "silks", "shoes", "ready-to-wear", "jewellery", "watches", "fragrance"}


def ts(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def data():
    d = {name[:-4]: _read(SAMPLE / name) for name in FILES}
    d["item"] = {r["item_id"]: r for r in d["items"]}
    d["event"] = {r["event_id"]: r for r in d["events"]}
    return d


def test_generator_rebuilds_the_committed_files_byte_for_byte(tmp_path):
    counts = generate(tmp_path, seed=7)
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (SAMPLE / name).read_bytes(), f"{name} differs: rerun the generator"
    assert counts["events"] == len(_read(SAMPLE / "events.csv"))
    other = tmp_path / "other"
    generate(other, seed=8)
    assert (other / "events.csv").read_bytes() != (SAMPLE / "events.csv").read_bytes()
    assert_order_matters(order_check(other))  # a property of the generator, not of seed 7


def test_headers_follow_the_schema(data):
    def header(name):
        return list(_read(SAMPLE / name)[0].keys())
    assert header("items.csv") == [c.name for c in ITEM_COLUMNS]
    assert header("clients.csv") == [c.name for c in CLIENT_COLUMNS]
    assert header("events.csv") == ["event_id"] + [c.name for c in EVENT_COLUMNS]
    assert header("intents.csv") == list(INTENT_COLUMNS)
    assert header("explanations.csv") == list(EXPLANATION_COLUMNS)


def test_counts_and_coverage(data):
    items, clients = data["items"], data["clients"]
    assert len(items) >= 300 and len(clients) >= 60
    assert {r["category"] for r in items} == CATEGORIES
    assert {r["hardware"] for r in items} <= {"gold", "palladium", "rose gold", "ruthenium", "none"}
    assert len({r["maison"] for r in items}) in range(4, 7)
    assert len({r["name"] for r in items}) == len(items)
    assert all(float(r["price"]) > 0 and r["currency"] == "EUR" for r in items)
    assert all(1 <= len(re.findall(r"[.!?](\s|$)", r["description"])) <= 3 for r in items)
    assert len({r["description"] for r in items}) > 0.9 * len(items)
    assert [r["item_id"] for r in items] == [f"I{i + 1:04d}" for i in range(len(items))]
    assert [r["client_id"] for r in clients] == [f"C{i + 1:03d}" for i in range(len(clients))]
    assert len({r["display_name"] for r in clients}) == len(clients)
    assert 3000 <= len(data["events"]) <= 15000
    assert 1500 <= len(data["explanations"]) <= 3000
    types = Counter(r["event_type"] for r in data["events"])
    assert set(types) == set(EVENT_TYPES) and types["view"] > types["try_on"] > types["return"] > 0
    assert {r["channel"] for r in data["events"]} == set(CHANNELS)


def test_events_are_sorted_identified_and_in_range(data):
    clients = {r["client_id"] for r in data["clients"]}
    keys = [(r["client_id"], ts(r["timestamp"])) for r in data["events"]]
    assert keys == sorted(keys), "events.csv must be sorted by (client_id, timestamp)"
    spans = defaultdict(list)
    for i, r in enumerate(data["events"]):
        assert r["event_id"] == f"e{i}"
        assert r["client_id"] in clients and r["item_id"] in data["item"], r["event_id"]
        t = ts(r["timestamp"])
        assert t < HORIZON and t >= ts(data["item"][r["item_id"]]["launched_at"]), r["event_id"]
        spans[r["client_id"]].append(t)
    assert set(spans) == clients
    for cid, times in spans.items():  # every client has 6-24 months of history
        assert timedelta(days=182) <= times[-1] - times[0] <= timedelta(days=731), cid


def test_cold_start_and_one_of_a_kind_items(data):
    cold = {i for i, r in data["item"].items() if ts(r["launched_at"]) >= COLD_START}
    assert 0.05 <= len(cold) / len(data["items"]) <= 0.15
    last = defaultdict(lambda: datetime.min.replace(tzinfo=COLD_START.tzinfo))
    for r in data["events"]:
        last[r["client_id"]] = max(last[r["client_id"]], ts(r["timestamp"]))
    assert sum(t < COLD_START for t in last.values()) > 0.5 * len(last), "most histories end before the cold items"
    driven = {r["event_id"] for r in data["intents"]}
    on_cold = [r for r in data["events"] if r["item_id"] in cold]
    assert on_cold and all(r["event_id"] in driven for r in on_cold), "cold items appear only as intent targets"
    assert any(r["item_id"] in cold for r in data["explanations"])
    unique = {i for i, r in data["item"].items() if r["one_of_a_kind"] == "true"}
    assert len(unique) >= 5 and {r["one_of_a_kind"] for r in data["items"]} == {"true", "false"}
    sold = Counter(r["item_id"] for r in data["events"] if r["event_type"] == "purchase" and r["item_id"] in unique)
    assert sold and max(sold.values()) == 1, "a one-of-a-kind piece sells once"


def test_intents_are_consistent_with_their_anchors(data):
    item, event = data["item"], data["event"]
    assert {r["intent"] for r in data["intents"]} == {"complement", "style_evolution", "occasion", "loyalty"}
    for r in data["intents"]:
        e = event[r["event_id"]]
        assert (e["client_id"], e["item_id"], e["timestamp"], e["event_type"]) == (
            r["client_id"], r["item_id"], r["timestamp"], r["event_type"]), r["event_id"]
        if not r["anchor_event_id"]:
            assert r["intent"] == "occasion"  # only the first preparation view has no anchor
            continue
        a = event[r["anchor_event_id"]]
        assert a["client_id"] == r["client_id"] and a["item_id"] == r["anchor_item_id"], r["event_id"]
        assert a["timestamp"] == r["anchor_timestamp"] and ts(a["timestamp"]) < ts(r["timestamp"]), r["event_id"]
        t, x = item[r["item_id"]], item[a["item_id"]]
        if r["intent"] == "complement":
            assert a["event_type"] == "purchase" and x["category"] == "handbags"
            assert t["color"] == x["color"] or t["hardware"] == x["hardware"] != "none", r["event_id"]
        elif r["intent"] == "style_evolution":
            assert COLLECTIONS[t["collection"]] > COLLECTIONS[x["collection"]], r["event_id"]
        elif r["intent"] == "loyalty":
            kind, value = r["detail"].split(" ", 1)
            assert t[kind] == x[kind] == value, r["event_id"]


def test_explanations_cite_real_earlier_events_of_the_same_client(data):
    event, item = data["event"], data["item"]
    driven = {r["event_id"]: r for r in data["intents"]}
    per_target = Counter()
    for r in data["explanations"]:
        target = event[r["target_event_id"]]
        assert (target["client_id"], target["item_id"], target["timestamp"]) == (
            r["client_id"], r["item_id"], r["target_timestamp"])
        assert target["event_type"] in ("wishlist", "try_on", "purchase")
        assert driven[r["target_event_id"]]["intent"] == r["intent"]
        assert r["style"] in EXPLANATION_STYLES
        sub = item[r["item_id"]]["subcategory"]
        assert re.search(rf"\b[Tt]his (pair of )?{re.escape(sub)}\b", r["text"]), (r["text"], sub)
        cited = r["cited_event_ids"].split(";")
        assert cited and r["cited_item_ids"].split(";") == [event[c]["item_id"] for c in cited]
        for c in cited:
            e = event[c]
            assert e["client_id"] == r["client_id"], (r["target_event_id"], c)
            assert ts(e["timestamp"]) < ts(r["target_timestamp"]), (r["target_event_id"], c)
            assert item[e["item_id"]]["name"] in r["text"] and fmt_date(ts(e["timestamp"])) in r["text"], c
        per_target[r["target_event_id"], r["style"]] += 1
    assert set(per_target.values()) == {1}
    styles = Counter(s for _, s in per_target)
    assert styles["feature"] == styles["style"] == styles["occasion"]


def test_explanations_name_only_attributes_of_the_item_or_the_earlier_history(data):
    """The grounding evaluation's rule, applied to the references: a catalogue value (maison,
    category, colour, material, hardware, collection...) named in a text, outside the item
    names, must belong to the target item or to an item the client engaged with before."""
    columns = ("maison", "category", "subcategory", "color", "material", "hardware", "collection")
    values = {r[c].lower() for r in data["items"] for c in columns if r[c] and r[c] != "none"}
    names = sorted({r["name"] for r in data["items"]}, key=len, reverse=True)
    name_re = re.compile("|".join(map(re.escape, names)))
    value_re = re.compile(r"(?<!\w)(" + "|".join(map(re.escape, sorted(values, key=len, reverse=True))) + r")(?!\w)", re.I)
    by_client = defaultdict(list)
    for e in data["events"]:
        by_client[e["client_id"]].append(e)
    for r in data["explanations"]:
        before = ts(r["target_timestamp"])
        seen = {r["item_id"]} | {e["item_id"] for e in by_client[r["client_id"]] if ts(e["timestamp"]) < before}
        facts = {data["item"][i][c].lower() for i in seen for c in columns}
        for m in value_re.finditer(name_re.sub(" ", r["text"])):
            assert m.group(0).lower() in facts, (r["target_event_id"], r["style"], m.group(0), r["text"])


def test_explanations_are_short_varied_and_nameless(data):
    texts = defaultdict(list)
    for r in data["explanations"]:
        assert MIN_WORDS <= len(r["text"].split()) <= MAX_WORDS, r["text"]
        texts[r["style"]].append(r["text"])
    for style, group in texts.items():  # many phrasings, not one template per style
        assert len({" ".join(t.split()[:2]) for t in group}) >= 8, style
        assert len(set(group)) == len(group)
    words = set()
    for c in data["clients"]:
        words |= {c["display_name"], *c["display_name"].split()}
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(words))) + r")\b")
    leaks = [r["text"] for r in data["explanations"] if pattern.search(r["text"])]
    assert not leaks, leaks[:3]
    assert not any(re.search(r"\b(she|her|he|his|him)\b", r["text"], re.I) for r in data["explanations"])


def assert_order_matters(check: dict):
    assert check["complement_targets"] >= 50 and check["style_targets"] >= 50
    assert check["match_last_purchase"] >= 0.95
    assert check["match_last_purchase"] - check["match_random_earlier_purchase"] >= 0.5
    assert check["colour_is_modal_colour_of_history"] <= 0.35
    assert check["has_non_matching_earlier_purchase"] >= 0.8  # the bag alone holds decoys
    assert check["style_gap_last_3_engagements"] < check["style_gap_whole_history"]


def test_order_not_the_bag_of_items_predicts_the_intent(data):
    assert_order_matters(order_check(SAMPLE))


def test_the_project_loader_accepts_the_sample():
    pytest.importorskip("pandas")
    dataset = pytest.importorskip("seller.data.dataset")
    ds = dataset.load_dataset(SAMPLE)
    assert len(ds.items) == len(_read(SAMPLE / "items.csv")) and len(ds.clients) == len(_read(SAMPLE / "clients.csv"))
    assert list(ds.events["event_id"]) == [r["event_id"] for r in _read(SAMPLE / "events.csv")]


def test_readme_row_counts_match_the_files(data):
    readme = (SAMPLE / "README.md").read_text(encoding="utf-8")
    for name in FILES:
        found = re.search(rf"^\| {re.escape(name)} \| ([\d,]+) \|", readme, re.M)
        assert found, f"README.md has no row count for {name}"
        assert int(found.group(1).replace(",", "")) == len(data[name[:-4]]), f"README.md count for {name} is stale"
