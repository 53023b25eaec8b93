"""What llama.cpp's extra CPU buffer types are worth on this machine, in one run.

For the f16 serving copy, the Q4_1 file as shipped and a Q4_0 copy (the type CPU_REPACK re-lays
on x86), with the extra buffer types on and off in alternation (so load drifts hit both alike):
prefill of a 256-token prompt and 48 greedy tokens, medians over rounds. `auto` turns them off
only where the llama.cpp build has AMX kernels (seller.llm.buffers); this says what "off" costs
where it applies and why it is not simply always off.

    python benchmarks/extra_buffers.py [--rounds 3] [--out benchmarks/results/llm_extra_buffers.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from seller.llm import resolve_gguf
from seller.llm.buffers import machine_cpu
from seller.llm.layout import Layout, Segment
from seller.llm.runtime import SoftPromptLLM
from seller.llm.sampling import SamplingParams
from seller.llm.weights import quantize_copy, serving_gguf

PROMPT = ("The client viewed a silk scarf in navy from Maison A, then tried on leather loafers in "
          "black and bought a cashmere coat in camel. ") * 8
FIXED = SamplingParams(repeat_penalty=1.0, ignore_eos=True)


def measure(path: Path, setting: str) -> dict:
    with SoftPromptLLM(path, n_ctx=1024, n_threads=2, n_seq_max=1, weights="as-is", draft_tokens=0,
                       extra_buffers=setting) as llm:
        layout = Layout((Segment("tokens", tuple(llm.tokenize(PROMPT)[:256])),))
        llm.last_logits(layout)  # warm-up
        t0 = time.perf_counter()
        llm.last_logits(layout)
        prefill_s = time.perf_counter() - t0
        llm.reset()
        llm.generate(layout, max_tokens=48, sampling=FIXED)
        run = llm.last_run
        return {"prefill_tok_s": layout.n_positions / prefill_s,
                "decode_tok_s": 47 / max(run.total_s - run.first_token_s, 1e-9),
                "weight_buffers": llm.weight_buffers, "decision": asdict(llm.buffer_decision)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/llm_extra_buffers.json"))
    args = p.parse_args()
    shipped = resolve_gguf()
    with tempfile.TemporaryDirectory() as tmp:
        files = {"f16 (served)": serving_gguf(shipped, "f16"), "Q4_1 (as shipped)": shipped,
                 "Q4_0 copy": quantize_copy(shipped, Path(tmp) / "q4_0.gguf", "Q4_0")}
        runs = {(f, s): [] for f in files for s in ("on", "off")}
        for _ in range(args.rounds):
            for f, path in files.items():
                for s in ("on", "off"):
                    runs[f, s].append(measure(path, s))
    cpu = machine_cpu()
    rows = []
    for (f, s), got in runs.items():
        rows.append({"file": f, "extra_buffers": s, "weight_buffers": got[0]["weight_buffers"],
                     "prefill_tok_s": statistics.median(r["prefill_tok_s"] for r in got),
                     "decode_tok_s": statistics.median(r["decode_tok_s"] for r in got)})
    result = {"cpu": {k: cpu[k] for k in ("model_name", "cpu_amx", "llama_cpp_features")},
              "rounds": args.rounds, "threads": 2, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    md = [f"# llama.cpp extra buffer types on / off, one run ({args.rounds} rounds, medians, 2 threads)", "",
          f"CPU: {cpu['model_name']} (AMX flags: {', '.join(cpu['cpu_amx']) or 'none'}); llama.cpp "
          f"reports {', '.join(cpu['llama_cpp_features'])}.", "",
          "| file | extra buffer types | weights in (MiB) | prefill 256 tokens (tok/s) | decode (tok/s) |",
          "|---|---|---|---:|---:|"]
    for r in rows:
        where = ", ".join(f"{n} {m:.0f}" for n, m in r["weight_buffers"].items())
        md.append(f"| {r['file']} | {r['extra_buffers']} | {where} | {r['prefill_tok_s']:.0f} | {r['decode_tok_s']:.1f} |")
    args.out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
