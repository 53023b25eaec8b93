"""A LoRA trained in transformers (peft) is served by llama.cpp as a GGUF LoRA with the same logits."""
import numpy as np
import pytest
import torch

from seller.llm.lora import lora_tensors, write_gguf_lora
from seller.llm.runtime import SoftPromptLLM
from test_llm_parity import _parity_layout, _soft, tiny_llama


@pytest.fixture(scope="module")
def tiny_lora(tmp_path_factory):
    from peft import LoraConfig, get_peft_model
    tmp = tmp_path_factory.mktemp("lora")
    path, bb = tiny_llama(tmp)
    bb.model = get_peft_model(bb.model, LoraConfig(
        r=4, lora_alpha=8, lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    torch.manual_seed(0)
    with torch.no_grad():  # peft starts B at zero (a no-op LoRA): make it count
        for name, p in bb.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    bb.model.eval()
    return bb, path, write_gguf_lora(bb.model, tmp / "lora" / "adapter.gguf")


def _logits(bb, llm, layout, soft):
    with torch.no_grad():
        a = bb.last_logits([layout], soft[None])[0].numpy()
    return a, llm.last_logits(layout, soft.numpy())


def test_gguf_lora_gives_the_peft_logits_in_llama_cpp(tiny_lora):
    bb, path, lora = tiny_lora
    layout = _parity_layout(bb.tokenizer)
    soft = _soft(bb, layout.n_soft, seed=1)
    with SoftPromptLLM(path, n_ctx=512, n_threads=1, n_seq_max=1, weights="as-is", lora=lora) as llm:
        a, b = _logits(bb, llm, layout, soft)
    cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    assert cos >= 0.999 and int(a.argmax()) == int(b.argmax())
    # the LoRA matters: the base model alone gives other logits
    with SoftPromptLLM(path, n_ctx=512, n_threads=1, n_seq_max=1, weights="as-is") as base:
        c = base.last_logits(layout, soft.numpy())
    assert np.abs(c - a).max() > 20 * np.abs(b - a).max()


def test_lora_errors_name_the_problem(tiny_lora, tmp_path):
    bb, path, _ = tiny_lora
    with pytest.raises(ValueError, match="no LoRA weights"):
        lora_tensors({"model.layers.0.self_attn.q_proj.weight": torch.zeros(2, 2)}, n_head=1, n_head_kv=1)
    with pytest.raises(FileNotFoundError, match="missing.gguf"):
        SoftPromptLLM(path, n_ctx=128, n_threads=1, n_seq_max=1, weights="as-is", lora=tmp_path / "missing.gguf")
    bad = tmp_path / "not-a-lora.gguf"
    bad.write_bytes(b"GGUF garbage")
    with pytest.raises(RuntimeError, match="not-a-lora.gguf"):
        SoftPromptLLM(path, n_ctx=128, n_threads=1, n_seq_max=1, weights="as-is", lora=bad)
