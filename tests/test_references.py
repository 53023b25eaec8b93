"""Mined reference explanations: every sample reference passes the claim verifier and cites a
real earlier event of the client; a catalogue known by name only gets co-occurrence references;
bad stores give fewer references or a clear error; the command writes atomically."""
import re

import pandas as pd
import pytest

from seller.examples import REQUIRED, TrainingDataError, load_explanations
from seller.cli import main
from seller.config import DataConfig
from seller.data.dataset import Dataset, load_dataset, load_sample
from seller.fallback import GroundedSentenceBuilder
from seller.references import COLUMNS, NothingToMineError, evidence_summary, mine_references
from seller.verify import ClaimVerifier


@pytest.fixture(scope="module")
def sample():
    return load_sample()


@pytest.fixture(scope="module")
def mined(sample):
    return mine_references(sample)


def test_every_mined_sample_reference_passes_the_verifier(sample, mined):
    verifier = ClaimVerifier(sample.items)
    events = sample.events.set_index("event_id")
    names = dict(zip(sample.items["item_id"], sample.items["name"]))
    failures = []
    for r in mined.itertuples():
        day = pd.Timestamp(r.target_timestamp)
        history = sample.client_history(r.client_id, before=day)
        result = verifier.verify(r.text, r.item_id, history, day)
        if not result.passed:
            failures.append((r.text, [(c.type, c.text, c.reason) for c in result.failed]))
        for event_id, item_id in zip(r.cited_event_ids.split(";"), r.cited_item_ids.split(";")):
            cited = events.loc[event_id]
            assert cited["client_id"] == r.client_id and cited["timestamp"] < day
            assert cited["item_id"] == item_id != r.item_id
            assert names[item_id].split(" in ")[0] in r.text  # the cited piece is named
        assert names[r.item_id].split(" in ")[0] not in r.text  # never compared with itself
        assert len(re.findall(r"[.!?](?:\s|$)", r.text)) == 1  # one sentence
    assert failures == [] and mined.attrs["rejected"] == 0
    assert len(mined) > 2000


def test_columns_styles_and_summary(mined):
    assert tuple(mined.columns) == COLUMNS and set(REQUIRED) <= set(mined.columns)
    assert set(mined["style"]) == {"feature", "style", "occasion"}
    assert not mined.duplicated(["client_id", "item_id", "target_timestamp", "style"]).any()
    summary = evidence_summary(mined)
    assert summary["references"] == len(mined)
    assert sum(summary["by_evidence"].values()) == len(mined)
    assert {"shared_detail", "taste_line", "collection_drift", "season"} <= set(summary["by_evidence"])
    assert summary["by_evidence_and_style"]["shared_detail"] == {"feature": summary["by_style"]["feature"]}


def test_occasions_lie_ahead_and_features_name_the_detail(sample, mined):
    items = sample.items.set_index("item_id")
    for r in mined[mined["style"] == "feature"].head(200).itertuples():
        cited = items.loc[r.cited_item_ids.split(";")[0]]
        mine = items.loc[r.item_id]
        named = [c for c in ("color", "material", "hardware", "collection", "maison")
                 if isinstance(mine[c], str) and mine[c] == cited[c] and mine[c] in r.text]
        assert named, r.text
    for r in mined[mined["evidence"] == "season"].itertuples():
        assert "this autumn" not in r.text.lower() or pd.Timestamp(r.target_timestamp).month in (8, 9)


def _store(items: pd.DataFrame, rows: list[tuple[str, str, str, str]]) -> Dataset:
    """A dataset of (client_id, item_id, event_type, ISO time) events."""
    events = pd.DataFrame(rows, columns=["client_id", "item_id", "event_type", "timestamp"])
    events["timestamp"] = pd.to_datetime(events["timestamp"], utc=True)
    events = events.sort_values(["client_id", "timestamp"], kind="stable").reset_index(drop=True)
    events.insert(0, "event_id", [f"e{i}" for i in range(len(events))])
    events["channel"] = "online"
    clients = pd.DataFrame({"client_id": sorted(events["client_id"].unique()) or ["K0"]})
    return Dataset(items, clients, events, name="tiny")


NAME_ONLY = pd.DataFrame({"item_id": ["A", "B", "C"], "name": ["Galatée", "Lisière Stole", "Orme"]})


def test_a_name_only_catalogue_gets_co_occurrence_references():
    rows = [(f"K{k}", i, "purchase", f"2026-0{m}-10T10:00:00Z")
            for k in range(4) for i, m in (("A", 3), ("B", 5))]
    rows.append(("K0", "C", "view", "2026-01-02T10:00:00Z"))
    data = _store(NAME_ONLY, rows)
    frame = mine_references(data)
    assert set(frame["evidence"]) == {"co_occurrence"} and len(frame) == 4 * 3
    verifier = ClaimVerifier(data.items, follow_ons=GroundedSentenceBuilder(data.items, data.events).follow_ons)
    for r in frame.itertuples():
        history = data.client_history(r.client_id, before=pd.Timestamp(r.target_timestamp))
        result = verifier.verify(r.text, r.item_id, history, r.target_timestamp)
        assert result.passed and any(c.type == "pattern" and c.verdict == "pass" for c in result.claims), r.text
        assert r.item_id == "B" and "Galatée" in r.text and "three other clients" in r.text.lower()


def test_bad_stores_give_fewer_references_or_a_clear_error(sample):
    with pytest.raises(NothingToMineError, match="no events"):
        mine_references(_store(NAME_ONLY, []))
    one_each = [(f"K{k}", "A", "purchase", "2026-03-10T10:00:00Z") for k in range(3)]
    with pytest.raises(NothingToMineError, match="0 target"):
        mine_references(_store(NAME_ONLY, one_each))
    same_day = [("K0", i, "purchase", "2026-03-10T10:00:00Z") for i in ("A", "B", "C")]
    with pytest.raises(NothingToMineError, match="0 target"):
        mine_references(_store(NAME_ONLY, same_day))
    alone = [("K0", "A", "purchase", "2026-03-10T10:00:00Z"), ("K0", "B", "purchase", "2026-04-10T10:00:00Z")]
    with pytest.raises(NothingToMineError, match="1 target.*none with evidence"):
        mine_references(_store(NAME_ONLY, alone))  # no attributes, no other client: nothing to say
    with pytest.raises(ValueError, match="'poem'"):
        mine_references(_store(NAME_ONLY, alone), styles=("poem",))
    few = mine_references(sample, clients=["C001", "C002"], styles=("style",))
    assert set(few["client_id"]) <= {"C001", "C002"} and set(few["style"]) == {"style"}


def test_mined_explanations_load_for_training(sample):
    small = Dataset(sample.items, sample.clients, sample.events[sample.events["client_id"].isin(["C001", "C003"])]
                    .reset_index(drop=True), name="small")
    frame = load_explanations(DataConfig(explanations="mined", styles=["feature", "occasion"]), small)
    assert set(frame["style"]) == {"feature", "occasion"} and frame["target_timestamp"].dt.tz is not None
    with pytest.raises(TrainingDataError, match="mined.*no events"):
        load_explanations(DataConfig(explanations="mined"), _store(NAME_ONLY, []))


def test_the_command_writes_atomically_and_refuses_an_existing_out(sample, tmp_path, capsys):
    store = tmp_path / "store"
    store.mkdir()
    events = sample.events[sample.events["client_id"].isin(["C001", "C002", "C003"])]
    sample.items.to_csv(store / "items.csv", index=False)
    sample.clients.to_csv(store / "clients.csv", index=False)
    events.drop(columns=["event_id"]).to_csv(store / "events.csv", index=False)
    out = tmp_path / "refs" / "refs.csv"
    assert main(["references", "--data", str(store), "--out", str(out)]) == 0
    written = pd.read_csv(out, dtype=str)
    assert tuple(written.columns) == COLUMNS and len(written) > 20
    assert "shared_detail: feature" in capsys.readouterr().out
    assert sorted(p.name for p in out.parent.iterdir()) == ["refs.csv"]  # no temporary left
    before = out.read_bytes()
    assert main(["references", "--data", str(store), "--out", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err and out.read_bytes() == before
    assert main(["references", "--data", str(store), "--out", str(out), "--force", "--seed", "3"]) == 0
    bare = tmp_path / "bare"
    bare.mkdir()
    NAME_ONLY.to_csv(bare / "items.csv", index=False)
    pd.DataFrame({"client_id": ["K0"]}).to_csv(bare / "clients.csv", index=False)
    pd.DataFrame({"client_id": ["K0"], "item_id": ["A"], "event_type": ["purchase"],
                  "timestamp": ["2026-03-10T10:00:00Z"]}).to_csv(bare / "events.csv", index=False)
    nothing = tmp_path / "nothing.csv"
    assert main(["references", "--data", str(bare), "--out", str(nothing)]) == 1
    assert "no reference could be mined" in capsys.readouterr().err and not nothing.exists()
    assert load_dataset(store).events["client_id"].nunique() == 3
