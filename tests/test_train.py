"""Explanation training on the sample data with the real SmolLM2 GGUF: the data contract, the
prefix-cached loss against the backbone's own loss, a tiny run whose loss falls, and DDP parity."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from seller.examples import (TrainingDataError, build_examples, load_explanations, split_clients,
                                 split_examples)
from seller.config import DataConfig, load_config
from seller.data.sequences import build_sequences

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny.toml"
RECOMMENDER = REPO / "models" / "sample" / "recommender"


@pytest.fixture(scope="module")
def sample():
    from seller.data.dataset import load_sample
    return load_sample()


def test_history_is_strictly_before_target_and_splits_hold_out_clients(sample):
    cfg = DataConfig(explanations=str(REPO / "sample_data/explanations.csv"))
    frame = load_explanations(cfg, sample)
    seqs = build_sequences(sample)
    examples = build_examples(frame, sample, seqs)
    assert len(examples) == len(frame)
    for ex in examples[::37]:
        seq = seqs[ex.client_id]
        assert (seq.timestamps[: ex.n_history] < ex.target_ts).all()
        assert ex.n_history == len(seq) or seq.timestamps[ex.n_history] >= ex.target_ts
    split = split_clients([e.client_id for e in examples], cfg)
    assert not set(split["train"]) & set(split["test"]) and not set(split["val"]) & set(split["test"])
    parts = split_examples(examples, split)
    assert sum(map(len, parts.values())) == len(examples) and parts["test"] and parts["val"]
    assert split == split_clients(reversed([e.client_id for e in examples]), cfg)  # pure function of ids


def test_missing_style_is_a_clear_error(sample, tmp_path):
    frame = pd.read_csv(REPO / "sample_data/explanations.csv")
    path = tmp_path / "expl.csv"
    frame[frame["style"] != "occasion"].to_csv(path, index=False)
    with pytest.raises(TrainingDataError, match=r"no reference explanations for style 'occasion'.*feature, style"):
        load_explanations(DataConfig(explanations=str(path)), sample)
    frame.assign(item_id="I9999").head(3).to_csv(path, index=False)
    with pytest.raises(TrainingDataError, match=r"row 2: item_id 'I9999' is not in the catalog"):
        load_explanations(DataConfig(explanations=str(path), styles=["feature"]), sample)


@pytest.fixture(scope="module")
def backbone():
    from seller.llm.backbone import TorchBackbone
    torch.set_num_threads(2)
    return TorchBackbone.from_gguf()


def test_prefix_cached_loss_equals_full_forward(sample, backbone):
    """The training loss skips autograd on the prompt prefix; it must equal the backbone's own loss."""
    from seller.adapter.base import AdapterShape
    from seller.adapter.io import build_adapter
    from seller.llm.lm_loss import explanation_loss
    from seller.adapter.pipeline import ExplanationPipeline
    from seller.config import AdapterConfig
    from seller.recommend import Recommender

    rec = Recommender.from_pretrained(RECOMMENDER, sample)
    shape = AdapterShape(rec.config.d_model, rec.config.d_model, backbone.n_embd, backbone.embedding_rms)
    adapter = build_adapter(AdapterConfig(n_prompts=4), shape).eval()
    cfg = DataConfig()
    pipe = ExplanationPipeline(sample, rec, adapter, backbone.tokenizer, cfg)
    frame = load_explanations(DataConfig(explanations=str(REPO / "sample_data/explanations.csv")), sample)
    exs = build_examples(frame, sample, build_sequences(sample))[:600:200]  # three rows, different lengths
    hist = [pipe.history(e.client_id, e.n_history) for e in exs]
    soft = adapter(pipe.encode([e.client_id for e in exs], hist, [e.item_id for e in exs],
                               [e.style for e in exs])).soft_prompts.detach().requires_grad_(True)
    layouts = [pipe.layout(e.client_id, e.item_id, e.style, e.target_ts, list(e.cited_event_ids), target=e.text)
               for e in exs]
    assert len({l.n_positions for l in layouts}) > 1  # padding is exercised
    per_example = explanation_loss(backbone, layouts, soft)
    n_tokens = torch.tensor([sum(len(s) for s in l.segments if s.kind == "target") for l in layouts],
                            dtype=torch.float)
    mine = (per_example * n_tokens).sum() / n_tokens.sum()
    (g_mine,) = torch.autograd.grad(mine, soft)
    theirs = backbone.loss(layouts, soft)
    (g_theirs,) = torch.autograd.grad(theirs, soft)
    torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(g_mine, g_theirs, rtol=1e-3, atol=1e-6)


def test_tiny_config_trains_and_loss_falls(tmp_path):
    from seller.adapter.io import from_pretrained
    from seller.train import train

    cfg = load_config(TINY)
    cfg.train.out_dir = str(tmp_path / "tiny")
    metrics = train(cfg, log=lambda *a: None)
    assert metrics["train_ce_last"] < metrics["train_ce_first"], metrics
    assert all(v == v for v in metrics["val_ce"])  # finite validation loss every epoch
    assert metrics["val_ce"][-1] < metrics["val_ce"][0], metrics  # and it falls on held-out clients
    adapter = from_pretrained(tmp_path / "tiny" / "adapter", n_embd=576)
    assert adapter.meta["model_version"] == metrics["model_version"]
    log = (tmp_path / "tiny" / "train_log.jsonl").read_text().splitlines()
    assert len(log) >= metrics["steps"]
    # resume: one more epoch continues from the checkpoint instead of starting over
    per_epoch = metrics["steps"] // cfg.train.epochs
    cfg.train.epochs += 1
    more = train(cfg, resume=True, log=lambda *a: None)
    assert more["resumed_from_step"] == metrics["steps"]
    assert more["steps"] == metrics["steps"] + per_epoch  # counts the whole run
    assert len(more["val_ce"]) == 1  # this process validated only the epoch it ran
    steps_logged = lambda: [json.loads(line)["step"] for line in
                            (tmp_path / "tiny" / "train_log.jsonl").read_text().splitlines()
                            if "ce" in json.loads(line)]
    assert steps_logged() == list(range(1, more["steps"] + 1))  # the resumed run continued the log
    # a fresh run in the same folder starts its own log
    cfg.train.epochs = 1
    fresh = train(cfg, log=lambda *a: None)
    assert steps_logged() == list(range(1, fresh["steps"] + 1))


def test_two_process_ddp_gradient_equals_one_process(tmp_path):
    """torchrun with 2 processes x batch 2 must give the gradient of 1 process x batch 4."""
    base = TINY.read_text()
    cfg_text = base.replace("dropout = 0.0", "dropout = 0.0\ngate_noise = 0.0") \
        .replace("[train]", "[train]\nbalance_weight = 0.0\ncite_weight = 0.0\nthreads = 1")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(nproc: int, batch: int) -> dict:
        cfg = tmp_path / f"ddp{nproc}.toml"
        cfg.write_text(cfg_text.replace("batch_size = 4", f"batch_size = {batch}"))
        dump = tmp_path / f"grad{nproc}.pt"
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
                    "--master_port", str(29500 + nproc)] if nproc > 1 else [sys.executable]
        cmd = launcher + ["-m", "seller.train", "--config", str(cfg), "--out", str(tmp_path / f"o{nproc}"),
                          "--grad-dump", str(dump)]
        done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        return torch.load(dump)

    one, two = run(1, 4), run(2, 2)
    assert one.keys() == two.keys() and len(one) > 5
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-3, atol=1e-7, msg=name)


def test_lora_run_is_served_with_its_lora(tmp_path):
    """LoRA on: peft weights saved apart from the base, the same weights as a GGUF LoRA, and the
    explainer (and the epoch's sample generations) decode through llama.cpp with it applied."""
    import numpy as np

    from seller.explain import Explainer
    from seller.train import train

    cfg = load_config(TINY)
    cfg.train.out_dir = str(tmp_path / "lora-run")
    # one step: with LoRA the whole LLM runs backward (no cached prefix), ~15 s a batch here
    cfg.train.epochs, cfg.train.max_steps, cfg.train.n_sample_generations = 1, 1, 1
    cfg.llm.lora.enabled = True
    metrics = train(cfg, log=lambda *a: None)
    folder = tmp_path / "lora-run" / "lora"
    assert (folder / "adapter_model.safetensors").is_file() and (folder / "adapter.gguf").is_file()
    epochs = [json.loads(line) for line in (tmp_path / "lora-run" / "train_log.jsonl").read_text().splitlines()]
    sample = [e for e in epochs if "samples" in e][-1]["samples"][0]  # decoded with the LoRA
    assert sample["text"]
    ex = Explainer.from_pretrained(tmp_path / "lora-run")
    try:
        assert ex.llm.lora_path == folder / "adapter.gguf"
        client = sample["client_id"]
        item = ex.recommend(client, k=1)[0].item_id
        layout, soft, _, _ = ex._prepare(client, [item], "feature")[0]
        with_lora = ex.llm.last_logits(layout, soft)
    finally:
        ex.close()
    from seller.llm.runtime import SoftPromptLLM
    with SoftPromptLLM(n_ctx=2048, n_threads=2, n_seq_max=1) as base:
        assert not np.allclose(base.last_logits(layout, soft), with_lora, atol=1e-3)
    (folder / "adapter.gguf").unlink()
    with pytest.raises(FileNotFoundError, match="adapter.gguf"):
        Explainer.from_pretrained(tmp_path / "lora-run")


def test_lora_weights_take_their_own_learning_rate():
    from seller.train import _param_groups
    adapter = [torch.zeros(3, 3), torch.zeros(3)]
    lora = [torch.zeros(4, 2), torch.zeros(2, 4)]
    groups = _param_groups(adapter + lora, lora, weight_decay=0.01, lora_lr=1e-3)
    by_lr = {(g.get("lr"), g["weight_decay"]): [tuple(p.shape) for p in g["params"]] for g in groups}
    assert by_lr == {(None, 0.01): [(3, 3)], (None, 0.0): [(3,)], (1e-3, 0.01): [(4, 2), (2, 4)]}
    opt = torch.optim.AdamW(groups, lr=3e-3)
    assert [g["lr"] for g in opt.param_groups] == [3e-3, 3e-3, 1e-3]


def test_layout_describes_the_candidate_with_its_aspects_and_the_configs_system_turn(sample, backbone):
    """Review data: training and serving prompts both name the candidate's aspects and the
    config's system turn (one place: ExplanationPipeline.layout); other items, and pipelines
    without aspects, are unchanged."""
    from seller.adapter.base import AdapterShape
    from seller.adapter.io import build_adapter
    from seller.adapter.pipeline import ExplanationPipeline
    from seller.config import AdapterConfig
    from seller.recommend import Recommender

    rec = Recommender.from_pretrained(RECOMMENDER, sample)
    shape = AdapterShape(rec.config.d_model, rec.config.d_model, backbone.n_embd, backbone.embedding_rms)
    adapter = build_adapter(AdapterConfig(n_prompts=4), shape).eval()
    a, b = rec.item_ids[:2]
    client = str(sample.clients["client_id"].iloc[0])
    with_aspects = ExplanationPipeline(sample, rec, adapter, backbone.tokenizer, DataConfig(), {a: ["strap", "clasp"]})
    plain = ExplanationPipeline(sample, rec, adapter, backbone.tokenizer, DataConfig())

    def text(pipe, item):
        return backbone.tokenizer.decode([t for s in pipe.layout(client, item, "feature", None, []).segments
                                          if s.kind != "soft" for t in s.ids])

    assert "reviewers mention strap, clasp" in text(with_aspects, a)
    assert "reviewers mention" not in text(with_aspects, b)
    assert text(plain, a) == text(with_aspects, a).replace(", reviewers mention strap, clasp", "")
    # the config's system turn replaces the luxury advisor's in the same prompt
    music = ExplanationPipeline(sample, rec, adapter, backbone.tokenizer, DataConfig(system="You sell guitars."))
    assert "You sell guitars." in text(music, a) and "luxury" in text(plain, a) and "luxury" not in text(music, a)


def test_date_in_prompt_names_the_reading_day(sample, backbone):
    """data.date_in_prompt: training and evaluation prompts name the day the history is cut at,
    serving prompts the day the cards are read; off (the default, and every model trained before
    the option) the prompt is unchanged."""
    from datetime import date, datetime, timezone

    from seller.adapter.base import AdapterShape
    from seller.adapter.io import build_adapter
    from seller.adapter.pipeline import ExplanationPipeline
    from seller.config import AdapterConfig
    from seller.recommend import Recommender

    rec = Recommender.from_pretrained(RECOMMENDER, sample)
    shape = AdapterShape(rec.config.d_model, rec.config.d_model, backbone.n_embd, backbone.embedding_rms)
    adapter = build_adapter(AdapterConfig(n_prompts=4), shape).eval()
    client, item = str(sample.clients["client_id"].iloc[0]), rec.item_ids[0]
    dated = ExplanationPipeline(sample, rec, adapter, backbone.tokenizer, DataConfig(date_in_prompt=True))
    plain = ExplanationPipeline(sample, rec, adapter, backbone.tokenizer, DataConfig())

    def text(pipe, before_ts=None, today=None):
        layout = pipe.layout(client, item, "occasion", before_ts, [], today=today)
        return backbone.tokenizer.decode([t for s in layout.segments if s.kind != "soft" for t in s.ids])

    cut = int(datetime(2026, 3, 2, 15, tzinfo=timezone.utc).timestamp())
    assert "Today is 2 March 2026." in text(dated, before_ts=cut)
    assert "Today is 24 December 2026." in text(dated, today=date(2026, 12, 24))
    assert "Today is" not in text(plain, before_ts=cut) and "Today is" not in text(plain, today=date(2026, 12, 24))


def test_checkpoint_holds_every_trainable_module(tmp_path):
    """--resume restores the adapter, the LoRA weights (only those: the base is the GGUF's) and
    jointly trained encoders; a checkpoint lacking one the run trains fails instead of silently
    restarting it from scratch."""
    from peft import LoraConfig, get_peft_model

    from seller.train import _checkpoint, _restore_trainable, _trainable_modules

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.q_proj, self.out = torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)

    def run_modules(seed: int):
        torch.manual_seed(seed)
        lora = get_peft_model(Tiny(), LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"]))
        for p in lora.parameters():
            if p.requires_grad:
                torch.nn.init.normal_(p)  # LoRA's B starts at zero: make the weights differ per run
        return _trainable_modules(torch.nn.Linear(3, 2), lora, torch.nn.Linear(2, 2))

    saved, fresh = run_modules(0), run_modules(1)
    opt = torch.optim.SGD([p for m in saved.values() for p in m.parameters() if p.requires_grad], lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    path = tmp_path / "checkpoint.pt"
    _checkpoint(path, saved, opt, sched, step=5, epoch=1, done_in_epoch=0)
    state = torch.load(path, weights_only=False)
    assert all("lora_" in name for name in state["lora"])  # no frozen base weights in the file
    base_before = fresh["lora"].base_model.model.q_proj.base_layer.weight.clone()
    _restore_trainable(state, path, fresh)
    for name in saved:
        for (key, a), (_, b) in zip(saved[name].state_dict().items(), fresh[name].state_dict().items()):
            if name != "lora" or "lora_" in key:
                torch.testing.assert_close(b, a, rtol=0, atol=0, msg=f"{name}.{key}")
    torch.testing.assert_close(fresh["lora"].base_model.model.q_proj.base_layer.weight, base_before)
    _checkpoint(path, _trainable_modules(saved["adapter"]), opt, sched, step=5, epoch=1, done_in_epoch=0)
    with pytest.raises(ValueError, match=r"holds no lora, recommender weights.*without --resume"):
        _restore_trainable(torch.load(path, weights_only=False), path, fresh)
