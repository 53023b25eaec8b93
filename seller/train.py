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
import contextlib
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
    """One training run to train.out_dir; the saved model's metrics (rank 0; {} on other ranks
    and after `grad_dump`, a test hook that saves the first averaged gradient and stops)."""
    trainer = Trainer(cfg, log)
    if resume:
        trainer.resume()
    trainer.choose_precision()
    if grad_dump:
        trainer.dump_first_gradient(grad_dump)
        return {}
    return trainer.fit()


class Trainer:
    """An explanation-training run in pieces `train` calls in order: building it loads the data
    and the encoders, the frozen LLM (LoRA-wrapped if asked), the adapter and the optimizer;
    then `resume`, `choose_precision`, `fit` (which ends in `save`). `seller bench train` times
    the loss on a trainer's own pipeline; the tests take the checkpoint pieces below."""

    def __init__(self, cfg: Config, log=print):
        import torch
        tc = self.tc = cfg.train
        self.cfg, self.log = cfg, log
        self.d = setup_distributed(tc.device)
        torch.set_num_threads(tc.threads)
        torch.manual_seed(tc.seed)
        self.out = Path(tc.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.checkpoint_path = self.out / "checkpoint.pt"
        self.t_start = time.time()
        self._load_examples()
        self._build_models()
        self._build_optimizer()
        self.step, self.epoch0, self.done_in_epoch, self.resumed_from = 0, 0, 0, None
        self.bf16 = tc.precision == "bf16"  # "auto" is measured by choose_precision

    # -- building -----------------------------------------------------------------------------
    def _load_examples(self) -> None:
        from seller.examples import (build_examples, load_dataset, load_explanations, split_clients,
                                         split_examples)
        from seller.data.sequences import build_sequences
        cfg = self.cfg
        self.dataset = load_dataset(cfg.data)
        self.rec = _recommender(cfg, self.dataset, self.d, self.log)
        self.frame = load_explanations(cfg.data, self.dataset)
        self.examples = build_examples(self.frame, self.dataset, build_sequences(self.dataset), cfg.data.max_samples)
        self.split = split_clients([e.client_id for e in self.examples], cfg.data)
        self.parts = split_examples(self.examples, self.split)
        if not self.parts["train"]:
            raise ValueError(f"no training examples left after holding out clients ({len(self.examples)} rows)")

    def _build_models(self) -> None:
        from seller.adapter.base import AdapterShape
        from seller.prompt import prompt_aspects
        from seller.adapter.io import build_adapter
        from seller.adapter.pipeline import ExplanationPipeline
        from seller.llm.backbone import TorchBackbone
        cfg, rec, device = self.cfg, self.rec, self.d.device
        bb = self.bb = TorchBackbone.from_gguf(cfg.llm.gguf or None)
        shape = AdapterShape(d_item=rec.config.d_model, d_state=rec.config.d_model, n_embd=bb.n_embd,
                             embed_rms=bb.embedding_rms)
        init_ids = bb.tokenizer.encode(INIT_PHRASE)
        init = bb.token_embeddings[[init_ids[i % len(init_ids)] for i in range(cfg.adapter.n_prompts)]].detach()
        self.adapter = build_adapter(cfg.adapter, shape, init, client_ids=self.split["train"], item_ids=rec.item_ids)
        aspects = prompt_aspects(self.frame, self.split["train"], cfg.data.item_aspects)
        self.pipe = ExplanationPipeline(self.dataset, rec, self.adapter, bb.tokenizer, cfg.data, aspects)
        self.lora_params = _maybe_lora(cfg, bb)
        bb.model.to(device)  # in place: the LoRA parameters and token_embeddings are the same tensors
        self.adapter.to(device)
        self.joint = self.tc.next_item_weight > 0  # the encoders train with the adapter
        rec.train(self.joint)
        rec.requires_grad_(self.joint)
        self.trainable = _trainable_modules(self.adapter, bb.model if self.lora_params else None,
                                            rec if self.joint else None)

    def _build_optimizer(self) -> None:
        import torch
        tc, d = self.tc, self.d
        encoders = list(self.rec.parameters()) if self.joint else []
        self.params = list(self.adapter.parameters()) + self.lora_params + encoders
        self.model, self.extra = self.adapter, []
        if d.world > 1:
            from torch.nn.parallel import DistributedDataParallel
            # some parameters sit out a step (the noise gate with gate_noise = 0, unrouted paths):
            # without this DDP silently skips averaging the buckets that hold them
            self.model = DistributedDataParallel(self.adapter, find_unused_parameters=True,
                                                 device_ids=[d.device] if d.device != "cpu" else None)
            self.extra = self.lora_params + encoders  # synced by hand: average_extra_gradients
        self.opt = torch.optim.AdamW(_param_groups(self.params, self.lora_params, tc.weight_decay,
                                                   self.cfg.llm.lora.lr or tc.lr), lr=tc.lr)
        self.steps_per_epoch = max(1, math.ceil(len(self.parts["train"]) / (tc.batch_size * d.world * tc.grad_accum)))
        self.micro_per_epoch = self.steps_per_epoch * tc.grad_accum
        planned = self.steps_per_epoch * tc.epochs
        self.total = min(tc.max_steps, planned) if tc.max_steps else planned
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: lr_factor(s, tc.warmup_steps, self.total, tc.min_lr_ratio))

    def resume(self) -> None:
        """Continue from out_dir/checkpoint.pt when there is one: every trainable module's
        weights, the optimizer, the schedule and where in the epoch the run stood."""
        import torch
        if not self.checkpoint_path.is_file():
            return
        state = torch.load(self.checkpoint_path, weights_only=False)
        _restore_trainable(state, self.checkpoint_path, self.trainable)
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.step, self.epoch0, self.done_in_epoch = state["step"], state["epoch"], state["done_in_epoch"]
        self.resumed_from = self.step
        if self.d.main:
            self.log(f"resumed from {self.checkpoint_path} at step {self.step} (epoch {self.epoch0 + 1})")

    def choose_precision(self) -> None:
        self.bf16 = _choose_precision(self.tc.precision, self._timed_micro, self.log, self.d)

    # -- one micro-batch ----------------------------------------------------------------------------
    def loss(self, batch, bf16: bool):
        """(loss, its terms as floats) of one micro-batch of examples (`bf16`: under bf16 autocast)."""
        import numpy as np
        import torch
        from seller.llm.lm_loss import explanation_loss
        tc, device = self.tc, self.d.device
        st = self.pipe.step([e.request(teacher_forced=True) for e in batch], model=self.model, encoder_grad=self.joint,
                            max_target_tokens=self.cfg.llm.max_target_tokens)
        o, cite_terms = st.output, []
        for b, gold in enumerate(st.gold):
            if gold and o.attention is not None:
                pos = np.flatnonzero(np.isin(st.histories[b].event_ids, gold))
                cite_terms.append(-torch.log(o.attention[b, pos].sum() + 1e-6))
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
            ce = explanation_loss(self.bb, st.layouts, o.soft_prompts).mean()
        cite = torch.stack(cite_terms).mean() if cite_terms else ce.new_zeros(())
        nxt = ce.new_zeros(())
        if self.joint:
            rows = torch.tensor([e.item_row for e in batch], device=device)
            nxt = torch.nn.functional.cross_entropy(st.inputs.summary @ self.rec.item_vectors().to(device).T, rows)
        loss = ce + tc.balance_weight * o.aux_loss + tc.cite_weight * cite + tc.next_item_weight * nxt
        return loss, {k: float(v.detach()) for k, v in (("ce", ce), ("balance", o.aux_loss), ("cite", cite),
                                                         ("next", nxt))}

    def _timed_micro(self, bf16: bool) -> float:
        import torch
        t = time.time()
        loss, _ = self.loss(self.parts["train"][:self.tc.batch_size], bf16)
        loss.backward()
        if torch.cuda.is_initialized():  # CUDA kernels run asynchronously: wait for them
            torch.cuda.synchronize()
        self.opt.zero_grad(set_to_none=True)
        return time.time() - t

    def _micro_batch(self, order, m: int) -> list:
        """This rank's examples of micro-batch `m` of an epoch drawn in `order`."""
        tc, d = self.tc, self.d
        lo = (m * d.world + d.rank) * tc.batch_size
        idx = order[lo:lo + tc.batch_size]
        if len(idx) == 0:
            idx = order[: tc.batch_size]  # a short last round: repeat rows so ranks stay in step
        return [self.parts["train"][i] for i in idx]

    def _is_last_micro(self, m: int) -> bool:
        """Micro-batch `m` completes an optimizer step (gradient accumulation)."""
        return (m + 1) % self.tc.grad_accum == 0 or m + 1 == self.micro_per_epoch

    def _backward(self, batch, last_micro: bool) -> dict:
        """Accumulate one micro-batch's gradient (DDP averages only on a step's last one)."""
        sync = self.model.no_sync() if (self.d.world > 1 and not last_micro) else contextlib.nullcontext()
        with sync:
            loss, terms = self.loss(batch, self.bf16)
            (loss / self.tc.grad_accum).backward()
        return terms

    def average_extra_gradients(self) -> None:
        """DDP syncs the adapter; LoRA and jointly trained encoder gradients are averaged here."""
        import torch.distributed as tdist
        for p in self.extra:
            if p.grad is not None:
                tdist.all_reduce(p.grad)
                p.grad /= self.d.world

    def dump_first_gradient(self, path: str) -> None:
        """Save the adapter's gradient of the first optimizer step, averaged over ranks (the
        DDP test compares it with one process at the whole batch), and end the run."""
        import numpy as np
        import torch
        order = np.random.default_rng(self.tc.seed).permutation(len(self.parts["train"]))  # epoch 1's
        self.adapter.train()
        for m in range(self.micro_per_epoch):
            self._backward(self._micro_batch(order, m), self._is_last_micro(m))
            if self._is_last_micro(m):
                break
        self.average_extra_gradients()
        if self.d.main:
            torch.save({n: p.grad.detach().clone() for n, p in self.adapter.named_parameters()
                        if p.grad is not None}, path)
        _finish(self.d)

    # -- the run ------------------------------------------------------------------------------------
    def fit(self) -> dict:
        """Train to the budget (train.epochs, max_steps, max_minutes), validating, sampling and
        checkpointing after each epoch, then save the model: its metrics (rank 0), {} elsewhere."""
        import numpy as np
        from tqdm import tqdm
        tc, d = self.tc, self.d
        # a resumed run continues its log; a fresh run starts its own (never another run's lines)
        self.log_file = (open(self.out / "train_log.jsonl", "a" if self.resumed_from is not None else "w")
                         if d.main else None)
        self.history = {"train_ce": [], "val_ce": [], "samples": []}
        rng = np.random.default_rng(tc.seed)
        self.n_seen, self.t_loop = 0, time.time()
        self.bar = tqdm(total=self.total * tc.grad_accum, initial=self.step * tc.grad_accum, disable=not d.main,
                        desc="train", unit="batch", dynamic_ncols=True, mininterval=2.0)
        try:
            for epoch in range(tc.epochs):
                order = rng.permutation(len(self.parts["train"]))  # same on every rank: the seed is shared
                if epoch < self.epoch0:
                    continue  # resumed: the permutation is drawn anyway so the data order matches a fresh run
                running, stop = self._epoch(epoch, order)
                if d.main:
                    self._end_of_epoch(epoch, running)
                if stop:
                    break
            self.bar.close()
            metrics = self.save() if d.main else {}
        finally:
            if self.log_file is not None:
                self.log_file.close()
        _finish(d)
        return metrics

    def _epoch(self, epoch: int, order) -> tuple[float, bool]:
        """The epoch's micro-batches from where it stands: (running train CE, stop the run?)."""
        tc = self.tc
        self.adapter.train()
        running, stop = None, False
        for m in range(self.done_in_epoch, self.micro_per_epoch):
            batch = self._micro_batch(order, m)
            terms = self._backward(batch, self._is_last_micro(m))
            self.n_seen += len(batch) * self.d.world
            self.bar.update(1)
            running = terms["ce"] if running is None else 0.9 * running + 0.1 * terms["ce"]
            if not self._is_last_micro(m):
                continue
            self._optimizer_step(epoch, m, terms, running)
            stop = (tc.max_steps and self.step >= tc.max_steps) or \
                (tc.max_minutes and (time.time() - self.t_start) / 60 >= tc.max_minutes)
            stop = _agree(stop, self.d)
            if stop:
                break
        self.done_in_epoch = 0
        return float("nan") if running is None else running, stop

    def _optimizer_step(self, epoch: int, m: int, terms: dict, running: float) -> None:
        import torch
        tc, sched = self.tc, self.sched
        self.average_extra_gradients()
        gnorm = float(torch.nn.utils.clip_grad_norm_(self.params, tc.clip))
        self.opt.step()
        sched.step()
        self.opt.zero_grad(set_to_none=True)
        self.step += 1
        sps = self.n_seen / max(time.time() - self.t_loop, 1e-9)
        self.bar.set_postfix(loss=f"{running:.3f}", sps=f"{sps:.2f}", lr=f"{sched.get_last_lr()[0]:.1e}")
        if not self.d.main:
            return
        self._write_log({"step": self.step, "epoch": epoch + 1, **terms, "grad_norm": gnorm,
                         "lr": sched.get_last_lr()[0], "samples_per_s": sps, "elapsed_s": time.time() - self.t_start})
        self.history["train_ce"].append(terms["ce"])
        if self.step % tc.checkpoint_every == 0:
            self.checkpoint(epoch, m + 1)

    def _end_of_epoch(self, epoch: int, running: float) -> None:
        val = self.validate(self.parts["val"][: self.tc.max_val_samples])
        self.history["val_ce"].append(val)
        gens = self.sample_generations(self.parts["val"])
        self.history["samples"].append(gens)
        self.log(f"epoch {epoch + 1}: train CE {running:.3f}  val CE {val:.3f}  step {self.step}")
        self._write_log({"epoch": epoch + 1, "val_ce": val, "samples": gens})
        self.checkpoint(epoch + 1, 0)

    def _write_log(self, record: dict) -> None:
        self.log_file.write(json.dumps(record) + "\n")
        self.log_file.flush()

    def checkpoint(self, epoch: int, done_in_epoch: int) -> None:
        _checkpoint(self.checkpoint_path, self.trainable, self.opt, self.sched, self.step, epoch, done_in_epoch)

    # -- evaluation and saving ----------------------------------------------------------------------
    def validate(self, examples) -> float:
        """Mean per-example CE on held-out clients, gold citations as in training (teacher forcing)."""
        import torch
        from seller.llm.lm_loss import explanation_loss
        if not examples:
            return float("nan")
        self.adapter.eval()
        total, size = 0.0, self.tc.batch_size
        with torch.no_grad():
            for i in range(0, len(examples), size):
                st = self.pipe.step([e.request(teacher_forced=True) for e in examples[i:i + size]],
                                    model=self.adapter, max_target_tokens=self.cfg.llm.max_target_tokens)
                total += float(explanation_loss(self.bb, st.layouts, st.output.soft_prompts).sum())
        self.adapter.train()
        return total / len(examples)

    def sample_generations(self, examples) -> list[dict]:
        """A few held-out explanations decoded by llama.cpp exactly as serving does; with LoRA
        the backbone's current LoRA weights are served too."""
        import tempfile
        cfg = self.cfg
        n = min(self.tc.n_sample_generations, len(examples))
        if n == 0:
            return []
        if not self.lora_params:
            return _generate_samples(examples, n, self.pipe, self.adapter, cfg, self.log, _serving_llm(cfg))
        from seller.explain import N_CTX
        from seller.llm.lora import write_gguf_lora
        from seller.llm.runtime import SoftPromptLLM
        with tempfile.TemporaryDirectory() as tmp:
            lora = write_gguf_lora(self.bb.model, Path(tmp) / "lora.gguf")
            with SoftPromptLLM(cfg.llm.gguf or None, n_ctx=N_CTX, n_threads=cfg.llm.n_threads, lora=lora,
                               extra_buffers=cfg.llm.extra_buffers) as llm:
                return _generate_samples(examples, n, self.pipe, self.adapter, cfg, self.log, llm)

    def save(self) -> dict:
        """Write the model folder and metrics.json; metrics' steps count the whole run, the
        timings and samples this process (after a resume only the part since `resumed_from_step`)."""
        import datetime
        import hashlib
        from seller.bundle import ModelBundle
        cfg, out, adapter, parts, bb = self.cfg, self.out, self.adapter, self.parts, self.bb
        train_s, total_s = time.time() - self.t_loop, time.time() - self.t_start
        by_style, by_intent = _gate_stats(parts["train"], self.pipe, adapter)
        if adapter.cfg.kind in ("moe", "no-sequence"):
            adapter.expert_names = _expert_names(len(adapter.expert_names), by_intent)
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d%H%M")
        digest = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:8]
        version = f"{out.name}-{cfg.adapter.kind}-{stamp}-{digest}"
        ModelBundle(cfg, self.split, self.rec, adapter, item_aspects=self.pipe.item_aspects).save_pretrained(
            out, model_version=version, llm={"gguf": Path(bb.path).name, "n_embd": bb.n_embd},
            # jointly trained encoders are saved as trained; untouched ones copied byte for byte
            recommender_from=None if self.joint else cfg.train.recommender,
            lora_model=bb.model if self.lora_params else None)
        ce = self.history["train_ce"]
        k = max(1, min(10, len(ce) // 4))
        metrics = {
            "model_version": version, "adapter_kind": cfg.adapter.kind,
            "n_train": len(parts["train"]), "n_val": len(parts["val"]), "n_test": len(parts["test"]),
            "steps": self.step, "resumed_from_step": self.resumed_from,
            "train_ce_first": sum(ce[:k]) / k, "train_ce_last": sum(ce[-k:]) / k,
            "val_ce": self.history["val_ce"], "samples_per_s": self.n_seen / max(train_s, 1e-9),
            "samples_seen": self.n_seen, "train_min": train_s / 60, "total_min": total_s / 60,
            "precision": "bf16" if self.bf16 else "fp32", "device": str(bb.token_embeddings.device),
            "threads": cfg.train.threads,
            "expert_names": adapter.expert_names, "gate_mean_by_style": by_style, "gate_mean_by_intent": by_intent,
        }
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        self.log(f"saved {out}/adapter  ({metrics['samples_per_s']:.2f} samples/s, {metrics['total_min']:.1f} min)")
        return metrics


# -- helpers -------------------------------------------------------------------------------------
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


def _recommender(cfg: Config, dataset, d: Dist, log):
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


def _param_groups(params: list, lora_params: list, weight_decay: float, lora_lr: float) -> list[dict]:
    """AdamW groups: matrices decay, vectors do not; LoRA weights take their own learning rate."""
    lora_ids = {id(p) for p in lora_params}
    groups = []
    for is_lora in (False, True):
        own = [p for p in params if (id(p) in lora_ids) == is_lora]
        extra = {"lr": lora_lr} if is_lora else {}
        groups += [{"params": [p for p in own if p.ndim >= 2], "weight_decay": weight_decay, **extra},
                   {"params": [p for p in own if p.ndim < 2], "weight_decay": 0.0, **extra}]
    return [g for g in groups if g["params"]]


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


_LLM = {}


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


if __name__ == "__main__":  # `torchrun --nproc_per_node 2 -m seller.train --config ...`
    _parser = argparse.ArgumentParser(prog="seller train")
    add_arguments(_parser)
    raise SystemExit(run(_parser.parse_args()))
