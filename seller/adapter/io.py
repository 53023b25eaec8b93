"""Build, save and load adapters: `adapter_config.json` + `adapter.safetensors` in one folder.

The JSON carries everything needed to rebuild the module without the training config: the
kind, its `AdapterConfig`, the `AdapterShape` (encoder and LLM widths, token RMS), the expert
names shown in the app, and for the PEPLER baseline its id vocabularies.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from seller.adapter.base import AdapterShape
from seller.adapter.moe import DenseAdapter, MoEAdapter
from seller.adapter.pepler import PEPLERAdapter
from seller.config import AdapterConfig, ConfigError

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter.safetensors"


class AdapterWidthError(ValueError):
    """The adapter writes vectors of one width, the loaded LLM expects another."""


def build_adapter(cfg: AdapterConfig, shape: AdapterShape, init_prompts: torch.Tensor | None = None,
                  client_ids: list[str] | None = None, item_ids: list[str] | None = None) -> torch.nn.Module:
    if cfg.kind == "pepler":
        module = PEPLERAdapter(cfg, shape, client_ids or [], item_ids or [])
        module.expert_names = ["id_prompt"]
    elif cfg.kind == "dense":
        module = DenseAdapter(cfg, shape, init_prompts)
        module.expert_names = ["dense"]
    else:  # "moe" and "no-sequence" share the MoE head
        module = MoEAdapter(cfg, shape, init_prompts)
        module.expert_names = [f"expert_{i}" for i in range(cfg.n_experts)]
    return module


def save_pretrained(adapter, directory: str | Path, extra: dict | None = None) -> Path:
    """Write the adapter's config and weights; `extra` (e.g. training provenance) goes into the JSON."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta = {"kind": adapter.cfg.kind, "adapter": asdict(adapter.cfg), "shape": adapter.shape.to_dict(),
            "expert_names": list(adapter.expert_names), **(extra or {})}
    if adapter.cfg.kind == "pepler":
        meta["client_ids"], meta["item_ids"] = adapter.client_ids, adapter.item_ids
    state = {k: v.detach().cpu().contiguous() for k, v in adapter.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_NAME))
    (directory / CONFIG_NAME).write_text(json.dumps(meta, indent=2))
    return directory


def read_adapter_config(directory: str | Path) -> dict:
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no adapter at {directory}: {path.name} is missing (train one with `seller train`)")
    return json.loads(path.read_text())


def from_pretrained(directory: str | Path, n_embd: int | None = None, llm_name: str = "the loaded LLM"):
    """Rebuild an adapter in eval mode. Give `n_embd` of the LLM it will feed to fail early on a
    mismatch (an adapter trained for one model is meaningless for another)."""
    directory = Path(directory)
    meta = read_adapter_config(directory)
    shape = AdapterShape(**meta["shape"])
    if n_embd is not None and n_embd != shape.n_embd:
        raise AdapterWidthError(
            f"adapter at {directory} writes soft prompts of width {shape.n_embd}, but {llm_name} has "
            f"n_embd={n_embd}; train an adapter for this LLM (llm.gguf in the config) or load the GGUF it was trained on")
    try:
        cfg = AdapterConfig(**meta["adapter"])
    except (TypeError, ConfigError) as e:
        raise ValueError(f"{directory / CONFIG_NAME}: bad adapter config: {e}") from None
    adapter = build_adapter(cfg, shape, client_ids=meta.get("client_ids"), item_ids=meta.get("item_ids"))
    adapter.expert_names = meta["expert_names"]
    state = load_file(str(directory / WEIGHTS_NAME))
    adapter.load_state_dict(state)
    adapter.meta = meta
    return adapter.eval()
