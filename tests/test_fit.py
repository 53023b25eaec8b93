"""`seller fit` on tiny stores written by `seller import` from slices of the sample: the size check
and its counts, --out refused when it exists, and one real run (mined references, recommender,
a few adapter steps, evaluation) interrupted by Ctrl-C mid-training, resumed, and served."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from seller.cli import main
from seller.data.importer import run_import
from seller.fit import STAGES, store_problems, work_folder_for

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data"

# the smallest run that still does every stage: a few adapter steps, two recommender epochs
TINY_FIT = """
[data]
max_fact_events = 1
related_facts = 1
[adapter]
n_experts = 3
top_k = 2
n_prompts = 4
hidden = 16
d_fused = 64
dropout = 0.0
[llm]
max_target_tokens = 16
[train]
epochs = 1
max_steps = 12  # long enough that the Ctrl-C lands mid-training on a quiet machine
batch_size = 2
lr = 1e-2
warmup_steps = 1
precision = "fp32"
n_sample_generations = 0
max_val_samples = 1
checkpoint_every = 1
[recommender]
d_model = 32
epochs = 2
batch_size = 32
threads = 1
"""


def sample_slice(folder: Path, n_clients: int, events_per_client: int) -> Path:
    """items/clients/events CSVs of the first `n_clients` sample clients' latest events."""
    events = pd.read_csv(SAMPLE / "events.csv")
    keep = sorted(events["client_id"].unique())[:n_clients]
    events = events[events["client_id"].isin(keep)].sort_values("timestamp").groupby("client_id").tail(
        events_per_client)
    clients, items = pd.read_csv(SAMPLE / "clients.csv"), pd.read_csv(SAMPLE / "items.csv")
    folder.mkdir(parents=True)
    events.to_csv(folder / "events.csv", index=False)
    clients[clients["client_id"].isin(keep)].to_csv(folder / "clients.csv", index=False)
    items[items["item_id"].isin(set(events["item_id"]))].to_csv(folder / "items.csv", index=False)
    return folder


def import_store(tmp: Path, n_clients: int, events_per_client: int) -> Path:
    csv = sample_slice(tmp / "csv", n_clients, events_per_client)
    run_import(csv / "items.csv", csv / "clients.csv", csv / "events.csv", tmp / "store", progress=False)
    return tmp / "store"


@pytest.fixture(scope="module")
def sample():
    from seller.data.dataset import load_sample
    return load_sample()


def test_too_small_store_is_refused_with_its_counts(tmp_path, capsys):
    store = import_store(tmp_path, n_clients=6, events_per_client=4)
    out = tmp_path / "models" / "mine"
    assert main(["fit", "--data", str(store), "--out", str(out), "--max-minutes", "1"]) == 1
    err = capsys.readouterr().err
    assert f"{store}: too small to fit a model" in err
    assert "6 of 6 clients with events have >= 3 events (need >= 20" in err
    assert not out.exists() and not work_folder_for(out).exists()  # refused before anything was written


def test_store_problems_name_each_shortfall(sample):
    from seller.data.dataset import Dataset
    assert store_problems(sample) == []
    items = sample.items.copy()
    items.loc[items.index[:2], "name"] = ""
    one_day = sample.events.assign(timestamp=pd.Timestamp("2025-03-01 10:00", tz="UTC"))
    problems = store_problems(Dataset(items, sample.clients, one_day))
    unnamed = ", ".join(items["item_id"][:2])
    assert f"2 of {len(items)} items have no name (e.g. {unnamed})" in problems[0]
    assert problems[1] == f"all {len(one_day)} events fall on one day (2025-03-01): no time between purchases to " \
                          "learn from, no earlier event to cite"
    few = sample.events[sample.events["client_id"].isin(sample.clients["client_id"][:3])]
    singles = few.groupby("client_id").head(1)
    problems = store_problems(Dataset(sample.items.head(5), sample.clients, pd.concat([few, singles.assign(
        client_id=["X1", "X2", "X3"])])))
    assert problems == ["5 items (need >= 11: HR@10 over fewer says nothing)",
                        "3 of 6 clients with events have >= 3 events (need >= 20; 3 have a single event)"]
    assert store_problems(Dataset(sample.items.head(0), sample.clients, sample.events.head(0))) == [
        "the catalogue is empty (0 items)", "no events"]


def test_existing_out_is_refused_unless_forced_and_only_a_model_is_replaced(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["fit", "--data", str(SAMPLE), "--out", str(out)]) == 2
    assert f"{out} already exists; pass --force" in capsys.readouterr().err
    assert main(["fit", "--data", str(SAMPLE), "--out", str(out), "--force"]) == 2
    assert "is not a SELLER model folder (no config.json)" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine" and not work_folder_for(out).exists()


def _fit_command(store: Path, out: Path, config: Path) -> list[str]:
    return [sys.executable, "-m", "seller", "fit", "--data", str(store), "--out", str(out), "--config", str(config),
            "--max-minutes", "20", "--eval-cases", "2"]


def test_fit_interrupted_mid_training_resumes_and_writes_a_served_model(tmp_path):
    from seller.bundle import ModelBundle
    from seller.explain import Explainer

    store = import_store(tmp_path, n_clients=24, events_per_client=25)
    config = tmp_path / "tiny-fit.toml"
    config.write_text(TINY_FIT)
    out = tmp_path / "models" / "mine"
    work = work_folder_for(out)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    command = _fit_command(store, out, config)

    # Ctrl-C once training has checkpointed its first step
    # the child takes Ctrl-C as a terminal would deliver it, even where this run was started in
    # the background (a shell's background job ignores SIGINT, and its children inherit that)
    first = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 600
    while not (work / "model" / "checkpoint.pt").is_file() and first.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    first.send_signal(signal.SIGINT)
    log = first.communicate(timeout=120)[0]
    assert first.returncode == 130, log[-3000:]
    assert "interrupted in stage 4/6 (adapter)" in log and f"nothing was written at {out}" in log
    assert not out.exists()
    stages = json.loads((work / "fit.json").read_text())["stages"]
    assert [stages[s]["state"] for s in ("references", "recommender", "adapter")] == ["done", "done", "started"]
    assert "held-out HR@10" in log and "vs popularity" in log

    again = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    log = again.stdout + again.stderr
    assert again.returncode == 0, log[-3000:]
    for k, stage in ((2, "references"), (3, "recommender")):
        assert re.search(rf"fit \[{k}/6 {stage} .*\] done in an earlier run \(\d+ s\): skipped", log), log[-3000:]
    assert "resuming from the last checkpoint" in log and "resumed from" in log
    assert out.is_dir() and not work.exists()  # renamed into place whole; the work folder is gone
    assert not (out / "checkpoint.pt").exists()
    report = json.loads((out / "fit.json").read_text())
    assert list(report["stages"]) == list(STAGES)
    assert report["recommender"]["n_test"] > 0 and "HR@10" in report["recommender"]["popularity"]
    assert report["adapter"]["resumed_from_step"] >= 1 and report["adapter"]["steps"] == 12
    assert "seller" in report["evaluation"]["methods"]
    assert (out / "evaluation" / "results.json").is_file() and (out / "references.csv").is_file()

    bundle = ModelBundle.from_pretrained(out)
    assert bundle.config.data.explanations == str(out.resolve() / "references.csv")
    test_client = bundle.split["test"][0]
    explainer = Explainer.from_pretrained(out)
    try:
        item = explainer.recommend(test_client, k=1)[0].item_id
        card = explainer.explain(test_client, item, bundle.config.data.styles[0])
        assert card.text and card.model_version == report["adapter"]["model_version"]
    finally:
        explainer.close()

    third = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert third.returncode == 2 and f"{out} already exists" in third.stderr
