"""`seller evaluate` with the claim verifier: figures per method with CIs, cards verbatim in
results.md, a blind review sheet out and its ratings back in, bad ratings files refused by name."""
import argparse
import csv
import json

import pytest

from seller.evaluate import runner


def _run(*argv) -> int:
    p = argparse.ArgumentParser()
    runner.add_arguments(p)
    return runner.run(p.parse_args(list(argv)))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("claims") / "r"
    assert _run("--dataset", "sample", "--methods", "template,fallback", "--max-cases", "6",
                "--k", "2", "--out", str(out), "--review-sheet", "8") == 0
    return out


def test_every_method_gets_the_verifier_figures_and_cards(report):
    res = json.loads((report / "results.json").read_text())
    for name in ("template", "fallback"):
        c = res["methods"][name]["claims"]
        assert c["n"] == 12 and len(c["cards"]) == 12  # 6 cases x K=2, all shown when fewer than 20
        lo, hi = c["associate_ready_ci"]
        assert lo <= c["associate_ready_rate"] <= hi
        assert set(c["failing_rate"]) == set(c["failing_rate_ci"])
    assert res["methods"]["fallback"]["claims"]["associate_ready_rate"] == 1.0
    md = (report / "results.md").read_text()
    assert "## Claim by claim" in md and "random cards: fallback" in md
    assert res["methods"]["fallback"]["claims"]["cards"][0]["text"] in md
    assert "--review-sheet 8" in res["command"]


def test_review_sheet_is_blind_and_blank(report):
    rows = list(csv.DictReader((report / "review_sheet.csv").open()))
    key = {r["card_id"]: r["method"] for r in csv.DictReader((report / "review_key.csv").open())}
    assert len(rows) == 8 and set(key) == {r["card_id"] for r in rows}
    assert set(key.values()) == {"template", "fallback"}  # spread over the methods
    assert "method" not in rows[0] and all(r["verdict"] == "" for r in rows)
    assert all(r["candidate"] and r["text"] for r in rows)
    assert "<table>" in (report / "review_sheet.html").read_text()
    # what a reader needs to check each word: the day, launch dates, the client's events
    assert all(r["reading_day"] and r["client_events"] and "launched " in r["candidate"] for r in rows)
    shows = {r["card_id"]: r["shows"] for r in csv.DictReader((report / "review_key.csv").open())}
    assert set(shows.values()) <= {"model", "alternative", "grounded"}
    # the sheet shows what the app shows: the template's failing cards appear as grounded sentences
    res = json.loads((report / "results.json").read_text())
    shown = {c["shown_text"] for m in res["methods"].values() for c in m["claims"]["cards"]}
    assert {r["text"] for r in rows} <= shown


def test_review_sheet_draws_from_the_methods_asked(tmp_path):
    out = tmp_path / "r"
    assert _run("--dataset", "sample", "--methods", "template,fallback", "--max-cases", "2", "--k", "2",
                "--out", str(out), "--review-sheet", "3", "--review-methods", "fallback") == 0
    key = list(csv.DictReader((out / "review_key.csv").open()))
    assert len(key) == 3 and {r["method"] for r in key} == {"fallback"}
    assert "--review-methods fallback" in json.loads((out / "results.json").read_text())["command"]


def test_review_methods_not_run_are_refused_before_anything_runs(tmp_path, capsys):
    out = tmp_path / "r"
    assert _run("--dataset", "sample", "--methods", "template", "--max-cases", "2", "--out", str(out),
                "--review-sheet", "3", "--review-methods", "seller") == 2
    assert "--review-methods 'seller' is not one of the methods run (template)" in capsys.readouterr().err
    assert not out.exists()


def _write(path, rows, columns):
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)


def test_ratings_come_back_into_the_report(report, tmp_path):
    rows = list(csv.DictReader((report / "review_sheet.csv").open()))
    for i, r in enumerate(rows[:6]):  # two cards left unrated
        r.update(right_kind="yes", facts_true="yes", coherent="no" if i % 2 else "yes",
                 style_delivered="y", verdict=("usable", "one fix", "unusable")[i % 3])
    filled = tmp_path / "ratings.csv"
    _write(filled, rows, list(rows[0]))
    assert _run("--dataset", "sample", "--out", str(report), "--ratings", str(filled)) == 0
    res = json.loads((report / "results.json").read_text())
    assert res["ratings"]["n_rated"] == 6
    assert sum(m["n"] for m in res["ratings"]["methods"].values()) == 6
    assert "## Human ratings" in (report / "results.md").read_text()
    shows = [v for m in res["ratings"]["methods"].values() for s in m["shows"].values() for v in s.values()]
    assert sum(shows) == 6 and "cards showing the" in (report / "results.md").read_text()


@pytest.mark.parametrize("change, message", [
    (lambda rows: [{k: v for k, v in r.items() if k != "coherent"} for r in rows], "missing column(s) coherent"),
    (lambda rows: [dict(r, right_kind="maybe") for r in rows], "column right_kind: 'maybe' is not yes/no"),
    (lambda rows: [dict(r, verdict="great") for r in rows], "column verdict: 'great'"),
    (lambda rows: [dict(r, card_id="card999") for r in rows], "row 2 ('card999'): card_id is not in the review key"),
])
def test_bad_ratings_are_refused_by_name(report, tmp_path, capsys, change, message):
    rows = list(csv.DictReader((report / "review_sheet.csv").open()))
    for r in rows:
        r.update(right_kind="yes", facts_true="no", coherent="yes", style_delivered="no", verdict="unusable")
    rows = change(rows)
    bad = tmp_path / "bad.csv"
    _write(bad, rows, list(rows[0]))
    before = (report / "results.json").read_text()
    assert _run("--dataset", "sample", "--out", str(report), "--ratings", str(bad)) == 2
    assert message in capsys.readouterr().err
    assert (report / "results.json").read_text() == before  # nothing half-written


def test_ratings_without_a_key_or_a_report(tmp_path, capsys):
    assert _run("--dataset", "sample", "--out", str(tmp_path), "--ratings", "x.csv") == 2
    assert "no report to add ratings to" in capsys.readouterr().err
    (tmp_path / "results.json").write_text("{}")
    (tmp_path / "x.csv").write_text("card_id\n")
    assert _run("--dataset", "sample", "--out", str(tmp_path), "--ratings", str(tmp_path / "x.csv")) == 2
    assert "no review key" in capsys.readouterr().err
