"""The model folder (seller.bundle): the committed model loads unchanged, a saved bundle reads back
whole, and every broken part fails naming what to do."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from seller.bundle import ModelBundle, recommender_digest

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "sample"


@pytest.fixture(scope="module")
def shipped():
    return ModelBundle.from_pretrained(MODEL)


def test_committed_model_folder_loads_as_written(shipped):
    meta = json.loads((MODEL / "adapter" / "adapter_config.json").read_text())
    assert shipped.model_version == meta["model_version"]
    assert shipped.config.to_dict()["adapter"] == json.loads((MODEL / "config.json").read_text())["adapter"]
    assert shipped.split == json.loads((MODEL / "split.json").read_text())
    assert shipped.item_aspects is None  # trained without review aspects, with a LoRA on the LLM
    assert shipped.lora_gguf == MODEL / "lora" / "adapter.gguf"
    assert (MODEL / "lora" / "adapter_model.safetensors").is_file()
    assert shipped.recommender.item_ids == shipped.dataset.items["item_id"].astype(str).tolist()


def test_saved_bundle_reads_back_whole(shipped, tmp_path):
    out = tmp_path / "model"
    bundle = ModelBundle(shipped.config, shipped.split, shipped.recommender, shipped.adapter,
                         item_aspects={"I0001": ["clasp"]})
    bundle.save_pretrained(out, model_version="t-1", llm={"gguf": "x.gguf", "n_embd": 576},
                           recommender_from=MODEL / "recommender")
    assert (out / "recommender" / "model.safetensors").read_bytes() == \
        (MODEL / "recommender" / "model.safetensors").read_bytes()  # copied, not re-serialised
    config = json.loads((out / "config.json").read_text())
    config["data"].update(explanations="reviews", item_aspects=1)  # as a review-data model
    (out / "config.json").write_text(json.dumps(config))
    again = ModelBundle.from_pretrained(out, shipped.dataset)
    assert again.model_version == "t-1" and again.split == shipped.split
    assert again.item_aspects == {"I0001": ["clasp"]}
    assert again.adapter.meta["recommender_sha256"] == recommender_digest(out / "recommender")
    for (name, a), (_, b) in zip(shipped.adapter.state_dict().items(), again.adapter.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_jointly_trained_encoders_are_saved_not_copied(shipped, tmp_path):
    """recommender_from=None writes the bundle's own (e.g. fine-tuned) encoder weights."""
    rec = shipped.recommender
    bundle = ModelBundle(shipped.config, shipped.split, rec, shipped.adapter)
    bundle.save_pretrained(tmp_path / "m", model_version="t", llm={}, recommender_from=None)
    again = ModelBundle.from_pretrained(tmp_path / "m", shipped.dataset)
    for (name, a), (_, b) in zip(rec.state_dict().items(), again.recommender.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_broken_folders_fail_naming_what_to_do(shipped, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config.json missing.*seller train"):
        ModelBundle.from_pretrained(tmp_path / "empty", shipped.dataset)
    model = tmp_path / "model"
    shutil.copytree(MODEL, model)
    (model / "split.json").write_text("{")
    with pytest.raises(ValueError, match=r"split.json: not valid JSON.*seller train"):
        ModelBundle.from_pretrained(model, shipped.dataset)
    shutil.copy(MODEL / "split.json", model / "split.json")
    weights = model / "recommender" / "model.safetensors"
    from safetensors.torch import load_file, save_file
    state = load_file(str(weights))
    name = next(iter(state))
    state[name] = state[name] + 1
    save_file(state, str(weights))
    with pytest.raises(ValueError, match=r"trained on recommender .* retrain the adapter"):
        ModelBundle.from_pretrained(model, shipped.dataset)
    shutil.copy(MODEL / "recommender" / "model.safetensors", weights)
    (model / "lora" / "adapter.gguf").unlink()  # peft's LoRA without the file llama.cpp serves
    with pytest.raises(FileNotFoundError, match=r"no adapter.gguf for llama.cpp"):
        ModelBundle.from_pretrained(model, shipped.dataset)


@pytest.mark.parametrize("config", ["sample.toml", "tiny.toml"])
def test_recommender_section_retrains_the_shipped_recommender(config):
    """Both configs train on models/sample/recommender: deleted, it must come back as shipped."""
    from seller.config import ConfigError, RecommenderConfig, load_config
    cfg = load_config(REPO / "configs" / config)
    assert cfg.train.recommender == "models/sample/recommender"
    shipped = json.loads((MODEL / "recommender" / "config.json").read_text())["config"]
    assert cfg.recommender == RecommenderConfig(**shipped)
    with pytest.raises(ConfigError, match=r"recommender.batch_size: must be >= 1"):
        load_config(REPO / "configs" / config, ["recommender.batch_size=0"])
