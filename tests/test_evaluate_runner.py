"""The evaluation pipeline on a crafted dataset: cases, the template baseline, scoring, report."""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from seller.data.dataset import Dataset
from seller.data.review_explanations import item_aspects
from seller.evaluate import report, runner
from seller.evaluate.grounding import GroundingChecker
from seller.evaluate.methods import TemplateMethod

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def crafted():
    items = pd.DataFrame({
        "item_id": [f"I{i}" for i in range(6)],
        "name": ["Lune Tote", "Tank Watch", "Sable Scarf", "Nova Ring", "Kelly Bag", "Aria Belt"],
        "maison": ["Aubrelle", "Cartier", "Aubrelle", "Cartier", "Hermès", "Hermès"],
        "category": ["bag", "watch", "scarf", "ring", "bag", "belt"],
        "color": ["Black", "Silver", "Black", "Gold", "Black", "Brown"],
        "material": ["Leather", "Steel", "Silk", "Gold", "Leather", "Leather"],
    })
    rows = []
    for c in range(4):
        for j, item in enumerate([f"I{(c + j) % 6}" for j in range(4)]):
            rows.append((f"C{c}", item, "purchase", T0 + pd.Timedelta(days=10 * j + c), f"e{len(rows)}"))
    events = pd.DataFrame(rows, columns=["client_id", "item_id", "event_type", "timestamp", "event_id"])
    clients = pd.DataFrame({"client_id": [f"C{c}" for c in range(4)]})
    refs = events.groupby("client_id").nth(2).reset_index(drop=True)
    refs = pd.DataFrame({"client_id": refs["client_id"], "item_id": refs["item_id"],
                         "target_timestamp": refs["timestamp"], "style": ["feature", "style"] * 2,
                         "text": "A reference explanation about the black leather bag."})
    return Dataset(items, clients, events, name="crafted"), refs


class BagOfWords:
    def encode(self, texts):
        vocab = sorted({w for t in texts for w in t.lower().split()})
        m = np.array([[t.lower().split().count(w) for w in vocab] for t in texts], dtype=float)
        return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)


def test_cases_hide_the_future_from_methods_and_build_profiles():
    ds, refs = crafted()
    cases, source = runner.build_cases(ds, refs, ["C0", "C1"], runner.EvalConfig(k=3))
    assert "popular" in source and len(cases) == 2
    c = cases[0]
    assert c.candidates[c.true_index] == c.item_id and len(set(c.candidates)) == 3
    assert c.profile  # future items' attributes, the true item first
    gens = TemplateMethod(ds.items, ds.events).explain(c, c.candidates)
    # the template cites only events before the target
    past = set(ds.events[(ds.events.client_id == c.client_id)
                         & (ds.events.timestamp < c.target_time)]["event_id"])
    assert all(set(g.cited_event_ids) <= past for g in gens)


def test_score_and_report(tmp_path):
    ds, refs = crafted()
    cfg = runner.EvalConfig(k=3, n_bootstrap=50)
    cases, source = runner.build_cases(ds, refs, ["C0", "C1", "C2", "C3"], cfg)
    method = TemplateMethod(ds.items, ds.events)
    gens = [method.explain(c, c.candidates) for c in cases]
    for g in gens[0]:  # as an MoE method reports them: the chart shows mean weight per style
        g.gate_weights = [0.75, 0.25, 0.0]
    features = [["black"]] * len(cases)
    scored = runner.score_method(cases, gens, ds, GroundingChecker(ds.items, ds.events),
                                 BagOfWords(), features, ["black", "leather", "silk"], cfg)
    assert scored["grounding"]["hallucination_rate"] == 0.0  # the template is grounded
    lo, hi = scored["ci"]["rougeL"]
    assert lo <= scored["text"]["rougeL"] <= hi
    assert set(scored["utility"]["by_style"]) == {"feature", "style"}
    scored["timing"] = {"n_explanations": 12, "seconds": 1.0, "s_per_explanation": 0.08}
    results = {"dataset": "crafted", "n_cases": len(cases), "n_clients": 4, "k": 3,
               "candidates_from": source, "command": "seller evaluate", "notes": [],
               "methods": {"template": scored}, "skipped": {"seller": "no trained model"},
               "examples": []}
    paths = report.write_report(results, tmp_path / "r")
    assert json.loads(paths[0].read_text())["methods"]["template"]["text"]["rougeL"] == \
        pytest.approx(scored["text"]["rougeL"])
    md = paths[1].read_text()
    assert "| template |" in md and "seller: no trained model" in md
    assert scored["experts"] == {cases[0].style: [0.75, 0.25, 0.0]}
    html = paths[2].read_text()
    assert "plotly" in html[:200000].lower() and "expert utilisation per style" in html


def test_report_lists_what_was_invented(tmp_path):
    ds, refs = crafted()
    cfg = runner.EvalConfig(k=3, n_bootstrap=20)
    cases, source = runner.build_cases(ds, refs, ["C0", "C1", "C2", "C3"], cfg)
    gens = [TemplateMethod(ds.items, ds.events).explain(c, c.candidates) for c in cases]
    gens[0][0].text = "It echoes a purchase of March 1999."  # no event then: invented
    scored = runner.score_method(cases, gens, ds, GroundingChecker(ds.items, ds.events),
                                 BagOfWords(), [["black"]] * len(cases), ["black"], cfg)
    assert scored["grounding"]["hallucination_rate"] > 0
    assert scored["grounding"]["hallucinated"] == [
        {"case": cases[0].case_id, "item_id": cases[0].candidates[0], "kind": "date", "span": "March 1999"}]
    scored["timing"] = {"n_explanations": 12, "seconds": 1.0, "s_per_explanation": 0.08}
    results = {"dataset": "crafted", "n_cases": len(cases), "n_clients": 4, "k": 3,
               "candidates_from": source, "command": "seller evaluate", "notes": [],
               "methods": {"template": scored}, "skipped": {}, "examples": []}
    md = report.write_report(results, tmp_path / "r")[1].read_text()
    assert f'date "March 1999" ({cases[0].client_id}, {cases[0].candidates[0]})' in md


def test_unknown_method_is_rejected(capsys):
    p = argparse.ArgumentParser()
    runner.add_arguments(p)
    assert runner.run(p.parse_args(["--methods", "template,gpt9"])) == 2
    assert "gpt9" in capsys.readouterr().err


def test_review_template_uses_training_clients_aspects_only():
    refs = pd.DataFrame({"client_id": ["A", "A", "B", "T"], "item_id": ["X", "X", "X", "Y"],
                         "aspects": ["strings;tuner", "strings", "tuner", "pedal"]})
    got = item_aspects(refs, ["A", "B"])
    # T is a test client: its 'pedal' is unseen; ties keep first-seen order
    assert got == {"X": ["strings", "tuner"], "": ["strings", "tuner"]}
    ds, _ = crafted()
    m = TemplateMethod(ds.items, ds.events, {i: a[0] for i, a in got.items()})
    case = runner.Case("c", "C0", "feature", T0, "I0", "ref", ("I0", "I9"), 0, "")
    assert [g.text for g in m.explain(case, case.candidates)] == [
        "The strings are great.", "The strings are great."]


@pytest.mark.slow
def test_seller_evaluate_end_to_end_on_sample_with_the_real_gguf(tmp_path):
    """`seller evaluate` on the sample data: the template and the text-only prompt through the
    real GGUF and llama.cpp, scored and reported (trained methods are listed as not run when
    their model folders are absent)."""
    p = argparse.ArgumentParser()
    runner.add_arguments(p)
    args = p.parse_args(["--dataset", "sample", "--methods", "template,text-only,seller-dense",
                         "--max-cases", "2", "--k", "2", "--out", str(tmp_path / "r"),
                         "--model", f"seller-dense={tmp_path / 'nothing'}"])
    assert runner.run(args) == 0
    res = json.loads((tmp_path / "r" / "results.json").read_text())
    assert set(res["methods"]) == {"template", "text-only"}
    assert "no trained model" in res["skipped"]["seller-dense"]
    texts = [e["explanation"] for e in res["examples"] if e["method"] == "text-only"]
    assert texts and all(t.strip() for t in texts)
    assert res["methods"]["text-only"]["timing"]["n_explanations"] == 4


def test_report_command_keeps_every_option_that_changes_the_report():
    p = argparse.ArgumentParser()
    runner.add_arguments(p)
    args = p.parse_args(["--dataset", "sample", "--out", "reports/x", "--max-cases", "32",
                         "--methods", "template,pepler", "--model", "pepler=runs/full/pepler"])
    assert runner._command(args, ["template", "pepler"]) == (
        "seller evaluate --dataset sample --out reports/x --max-cases 32 --k 4 "
        "--methods template,pepler --model pepler=runs/full/pepler")


def test_musical_instruments_utility_profiles_from_training_reviews(tmp_path, shared_data, monkeypatch):
    """Real review data: the simulated client's profile is built from training clients' review
    aspects, so the template, which names the item's most discussed aspect, helps it choose."""
    monkeypatch.setenv("SELLER_SHARED_DATA", str(shared_data))
    p = argparse.ArgumentParser()
    runner.add_arguments(p)
    args = p.parse_args(["--dataset", "musical_instruments", "--methods", "template",
                         "--max-cases", "40", "--k", "4", "--out", str(tmp_path / "r")])
    assert runner.run(args) == 0
    res = json.loads((tmp_path / "r" / "results.json").read_text())
    u = res["methods"]["template"]["utility"]
    assert u["n"] >= 30  # nearly every case has a profile
    assert u["lift_ci"][0] > 0
    assert res["methods"]["template"]["grounding"] is None
    assert any("aspects in training clients' reviews" in n for n in res["notes"])


@pytest.mark.slow
def test_evaluate_model_scores_a_model_folder_on_its_store(tmp_path):
    """evaluate_model (seller evaluate --data --model; seller fit calls it): the model's own
    held-out clients and recommender, the real GGUF, a report at `out`."""
    from seller.data.dataset import load_dataset
    model = runner._repo() / "models" / "sample"
    lines = []
    res = runner.evaluate_model(load_dataset(runner._repo() / "sample_data"), model, tmp_path / "r",
                                methods=("fallback", "seller"), max_cases=2, k=2, log=lines.append)
    assert set(res["methods"]) == {"fallback", "seller"} and res["candidates_from"] == "recommender top items"
    assert res["methods"]["seller"]["timing"]["n_explanations"] == 4
    assert res["methods"]["fallback"]["claims"]["associate_ready_rate"] == 1.0  # passes by construction
    assert "unchecked_rate" in res["methods"]["seller"]["claims"]
    assert json.loads((tmp_path / "r" / "results.json").read_text())["n_cases"] == 2
    assert "--data sample_data --model models/sample" in res["command"]
    assert (tmp_path / "r" / "results.md").is_file() and any("seller: 4 explanations" in m for m in lines)
    with pytest.raises(ValueError, match="unknown method 'pepler'"):
        runner.evaluate_model(load_dataset(runner._repo() / "sample_data"), model, tmp_path / "x",
                              methods=("pepler",))
