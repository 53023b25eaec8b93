"""`seller train --config configs/sample.toml`: teach the adapter to make a frozen LLM explain.

    examples (history before t, item, style, reference) -> encoders -> adapter -> soft prompts
    -> layout (seller.llm.layout) -> frozen LLM (TorchBackbone) -> CE on the reference
    loss = CE + balance_weight * Switch balance + cite_weight * citation NLL (+ next-item CE)

AdamW with linear warm-up and cosine decay, grad clipping, gradient accumulation, optional bf16
autocast (only where it measures faster), resumable checkpoints, a tqdm bar with loss,
samples/s and ETA, per-epoch validation loss and llama.cpp sample generations, fixed seeds.
Under `torchrun` each process takes every world_size-th example and DDP averages gradients
(gloo on CPU, nccl on GPU). With CUDA torch and a visible GPU (train.device = "auto") the frozen
LLM and the adapter train on the GPU (one per process: LOCAL_RANK); the recommender's encoders
stay on the CPU. Writes to train.out_dir: adapter/, config.json, split.json,
train_log.jsonl, metrics.json (and recommender/ when it had to be trained here; item_aspects.json
when data.item_aspects describes items).
"""
from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

from seller import settings
from seller.config import Config, ConfigError, load_config

INIT_PHRASE = " client history taste pieces style occasion detail explain"  # soft-prompt init tokens


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="TOML config, e.g. configs/sample.toml")
    parser.add_argument("--out", help="override train.out_dir")
    parser.add_argument("--resume", action="store_true", help="continue from out_dir/checkpoint.pt")
    parser.add_argument("--max-steps", type=int, help="override train.max_steps")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", dest="overrides",
                        help="override one config value (repeatable), e.g. --set adapter.kind=dense")
    parser.add_argument("--grad-dump", help=argparse.SUPPRESS)  # test hook: save the first averaged gradient


def run(args) -> int:
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as e:
        print(f"error: {e}")
        return 2
    if args.out:
        cfg.train.out_dir = args.out
    if args.max_steps is not None:
        cfg.train.max_steps = args.max_steps
    train(cfg, resume=args.resume, grad_dump=args.grad_dump)
    return 0


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: str = "cpu"  # where the LLM and the adapter train: "cpu" or "cuda:<local rank>"

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str = "auto") -> Dist:
    import torch
    import torch.distributed as dist
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if cuda and not torch.cuda.is_available():
        raise ConfigError("train.device = 'cuda' but torch sees no CUDA device (a CPU build of torch?)")
    local = settings.local_rank()
    where = f"cuda:{local}" if cuda else "cpu"
    if cuda:
        torch.cuda.set_device(local)
    world = settings.world_size()
    if world == 1:
        return Dist(device=where)
    dist.init_process_group("nccl" if cuda else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), where)


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up to 1, then cosine down to min_ratio at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def train(cfg: Config, resume: bool = False, grad_dump: str | None = None, log=print) -> dict:
    import numpy as np
    import torch
    import torch.distributed as tdist
    from tqdm import tqdm

    from seller.adapter.data import (build_examples, load_dataset, load_explanations, split_clients,
                                     split_examples)
    from seller.adapter.facts import prompt_aspects
    from seller.adapter.io import build_adapter
    from seller.adapter.base import AdapterShape
    from seller.adapter.pipeline import ExplanationPipeline
    from seller.data.sequences import build_sequences
    from seller.llm.backbone import TorchBackbone

    tc = cfg.train
    d = setup_distributed(tc.device)
    torch.set_num_threads(tc.threads)
    torch.manual_seed(tc.seed)
    out = Path(tc.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()

    dataset = load_dataset(cfg.data)
    rec = _recommender(cfg, dataset, out, d, log)
    frame = load_explanations(cfg.data, dataset)
    examples = build_examples(frame, dataset, build_sequences(dataset), cfg.data.max_samples)
    split = split_clients([e.client_id for e in examples], cfg.data)
    parts = split_examples(examples, split)
    if not parts["train"]:
        raise ValueError(f"no training examples left after holding out clients ({len(examples)} rows)")
    bb = TorchBackbone.from_gguf(cfg.llm.gguf or None)
    shape = AdapterShape(d_item=rec.config.d_model, d_state=rec.config.d_model, n_embd=bb.n_embd,
                         embed_rms=bb.embedding_rms)
    init_ids = bb.tokenizer.encode(INIT_PHRASE)
    init = bb.token_embeddings[[init_ids[i % len(init_ids)] for i in range(cfg.adapter.n_prompts)]].detach()
    adapter = build_adapter(cfg.adapter, shape, init, client_ids=split["train"], item_ids=rec.item_ids)
    aspects = prompt_aspects(frame, split["train"], cfg.data.item_aspects)
    pipe = ExplanationPipeline(dataset, rec, adapter, bb.tokenizer, cfg.data, aspects)
    lora_params = _maybe_lora(cfg, bb)
    bb.model.to(d.device)  # in place: the LoRA parameters and token_embeddings are the same tensors
    adapter.to(d.device)

    joint = tc.next_item_weight > 0
    rec.train(joint)
    rec.requires_grad_(joint)
    params = list(adapter.parameters()) + lora_params + (list(rec.parameters()) if joint else [])
    model = adapter
    if d.world > 1:
        from torch.nn.parallel import DistributedDataParallel
        # some parameters sit out a step (the noise gate with gate_noise = 0, unrouted paths):
        # without this DDP silently skips averaging the buckets that hold them
        model = DistributedDataParallel(adapter, find_unused_parameters=True,
                                        device_ids=[d.device] if d.device != "cpu" else None)
        extra = lora_params + (list(rec.parameters()) if joint else [])  # synced by hand below
    else:
        extra = []
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": tc.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=tc.lr)
    steps_per_epoch = max(1, math.ceil(len(parts["train"]) / (tc.batch_size * d.world * tc.grad_accum)))
    total = steps_per_epoch * tc.epochs if not tc.max_steps else min(tc.max_steps, steps_per_epoch * tc.epochs)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, tc.warmup_steps, total, tc.min_lr_ratio))

    step, epoch0, done_in_epoch, resumed_from = 0, 0, 0, None
    ckpt = out / "checkpoint.pt"
    trainable = _trainable_modules(adapter, bb.model if lora_params else None, rec if joint else None)
    if resume and ckpt.is_file():
        state = torch.load(ckpt, weights_only=False)
        _restore_trainable(state, ckpt, trainable)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step, epoch0, done_in_epoch = state["step"], state["epoch"], state["done_in_epoch"]
        resumed_from = step
        if d.main:
            log(f"resumed from {ckpt} at step {step} (epoch {epoch0 + 1})")

    def _micro(batch, bf16: bool):
        """Loss terms of one micro-batch (`bf16`: under bf16 autocast)."""
        st = pipe.step([e.request(teacher_forced=True) for e in batch], model=model, encoder_grad=joint,
                       max_target_tokens=cfg.llm.max_target_tokens)
        o, cite_terms = st.output, []
        for b, gold in enumerate(st.gold):
            if gold and o.attention is not None:
                pos = np.flatnonzero(np.isin(st.histories[b].event_ids, gold))
                cite_terms.append(-torch.log(o.attention[b, pos].sum() + 1e-6))
        with torch.autocast(torch.device(d.device).type, dtype=torch.bfloat16, enabled=bf16):
            from seller.adapter.lm_loss import explanation_loss
            ce = explanation_loss(bb, st.layouts, o.soft_prompts).mean()
        cite = torch.stack(cite_terms).mean() if cite_terms else ce.new_zeros(())
        nxt = ce.new_zeros(())
        if joint:
            rows = torch.tensor([e.item_row for e in batch], device=d.device)
            nxt = torch.nn.functional.cross_entropy(st.inputs.summary @ rec.item_vectors().to(d.device).T, rows)
        loss = ce + tc.balance_weight * o.aux_loss + tc.cite_weight * cite + tc.next_item_weight * nxt
        return loss, {k: float(v.detach()) for k, v in (("ce", ce), ("balance", o.aux_loss), ("cite", cite),
                                                         ("next", nxt))}

    bf16 = _choose_precision(tc.precision, lambda on: _timed_micro(_micro, parts["train"][:tc.batch_size], on, opt),
                             log, d)

    # a resumed run continues its log; a fresh run starts its own (never another run's lines)
    log_f = open(out / "train_log.jsonl", "a" if resumed_from is not None else "w") if d.main else None
    history = {"train_ce": [], "val_ce": [], "samples": []}
    rng = np.random.default_rng(tc.seed)
    n_seen, t_loop, stop = 0, time.time(), False
    micro_per_epoch = steps_per_epoch * tc.grad_accum
    bar = tqdm(total=total * tc.grad_accum, initial=step * tc.grad_accum, disable=not d.main,
               desc="train", unit="batch", dynamic_ncols=True, mininterval=2.0)
    for epoch in range(tc.epochs):
        order = rng.permutation(len(parts["train"]))  # same on every rank: the seed is shared
        if epoch < epoch0:
            continue  # resumed: the permutation is drawn anyway so the data order matches a fresh run
        adapter.train()
        running = None
        for m in range(done_in_epoch, micro_per_epoch):
            lo = (m * d.world + d.rank) * tc.batch_size
            idx = order[lo:lo + tc.batch_size]
            if len(idx) == 0:
                idx = order[: tc.batch_size]  # a short last round: repeat rows so ranks stay in step
            batch = [parts["train"][i] for i in idx]
            last_micro = (m + 1) % tc.grad_accum == 0 or m + 1 == micro_per_epoch
            sync = model.no_sync() if (d.world > 1 and not last_micro) else _null()
            with sync:
                loss, terms = _micro(batch, bf16)
                (loss / tc.grad_accum).backward()
            n_seen += len(batch) * d.world
            bar.update(1)
            running = terms["ce"] if running is None else 0.9 * running + 0.1 * terms["ce"]
            if not last_micro:
                continue
            for p in extra:  # DDP syncs the adapter; LoRA / encoder grads are averaged here
                if p.grad is not None:
                    tdist.all_reduce(p.grad)
                    p.grad /= d.world
            if grad_dump:
                if d.main:
                    torch.save({n: p.grad.detach().clone() for n, p in adapter.named_parameters()
                                if p.grad is not None}, grad_dump)
                _finish(d)
                return {}
            gnorm = float(torch.nn.utils.clip_grad_norm_(params, tc.clip))
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            elapsed = time.time() - t_loop
            sps = n_seen / max(elapsed, 1e-9)
            bar.set_postfix(loss=f"{running:.3f}", sps=f"{sps:.2f}", lr=f"{sched.get_last_lr()[0]:.1e}")
            if d.main:
                log_f.write(json.dumps({"step": step, "epoch": epoch + 1, **terms, "grad_norm": gnorm,
                                        "lr": sched.get_last_lr()[0], "samples_per_s": sps,
                                        "elapsed_s": time.time() - t_start}) + "\n")
                log_f.flush()
                history["train_ce"].append(terms["ce"])
                if step % tc.checkpoint_every == 0:
                    _checkpoint(ckpt, trainable, opt, sched, step, epoch, m + 1)
            stop = (tc.max_steps and step >= tc.max_steps) or \
                (tc.max_minutes and (time.time() - t_start) / 60 >= tc.max_minutes)
            stop = _agree(stop, d)
            if stop:
                break
        done_in_epoch = 0
        running = float("nan") if running is None else running
        if d.main:
            val = _validate(parts["val"][: tc.max_val_samples], pipe, adapter, bb, cfg)
            history["val_ce"].append(val)
            gens = _sample_generations(parts["val"], pipe, adapter, cfg, log, bb.model if lora_params else None)
            history["samples"].append(gens)
            log(f"epoch {epoch + 1}: train CE {running:.3f}  val CE {val:.3f}  step {step}")
            log_f.write(json.dumps({"epoch": epoch + 1, "val_ce": val, "samples": gens}) + "\n")
            log_f.flush()
            _checkpoint(ckpt, trainable, opt, sched, step, epoch + 1, 0)
        if stop:
            break
    bar.close()
    metrics = {}
    if d.main:
        train_s = time.time() - t_loop
        metrics = _finalize(cfg, out, adapter, pipe, parts, split, history, n_seen, train_s,
                            time.time() - t_start, bf16, lora_params, bb, steps=step, resumed_from=resumed_from)
        log(f"saved {out}/adapter  ({metrics['samples_per_s']:.2f} samples/s, {metrics['total_min']:.1f} min)")
    _finish(d)
    return metrics


# -- helpers -------------------------------------------------------------------------------------
class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _finish(d: Dist) -> None:
    if d.world > 1:
        import torch.distributed as tdist
        tdist.barrier()
        tdist.destroy_process_group()


def _agree(flag: bool, d: Dist) -> bool:
    """Every rank stops at the same step (the wall-clock budget differs a little per rank)."""
    if d.world == 1:
        return bool(flag)
    import torch
    import torch.distributed as tdist
    t = torch.tensor([1.0 if flag else 0.0], device=d.device)  # nccl reduces CUDA tensors only
    tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
    return bool(t.item())


def _recommender(cfg: Config, dataset, out: Path, d: Dist, log):
    """The trained encoders at train.recommender; trained here (rank 0) if absent."""
    from seller.recommend import Recommender, train_recommender
    path = Path(cfg.train.recommender)
    if not (path / "config.json").is_file():
        if d.main:
            log(f"no recommender at {path}: training one on {dataset.name} first")
            train_recommender(dataset, cfg.recommender, log=log).save_pretrained(path)
        if d.world > 1:
            import torch.distributed as tdist
            tdist.barrier()
    return Recommender.from_pretrained(path, dataset)


def _maybe_lora(cfg: Config, bb) -> list:
    """Wrap the backbone's attention projections with LoRA (peft); returns the trainable params."""
    lc = cfg.llm.lora
    if not lc.enabled:
        return []
    from peft import LoraConfig, get_peft_model
    bb.model = get_peft_model(bb.model, LoraConfig(r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout,
                                                   target_modules=list(lc.target_modules)))
    return [p for p in bb.model.parameters() if p.requires_grad]


def _timed_micro(micro, batch, bf16: bool, opt) -> float:
    import torch
    t = time.time()
    loss, _ = micro(batch, bf16)
    loss.backward()
    if torch.cuda.is_initialized():  # CUDA kernels run asynchronously: wait for them
        torch.cuda.synchronize()
    opt.zero_grad(set_to_none=True)
    return time.time() - t


def _choose_precision(mode: str, timed, log, d: Dist) -> bool:
    """bf16 autocast only where it is measured faster (AVX2-only CPUs emulate bf16 and lose)."""
    if mode != "auto":
        return mode == "bf16"
    import torch
    capability = torch.backends.cpu.get_cpu_capability()
    if d.device == "cpu" and "AVX512" not in capability:  # measured here (AVX2): bf16 autocast 15x slower than fp32
        if d.main:
            log(f"precision auto: CPU capability {capability} has no native bf16 -> fp32")
        return False
    timed(False)  # warm-up: first calls pay for allocation
    fp32, bf16 = timed(False), timed(True)
    choice = bf16 < 0.9 * fp32
    if d.main:
        log(f"precision auto: fp32 {fp32:.2f}s vs bf16 {bf16:.2f}s per micro-batch -> {'bf16' if choice else 'fp32'}")
    return _agree(choice, d)


def _trainable_modules(adapter, lora_model=None, recommender=None) -> dict:
    """What training changes, by checkpoint key: the adapter, the LoRA-wrapped backbone (only
    its LoRA weights are saved) and the jointly trained encoders."""
    modules = {"adapter": adapter}
    if lora_model is not None:
        modules["lora"] = lora_model
    if recommender is not None:
        modules["recommender"] = recommender
    return modules


def _trainable_state(name: str, module) -> dict:
    if name == "lora":  # the frozen base weights are the GGUF's: saving them would cost 0.5 GB
        return {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}
    return module.state_dict()


def _restore_trainable(state: dict, path: Path, modules: dict) -> None:
    missing = [name for name in modules if name not in state]
    if missing:  # e.g. a checkpoint written before LoRA / encoder weights were saved in it
        raise ValueError(f"{path} holds no {', '.join(missing)} weights, which this run trains; resuming would "
                         f"restart them from scratch: train without --resume (or delete {path.name})")
    for name, module in modules.items():
        if name == "lora":
            unexpected = module.load_state_dict(state[name], strict=False).unexpected_keys
            if unexpected:
                raise ValueError(f"{path}: LoRA weights {unexpected[:3]} do not match this run's llm.lora settings")
        else:
            module.load_state_dict(state[name])


def _checkpoint(path: Path, modules: dict, opt, sched, step: int, epoch: int, done_in_epoch: int) -> None:
    """Every trainable module's weights and the optimizer, so --resume continues this very run."""
    import torch
    from seller.paths import replace_atomically
    with replace_atomically(path) as tmp:  # a crash mid-save never leaves a broken checkpoint
        torch.save({**{name: _trainable_state(name, m) for name, m in modules.items()}, "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(), "step": step, "epoch": epoch, "done_in_epoch": done_in_epoch},
                   tmp)


def _validate(examples, pipe, adapter, bb, cfg: Config) -> float:
    """Mean per-example CE on held-out clients, gold citations as in training (teacher forcing)."""
    import torch
    from seller.adapter.lm_loss import explanation_loss
    if not examples:
        return float("nan")
    adapter.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(examples), cfg.train.batch_size):
            st = pipe.step([e.request(teacher_forced=True) for e in examples[i:i + cfg.train.batch_size]], model=adapter,
                           max_target_tokens=cfg.llm.max_target_tokens)
            total += float(explanation_loss(bb, st.layouts, st.output.soft_prompts).sum())
    adapter.train()
    return total / len(examples)


_LLM = {}


def _sample_generations(examples, pipe, adapter, cfg: Config, log, lora_model=None) -> list[dict]:
    """A few held-out explanations decoded by llama.cpp exactly as serving does; with LoRA
    (`lora_model`: the peft-wrapped backbone) its current weights are served too."""
    import tempfile
    n = min(cfg.train.n_sample_generations, len(examples))
    if n == 0:
        return []
    if lora_model is None:
        return _generate_samples(examples, n, pipe, adapter, cfg, log, _serving_llm(cfg))
    from seller.explain import N_CTX
    from seller.llm.lora import write_gguf_lora
    from seller.llm.runtime import SoftPromptLLM
    with tempfile.TemporaryDirectory() as tmp:
        lora = write_gguf_lora(lora_model, Path(tmp) / "lora.gguf")
        with SoftPromptLLM(cfg.llm.gguf or None, n_ctx=N_CTX, n_threads=cfg.llm.n_threads, lora=lora,
                           extra_buffers=cfg.llm.extra_buffers) as llm:
            return _generate_samples(examples, n, pipe, adapter, cfg, log, llm)


def _serving_llm(cfg: Config):
    from seller.explain import N_CTX
    from seller.llm.runtime import SoftPromptLLM
    if "llm" not in _LLM:  # loaded once per process: every epoch decodes its samples with it
        _LLM["llm"] = SoftPromptLLM(cfg.llm.gguf or None, n_ctx=N_CTX, n_threads=cfg.llm.n_threads,
                                    extra_buffers=cfg.llm.extra_buffers)
    return _LLM["llm"]


def _generate_samples(examples, n, pipe, adapter, cfg: Config, log, llm) -> list[dict]:
    import torch
    picks = [examples[i] for i in range(0, len(examples), max(1, len(examples) // n))][:n]
    adapter.eval()
    outs = []
    with torch.no_grad():
        for e in picks:
            st = pipe.step([e.request()], model=adapter)
            cited = st.cited[0]
            text = llm.generate(st.layouts[0], st.output.soft_prompts[0].float().cpu().numpy(),
                                max_tokens=cfg.llm.max_target_tokens, sampling=cfg.llm.sampling(), stop=cfg.llm.stop)
            outs.append({"client_id": e.client_id, "item_id": e.item_id, "style": e.style, "text": text,
                         "reference": e.text, "cited": cited})
            log(f"  [{e.client_id} {e.item_id} {e.style}] {text}")
    adapter.train()
    return outs


def _gate_stats(examples, pipe, adapter, limit: int = 400) -> tuple[dict, dict]:
    """Mean gate weight per expert by style and by intent (where the data names intents)."""
    import torch
    adapter.eval()
    by_style, by_intent = {}, {}
    with torch.no_grad():
        for i in range(0, min(len(examples), limit), 32):
            batch = examples[i:i + 32]
            g = pipe.step([e.request() for e in batch], model=adapter, layouts=False).output.gate_weights
            for e, row in zip(batch, g):
                by_style.setdefault(e.style, []).append(row)
                if e.intent:
                    by_intent.setdefault(e.intent, []).append(row)
    mean = lambda d: {k: torch.stack(v).mean(0).tolist() for k, v in d.items()}  # noqa: E731
    return mean(by_style), mean(by_intent)


def _expert_names(n: int, by_intent: dict) -> list[str]:
    """Name each expert after the intent it serves most, relative to its average use."""
    if not by_intent or n == 1:
        return [f"expert_{i}" for i in range(n)]
    import numpy as np
    intents = sorted(by_intent)
    m = np.array([by_intent[k] for k in intents])  # (n_intents, E)
    lift = m / np.maximum(m.mean(0, keepdims=True), 1e-9)
    names, used = [], {}
    for e in range(n):
        name = intents[int(lift[:, e].argmax())]
        used[name] = used.get(name, 0) + 1
        names.append(name if used[name] == 1 else f"{name}_{used[name]}")
    return names


def _finalize(cfg: Config, out: Path, adapter, pipe, parts, split, history, n_seen, train_s, total_s,
              bf16, lora_params, bb, steps: int, resumed_from: int | None) -> dict:
    """Save the model; metrics' steps count the whole run, the timings and samples this process
    (after a --resume they cover only the part since `resumed_from_step`)."""
    import datetime
    import hashlib
    from seller.bundle import ModelBundle
    by_style, by_intent = _gate_stats(parts["train"], pipe, adapter)
    if adapter.cfg.kind in ("moe", "no-sequence"):
        adapter.expert_names = _expert_names(len(adapter.expert_names), by_intent)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d%H%M")
    digest = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:8]
    version = f"{out.name}-{cfg.adapter.kind}-{stamp}-{digest}"
    ModelBundle(cfg, split, pipe.rec, adapter, item_aspects=pipe.item_aspects).save_pretrained(
        out, model_version=version, llm={"gguf": Path(bb.path).name, "n_embd": bb.n_embd},
        # jointly trained encoders are saved as trained; untouched ones copied byte for byte
        recommender_from=None if cfg.train.next_item_weight > 0 else cfg.train.recommender,
        lora_model=bb.model if lora_params else None)
    ce = history["train_ce"]
    k = max(1, min(10, len(ce) // 4))
    metrics = {
        "model_version": version, "adapter_kind": cfg.adapter.kind,
        "n_train": len(parts["train"]), "n_val": len(parts["val"]), "n_test": len(parts["test"]),
        "steps": steps, "resumed_from_step": resumed_from,
        "train_ce_first": sum(ce[:k]) / k, "train_ce_last": sum(ce[-k:]) / k,
        "val_ce": history["val_ce"], "samples_per_s": n_seen / max(train_s, 1e-9),
        "samples_seen": n_seen, "train_min": train_s / 60, "total_min": total_s / 60,
        "precision": "bf16" if bf16 else "fp32", "device": str(bb.token_embeddings.device),
        "threads": cfg.train.threads,
        "expert_names": adapter.expert_names, "gate_mean_by_style": by_style, "gate_mean_by_intent": by_intent,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


if __name__ == "__main__":  # `torchrun --nproc_per_node 2 -m seller.train --config ...`
    _parser = argparse.ArgumentParser(prog="seller train")
    add_arguments(_parser)
    raise SystemExit(run(_parser.parse_args()))
