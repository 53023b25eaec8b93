"""`seller bench train`: explanation-training throughput with the default model (SmolLM2-135M).

Runs the real training loop of configs/sample.toml for a fixed number of optimizer steps (no
validation, no generations) and reports samples/s, plus the cost of one micro-batch with the
prefix-cached loss versus the backbone's full-forward loss on the same batch. JSON + markdown.
Goal: >= 11 samples/s on 2 CPU cores. With CUDA torch and a GPU the loop trains there
(train.device = "auto"); the GPU target is >= 50 samples/s (scripts/gpu_check.sh runs it).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

GOAL_SAMPLES_PER_S = 11.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="configs/sample.toml")
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps to time")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/train_sample.json")


def _loss_paths(trainer, batch_n: int = 8, repeats: int = 2) -> dict:
    """Seconds per micro-batch (forward + backward) of both loss implementations, on the
    trainer's own pipeline, backbone and device (where the training loop ran)."""
    import torch
    from seller.llm.lm_loss import explanation_loss

    bb, device, exs = trainer.bb, trainer.d.device, trainer.examples[:batch_n]
    with torch.no_grad():  # the training loop's own step, teacher-forced
        st = trainer.pipe.step([e.request(teacher_forced=True) for e in exs],
                               max_target_tokens=trainer.cfg.llm.max_target_tokens)
    soft, layouts = st.output.soft_prompts, st.layouts
    out = {"batch": batch_n, "mean_positions": sum(l.n_positions for l in layouts) / len(layouts)}
    for name, fn in (("prefix_cached_s", lambda s: explanation_loss(bb, layouts, s).mean()),
                     ("full_forward_s", lambda s: bb.loss(layouts, s))):
        times = []
        for _ in range(repeats):
            s = soft.detach().clone().requires_grad_(True)
            t = time.perf_counter()
            fn(s).backward()
            if device != "cpu":
                torch.cuda.synchronize()  # CUDA kernels run asynchronously: wait for them
            times.append(time.perf_counter() - t)
        out[name] = min(times)
    return out


def run(args) -> int:
    import torch
    from seller.config import load_config
    from seller.train import Trainer

    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    cfg.train.max_steps, cfg.train.epochs = args.steps, 1
    cfg.train.n_sample_generations, cfg.train.max_val_samples = 0, 0
    cfg.train.threads, cfg.train.max_minutes = args.threads, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        cfg.train.out_dir = tmp
        trainer = Trainer(cfg, log=lambda *a: None)  # as seller.train.train runs it
        trainer.choose_precision()
        metrics = trainer.fit()
    paths = _loss_paths(trainer)
    result = {
        "benchmark": "train", "config": args.config, "llm": "SmolLM2-135M-Instruct (default GGUF)",
        "adapter": cfg.adapter.kind, "batch_size": cfg.train.batch_size, "steps": metrics["steps"],
        "threads": args.threads, "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "samples_per_s": round(metrics["samples_per_s"], 3), "goal_samples_per_s": GOAL_SAMPLES_PER_S,
        "precision": metrics["precision"], "device": metrics["device"],
        "gpu": torch.cuda.get_device_name(0) if metrics["device"] != "cpu" else None, "micro_batch": paths,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    md = (f"# Explanation training throughput\n\n"
          f"`seller bench train --config {args.config} --steps {args.steps}` on {result['cpus']} CPU(s), "
          f"{args.threads} threads, {result['precision']}, on {result['gpu'] or 'the CPU'}.\n\n"
          f"| measure | value |\n|---|---|\n"
          f"| samples/s (train loop, batch {cfg.train.batch_size}) | {result['samples_per_s']:.2f} (goal {GOAL_SAMPLES_PER_S}) |\n"
          f"| mean prompt + target positions | {paths['mean_positions']:.0f} |\n"
          f"| micro-batch of {paths['batch']}, prefix-cached loss | {paths['prefix_cached_s']:.2f} s |\n"
          f"| micro-batch of {paths['batch']}, full-forward loss | {paths['full_forward_s']:.2f} s |\n")
    out.with_suffix(".md").write_text(md)
    print(md)
    return 0
