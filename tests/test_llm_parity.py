"""Parity between training (transformers) and serving (llama.cpp) on the same GGUF and layout.

A tiny random Llama is made here with transformers and written to GGUF with the `gguf`
package (reusing the real SmolLM2 tokenizer metadata, so the layout and chat template are the
real ones); then the real default model is checked the same way.
"""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from seller import settings
from seller.llm import resolve_gguf
from seller.llm.backbone import TorchBackbone
from seller.llm.layout import Layout, Segment, build_layout
from seller.llm.lora import rope_permute
from seller.llm.runtime import SoftPromptLLM
from seller.llm.sampling import GREEDY
from seller.llm.weights import serving_gguf

# llama.cpp layers on the GPU (scripts/gpu_check.sh sets -1 on a CUDA build); 0 = CPU
GPU_LAYERS = settings.gpu_layers()
HISTORY = ["2024-01-03 viewed: silk scarf, navy, Maison A",
           "2024-02-11 tried on: leather loafers, black, Maison B",
           "2024-03-20 purchased: cashmere coat, camel, Maison A"]


def read_tokenizer_kv(path) -> dict:
    """{key: (value, type, sub_type)} of the tokenizer.* metadata of a GGUF file. A minimal
    header parser: gguf.GGUFReader takes ~20 s on the 49k-token vocabulary, this ~1 s."""
    import struct

    from gguf import GGUFValueType as T

    fmt = {T.UINT8: "B", T.INT8: "b", T.UINT16: "H", T.INT16: "h", T.UINT32: "I",
           T.INT32: "i", T.FLOAT32: "f", T.BOOL: "?", T.UINT64: "Q", T.INT64: "q",
           T.FLOAT64: "d"}
    out = {}
    with open(path, "rb") as f:
        data = f.read(8 << 20)  # the header of SmolLM2 is ~2.5 MB
    pos = 24  # magic, version, tensor count, kv count

    def take(n):
        nonlocal pos
        pos += n
        return data[pos - n: pos]

    def string():
        (n,) = struct.unpack("<Q", take(8))
        return take(n).decode("utf-8")

    def value(t):
        if t == T.STRING:
            return string()
        size = struct.calcsize(fmt[t])
        return struct.unpack("<" + fmt[t], take(size))[0]

    (n_kv,) = struct.unpack("<Q", data[16:24])
    for _ in range(n_kv):
        key = string()
        (t,) = struct.unpack("<I", take(4))
        t, sub = T(t), None
        if t == T.ARRAY:
            (sub,), (n,) = struct.unpack("<I", take(4)), struct.unpack("<Q", take(8))
            sub = T(sub)
            val = [value(sub) for _ in range(n)]
        else:
            val = value(t)
        if key.startswith("tokenizer."):
            out[key] = (val, t, sub)
    return out


def write_tiny_llama(path, source_gguf, seed: int = 0) -> None:
    """A 2-layer, 64-wide random Llama with the source GGUF's tokenizer, as an F32 GGUF."""
    import gguf
    from transformers import LlamaConfig, LlamaForCausalLM

    tok_kv = read_tokenizer_kv(source_gguf)
    n_vocab = len(tok_kv["tokenizer.ggml.tokens"][0])
    d, ff, n_layer, n_head, n_kv = 64, 128, 2, 4, 2
    cfg = LlamaConfig(vocab_size=n_vocab, hidden_size=d, intermediate_size=ff,
                      num_hidden_layers=n_layer, num_attention_heads=n_head,
                      num_key_value_heads=n_kv, max_position_embeddings=512, rms_norm_eps=1e-5,
                      rope_theta=10000.0, tie_word_embeddings=False, initializer_range=0.1)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():  # non-trivial norm weights, so a skipped norm would show
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    sd = {k: v.float().numpy() for k, v in model.state_dict().items()}

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-random-llama")
    w.add_context_length(512)
    w.add_embedding_length(d)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(d // n_head)
    w.add_vocab_size(n_vocab)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    for name, (val, t, sub) in tok_kv.items():
        w.add_key_value(name, val, t, sub)
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    for i in range(n_layer):
        p = f"model.layers.{i}."
        w.add_tensor(f"blk.{i}.attn_norm.weight", sd[p + "input_layernorm.weight"])
        w.add_tensor(f"blk.{i}.attn_q.weight", rope_permute(sd[p + "self_attn.q_proj.weight"], n_head))
        w.add_tensor(f"blk.{i}.attn_k.weight", rope_permute(sd[p + "self_attn.k_proj.weight"], n_kv))
        w.add_tensor(f"blk.{i}.attn_v.weight", sd[p + "self_attn.v_proj.weight"])
        w.add_tensor(f"blk.{i}.attn_output.weight", sd[p + "self_attn.o_proj.weight"])
        w.add_tensor(f"blk.{i}.ffn_norm.weight", sd[p + "post_attention_layernorm.weight"])
        w.add_tensor(f"blk.{i}.ffn_gate.weight", sd[p + "mlp.gate_proj.weight"])
        w.add_tensor(f"blk.{i}.ffn_up.weight", sd[p + "mlp.up_proj.weight"])
        w.add_tensor(f"blk.{i}.ffn_down.weight", sd[p + "mlp.down_proj.weight"])
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    w.add_tensor("output.weight", sd["lm_head.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _layout(tok, n_soft=4, history=HISTORY, target=None):
    return build_layout(tok, instruction="Explain by occasion.", history=history,
                        item="Silk evening bag, emerald, Maison A", n_soft=n_soft, target=target)


def _parity_layout(tok):
    """A training layout cut inside its target, where the next token is clear ("-", a margin
    of ~9.5 logits on the real model): [prefix][history][soft][item][target...]"""
    lay = _layout(tok, target="You bought the camel cashmere coat on 2024-03")
    *head, target = lay.segments
    return Layout(tuple(head) + (Segment("target", target.ids[:-1]),))  # drop <|im_end|>


def _soft(bb: TorchBackbone, n: int, seed: int) -> torch.Tensor:
    """Adapter-like soft prompts: embeddings of a real phrase plus noise, scaled to the
    table's RMS (pure noise puts the real model on greedy near-ties, see test below)."""
    g = torch.Generator().manual_seed(seed)
    ids = bb.tokenizer.encode(" timeless evening elegance, classic tailoring, silk and gold")
    base = bb.token_embeddings[torch.tensor(ids[:n])]
    soft = base + 0.3 * bb.embedding_rms * torch.randn(n, bb.n_embd, generator=g)
    return soft * (bb.embedding_rms / soft.pow(2).mean().sqrt())


def _check_parity(bb: TorchBackbone, llm: SoftPromptLLM, n_greedy: int = 16,
                  min_gap: float = 0.0):
    layout = _parity_layout(bb.tokenizer)
    soft = _soft(bb, layout.n_soft, seed=1)
    assert [s.kind for s in layout.segments] == ["tokens", "history", "history", "history",
                                                 "tokens", "soft", "tokens", "target"]
    a = bb.last_logits([layout], soft[None])[0].numpy()
    b = llm.last_logits(layout, soft.numpy())
    cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    assert cos >= 0.999, cos
    top2 = np.sort(a)[-2:]
    assert top2[1] - top2[0] > min_gap, "near-tie input: pick another soft-prompt seed"
    assert int(a.argmax()) == int(b.argmax())
    if not n_greedy:
        return [], cos
    ids = bb.generate_greedy(layout, soft, max_tokens=n_greedy)
    text = llm.generate(layout, soft, max_tokens=n_greedy, sampling=GREEDY)
    assert text == bb.tokenizer.decode(ids)
    return ids, cos


def tiny_llama(tmp) -> tuple:
    """(path, transformers backbone) of a tiny random Llama written under `tmp`."""
    path = tmp / "tiny-llama.gguf"
    write_tiny_llama(path, resolve_gguf())
    return path, TorchBackbone.from_gguf(path, cache_dir=tmp / "cache")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tiny")
    path, bb = tiny_llama(tmp)
    # the tiny model is written in float32: served as written (f16 is checked on the real one)
    with SoftPromptLLM(path, n_ctx=512, n_threads=1, n_seq_max=2, weights="as-is",
                       n_gpu_layers=GPU_LAYERS) as llm:
        yield bb, llm, path, tmp


def test_tiny_random_llama_parity(tiny):
    bb, llm, _, _ = tiny
    ids, _ = _check_parity(bb, llm)
    assert len(ids) == 16  # a random model almost never ends its turn: a full 16-token check


def test_backbone_batch_padding_and_gradients(tiny):
    bb = tiny[0]
    short = _layout(bb.tokenizer, history=HISTORY[:1], target="A bag for your gala evenings.")
    long = _layout(bb.tokenizer, target="It matches the camel coat you bought in March.")
    soft = _soft(bb, 4, seed=2).expand(2, -1, -1).clone()
    batched = bb.last_logits([short.prompt(), long.prompt()], soft)
    alone = torch.cat([bb.last_logits([short.prompt()], soft[:1]),
                       bb.last_logits([long.prompt()], soft[1:])])
    torch.testing.assert_close(batched, alone, rtol=1e-4, atol=1e-4)  # right padding is inert

    soft.requires_grad_(True)
    loss = bb.loss([short, long], soft)
    loss.backward()
    assert torch.isfinite(loss) and soft.grad is not None and soft.grad.abs().sum() > 0
    assert bb.token_embeddings.grad is None  # the backbone stays frozen
    # our loss (lm_head on target positions only) == transformers' own loss on one layout
    emb, mask, labels = bb.embed([long], soft[1:].detach())
    ref = bb.model(inputs_embeds=emb, attention_mask=mask, labels=labels).loss
    torch.testing.assert_close(bb.loss([long], soft[1:].detach()), ref, rtol=1e-5, atol=1e-5)


def test_backbone_cache_survives_corruption(tiny, caplog):
    _, _, path, tmp = tiny
    cached = next((tmp / "cache" / "backbones").iterdir())
    for f in cached.glob("*.safetensors"):
        f.write_bytes(b"garbage")
    bb = TorchBackbone.from_gguf(path, cache_dir=tmp / "cache")  # reconverts, no crash
    assert "converting the GGUF again" in caplog.text
    assert (cached / "converted.ok").is_file() and cached.stat().st_size  # cache rebuilt
    torch.testing.assert_close(bb.token_embeddings, tiny[0].token_embeddings)


@pytest.mark.slow
def test_real_model_parity():
    bb = TorchBackbone.from_gguf()
    assert bb.n_embd == 576 and 0 < bb.embedding_rms < 1
    # the served f16 weights: logits within ~0.03 of float32 torch, the same greedy text
    with SoftPromptLLM(n_ctx=1024, n_threads=1, n_seq_max=1, n_gpu_layers=GPU_LAYERS) as llm:
        assert llm.n_embd == bb.n_embd and llm.served_path != llm.path
        _, cos = _check_parity(bb, llm, n_greedy=16, min_gap=1.0)
        assert cos >= 0.99999
    # the shipped Q4_1 as-is: llama.cpp's 8-bit activations move single logits by up to ~0.8
    # (measured), enough to flip a near-tie after a few greedy steps: logits only
    with SoftPromptLLM(n_ctx=1024, n_threads=1, n_seq_max=1, weights="as-is",
                       n_gpu_layers=GPU_LAYERS) as llm:
        assert llm.served_path == llm.path
        _check_parity(bb, llm, n_greedy=0, min_gap=1.0)


def test_serving_copy_is_derived_once_and_atomically(tmp_path, caplog):
    src = resolve_gguf()
    first = serving_gguf(src, "f16", cache_dir=tmp_path)
    assert first.parent == tmp_path / "serving" and first.stat().st_size > src.stat().st_size
    mtime = first.stat().st_mtime_ns
    assert serving_gguf(src, "f16", cache_dir=tmp_path) == first  # reused, not rewritten
    assert first.stat().st_mtime_ns == mtime
    assert not list((tmp_path / "serving").glob(".tmp-*"))  # no half-written leftovers
    assert serving_gguf(src, "as-is", cache_dir=tmp_path) == src
    with pytest.raises(ValueError, match="weights must be one of"):
        serving_gguf(src, "q2", cache_dir=tmp_path)
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("x")  # the cache folder cannot be created under a file
    with caplog.at_level(logging.WARNING):
        assert serving_gguf(src, "f16", cache_dir=blocked) == src
    assert "serving" in caplog.text and "as-is" in caplog.text
