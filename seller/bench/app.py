"""`seller bench app`: what an associate waits for when opening a client, with models warm.

Per client, the Clienteling page's own sequence: recommend(k), then the k explanations decoded
together as parallel sequences sharing the client prefix and streamed into their cards, the
first card's words first. (1) time to first words = recommend + the first non-blank streamed
chunk; (2) all cards = the whole sequence (the page's total wait). Targets from the brief: first
words <= 0.5 s, all five <= 3 s on 2 CPU cores. A second pass over the same clients decodes
without prompt-lookup guesses (`draft_tokens=0`), so the table shows what they save in the same
run. Writes JSON and a markdown table under benchmarks/results/.

`--concurrent N`: N associates at once, each opening a different client in its own thread (as
app sessions do), all served by the explainer's one llama.cpp worker, which decodes their
cards in the same batches. Rounds of N clients, against the same clients one at a time (N = 1)
in the same run; target: p90 five cards at N = 8 <= 2.5 x the single-associate p90
(benchmarks/results/app_concurrent.json and .md).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

from seller import settings

TARGET_FIRST_S = 0.5
TARGET_ALL_S = 3.0
TARGET_CONCURRENT_RATIO = 2.5  # p90 five cards, N associates at once over one at a time
KV_CELLS_PER_CARD = 256  # as the app sizes its worker (app/services.py)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="explainer folder (default models/sample or env SELLER_MODEL)")
    parser.add_argument("--data", default=None, help="store dir of clients (default: the sample data)")
    parser.add_argument("--clients", type=int, default=10, help="clients to time (after one warm-up client)")
    parser.add_argument("--k", type=int, default=5, help="recommendations per client")
    parser.add_argument("--style", default="feature", help="explanation style")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (the 2-core target)")
    parser.add_argument("--weights", choices=("f16", "as-is"), default="f16",
                        help="serve the GGUF's f16 copy (the app's default) or the file as shipped")
    parser.add_argument("--candidates", type=int, default=None, metavar="N",
                        help="texts decoded per card, the first that passes shown (default: the model's llm.candidates)")
    parser.add_argument("--concurrent", type=int, default=0, metavar="N",
                        help="N associates at once on different clients, against one at a time")
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/app_latency.json, "
                                                    "app_concurrent.json with --concurrent)")


def _time_client(explainer, client_id: str, k: int, style: str) -> dict:
    """The page's own sequence: recommend, then all k explanations streamed together, with
    what the decoding did (the call is the only one in flight)."""
    row = _time_page(explainer, client_id, k, style)
    del row["texts"]
    run = explainer.llm.last_run
    return {**row, "tokens": list(run.n_generated), "decode_steps": run.n_steps,
            "prompt_positions": list(run.n_prompt), "shared_prefix": run.n_shared}


def _time_page(explainer, client_id: str, k: int, style: str) -> dict:
    """Seconds to the first words and to all k cards of one client, as the page streams them."""
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
            "texts": [e.text for e in stream.explanations]}  # compared, never written


def _summary(values: list[float]) -> dict:
    values = sorted(values)
    return {"median": statistics.median(values), "p90": values[min(len(values) - 1, int(0.9 * len(values)))],
            "max": values[-1]}


def _latencies(rows: list[dict]) -> dict:
    """Median / p90 / max of the first words and of all cards over one pass's clients."""
    return {"first_words_s": _summary([r["first_words_s"] for r in rows if r["first_words_s"] is not None]),
            "all_s": _summary([r["all_s"] for r in rows])}


def markdown(result: dict) -> str:
    """The results table of one run (both passes), headed by the model it timed."""
    label = {"served": f"as served ({result['draft_tokens']} prompt-lookup guesses per sequence and step)",
             "no_guesses": "plain decoding, same clients, same run"}
    serving = result["serving"]
    md = (f"Model `{result['model_version']}` ({result['model_dir']}), {len(result['clients'])} clients; "
          f"{serving['weights']} weights ({serving['served_file']}) in "
          f"{', '.join(f'{n} {m:.0f} MiB' for n, m in serving['weight_buffers'].items())}, extra buffer "
          f"types {'on' if serving['extra_buffers']['use_extra'] else 'off'} ({serving['extra_buffers']['reason']}); "
          f"CPU {serving['cpu']['model_name']} (AMX: {', '.join(serving['cpu']['cpu_amx']) or 'none'}); "
          f"{result.get('candidates', 1)} texts decoded per card, each card checked by seller.guard.\n\n"
          f"| decoding | k | threads | first words median / p90 (s) | all {result['k']} median / p90 (s) | target |\n"
          f"|---|---|---|---|---|---|\n")
    for name in ("served", "no_guesses"):
        m = result if name == "served" else result["no_guesses"]
        md += (f"| {label[name]} | {result['k']} | {result['threads']} | {m['first_words_s']['median']:.2f} / "
               f"{m['first_words_s']['p90']:.2f} | {m['all_s']['median']:.2f} / {m['all_s']['p90']:.2f} | "
               f"≤ {TARGET_FIRST_S} / ≤ {TARGET_ALL_S} |\n")
    return md


def run(args) -> int:
    if args.concurrent < 0:
        print(f"seller bench app: --concurrent must be >= 1 (associates at once), got {args.concurrent}",
              file=sys.stderr)
        return 2
    if args.concurrent:
        return run_concurrent(args)
    import torch

    from seller.llm.buffers import machine_cpu
    from seller.paths import shown_path
    loaded = _load(args)
    if isinstance(loaded, int):
        return loaded
    explainer, model_dir, load_s, active = loaded
    data = explainer.dataset
    clients = active[: args.clients + 1]
    served_drafts = explainer.llm.draft_tokens
    serving = {"weights": args.weights, "served_file": explainer.llm.served_path.name,
               "weight_buffers": explainer.llm.weight_buffers,
               "extra_buffers": dataclasses.asdict(explainer.llm.buffer_decision),
               "cpu": {k: v for k, v in machine_cpu().items() if k in ("model_name", "cpu_amx")}}
    passes = {}
    try:
        for name, drafts in (("served", served_drafts), ("no_guesses", 0)):
            explainer.llm.draft_tokens = drafts
            _time_client(explainer, clients[0], args.k, args.style)  # warm-up: caches, allocations
            passes[name] = [_time_client(explainer, c, args.k, args.style) for c in clients[1:]]
    finally:
        explainer.close()
    summary = {name: _latencies(rows) for name, rows in passes.items()}
    first, total = summary["served"]["first_words_s"], summary["served"]["all_s"]
    result = {
        "benchmark": "app_latency", "model_dir": shown_path(model_dir),
        "model_version": str(getattr(explainer, "model_version", "")), "dataset": data.name,
        "k": args.k, "style": args.style, "threads": args.threads, "gpu_layers": settings.gpu_layers(), "load_s": load_s,
        "draft_tokens": served_drafts, "candidates": explainer.candidates, "serving": serving, "first_words_s": first, "all_s": total,
        "targets": {"first_words_s": TARGET_FIRST_S, "all_s": TARGET_ALL_S},
        "meets_targets": first["median"] <= TARGET_FIRST_S and total["median"] <= TARGET_ALL_S,
        "no_guesses": summary["no_guesses"],
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "torch": torch.__version__, "cuda": torch.cuda.is_available(),
                    "load_average_end": os.getloadavg()},
        "clients": passes["served"], "clients_no_guesses": passes["no_guesses"],
    }
    return _write(result, markdown(result), args.out or Path("benchmarks/results") / "app_latency.json")


def _load(args):
    """(explainer, model folder, load seconds, clients with the most history first), or an exit
    code when there is no model."""
    import torch

    from seller.data import dataset as ds
    try:
        from seller.explain import N_CTX, Explainer
    except ImportError as e:
        print(f"seller bench app: the explanation model is not installed (seller.explain: {e})", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    model_dir = Path(args.model) if args.model else settings.model_dir()
    if not model_dir.is_dir():
        print(f"seller bench app: no model folder at {model_dir}; train one first (seller train)", file=sys.stderr)
        return 1
    cards = max(1, args.concurrent) * args.k
    if args.concurrent < 1:
        cards = max(8, cards)  # the single-associate passes as they always ran
    data = ds.load_dataset(args.data) if args.data else None
    t0 = time.perf_counter()
    explainer = Explainer.from_pretrained(model_dir, dataset=data, n_threads=args.threads, n_seq_max=cards,
                                          n_ctx=max(N_CTX, KV_CELLS_PER_CARD * cards), weights=args.weights,
                                          n_gpu_layers=settings.gpu_layers(), candidates=args.candidates)  # -1 = all on the GPU
    load_s = time.perf_counter() - t0
    return explainer, model_dir, load_s, explainer.dataset.events["client_id"].value_counts().index.tolist()


def _at_once(explainer, clients: list[str], k: int, style: str) -> list[dict]:
    """One associate per client, each in its own thread, all starting together."""
    rows, errors = [None] * len(clients), []
    start = threading.Barrier(len(clients))

    def associate(n: int) -> None:
        start.wait()
        try:
            rows[n] = _time_page(explainer, clients[n], k, style)
        except Exception as e:  # reported after the round, naming the client
            errors.append(f"{clients[n]}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=associate, args=(n,)) for n in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError("concurrent associates failed: " + "; ".join(errors))
    return rows


def concurrent_markdown(result: dict) -> str:
    n, single, many = result["concurrent"], result["single"], result["at_once"]
    md = (f"Model `{result['model_version']}` ({result['model_dir']}), {result['threads']} threads, "
          f"{len(result['clients_single'])} clients, k = {result['k']}; CPU: {result['machine']['cpu']}; "
          f"load average at the end {result['machine']['load_average_end'][0]:.1f}.\n\n"
          f"| associates at once | first words p50 / p90 (s) | all {result['k']} cards p50 / p90 (s) |\n"
          f"|---|---|---|\n")
    for label, m in ((1, single), (n, many)):
        md += (f"| {label} | {m['first_words_s']['median']:.2f} / {m['first_words_s']['p90']:.2f} | "
               f"{m['all_s']['median']:.2f} / {m['all_s']['p90']:.2f} |\n")
    md += (f"\np90 all cards at {n} over 1: {result['p90_ratio']:.2f} x (target <= {TARGET_CONCURRENT_RATIO} x: "
           f"{'met' if result['meets_target'] else 'not met'}); texts equal to the one-at-a-time ones: "
           f"{result['texts_equal']} of {len(result['clients_at_once'])} clients.\n")
    return md


def run_concurrent(args) -> int:
    """N associates at once, in rounds of N different clients, against one at a time."""
    import torch

    from seller.llm.buffers import machine_cpu
    from seller.paths import shown_path
    n = args.concurrent
    loaded = _load(args)
    if isinstance(loaded, int):
        return loaded
    explainer, model_dir, load_s, active = loaded
    clients = active[1: 1 + max(args.clients, n) // n * n]  # whole rounds; active[0] warms up
    try:
        _time_page(explainer, active[0], args.k, args.style)
        single = [_time_page(explainer, c, args.k, args.style) for c in clients]
        at_once = [row for r in range(0, len(clients), n)
                   for row in _at_once(explainer, clients[r: r + n], args.k, args.style)]
    finally:
        explainer.close()
    summary = {"single": _latencies(single), "at_once": _latencies(at_once)}
    ratio = summary["at_once"]["all_s"]["p90"] / summary["single"]["all_s"]["p90"]
    solo = {r["client_id"]: r.pop("texts") for r in single}
    equal = sum(r.pop("texts") == solo[r["client_id"]] for r in at_once)  # texts stay out of the file
    result = {
        "benchmark": "app_concurrent", "model_dir": shown_path(model_dir),
        "model_version": str(explainer.model_version), "dataset": explainer.dataset.name,
        "concurrent": n, "k": args.k, "style": args.style, "threads": args.threads, "load_s": load_s,
        "draft_tokens": explainer.llm.draft_tokens, **summary, "p90_ratio": ratio,
        "target_p90_ratio": TARGET_CONCURRENT_RATIO, "meets_target": ratio <= TARGET_CONCURRENT_RATIO,
        "texts_equal": equal,
        "machine": {"cpu": machine_cpu()["model_name"], "cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "torch": torch.__version__, "load_average_end": os.getloadavg()},
        "clients_single": single, "clients_at_once": at_once,
    }
    return _write(result, concurrent_markdown(result),
                  args.out or Path("benchmarks/results") / "app_concurrent.json")


def _write(result: dict, md: str, out) -> int:
    """The JSON at `out` and its markdown table beside it."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    out.with_suffix(".md").write_text(md)
    print(md, end="")
    print(f"written {out} and {out.with_suffix('.md')}")
    return 0
