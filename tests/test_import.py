"""`seller import` and `load_dataset` on tiny hand-made files, each broken-file class, lenient
mode, Parquet input, the store round trip, and the repo's sample data when it is present."""
import json
from pathlib import Path

import pandas as pd
import pytest

from seller import paths
from seller.cli import main
from seller.data.dataset import Dataset, UnknownIdError, load_dataset, load_sample
from seller.data.importer import DataValidationError

ITEMS = """item_id,name,maison,category,color,price,currency,launched_at,one_of_a_kind
I0001,Sac Lune,Maison Aurel,handbags,black,3200,EUR,2023-02-01,false
I0002,Carré Soie,Maison Aurel,silks,ivory,450.5,EUR,2023-03-01T00:00:00Z,
I0003,Bague Orbe,Ateliers Vey,jewellery,gold,12000,EUR,,true
"""
CLIENTS = """client_id,display_name,tier,home_boutique,consent_marketing
C001,Alice Martin,gold,Paris,yes
C002,Bruno Diaz,silver,Milan,0
"""
# Row 3 (spreadsheet numbering) is C001's first event in time; rows 3 and 5 tie at 08:00 UTC.
EVENTS = """client_id,item_id,event_type,channel,timestamp
C002,I0002,view,online,2024-01-05T10:00:00Z
C001,I0001,view,online,2024-01-02T09:00:00+01:00
C001,I0001,purchase,boutique,2024-01-03T15:30:00Z
C001,I0003,wishlist,Online,2024-01-02T08:00:00Z
C002,I0001,try_on,boutique,2024-01-05T10:00:00Z
"""


def write_files(folder: Path, items=ITEMS, clients=CLIENTS, events=EVENTS) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, text in (("items", items), ("clients", clients), ("events", events)):
        files[name] = folder / f"{name}.csv"
        files[name].write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return files


def cli_import(files, out, *extra) -> int:
    return main(["import", "--items", str(files["items"]), "--clients", str(files["clients"]),
                 "--events", str(files["events"]), "--out", str(out), "--no-progress", *extra])


def replace_line(text: str, row: int, new: str) -> str:
    """Replace spreadsheet row `row` (header = row 1) of a CSV text."""
    lines = text.splitlines()
    lines[row - 1] = new
    return "\n".join(lines) + "\n"


def test_import_valid_files_and_round_trip(tmp_path, capsys):
    files = write_files(tmp_path / "in")
    out = tmp_path / "store"
    assert cli_import(files, out) == 0
    assert "events: 5 read, 5 imported, 0 rejected" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["schema_version"] == 1
    assert {t: e["rows"] for t, e in manifest["tables"].items()} == {
        "items": 3, "clients": 2, "events": 5}
    assert manifest["tables"]["events"]["source"]["name"] == "events.csv"
    assert len(manifest["tables"]["events"]["source"]["sha256"]) == 64
    assert sorted(p.name for p in out.iterdir()) == [
        "clients.parquet", "events.parquet", "items.parquet", "manifest.json"]
    assert not list(tmp_path.glob(".store*")), "temp folder left behind"

    stored, raw = load_dataset(out), load_dataset(tmp_path / "in")
    for table in ("items", "clients", "events"):
        pd.testing.assert_frame_equal(getattr(stored, table), getattr(raw, table))
    ev = stored.events
    # (client_id, timestamp, file order): C001's tie at 08:00 UTC keeps file order (row 3, row 5)
    assert list(ev["client_id"]) == ["C001", "C001", "C001", "C002", "C002"]
    assert list(ev["event_type"]) == ["view", "wishlist", "purchase", "view", "try_on"]
    assert list(ev["event_id"]) == ["e0", "e1", "e2", "e3", "e4"]
    assert list(ev.index) == [0, 1, 2, 3, 4]
    assert str(ev["timestamp"].dt.tz) == "UTC"
    assert ev["timestamp"].iloc[0] == pd.Timestamp("2024-01-02T08:00:00Z")
    assert ev["channel"].iloc[1] == "online"  # "Online" matched case-insensitively
    assert stored.items["price"].tolist() == [3200.0, 450.5, 12000.0]
    assert stored.items["one_of_a_kind"].tolist() == [False, False, True]
    assert stored.clients["consent_marketing"].tolist() == [True, False]
    assert stored.items["launched_at"].iloc[0] == pd.Timestamp("2023-02-01T00:00:00Z")
    assert pd.isna(stored.items["launched_at"].iloc[2])


def test_dataset_helpers(tmp_path):
    ds = load_dataset(write_files(tmp_path)["items"].parent)
    item = ds.item("I0002")
    assert (item.name, item.price, item.one_of_a_kind, item.hardware) == (
        "Carré Soie", 450.5, False, None)
    assert ds.client("C001").consent_marketing is True
    history = ds.client_history("C001", before=pd.Timestamp("2024-01-03T00:00:00Z"))
    assert list(history["event_id"]) == ["e0", "e1"]
    assert list(ds.client_history("C002").index) == [3, 4]  # positions in ds.events
    for call in (lambda: ds.item("I9999"), lambda: ds.client("C999"),
                 lambda: ds.client_history("C999")):
        with pytest.raises(UnknownIdError, match="I9999|C999") as err:
            call()
        assert isinstance(err.value, KeyError)
    with pytest.raises(ValueError, match="time zone"):
        ds.client_history("C001", before="2024-01-03T00:00:00")


def test_explicit_event_id_is_kept(tmp_path):
    header, *rows = EVENTS.splitlines()
    events = "\n".join([f"event_id,{header}"] + [f"ev{i},{r}" for i, r in enumerate(rows)]) + "\n"
    ds = load_dataset(write_files(tmp_path, events=events)["items"].parent)
    # sorted by (client, time, file order): rows 3 and 5 tie at 08:00 UTC and keep file order
    assert list(ds.events["event_id"]) == ["ev1", "ev3", "ev2", "ev0", "ev4"]


def _latin1_items():
    return ITEMS.replace("Carré", "Carr\xe9").encode("latin-1")


# (case, file to break, edit to files, expected fragments of the message)
ROW3 = "row 3 (spreadsheet numbering, header = row 1)"
NEXT_MONTH = (pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
BROKEN = {
    "missing_column": ("events", lambda: {"events": EVENTS.replace(",timestamp", ",when")},
                       ["events.csv", "column 'timestamp'", "missing required column"]),
    "unknown_event_type": ("events", lambda: {"events": replace_line(
        EVENTS, 3, "C001,I0001,buy,online,2024-01-02T09:00:00Z")},
        ["events.csv", ROW3, "column 'event_type'", "unknown event type 'buy'"]),
    "unknown_channel": ("events", lambda: {"events": replace_line(
        EVENTS, 3, "C001,I0001,view,phone,2024-01-02T09:00:00Z")},
        ["events.csv", ROW3, "column 'channel'", "unknown channel 'phone'"]),
    "unknown_item": ("events", lambda: {"events": replace_line(
        EVENTS, 3, "C001,I0404,view,online,2024-01-02T09:00:00Z")},
        ["events.csv", ROW3, "column 'item_id'", "unknown item_id 'I0404'"]),
    "unknown_client": ("events", lambda: {"events": replace_line(
        EVENTS, 3, "C404,I0001,view,online,2024-01-02T09:00:00Z")},
        ["events.csv", ROW3, "column 'client_id'", "unknown client_id 'C404'"]),
    "bad_timestamp": ("events", lambda: {"events": replace_line(
        EVENTS, 3, "C001,I0001,view,online,02/01/2024 9h")},
        ["events.csv", ROW3, "column 'timestamp'", "cannot parse timestamp"]),
    "future_timestamp": ("events", lambda: {"events": replace_line(
        EVENTS, 3, f"C001,I0001,view,online,{NEXT_MONTH}")},
        ["events.csv", ROW3, "column 'timestamp'", "in the future"]),
    "naive_timestamp": ("events", lambda: {"events": replace_line(
        EVENTS, 3, "C001,I0001,view,online,2024-01-02T09:00:00")},
        ["events.csv", ROW3, "column 'timestamp'", "has no time zone"]),
    "duplicate_item": ("items", lambda: {"items": replace_line(
        ITEMS, 3, "I0001,Carré Soie,Maison Aurel,silks,ivory,450.5,EUR,,")},
        ["items.csv", ROW3, "column 'item_id'", "duplicate item_id 'I0001'"]),
    "duplicate_client": ("clients", lambda: {"clients": replace_line(
        CLIENTS, 3, "C001,Bruno Diaz,silver,Milan,0")},
        ["clients.csv", ROW3, "column 'client_id'", "duplicate client_id 'C001'"]),
    "negative_price": ("items", lambda: {"items": replace_line(
        ITEMS, 3, "I0002,Carré Soie,Maison Aurel,silks,ivory,-450,EUR,,")},
        ["items.csv", ROW3, "column 'price'", "negative price"]),
    "non_utf8": ("items", lambda: {"items": _latin1_items()},
                 ["items.csv", ROW3, "column 'name'", "non-UTF-8 byte 0xE9 at byte offset "
                  f"{_latin1_items().index(bytes([0xE9]))}"]),
    "empty_file": ("clients", lambda: {"clients": ""}, ["clients.csv", "file is empty"]),
    "header_only": ("events", lambda: {"events": EVENTS.splitlines()[0] + "\n"},
                    ["events.csv", "no data rows"]),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_file_refused_and_nothing_written(case, tmp_path, capsys):
    _, edit, fragments = BROKEN[case]
    files = write_files(tmp_path / "in", **edit())
    out = tmp_path / "store"
    assert cli_import(files, out) != 0
    err = capsys.readouterr().err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in:\n{err}"
    assert "nothing was written" in err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["in"], "temp folder left behind"


@pytest.mark.parametrize("case", ["unknown_item", "non_utf8", "empty_file"])
def test_broken_file_leaves_existing_store_untouched(case, tmp_path, capsys):
    out = tmp_path / "store"
    assert cli_import(write_files(tmp_path / "good"), out) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    files = write_files(tmp_path / "bad", **BROKEN[case][1]())
    assert cli_import(files, out, "--force") != 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_all_problems_reported_with_cap(tmp_path, capsys):
    lines = [EVENTS.splitlines()[0]] + [f"C001,I0001,buy,online,2024-01-0{1 + i % 9}T00:00:00Z"
                                        for i in range(30)]
    files = write_files(tmp_path, events="\n".join(lines) + "\n")
    assert cli_import(files, tmp_path / "store") == 1
    err = capsys.readouterr().err
    assert "30 problem(s)" in err and "... and 10 more" in err
    assert err.count("\n  - ") == 20
    assert "row 21 (spreadsheet" in err and "row 22 (spreadsheet" not in err


def test_existing_output_needs_force(tmp_path, capsys):
    files = write_files(tmp_path / "in")
    out = tmp_path / "store"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert cli_import(files, out) == 2
    assert "--force" in capsys.readouterr().err
    assert cli_import(files, out, "--force") == 2  # not a store: never replaced
    assert "not a SELLER store" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]

    store = tmp_path / "store2"
    assert cli_import(files, store) == 0
    smaller = write_files(tmp_path / "in2", events=EVENTS.splitlines()[0] + "\n" +
                          EVENTS.splitlines()[1] + "\n")
    assert cli_import(smaller, store, "--force") == 0
    assert len(load_dataset(store).events) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "in2", "store", "store2"]


def test_lenient_imports_good_rows_and_writes_rejects(tmp_path, capsys):
    items = replace_line(ITEMS, 4, "I0003,Bague Orbe,Ateliers Vey,jewellery,gold,-1,EUR,,true")
    events = replace_line(EVENTS, 2, "C002,I0002,click,online,2024-01-05T10:00:00Z")
    files = write_files(tmp_path / "in", items=items, events=events)
    out = tmp_path / "store"
    assert cli_import(files, out, "--lenient") == 0
    printed = capsys.readouterr().out
    assert "items: 3 read, 2 imported, 1 rejected" in printed
    assert "clients: 2 read, 2 imported, 0 rejected" in printed
    # the 'click' row, and C001's wishlist of I0003 whose item was rejected
    assert "events: 5 read, 3 imported, 2 rejected" in printed
    rejects = pd.read_csv(out / "rejects.csv")
    assert list(rejects.columns) == ["table", "file", "row", "columns", "reasons", "record"]
    assert rejects[["table", "row"]].values.tolist() == [["items", 4], ["events", 2],
                                                         ["events", 5]]
    assert "negative price" in rejects.loc[0, "reasons"]
    assert "unknown event type 'click'" in rejects.loc[1, "reasons"]
    assert "I0003" in rejects.loc[2, "reasons"] and "rejected" in rejects.loc[2, "reasons"]
    assert json.loads(rejects.loc[1, "record"])["event_type"] == "click"
    ds = load_dataset(out)
    assert set(ds.items["item_id"]) == {"I0001", "I0002"}
    assert len(ds.events) == 3 and "I0003" not in set(ds.events["item_id"])
    assert json.loads((out / "manifest.json").read_text())["tables"]["events"]["rejected"] == 2


def test_lenient_still_refuses_whole_file_problems(tmp_path, capsys):
    files = write_files(tmp_path / "in", events=EVENTS.replace(",timestamp", ",when"))
    assert cli_import(files, tmp_path / "store", "--lenient") == 1
    assert "missing required column" in capsys.readouterr().err
    assert not (tmp_path / "store").exists()


def _to_parquet(folder: Path, out: Path) -> dict[str, Path]:
    """The CSV fixture as typed Parquet (tz-aware timestamps, float prices, bool flags)."""
    ds = load_dataset(folder)
    out.mkdir()
    files = {}
    for table in ("items", "clients", "events"):
        frame = getattr(ds, table)
        if table == "events":
            frame = frame.drop(columns="event_id")
        files[table] = out / f"{table}.parquet"
        frame.to_parquet(files[table], index=False)
    return files


def test_parquet_input(tmp_path, capsys):
    csv_dir = write_files(tmp_path / "csv")["items"].parent
    files = _to_parquet(csv_dir, tmp_path / "pq")
    assert cli_import(files, tmp_path / "store") == 0
    for table in ("items", "clients", "events"):
        pd.testing.assert_frame_equal(getattr(load_dataset(tmp_path / "store"), table),
                                      getattr(load_dataset(csv_dir), table))
    # A bad Parquet row is named as a 1-based data row (Parquet has no header row).
    items = pd.read_parquet(files["items"])
    items.loc[1, "price"] = -5.0
    items.to_parquet(files["items"], index=False)
    assert cli_import(files, tmp_path / "store2") == 1
    err = capsys.readouterr().err
    assert "items.parquet, data row 2 (1-based), column 'price': negative price" in err
    # Parquet timestamps without a time zone are refused unless --assume-utc.
    events = pd.read_parquet(files["events"])
    events["timestamp"] = events["timestamp"].dt.tz_localize(None)
    events.to_parquet(files["events"], index=False)
    items.loc[1, "price"] = 5.0
    items.to_parquet(files["items"], index=False)
    assert cli_import(files, tmp_path / "store3") == 1
    assert "column 'timestamp': Parquet timestamps have no time zone" in capsys.readouterr().err
    assert cli_import(files, tmp_path / "store3", "--assume-utc") == 0


def test_load_dataset_strict_on_raw_folder(tmp_path):
    write_files(tmp_path, items=replace_line(ITEMS, 2, "I0001,Sac,M,handbags,black,-1,EUR,,"))
    with pytest.raises(DataValidationError, match=r"items.csv, row 2 .*column 'price'"):
        load_dataset(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_dataset(tmp_path / "nowhere")


def test_import_sample_data(tmp_path, capsys):
    import shutil
    files = {}
    for t in ("items", "clients", "events"):  # a snapshot: the generator may rewrite them
        files[t] = tmp_path / f"{t}.csv"
        shutil.copy(paths.SAMPLE_DATA / f"{t}.csv", files[t])
    assert cli_import(files, tmp_path / "store") == 0
    stored, raw = load_dataset(tmp_path / "store"), load_dataset(tmp_path)
    for table in ("items", "clients", "events"):
        assert len(getattr(stored, table)) == len(pd.read_csv(files[table], dtype=str))
        pd.testing.assert_frame_equal(getattr(stored, table), getattr(raw, table))
    raw_ids = pd.read_csv(files["events"], dtype=str).get("event_id")
    if raw_ids is not None:  # the file's own event ids survive import
        assert set(stored.events["event_id"]) == set(raw_ids)
    sample = load_sample()
    assert isinstance(sample, Dataset) and sample.name == "sample"
    assert load_sample() is sample  # cached until the files change
    assert list(sample.events.columns) == list(stored.events.columns)


def test_blank_lines_keep_spreadsheet_row_numbers(tmp_path, capsys):
    lines = EVENTS.splitlines()
    lines.insert(2, "")  # a blank spreadsheet row 3; the old row 3 is now row 4
    lines[4] = "C001,I0001,bought,boutique,2024-01-03T15:30:00Z"  # spreadsheet row 5
    clients = " Client_ID ,tier\nC001,gold\nC002,\n"  # header names are stripped, lower-cased
    files = write_files(tmp_path / "in", events="\n".join(lines) + "\n\n", clients=clients)
    assert cli_import(files, tmp_path / "store") == 1
    err = capsys.readouterr().err
    assert "1 problem(s)" in err
    assert "events.csv, row 5 (spreadsheet numbering, header = row 1), column 'event_type'" in err


def test_ragged_csv_is_a_file_problem(tmp_path, capsys):
    files = write_files(tmp_path / "in", items=ITEMS + "I0009,x,y,z,a,1,EUR,,,extra\n")
    assert cli_import(files, tmp_path / "store") == 1
    assert "items.csv: malformed CSV" in capsys.readouterr().err


def test_event_id_column_must_be_complete_and_unique(tmp_path, capsys):
    header, *rows = EVENTS.splitlines()
    ids = ["a", "b", "a", "", "c"]
    events = "\n".join([f"event_id,{header}"] + [f"{i},{r}" for i, r in zip(ids, rows)]) + "\n"
    assert cli_import(write_files(tmp_path / "in", events=events), tmp_path / "store") == 1
    err = capsys.readouterr().err
    assert "row 2 (spreadsheet numbering, header = row 1), column 'event_id': duplicate" in err
    assert "row 5 (spreadsheet numbering, header = row 1), column 'event_id': empty" in err


def test_damaged_or_newer_store_is_refused(tmp_path):
    out = tmp_path / "store"
    assert cli_import(write_files(tmp_path / "in"), out) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["tables"]["events"]["rows"] = 6
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="events.parquet: store is damaged"):
        load_dataset(out)
    manifest["schema_version"] = 99
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="newer SELLER"):
        load_dataset(out)


def test_parquet_typed_columns(tmp_path, capsys):
    """Numeric ids, nullable booleans and plain dates as a data warehouse would write them."""
    import datetime as dt
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table({
        "item_id": pa.array([1001, 1002], pa.int64()), "name": ["Sac", "Carré"],
        "price": pa.array([10, None], pa.int32()),
        "launched_at": pa.array([dt.date(2023, 2, 1), None], pa.date32()),
        "one_of_a_kind": pa.array([True, None], pa.bool_())}), tmp_path / "items.parquet")
    pq.write_table(pa.table({"client_id": ["C1"]}), tmp_path / "clients.parquet")
    pq.write_table(pa.table({
        "client_id": ["C1", "C1"], "item_id": pa.array([1002, 1001], pa.int64()),
        "event_type": ["view", "purchase"],
        # Arrow stores tz-aware timestamps as UTC instants; the zone is display metadata.
        "timestamp": pa.array([dt.datetime(2024, 1, 2, 9), dt.datetime(2024, 1, 1, 9)],
                              pa.timestamp("ms", tz="Europe/Paris"))}),
        tmp_path / "events.parquet")
    ds = load_dataset(tmp_path)
    assert ds.items["item_id"].tolist() == ["1001", "1002"]
    assert ds.items["one_of_a_kind"].tolist() == [True, False]
    assert ds.items["launched_at"].iloc[0] == pd.Timestamp("2023-02-01T00:00:00Z")
    assert ds.events["item_id"].tolist() == ["1001", "1002"]  # time order
    assert ds.events["timestamp"].iloc[0] == pd.Timestamp("2024-01-01T10:00:00+01:00")
