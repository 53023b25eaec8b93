"""`seller bench app`: what an associate waits for when opening a client, with models warm.

Per client, the Clienteling page's own sequence: recommend(k), then the k explanations decoded
together as parallel sequences sharing the client prefix and streamed into their cards, the
first card's words first. (1) time to first words = recommend + the first non-blank streamed
chunk; (2) all cards = the whole sequence (the page's total wait). Targets from the brief: first
words <= 0.5 s, all five <= 3 s on 2 CPU cores. A second pass over the same clients decodes
without prompt-lookup guesses (`draft_tokens=0`), so the table shows what they save in the same
run. Writes JSON and a markdown table under benchmarks/results/.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

TARGET_FIRST_S = 0.5
TARGET_ALL_S = 3.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="explainer folder (default models/sample or env SELLER_MODEL)")
    parser.add_argument("--data", default=None, help="store dir of clients (default: the sample data)")
    parser.add_argument("--clients", type=int, default=10, help="clients to time (after one warm-up client)")
    parser.add_argument("--k", type=int, default=5, help="recommendations per client")
    parser.add_argument("--style", default="feature", help="explanation style")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (the 2-core target)")
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/app_latency.json)")


def _time_client(explainer, client_id: str, k: int, style: str) -> dict:
    """The page's own sequence: recommend, then all k explanations streamed together."""
    start = time.perf_counter()
    recs = explainer.recommend(client_id, k)
    rec_s = time.perf_counter() - start
    first_s = None
    stream = explainer.explain_many(client_id, [r.item_id for r in recs], style, stream=True)
    for _, chunk in stream:
        if first_s is None and chunk.strip():
            first_s = time.perf_counter() - start
    all_s = time.perf_counter() - start
    return {"client_id": client_id, "recommend_s": rec_s, "first_words_s": first_s,
            "all_s": all_s, "n_explanations": len(stream.explanations),
            "chars": sum(len(e.text) for e in stream.explanations),
            "tokens": list(explainer.llm.last_run.n_generated),
            "decode_steps": explainer.llm.last_run.n_steps,
            "prompt_positions": list(explainer.llm.last_run.n_prompt),
            "shared_prefix": explainer.llm.last_run.n_shared}


def _summary(values: list[float]) -> dict:
    values = sorted(values)
    return {"median": statistics.median(values), "p90": values[min(len(values) - 1, int(0.9 * len(values)))],
            "max": values[-1]}


def markdown(result: dict) -> str:
    """The results table of one run (both passes), headed by the model it timed."""
    label = {"served": f"as served ({result['draft_tokens']} prompt-lookup guesses per sequence and step)",
             "no_guesses": "plain decoding, same clients, same run"}
    md = (f"Model `{result['model_version']}` ({result['model_dir']}), {len(result['clients'])} clients.\n\n"
          f"| decoding | k | threads | first words median / p90 (s) | all {result['k']} median / p90 (s) | target |\n"
          f"|---|---|---|---|---|---|\n")
    for name in ("served", "no_guesses"):
        m = result if name == "served" else result["no_guesses"]
        md += (f"| {label[name]} | {result['k']} | {result['threads']} | {m['first_words_s']['median']:.2f} / "
               f"{m['first_words_s']['p90']:.2f} | {m['all_s']['median']:.2f} / {m['all_s']['p90']:.2f} | "
               f"≤ {TARGET_FIRST_S} / ≤ {TARGET_ALL_S} |\n")
    return md


def run(args) -> int:
    import torch

    from seller.data import dataset as ds
    from seller.paths import MODELS, shown_path

    try:
        from seller.explain import Explainer
    except ImportError as e:
        print(f"seller bench app: the explanation model is not installed (seller.explain: {e})", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    model_dir = Path(args.model or os.environ.get("SELLER_MODEL") or MODELS / "sample")
    if not model_dir.is_dir():
        print(f"seller bench app: no model folder at {model_dir}; train one first (seller train)", file=sys.stderr)
        return 1
    data = ds.load_dataset(args.data) if args.data else None
    t0 = time.perf_counter()
    explainer = Explainer.from_pretrained(model_dir, dataset=data, n_threads=args.threads)
    load_s = time.perf_counter() - t0
    data = explainer.dataset
    active = data.events["client_id"].value_counts().index.tolist()  # clients with history first
    clients = active[: args.clients + 1]
    served_drafts = explainer.llm.draft_tokens
    passes = {}
    try:
        for name, drafts in (("served", served_drafts), ("no_guesses", 0)):
            explainer.llm.draft_tokens = drafts
            _time_client(explainer, clients[0], args.k, args.style)  # warm-up: caches, allocations
            passes[name] = [_time_client(explainer, c, args.k, args.style) for c in clients[1:]]
    finally:
        explainer.close()
    summary = {name: {"first_words_s": _summary([r["first_words_s"] for r in rows
                                                 if r["first_words_s"] is not None]),
                      "all_s": _summary([r["all_s"] for r in rows])}
               for name, rows in passes.items()}
    first, total = summary["served"]["first_words_s"], summary["served"]["all_s"]
    result = {
        "benchmark": "app_latency", "model_dir": shown_path(model_dir),
        "model_version": str(getattr(explainer, "model_version", "")), "dataset": data.name,
        "k": args.k, "style": args.style, "threads": args.threads, "load_s": load_s,
        "draft_tokens": served_drafts, "first_words_s": first, "all_s": total,
        "targets": {"first_words_s": TARGET_FIRST_S, "all_s": TARGET_ALL_S},
        "meets_targets": first["median"] <= TARGET_FIRST_S and total["median"] <= TARGET_ALL_S,
        "no_guesses": summary["no_guesses"],
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "torch": torch.__version__, "cuda": torch.cuda.is_available(),
                    "load_average_end": os.getloadavg()},
        "clients": passes["served"], "clients_no_guesses": passes["no_guesses"],
    }
    out = Path(args.out) if args.out else Path("benchmarks/results") / "app_latency.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    md = markdown(result)
    out.with_suffix(".md").write_text(md)
    print(md, end="")
    print(f"written {out} and {out.with_suffix('.md')}")
    return 0
