"""The model folder and its one owner: what `seller train` writes and `Explainer` serves.

    bundle = ModelBundle.from_pretrained("models/sample", n_embd=576)   # config, split, encoders, adapter
    bundle.save_pretrained(out, model_version=..., llm=..., recommender_from=...)

    <model>/config.json         the training Config (its `to_dict()`)
    <model>/split.json          the train / val / test client ids
    <model>/recommender/        the encoders (Recommender.save_pretrained)
    <model>/adapter/            the adapter (seller.adapter.io), stamped with the recommender's digest
    <model>/item_aspects.json   item -> the aspects its prompts named (only when data.item_aspects > 0)
    <model>/lora/               peft's LoRA files + adapter.gguf for llama.cpp (only when trained with LoRA)

The trainer adds metrics.json and train_log.jsonl (read by people, not by serving). config.json
is written last: a folder with it is a whole model.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from seller.config import Config, config_from_dict

CONFIG_FILE = "config.json"
SPLIT_FILE = "split.json"
RECOMMENDER_DIR = "recommender"
ADAPTER_DIR = "adapter"
ITEM_ASPECTS_FILE = "item_aspects.json"
LORA_DIR = "lora"
LORA_GGUF = "adapter.gguf"  # in <model>/lora/, beside peft's files: what serving loads
RETRAIN = "seller train --config configs/sample.toml"


def recommender_digest(directory: Path) -> str:
    """The encoders' identity the adapter records: soft prompts fit only the encoders they were
    trained on."""
    from seller.paths import sha256_file
    return sha256_file(Path(directory) / "model.safetensors")[:16]


@dataclass
class ModelBundle:
    config: Config
    split: dict[str, list[str]]
    recommender: object  # seller.recommend.Recommender, attached to `dataset`
    adapter: object  # an adapter module (seller.adapter.io); `.meta` once loaded
    dataset: object = None  # the seller.data.dataset.Dataset the encoders are bound to
    item_aspects: dict[str, list[str]] | None = None  # data.item_aspects > 0: what the prompts named
    directory: Path | None = None  # where a loaded bundle came from
    lora_gguf: Path | None = None  # a loaded model's LoRA for llama.cpp (None without LoRA)

    @property
    def model_version(self) -> str:
        """The trainer's stamp; a folder from before it was written goes by its name."""
        return self.adapter.meta.get("model_version", self.directory.name)

    # -- reading ----------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, directory: str | Path, dataset=None, n_embd: int | None = None,
                        llm_name: str = "the loaded LLM") -> "ModelBundle":
        """Read a model folder; `dataset` defaults to the one its config names; `n_embd`: the
        width of the LLM the adapter will feed (a mismatch fails naming both). Every missing or
        inconsistent part fails naming the file and what to do."""
        from seller.adapter.io import from_pretrained as load_adapter
        from seller.recommend import Recommender
        directory = Path(directory)
        config = read_config(directory)
        if dataset is None:
            from seller.examples import load_dataset
            dataset = load_dataset(config.data)
        rec = Recommender.from_pretrained(directory / RECOMMENDER_DIR, dataset)
        adapter = load_adapter(directory / ADAPTER_DIR, n_embd=n_embd, llm_name=llm_name)
        want, have = adapter.meta.get("recommender_sha256"), recommender_digest(directory / RECOMMENDER_DIR)
        if want and want != have:
            raise ValueError(f"{directory / ADAPTER_DIR} was trained on recommender {want} but "
                             f"{directory / RECOMMENDER_DIR} is {have}; retrain the adapter (seller train) after "
                             f"replacing the recommender")
        return cls(config, _read_split(directory), rec, adapter, dataset,
                   read_item_aspects(directory, config.data.item_aspects), directory, lora_file(directory))

    # -- writing ----------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, *, model_version: str, llm: dict,
                        recommender_from: str | Path | None = None, lora_model=None) -> Path:
        """Write the folder. `recommender_from`: the encoders' folder, copied byte for byte when
        training left them unchanged (None: save `self.recommender`'s current weights);
        `lora_model`: the peft-wrapped backbone whose LoRA weights are saved (None: no LoRA)."""
        from seller.adapter.io import save_pretrained as save_adapter
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        rec_dir = out / RECOMMENDER_DIR
        if recommender_from is None:
            self.recommender.save_pretrained(rec_dir)
        elif Path(recommender_from).resolve() != rec_dir.resolve():
            shutil.copytree(recommender_from, rec_dir, dirs_exist_ok=True)
        save_adapter(self.adapter, out / ADAPTER_DIR, extra={
            "model_version": model_version, "llm": llm,
            "recommender_sha256": recommender_digest(rec_dir)})  # the encoders these soft prompts fit
        if lora_model is not None:
            from seller.llm.lora import write_gguf_lora
            # peft writes only the LoRA weights, apart from the base; in f16, as llama.cpp serves them
            lora_model.save_pretrained(out / LORA_DIR, state_dict={
                k: v.detach().half() for k, v in lora_model.state_dict().items() if "lora_" in k})
            (out / LORA_DIR / "README.md").unlink(missing_ok=True)  # peft's blank model-card template
            write_gguf_lora(lora_model, out / LORA_DIR / LORA_GGUF)  # the same weights for llama.cpp
        (out / SPLIT_FILE).write_text(json.dumps(self.split, indent=1))
        if self.item_aspects:  # the item descriptions these prompts were trained with; serving reads them back
            (out / ITEM_ASPECTS_FILE).write_text(json.dumps(self.item_aspects, indent=0))
        (out / CONFIG_FILE).write_text(json.dumps(self.config.to_dict(), indent=2))
        return out


def read_config(directory: Path) -> Config:
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no trained SELLER model in {directory} ({CONFIG_FILE} missing); "
                                f"train one: {RETRAIN}")
    return config_from_dict(_read_json(path), str(path))


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e}); retrain the model ({RETRAIN})") from e


def _read_split(directory: Path) -> dict[str, list[str]]:
    """The held-out clients; a folder from before split.json was written serves without one."""
    path = Path(directory) / SPLIT_FILE
    if not path.is_file():
        return {}
    return _read_json(path)


def read_item_aspects(directory: Path, n: int) -> dict[str, list[str]] | None:
    """The item descriptions the model was trained with (data.item_aspects = n), or None."""
    if not n:
        return None
    path = Path(directory) / ITEM_ASPECTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{directory} was trained with data.item_aspects = {n} but lacks {ITEM_ASPECTS_FILE}; "
                                f"retrain it (seller train)")
    aspects = _read_json(path)
    if not isinstance(aspects, dict) or not all(
            isinstance(v, list) and all(isinstance(w, str) for w in v) for v in aspects.values()):
        raise ValueError(f"{path}: expected {{item_id: [aspect, ...]}}; retrain the model (seller train)")
    return aspects


def lora_file(directory: Path) -> Path | None:
    """The GGUF LoRA a model trained with LoRA ships (None without LoRA)."""
    folder = Path(directory) / LORA_DIR
    if not folder.is_dir():
        return None
    if not (folder / LORA_GGUF).is_file():
        raise FileNotFoundError(f"{folder} holds a LoRA but no {LORA_GGUF} for llama.cpp; retrain "
                                f"(seller train writes both) or serve a model trained without LoRA")
    return folder / LORA_GGUF
