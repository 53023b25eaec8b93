"""Typed configuration for explanation training, read from TOML.

One `Config` holds five sections, each a dataclass with a reason beside every default:
`[data]` (which clients, items and reference explanations), `[adapter]` (the soft-prompt
generator), `[llm]` (the frozen backbone and optional LoRA), `[train]` (the optimisation) and
`[recommender]` (the encoders, trained first when `train.recommender` holds none).
`load_config(path)` rejects unknown keys and wrongly typed values with an error that names the
file and the dotted key, so a typo never silently falls back to a default.

No torch here: the CLI and the app import this cheaply.
"""
from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Sequence

from seller.data.schema import EXPLANATION_STYLES



class ConfigError(ValueError):
    """A configuration value is missing, unknown, mistyped or out of range; the message names the key."""


@dataclass
class DataConfig:
    dataset: str = "sample"  # "sample" (sample_data/), "musical_instruments", or a store / CSV directory
    explanations: str = "sample_data/explanations.csv"  # reference texts; "reviews": from review text; "mined": from the history
    styles: list[str] = field(default_factory=lambda: list(EXPLANATION_STYLES))  # styles to train on; each must have rows
    val_clients: float = 0.1  # share of clients held out for validation (whole clients, never rows)
    test_clients: float = 0.1  # share held out for evaluation; never seen in training
    split_seed: int = 13  # client split is a pure function of ids and this seed
    max_history: int = 50  # most recent events the sequence encoder and the text facts see
    max_fact_events: int = 4  # shared history facts spelled out in the prompt (prompt length dominates cost)
    related_facts: int = 2  # candidate-specific facts: the events the adapter's attention weighs most
    max_samples: int = 0  # cap on training rows (0 = all); small values make smoke configs
    # review data, whose items are bare ids: describe each candidate in the prompt by its this
    # many most frequent aspects in TRAINING clients' reviews (0 = off; needs explanations = "reviews")
    item_aspects: int = 0
    # the chat's system turn in every prompt (training, serving, the text-only baseline);
    # "" = the luxury client advisor's (seller.llm.layout.LayoutConfig.system)
    system: str = ""
    # name the reading day in the instruction ("Today is 1 December 2026."): the target's day in
    # training, the serving day in the app, so a season "coming" is coming from that day
    date_in_prompt: bool = False
    # cite the event seller.fallback's evidence engine picks (not the adapter's attention) and
    # name its reason in the prompt ("Reason: shares colour Fuchsia"): the mined references
    # (data.explanations = "mined") rest on the same evidence, so the LLM learns to say it
    evidence_prompt: bool = False

    def __post_init__(self):
        for s in self.styles:
            if s not in EXPLANATION_STYLES:
                raise ConfigError(f"data.styles: unknown style {s!r} "
                                  f"(choose from {', '.join(EXPLANATION_STYLES)})")
        if not self.styles:
            raise ConfigError("data.styles: give at least one style")
        for key in ("val_clients", "test_clients"):
            if not 0.0 <= getattr(self, key) < 0.5:
                raise ConfigError(f"data.{key}: must be in [0, 0.5), got {getattr(self, key)}")
        if self.max_history < 1:
            raise ConfigError(f"data.max_history: must be >= 1, got {self.max_history}")
        if self.item_aspects < 0:
            raise ConfigError(f"data.item_aspects: must be >= 0, got {self.item_aspects}")
        if self.item_aspects and self.explanations != "reviews":
            raise ConfigError("data.item_aspects: only for review data (data.explanations = \"reviews\"), "
                              f"got explanations = {self.explanations!r}")


@dataclass
class AdapterConfig:
    kind: Literal["moe", "dense", "pepler", "no-sequence"] = "moe"  # moe = SELLER; others are ablations/baselines
    n_experts: int = 6  # enough for one expert per intent family without starving any of data
    top_k: int = 2  # two experts blend (e.g. complement + occasion) while keeping routing readable
    n_prompts: int = 8  # soft tokens: llama.cpp only takes input embeddings, so we buy capacity with length
    hidden: int = 64  # expert bottleneck; 6 x 64 x (8 x 576) keeps the adapter near 8 MB
    d_fused: int = 192  # fused context width: above encoder widths, far below the LLM's
    d_style: int = 32  # explanation-style embedding; three styles need little room
    n_heads: int = 4  # candidate-to-history attention heads (averaged for the cited events)
    dropout: float = 0.1  # few thousand training texts: regularise the fusion
    gate_noise: float = 1.0  # scale of noisy top-k gating while training (Shazeer et al. 2017)

    def __post_init__(self):
        if self.kind not in ("moe", "dense", "pepler", "no-sequence"):
            raise ConfigError(f"adapter.kind: unknown kind {self.kind!r} (moe, dense, pepler, no-sequence)")
        for key in ("n_experts", "top_k", "n_prompts", "hidden", "d_fused", "d_style", "n_heads"):
            if getattr(self, key) < 1:
                raise ConfigError(f"adapter.{key}: must be >= 1, got {getattr(self, key)}")
        if self.top_k > self.n_experts:
            raise ConfigError(f"adapter.top_k: {self.top_k} exceeds adapter.n_experts={self.n_experts}")
        if self.d_fused % self.n_heads:
            raise ConfigError(f"adapter.d_fused: {self.d_fused} is not divisible by adapter.n_heads={self.n_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"adapter.dropout: must be in [0, 1), got {self.dropout}")


@dataclass
class LoraConfig:
    enabled: bool = False  # off by default: the frozen LLM keeps serving other uses unchanged
    r: int = 8  # rank; 8 is the peft default and ample for one task
    alpha: int = 16  # scale alpha / r = 2, the common choice
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])  # attention only: smallest file
    lr: float = 0.0  # 0 = train.lr; the adapter's soft prompts take larger steps than LoRA updates of the LLM


@dataclass
class LLMConfig:
    gguf: str = ""  # "" = SELLER_GGUF or the bundled SmolLM2-135M-Instruct
    max_target_tokens: int = 64  # references are clipped here, and serving stops here
    n_threads: int = 2  # llama.cpp threads for sample generations
    numbers_from_prompt: bool = False  # decode only numbers the prompt holds (seller.llm.sampling.NumberGuard)
    names_from_prompt: bool = False  # and only capitalised words mid-sentence it holds (NameGuard)
    # an explanation is one line (no reference holds a newline): past a newline the model has
    # left the format ("...collection)\n\nDessert: ..."), so decoding ends there
    stop: list[str] = field(default_factory=lambda: ["\n"])
    # llama.cpp's extra CPU buffer types; auto = off only where its AMX path crashes
    # (seller.llm.buffers); env SELLER_LLAMA_EXTRA_BUFFERS overrides, being about the machine
    extra_buffers: Literal["auto", "on", "off"] = "auto"
    lora: LoraConfig = field(default_factory=LoraConfig)
    # texts decoded per card, all at once: the greedy one, then ones sampled at
    # candidate_temperature; a card shows the first that passes seller.guard
    # (reports/claims/candidates-16: pass rate and latency per N)
    candidates: int = 4
    candidate_temperature: float = 0.8

    def __post_init__(self):
        if self.candidates < 1:
            raise ConfigError(f"llm.candidates: must be >= 1, got {self.candidates}")
        if not self.candidate_temperature > 0:
            raise ConfigError(f"llm.candidate_temperature: must be > 0, got {self.candidate_temperature}")

    def sampling(self):
        """How serving, evaluation and training's sample generations pick tokens."""
        from seller.llm.sampling import SamplingParams
        return SamplingParams(numbers_from_prompt=self.numbers_from_prompt,
                              names_from_prompt=self.names_from_prompt)

    def alternative_sampling(self):
        """How a card's texts after the first are sampled (sequence i gets seed 1 + i)."""
        return dataclasses.replace(self.sampling(), temperature=self.candidate_temperature, seed=1)


@dataclass
class TrainConfig:
    out_dir: str = "models/sample"  # where the adapter, config, log and metrics are written
    recommender: str = "models/sample/recommender"  # trained encoders (RECSYS); trained first if absent
    seed: int = 1234
    epochs: int = 3
    batch_size: int = 8  # per process; CPU matmuls stop getting cheaper per sample near here
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 3e-3  # adapters tolerate a large rate: the LLM is frozen
    weight_decay: float = 0.01
    warmup_steps: int = 20  # linear warm-up, then cosine to min_lr_ratio * lr
    min_lr_ratio: float = 0.1
    clip: float = 1.0  # global grad-norm clip
    balance_weight: float = 0.01  # lambda for the Switch load-balancing loss (Fedus et al. use 1e-2)
    cite_weight: float = 0.5  # supervise the attention with the references' cited events (when given)
    next_item_weight: float = 0.0  # > 0 adds the joint next-item loss and fine-tunes the sequence encoder
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast only if measured faster
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: the GPU when CUDA torch sees one
    threads: int = 2  # torch intra-op threads per process
    max_val_samples: int = 96  # validation loss on a fixed subset of held-out-client rows (time)
    n_sample_generations: int = 3  # llama.cpp generations logged per epoch (0 = none)
    checkpoint_every: int = 100  # optimizer steps between resumable checkpoints
    max_steps: int = 0  # stop after this many optimizer steps (0 = run all epochs)
    max_minutes: float = 0.0  # wall-clock budget; stops cleanly at a step boundary (0 = none)

    def __post_init__(self):
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ConfigError(f"train.precision: unknown value {self.precision!r} (auto, fp32, bf16)")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"train.device: unknown value {self.device!r} (auto, cpu, cuda)")
        for key in ("epochs", "batch_size", "grad_accum", "threads"):
            if getattr(self, key) < 1:
                raise ConfigError(f"train.{key}: must be >= 1, got {getattr(self, key)}")
        if self.lr <= 0:
            raise ConfigError(f"train.lr: must be > 0, got {self.lr}")


@dataclass
class RecommenderConfig:
    """[recommender]: the next-item encoders (seller.recommend), trained first when
    train.recommender holds none. The defaults suit the public benchmarks; configs/sample.toml
    sets the shipped sample recommender's own values."""
    encoder: Literal["transformer", "gru"] = "transformer"  # gru = GRU4Rec-style baseline
    d_model: int = 64  # SASRec's size on Beauty; item vectors have the same width
    n_layers: int = 2  # SASRec default
    n_heads: int = 2  # 32-d heads
    dropout: float = 0.3  # 0.5 suits Beauty-scale sparsity; less for denser data (the sample ships 0.2)
    max_len: int = 50  # most recent events the encoder sees
    use_id: bool = True  # ID embedding for warm items
    use_text: bool = True  # MiniLM text of name + description
    use_attributes: bool = True  # maison, category, colour, ... + price band
    use_event_features: bool = True  # event type, channel, log time gap
    min_id_count: int = 1  # training events an item needs to get its own ID embedding
    id_dropout: float = 0.0  # see ItemEncoderConfig.id_dropout
    epochs: int = 200  # upper bound; early stopping on valid NDCG@10 usually ends sooner
    batch_size: int = 64  # windows per step: more, smaller steps converge in fewer epochs
    lr: float = 1e-3  # Adam, as SASRec
    weight_decay: float = 0.0  # dropout regularises; decay on sparse ID rows hurts rare items
    patience: int = 5  # epochs without a valid NDCG@10 gain before stopping
    max_minutes: float = 20.0  # wall-clock budget for training (the Beauty target)
    valid_clients: int = 5000  # valid targets used for early stopping (a fixed subset: speed)
    seed: int = 0
    threads: int = 2  # the machine has 2 cores shared with others

    def __post_init__(self):
        if self.encoder not in ("transformer", "gru"):
            raise ConfigError(f"recommender.encoder: must be 'transformer' or 'gru', got {self.encoder!r}")
        if not (self.use_id or self.use_text or self.use_attributes):
            raise ConfigError("recommender: use at least one of use_id, use_text, use_attributes")
        for key in ("epochs", "batch_size", "max_len", "patience"):
            if getattr(self, key) < 1:
                raise ConfigError(f"recommender.{key}: must be >= 1, got {getattr(self, key)}")


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    recommender: RecommenderConfig = field(default_factory=RecommenderConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _check_type(value, tp, key: str):
    """Return `value` converted to `tp` (ints widen to floats), or raise naming `key`."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value not in typing.get_args(tp):
            choices = ", ".join(map(repr, typing.get_args(tp)))
            raise ConfigError(f"{key}: {value!r} is not one of {choices}")
        return value
    if origin is list:
        (inner,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        return [_check_type(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"{key}: union types are not supported in configs")  # programming error
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, bool) or not isinstance(value, tp):
        raise ConfigError(f"{key}: expected {tp.__name__}, got {type(value).__name__} {value!r}")
    return value


def _build(cls, table: dict, prefix: str):
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - names)
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(f"unknown key {where}{unknown[0]} (known in [{prefix or 'top level'}]: {', '.join(sorted(names))})")
    kwargs = {}
    for name, value in table.items():
        key = f"{prefix}.{name}" if prefix else name
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"{key}: expected a table [{key}], got {value!r}")
            kwargs[name] = _build(tp, value, key)
        else:
            kwargs[name] = _check_type(value, tp, key)
    return cls(**kwargs)


def config_from_dict(table: dict, source: str = "<dict>") -> Config:
    try:
        return _build(Config, table, "")
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """Read a TOML file into a `Config`; every error names the file and the key.

    overrides: "section.key=value" strings applied on top of the file (value as a TOML literal,
    else a plain string), e.g. ["adapter.kind=dense", "train.max_steps=120"]: an ablation is its
    base config plus what it changes, with no second copy of the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        table = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    for item in overrides:
        _override(table, item)
    return config_from_dict(table, f"{path} with --set" if overrides else str(path))


def _override(table: dict, item: str) -> None:
    key, sep, raw = item.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(parts):
        raise ConfigError(f"--set {item!r}: expected SECTION.KEY=VALUE, e.g. adapter.kind=dense")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # bare words: adapter.kind=dense
    for part in parts[:-1]:
        table = table.setdefault(part, {})
        if not isinstance(table, dict):
            raise ConfigError(f"--set {item!r}: {part} is a value, not a [section]")
    table[parts[-1]] = value
