"""Adapter modules on plain tensors: routing, scaling, citations, save/load, width checks, config errors."""
from __future__ import annotations

import pytest
import torch

from seller.adapter.base import AdapterInputs, AdapterShape
from seller.adapter.io import AdapterWidthError, build_adapter, from_pretrained, save_pretrained
from seller.config import AdapterConfig, ConfigError, config_from_dict, load_config

SHAPE = AdapterShape(d_item=24, d_state=16, n_embd=40, embed_rms=0.05)
CFG = AdapterConfig(n_experts=6, top_k=2, n_prompts=4, hidden=8, d_fused=32, d_style=8, n_heads=4)


def inputs(B=5, T=7, seed=0, shape=SHAPE):
    g = torch.Generator().manual_seed(seed)
    mask = torch.arange(T).expand(B, T) < torch.tensor([T, 3, 1, 0, 5][:B]).unsqueeze(1)  # includes an empty history
    return AdapterInputs(
        item=torch.randn(B, shape.d_item, generator=g),
        states=torch.randn(B, T, shape.d_state, generator=g),
        mask=mask,
        summary=torch.randn(B, shape.d_state, generator=g),
        style=torch.arange(B) % 3,
        history_items=torch.randn(B, T, shape.d_item, generator=g),
        client_index=torch.arange(B) % 3,
        item_index=torch.arange(B) % 4,
    )


@pytest.mark.parametrize("training", [False, True])
def test_gate_weights_sum_to_one_with_at_most_k_nonzero(training):
    torch.manual_seed(0)
    adapter = build_adapter(CFG, SHAPE).train(training)
    out = adapter(inputs())
    g = out.gate_weights
    assert g.shape == (5, 6)
    torch.testing.assert_close(g.sum(-1), torch.ones(5))
    assert ((g > 0).sum(-1) <= CFG.top_k).all() and ((g > 0).sum(-1) >= 1).all()
    assert (g >= 0).all()


def test_soft_prompts_have_llm_width_and_token_rms():
    torch.manual_seed(0)
    for kind in ("moe", "dense", "no-sequence", "pepler"):
        cfg = AdapterConfig(**{**CFG.__dict__, "kind": kind})
        adapter = build_adapter(cfg, SHAPE, client_ids=["C1", "C2"], item_ids=["I1", "I2", "I3"]).eval()
        soft, gates = adapter(inputs())  # the contract: (soft_prompts, gate_weights)
        P = 2 if kind == "pepler" else cfg.n_prompts  # PEPLER: one user-ID and one item-ID vector
        assert soft.shape == (5, P, SHAPE.n_embd) and adapter.n_soft_prompts == P, kind
        rms = soft.pow(2).mean(-1).sqrt()
        torch.testing.assert_close(rms, torch.full_like(rms, SHAPE.embed_rms), rtol=1e-3, atol=1e-6)
        torch.testing.assert_close(gates.sum(-1), torch.ones(5))
        clients, items = adapter.id_indices(["C2", "C9"], ["I3", "I1"])
        want = ([2, 0], [3, 1]) if kind == "pepler" else ([0, 0], [0, 0])  # 0 = unknown id / reads no ids
        assert (clients.tolist(), items.tolist()) == want, kind


def test_attention_covers_only_real_events_and_follows_the_item():
    torch.manual_seed(0)
    adapter = build_adapter(CFG, SHAPE).eval()
    x = inputs()
    att = adapter(x).attention
    assert att.shape == (5, 7)
    assert (att[~x.mask] == 0).all(), "padding must never be cited"
    assert (att.sum(-1) <= 1 + 1e-5).all()
    assert att[3].sum() == 0  # empty history: everything on the null slot, no NaN
    assert torch.isfinite(adapter(x).soft_prompts).all()
    # the query is the candidate: a different item must re-weigh the same history
    x2 = inputs()
    x2.item = torch.randn_like(x2.item)
    assert not torch.allclose(adapter(x2).attention[0], att[0])


def test_soft_prompts_depend_on_history_and_style():
    torch.manual_seed(0)
    adapter = build_adapter(CFG, SHAPE).eval()
    a, b = inputs(), inputs()
    b.states = b.states + torch.randn_like(b.states)  # other sequence states (attention itself is order-free)
    assert not torch.allclose(adapter(a).soft_prompts[0], adapter(b).soft_prompts[0])
    c = inputs()
    c.style = (c.style + 1) % 3
    assert not torch.allclose(adapter(a).soft_prompts, adapter(c).soft_prompts)


def test_no_sequence_ignores_order():
    torch.manual_seed(0)
    cfg = AdapterConfig(**{**CFG.__dict__, "kind": "no-sequence"})
    adapter = build_adapter(cfg, SHAPE).eval()
    a, b = inputs(), inputs()
    perm = torch.tensor([6, 5, 4, 3, 2, 1, 0])
    a.mask[:] = True
    b.mask[:] = True
    b.history_items = a.history_items[:, perm]
    b.states = torch.randn_like(a.states)  # sequence states are not used at all
    torch.testing.assert_close(adapter(a).soft_prompts, adapter(b).soft_prompts)


def test_balance_loss_is_one_when_uniform_and_grows_on_collapse():
    adapter = build_adapter(CFG, SHAPE)
    B, E = 12, 6
    probs = torch.full((B, E), 1 / E)
    top_idx = torch.stack([torch.arange(B) % E, (torch.arange(B) + 1) % E], dim=1)
    assert adapter.balance_loss(probs, top_idx).item() == pytest.approx(1.0)
    collapsed = torch.zeros(B, E)
    collapsed[:, :2] = 0.5
    idx = torch.tensor([[0, 1]]).expand(B, 2)
    assert adapter.balance_loss(collapsed, idx).item() == pytest.approx(3.0)


def test_moe_gradients_reach_gate_and_chosen_experts():
    torch.manual_seed(0)
    adapter = build_adapter(CFG, SHAPE).train()
    out = adapter(inputs())
    (out.soft_prompts.pow(3).sum() + out.aux_loss).backward()
    assert adapter.gate.weight.grad.abs().sum() > 0
    assert adapter.fusion.q.weight.grad.abs().sum() > 0
    used = (out.gate_weights > 0).any(0)
    per_expert = adapter.w2.grad.abs().flatten(1).sum(-1)
    assert (per_expert[used] > 0).all() and (per_expert[~used] == 0).all()


@pytest.mark.parametrize("kind", ["moe", "dense", "pepler", "no-sequence"])
def test_save_load_gives_identical_soft_prompts(tmp_path, kind):
    torch.manual_seed(1)
    cfg = AdapterConfig(**{**CFG.__dict__, "kind": kind})
    adapter = build_adapter(cfg, SHAPE, client_ids=["C1", "C2"], item_ids=["I1", "I2", "I3"]).eval()
    adapter.expert_names = [f"e{i}" for i in range(len(adapter.expert_names))]
    save_pretrained(adapter, tmp_path / "a", extra={"model_version": "t1"})
    loaded = from_pretrained(tmp_path / "a", n_embd=SHAPE.n_embd)
    x = inputs()
    a, b = adapter(x), loaded(x)
    assert torch.equal(a.soft_prompts, b.soft_prompts)
    assert torch.equal(a.gate_weights, b.gate_weights)
    assert loaded.expert_names == adapter.expert_names and loaded.meta["model_version"] == "t1"


def test_width_mismatch_names_both_widths(tmp_path):
    save_pretrained(build_adapter(CFG, SHAPE), tmp_path / "a")
    with pytest.raises(AdapterWidthError, match=r"width 40.*n_embd=576"):
        from_pretrained(tmp_path / "a", n_embd=576, llm_name="GGUF x.gguf")


def test_missing_adapter_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        from_pretrained(tmp_path / "nowhere")


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key adapter\.n_expert\b"):
        config_from_dict({"adapter": {"n_expert": 4}})
    with pytest.raises(ConfigError, match=r"train\.lr: expected float, got str"):
        config_from_dict({"train": {"lr": "fast"}})
    with pytest.raises(ConfigError, match=r"adapter\.top_k: 7 exceeds adapter\.n_experts=6"):
        config_from_dict({"adapter": {"top_k": 7}})
    with pytest.raises(ConfigError, match=r"data\.styles\[1\]: expected str"):
        config_from_dict({"data": {"styles": ["feature", 3]}})
    with pytest.raises(ConfigError, match=r"unknown key colour"):
        config_from_dict({"colour": 1})
    with pytest.raises(ConfigError, match=r"adapter\.kind: 'mixture'"):
        config_from_dict({"adapter": {"kind": "mixture"}})
    with pytest.raises(ConfigError, match=r"data\.item_aspects: must be >= 0, got -1"):
        config_from_dict({"data": {"explanations": "reviews", "item_aspects": -1}})
    with pytest.raises(ConfigError, match=r"data\.item_aspects: only for review data.*explanations.csv"):
        config_from_dict({"data": {"item_aspects": 5}})  # the sample's items have their own attributes
    p = tmp_path / "bad.toml"
    p.write_text("[train]\nepochs = true\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: train\.epochs: expected int, got bool"):
        load_config(p)
    assert config_from_dict({"train": {"lr": 1}}).train.lr == 1.0  # ints widen to floats


def test_config_overrides_change_one_value_and_name_bad_keys(tmp_path):
    p = tmp_path / "base.toml"
    p.write_text('[adapter]\nkind = "moe"\n[train]\nmax_steps = 430\n')
    cfg = load_config(p, ["adapter.kind=dense", "train.max_steps=120", "train.max_minutes=9.5"])
    assert (cfg.adapter.kind, cfg.train.max_steps, cfg.train.max_minutes) == ("dense", 120, 9.5)
    assert load_config(p).adapter.kind == "moe"  # the file itself is untouched
    with pytest.raises(ConfigError, match=r"base\.toml with --set: unknown key adapter\.n_expert\b"):
        load_config(p, ["adapter.n_expert=4"])
    with pytest.raises(ConfigError, match=r"train\.max_steps: expected int, got str"):
        load_config(p, ["train.max_steps=many"])
    with pytest.raises(ConfigError, match=r"expected SECTION\.KEY=VALUE"):
        load_config(p, ["adapter.kind"])
    with pytest.raises(ConfigError, match=r"kind is a value, not a \[section\]"):
        load_config(p, ["adapter.kind.x=1"])


def test_shipped_configs_load():
    from pathlib import Path
    root = Path(__file__).resolve().parents[1] / "configs"
    for name in ("sample.toml", "musical_instruments.toml", "tiny.toml"):
        load_config(root / name)
