"""LoRA trained in transformers (peft), served by llama.cpp as a GGUF LoRA adapter.

Training wraps the frozen backbone's projections with peft LoRA (`train.py`) and saves the
peft folder; serving cannot read peft, so the same A/B matrices are also written as a GGUF
LoRA adapter, the format llama.cpp's `llama_adapter_lora_init` loads on top of the base GGUF:

  tensor `blk.{i}.{attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down}.weight.lora_a`
  (peft's lora_A, r x in) and `...lora_b` (lora_B, out x r); metadata general.type = adapter,
  adapter.type = lora, adapter.lora.alpha (llama.cpp scales by alpha / r, as peft does).

GGUF Llama files store q/k rows in llama.cpp's interleaved RoPE order, which transformers undoes
when it loads them, so lora_B of q_proj / k_proj is permuted back (`rope_permute`). Tensors are
written in f16, the precision of the f16 weights they are applied to (llama.cpp's own LoRA
converter's default): rank 16 on all seven projections of SmolLM2-135M is 9.8 MB so.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from seller.paths import replace_atomically

GGUF_NAMES = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
              "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
              "mlp.down_proj": "ffn_down"}
_KEY = re.compile(r"layers\.(\d+)\.(self_attn\.\w+_proj|mlp\.\w+_proj)\.lora_([AB])\.(?:default\.)?weight$")


def rope_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """transformers' rotate-half q/k row order -> llama.cpp's interleaved RoPE order (the
    permutation llama.cpp's convert_hf_to_gguf applies to q_proj / k_proj)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def lora_tensors(state_dict: dict, *, n_head: int, n_head_kv: int) -> dict[str, np.ndarray]:
    """peft state dict (names containing `layers.N.<module>.lora_A/B`) -> GGUF tensors."""
    out: dict[str, np.ndarray] = {}
    for key, value in state_dict.items():
        m = _KEY.search(key)
        if not m:
            continue
        layer, module, ab = int(m.group(1)), m.group(2), m.group(3)
        if module not in GGUF_NAMES:
            raise ValueError(f"LoRA on {module} cannot be served by llama.cpp (supported: "
                             f"{', '.join(GGUF_NAMES)})")
        w = value.detach().float().cpu().numpy() if hasattr(value, "detach") else np.asarray(value, np.float32)
        if ab == "B" and module in ("self_attn.q_proj", "self_attn.k_proj"):
            w = rope_permute(w, n_head if module == "self_attn.q_proj" else n_head_kv)
        out[f"blk.{layer}.{GGUF_NAMES[module]}.weight.lora_{ab.lower()}"] = np.ascontiguousarray(w, np.float16)
    if not out:
        raise ValueError("no LoRA weights found in the state dict (expected peft lora_A / lora_B keys)")
    return out


def write_gguf_lora(peft_model, path: str | Path) -> Path:
    """Write the peft-wrapped transformers Llama's LoRA as a GGUF adapter at `path`."""
    base_cfg = peft_model.get_base_model().config
    tensors = lora_tensors(peft_model.state_dict(), n_head=base_cfg.num_attention_heads,
                           n_head_kv=base_cfg.num_key_value_heads)
    return write_gguf_tensors(tensors, peft_model.peft_config["default"].lora_alpha, path)


def write_gguf_tensors(tensors: dict[str, np.ndarray], alpha: float, path: str | Path) -> Path:
    """GGUF LoRA tensors (`lora_tensors`) and peft's lora_alpha -> a GGUF adapter file at `path`
    (temp file + rename: a reader never sees half a file)."""
    import gguf

    path = Path(path)
    with replace_atomically(path) as tmp:
        w = gguf.GGUFWriter(str(tmp), "llama")
        w.add_type("adapter")
        w.add_string("adapter.type", "lora")
        w.add_float32("adapter.lora.alpha", float(alpha))
        for name, value in tensors.items():
            w.add_tensor(name, value)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
    return path
