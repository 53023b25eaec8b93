"""`seller fit --data STORE --out models/NAME [--max-minutes M] [--config base.toml]`: a model
for a retailer's own store, from its events alone (no reference texts needed).

    1 check        the store is big enough (counts in the message when it is not)
    2 references   reference explanations mined from the store (seller.references)
    3 recommender  the encoders, trained on every client but the held-out ones; HR@10 on the
                   held-out clients next to popularity
    4 adapter      the explanation adapter, trained within the budget (seller.train)
    5 evaluate     held-out clients: the claim verifier's figures and utility (seller.evaluate)
    6 publish      the finished folder renamed to --out

`--max-minutes` bounds each run of the command: every stage gets its share of what is left when
it starts, and fit.json records the time each one took. Everything is built in a work folder
beside --out (`<out>.fit/`) whose manifest (fit.json) records each finished stage with a digest
of its inputs, so rerunning the same command after an interrupt skips the finished stages and
resumes the adapter from its last checkpoint; a stage whose inputs changed is redone with every
stage after it. --out appears only at the end, whole (the app serves it: SELLER_MODEL=--out).
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

from seller import settings
from seller.config import Config, load_config
from seller.paths import REPO_ROOT, replace_atomically, swap_into_place

BASE_CONFIG = REPO_ROOT / "configs" / "sample.toml"
STAGES = ("check", "references", "recommender", "adapter", "evaluate", "publish")
# share of the remaining budget each stage gets when it starts (check and publish take seconds)
BUDGET_SHARES = {"references": 1.0, "recommender": 2.0, "adapter": 6.0, "evaluate": 1.5}
FIT_VAL_SAMPLES = 16  # validation rows per epoch: a loss to log, not a figure to report
TRAIN_TAIL_SHARE = 0.15  # of the adapter's budget: validation, gate statistics and saving after the last step
CHECKPOINT_EVERY = 25  # optimizer steps between checkpoints at most: an interrupt loses little
MIN_SEQUENCE_CLIENTS = 20  # clients with >= 3 events: 10% held out for testing leaves a couple
MIN_HISTORY = 3  # events that make a sequence worth learning from (SASRec leaves shorter ones whole in train)
MIN_ITEMS = 11  # HR@10 over 10 items or fewer is 1 for any ranking
MIN_REFERENCES = 20
MIN_REFERENCE_CLIENTS = 10  # whole clients are held out: fewer leave nobody to train on
EVAL_SECONDS_PER_CASE = 10.0  # K = 4 LLM explanations and their checks, 2 cores (measured: fit.json)
MANIFEST = "fit.json"
FIT_SUMMARY = "fit.json"  # in the published model folder: stage times and figures
REFERENCES_FILE = "references.csv"
EVALUATION_DIR = "evaluation"


class StoreTooSmall(ValueError):
    """The store cannot train and judge a model; the message gives the counts."""


class OutputExists(Exception):
    """--out exists and --force was not given (or it is not a model folder)."""


# -- the command ---------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="store written by `seller import` (or a folder of "
                                                      "items/clients/events CSV files)")
    parser.add_argument("--out", required=True, help="model folder to write, e.g. models/NAME")
    parser.add_argument("--max-minutes", type=float, default=60.0,
                        help="time budget for this run, split across the stages (default 60)")
    parser.add_argument("--config", default=None,
                        help=f"base training config (default {BASE_CONFIG.relative_to(REPO_ROOT)}); "
                             "fit sets its data, paths and budgets")
    parser.add_argument("--eval-cases", type=int, default=16,
                        help="held-out cases evaluated at most (fewer when the budget is short)")
    parser.add_argument("--force", action="store_true", help="replace an existing model at --out")


def run(args) -> int:
    if args.max_minutes <= 0:
        print(f"seller fit: --max-minutes must be > 0, got {args.max_minutes}", file=sys.stderr)
        return 2
    fit = Fit(Path(args.data), Path(args.out), args.max_minutes, Path(args.config or BASE_CONFIG),
              args.eval_cases, args.force)
    try:
        fit.run()
    except OutputExists as e:
        print(f"seller fit: {e}", file=sys.stderr)
        return 2
    except StoreTooSmall as e:
        print(f"seller fit: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        kept = f"; finished stages are kept in {fit.work}: rerun the same command to resume" if fit.work.exists() else ""
        print(f"\nseller fit: interrupted in {fit.progress.where()}; nothing was written at {args.out}{kept}",
              file=sys.stderr)
        return 130
    except (LookupError, OSError, ValueError) as e:
        if settings.debug():
            raise
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        kept = f"; finished stages are kept in {fit.work}" if fit.work.exists() else ""
        print(f"seller fit: {fit.progress.where()} failed: {message}; nothing was written at "
              f"{args.out}{kept}", file=sys.stderr)
        return 1
    return 0


# -- progress ------------------------------------------------------------------------------------
def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


class Progress:
    """One display for the whole run: `fit [k/N stage  elapsed / budget] message`."""

    def __init__(self, budget_s: float, out=sys.stdout):
        self.budget_s, self.out, self.t0 = budget_s, out, time.time()
        self.index, self.stage = 0, ""

    def elapsed(self) -> float:
        return time.time() - self.t0

    def left(self) -> float:
        return max(0.0, self.budget_s - self.elapsed())

    def start(self, stage: str, what: str) -> None:
        self.index, self.stage = STAGES.index(stage) + 1, stage
        self.log(what)

    def where(self) -> str:
        return f"stage {self.index}/{len(STAGES)} ({self.stage})" if self.stage else "setup"

    def log(self, *parts) -> None:
        head = f"fit [{self.index}/{len(STAGES)} {self.stage}  {_clock(self.elapsed())} / {_clock(self.budget_s)}]"
        print(head, " ".join(str(p) for p in parts), file=self.out, flush=True)


# -- the work folder -----------------------------------------------------------------------------
def digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def store_digest(folder: Path) -> str:
    """The store's identity: its table files' bytes (and a store's manifest)."""
    from seller.data.schema import TABLES
    from seller.paths import sha256_file
    h = hashlib.sha256()
    files = sorted(p for p in folder.iterdir() if p.is_file() and (p.stem in TABLES or p.name == "manifest.json"))
    for p in files:
        h.update(p.name.encode() + b"\0" + sha256_file(p).encode())
    return h.hexdigest()[:16]


class WorkFolder:
    """`<out>.fit/`: finished stages' outputs and fit.json, {stage: {digest, state, seconds, ...}}."""

    def __init__(self, path: Path):
        self.path = path
        self.manifest_path = path / MANIFEST
        self.stages: dict[str, dict] = {}
        if self.manifest_path.is_file():
            try:
                self.stages = json.loads(self.manifest_path.read_text())["stages"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ValueError(f"{self.manifest_path}: not a seller fit manifest ({e}); delete {path} "
                                 "to start over") from None

    def done(self, stage: str, want: str) -> dict | None:
        entry = self.stages.get(stage)
        return entry if entry and entry["digest"] == want and entry["state"] == "done" else None

    def started(self, stage: str, want: str) -> bool:
        entry = self.stages.get(stage)
        return bool(entry) and entry["digest"] == want and entry["state"] == "started"

    def record(self, stage: str, want: str, state: str, seconds: float, **extra) -> None:
        before = self.stages.get(stage, {})
        spent = before.get("seconds", 0.0) if before.get("digest") == want else 0.0
        self.stages[stage] = {"digest": want, "state": state, "seconds": round(spent + seconds, 1), **extra}
        self.path.mkdir(parents=True, exist_ok=True)
        with replace_atomically(self.manifest_path) as tmp:  # an interrupt never leaves half a manifest
            tmp.write_text(json.dumps({"format": "seller-fit", "stages": self.stages}, indent=2))


def work_folder_for(out: Path) -> Path:
    return out.parent / f"{out.name}.fit"


# -- the store check -----------------------------------------------------------------------------
def store_problems(dataset) -> list[str]:
    """What makes the store too small to fit and judge a model, each with its counts."""
    import pandas as pd
    items, events = dataset.items, dataset.events
    problems = []
    if items.empty:
        problems.append("the catalogue is empty (0 items)")
    elif len(items) < MIN_ITEMS:
        problems.append(f"{len(items)} items (need >= {MIN_ITEMS}: HR@10 over fewer says nothing)")
    names = items["name"].astype("string").str.strip() if len(items) else pd.Series([], dtype="string")
    unnamed = items.loc[names.isna() | (names == ""), "item_id"].astype(str).tolist()
    if unnamed:
        problems.append(f"{len(unnamed)} of {len(items)} items have no name (e.g. {', '.join(unnamed[:3])}); "
                        "the explanations name the pieces")
    if events.empty:
        problems.append("no events")
        return problems
    per_client = events.groupby("client_id").size()
    long_enough = int((per_client >= MIN_HISTORY).sum())
    if long_enough < MIN_SEQUENCE_CLIENTS:
        problems.append(f"{long_enough} of {len(per_client)} clients with events have >= {MIN_HISTORY} events "
                        f"(need >= {MIN_SEQUENCE_CLIENTS}; {int((per_client == 1).sum())} have a single event)")
    days = pd.to_datetime(events["timestamp"], utc=True).dt.floor("D")
    if days.nunique() == 1:
        problems.append(f"all {len(events)} events fall on one day ({days.iloc[0].date()}): no time between "
                        "purchases to learn from, no earlier event to cite")
    return problems


def check_store(dataset, where: Path) -> dict:
    counts = {"items": len(dataset.items), "clients": len(dataset.clients), "events": len(dataset.events)}
    problems = store_problems(dataset)
    if problems:
        raise StoreTooSmall(f"{where}: too small to fit a model ({counts['items']} items, {counts['clients']} "
                            f"clients, {counts['events']} events): " + "; ".join(problems))
    return counts


def check_references(frame, styles: list[str], source: Path) -> list[str]:
    """The styles the mined references cover; too few references fail with their counts."""
    n_clients = frame["client_id"].nunique() if len(frame) else 0
    if len(frame) < MIN_REFERENCES or n_clients < MIN_REFERENCE_CLIENTS:
        raise StoreTooSmall(f"{source}: mined {len(frame)} reference explanations for {n_clients} clients "
                            f"(need >= {MIN_REFERENCES} for >= {MIN_REFERENCE_CLIENTS} clients): the store has too "
                            "few clients with earlier events a reason can cite")
    return [s for s in styles if (frame["style"] == s).any()]


# -- the run ---------------------------------------------------------------------------------------
class Fit:
    def __init__(self, data: Path, out: Path, max_minutes: float, config: Path, eval_cases: int = 16,
                 force: bool = False, stream=sys.stdout):
        self.data, self.out, self.config_path = data, out, config
        self.eval_cases, self.force = eval_cases, force
        self.work = work_folder_for(out)
        self.progress = Progress(60 * max_minutes, stream)
        self.timings: dict[str, float] = {}

    def run(self) -> Path:
        from seller.data.dataset import load_dataset
        self._refuse_existing_out()
        cfg = load_config(self.config_path)
        self.progress.start("check", f"reading {self.data}")
        t = time.time()
        dataset = load_dataset(self.data)
        counts = check_store(dataset, self.data)
        self.timings["check"] = time.time() - t
        self.progress.log(f"{counts['items']} items, {counts['clients']} clients, {counts['events']} events: "
                          f"big enough")
        work = WorkFolder(self.work)
        cfg = self._configure(cfg)

        refs_key = digest(store_digest(self.data.resolve()), "references", cfg.data.styles)
        summary = self._stage(work, "references", refs_key, "mining reference explanations from the store",
                              lambda budget: self._references(dataset, cfg))
        cfg.data.styles = summary["styles"]
        split = self._split(dataset, cfg)
        rec_key = digest(refs_key, "recommender", split, _without(cfg.recommender.__dict__, "max_minutes", "threads"))
        rec = self._stage(work, "recommender", rec_key, "training the recommender on all but the held-out clients",
                          lambda budget: self._recommender(dataset, cfg, split, budget))
        adapter_key = digest(rec_key, "adapter", _without_budgets(cfg.to_dict()))
        resume = work.started("adapter", adapter_key)  # an interrupted training of these very inputs
        adapter = self._stage(work, "adapter", adapter_key, "training the explanation adapter",
                              lambda budget: self._adapter(cfg, budget, resume), resumable=True)
        eval_key = digest(adapter_key, "evaluate", self.eval_cases)
        evaluation = self._stage(work, "evaluate", eval_key, "explaining held-out clients' cases",
                                 lambda budget: self._evaluate(dataset, budget))
        self.progress.start("publish", f"writing {self.out}")
        t = time.time()
        self.timings["publish"] = 0.0
        report = {"store": str(self.data.resolve()), "store_counts": counts, "budget_minutes": self.progress.budget_s / 60,
                  "references": summary, "recommender": rec, "adapter": adapter, "evaluation": evaluation}
        self._publish(cfg, work, report, t)
        self.progress.log(f"done in {_clock(self.progress.elapsed())}: serve it with SELLER_DATA={self.data} "
                          f"SELLER_MODEL={self.out}")
        return self.out

    # -- stages ----------------------------------------------------------------------------------
    def _stage(self, work: WorkFolder, stage: str, key: str, what: str, body, resumable: bool = False) -> dict:
        """Run `body(budget_s)` unless this very stage (same inputs) finished before; record it."""
        self.progress.start(stage, what)
        finished = work.done(stage, key)
        if finished:
            self.progress.log(f"done in an earlier run ({finished['seconds']:.0f} s): skipped")
            self.timings[stage] = 0.0
            return finished["summary"]
        budget = self._budget(stage)
        self.progress.log(f"budget {_clock(budget)}")
        if not (resumable and work.started(stage, key)):
            work.record(stage, key, "started", 0.0)
        t = time.time()
        try:
            summary = body(budget)
        except BaseException:
            work.record(stage, key, "started", time.time() - t)
            raise
        self.timings[stage] = time.time() - t
        work.record(stage, key, "done", self.timings[stage], budget_s=round(budget, 1), summary=summary)
        self.progress.log(f"finished in {_clock(self.timings[stage])} (budget {_clock(budget)})")
        return summary

    def _budget(self, stage: str) -> float:
        """This stage's share of the time left, by the shares of the stages not yet run."""
        left = [s for s in BUDGET_SHARES if s not in self.timings]
        return self.progress.left() * BUDGET_SHARES[stage] / sum(BUDGET_SHARES[s] for s in left)

    def _references(self, dataset, cfg: Config) -> dict:
        from seller.references import evidence_summary, mine_references
        frame = mine_references(dataset, styles=tuple(cfg.data.styles), seed=0)
        styles = check_references(frame, cfg.data.styles, self.data)
        dropped = sorted(set(cfg.data.styles) - set(styles))
        if dropped:
            self.progress.log(f"no references in style {', '.join(dropped)}: trained on {', '.join(styles)} only")
        with replace_atomically(self.work / REFERENCES_FILE) as tmp:
            frame.to_csv(tmp, index=False)
        self.progress.log(f"{len(frame)} references for {frame['client_id'].nunique()} clients")
        return {"n": len(frame), "n_clients": int(frame["client_id"].nunique()), "styles": styles,
                "evidence": evidence_summary(frame)}

    def _split(self, dataset, cfg: Config) -> dict[str, list[str]]:
        """The held-out clients exactly as seller.train will hold them out (same rows, same seed)."""
        from seller.examples import build_examples, load_explanations, split_clients
        from seller.data.sequences import build_sequences
        frame = load_explanations(cfg.data, dataset)
        examples = build_examples(frame, dataset, build_sequences(dataset), cfg.data.max_samples)
        return split_clients([e.client_id for e in examples], cfg.data)

    def _recommender(self, dataset, cfg: Config, split: dict, budget_s: float) -> dict:
        from seller.recommend import train_recommender
        rc = dataclasses.replace(cfg.recommender, max_minutes=budget_s / 60)
        train, valid, test = recommender_split(dataset, split)
        self.progress.log(f"{len(train)} training clients; early stopping on {len(split['val'])} validation "
                          f"clients' {len(valid)} events, HR@10 on {len(split['test'])} held-out test clients' "
                          f"{len(test)} events")
        rec = train_recommender(dataset, rc, train=train, valid=valid, log=self.progress.log)
        figures = held_out_figures(rec, dataset, train, test)
        target = Path(cfg.train.recommender)
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        rec.save_pretrained(tmp)
        shutil.rmtree(target, ignore_errors=True)
        os.rename(tmp, target)
        if not figures["n_test"]:
            self.progress.log("no held-out test client has two events: HR@10 not measured")
            return figures
        self.progress.log(f"held-out HR@10 {figures['model']['HR@10']:.3f} vs popularity "
                          f"{figures['popularity']['HR@10']:.3f} (NDCG@10 {figures['model']['NDCG@10']:.3f} vs "
                          f"{figures['popularity']['NDCG@10']:.3f}; {figures['n_test']} events of {figures['n_test_clients']} "
                          "held-out clients)")
        return figures

    def _adapter(self, cfg: Config, budget_s: float, resume: bool) -> dict:
        from seller.train import train
        model_dir = Path(cfg.train.out_dir)
        if not resume:
            shutil.rmtree(model_dir, ignore_errors=True)  # another run's leftovers are not this one's
        cfg.train.max_minutes = max(0.05, budget_s * (1 - TRAIN_TAIL_SHARE) / 60)
        # what train.max_minutes does not stop: the bf16 timing probe, per-epoch validation and
        # sample generations (15 and 35 minutes on a loaded machine); the evaluate stage reads
        # the model instead
        if cfg.train.precision == "auto":
            cfg.train.precision = "fp32"
        cfg.train.n_sample_generations = 0
        cfg.train.max_val_samples = min(cfg.train.max_val_samples, FIT_VAL_SAMPLES)
        resume = resume and (model_dir / "checkpoint.pt").is_file()
        if resume:
            self.progress.log("resuming from the last checkpoint")
        metrics = train(cfg, resume=resume, log=self.progress.log)
        return {k: metrics[k] for k in ("model_version", "n_train", "n_val", "n_test", "steps", "resumed_from_step",
                                        "train_ce_first", "train_ce_last", "val_ce", "samples_per_s", "train_min")}

    def _evaluate(self, dataset, budget_s: float) -> dict:
        from seller.evaluate.runner import evaluate_model
        cases = max(2, min(self.eval_cases, int(budget_s / EVAL_SECONDS_PER_CASE)))
        out = self.work / EVALUATION_DIR
        tmp = self.work / f"{EVALUATION_DIR}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        t = time.time()
        results = evaluate_model(dataset, self.work / "model", tmp, max_cases=cases, log=self.progress.log)
        shutil.rmtree(out, ignore_errors=True)
        os.rename(tmp, out)
        summary = evaluation_summary(results)
        summary["seconds_per_case"] = (time.time() - t) / max(1, results.get("n_cases", cases))
        for name, m in summary["methods"].items():
            self.progress.log(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in m.items() if isinstance(v, float)))
        return summary

    def _publish(self, cfg: Config, work: WorkFolder, report: dict, t0: float) -> None:
        from seller.bundle import CONFIG_FILE, read_config
        model = self.work / "model"
        (model / "checkpoint.pt").unlink(missing_ok=True)  # training state, not part of a model
        shutil.copy2(self.work / REFERENCES_FILE, model / REFERENCES_FILE)
        shutil.rmtree(model / EVALUATION_DIR, ignore_errors=True)
        shutil.copytree(self.work / EVALUATION_DIR, model / EVALUATION_DIR)
        final = read_config(model)
        final.data.explanations = str(self.out.resolve() / REFERENCES_FILE)  # where they live once published
        (model / CONFIG_FILE).write_text(json.dumps(final.to_dict(), indent=2))
        self.timings["publish"] = time.time() - t0
        report["stages"] = {s: {"seconds": round(self.timings.get(s, 0.0), 1),
                                "seconds_all_runs": work.stages.get(s, {}).get("seconds"),
                                "budget_s": work.stages.get(s, {}).get("budget_s")} for s in STAGES}
        report["total_seconds"] = round(self.progress.elapsed(), 1)
        (model / FIT_SUMMARY).write_text(json.dumps(report, indent=2))
        self._refuse_existing_out()  # it may have appeared while we trained
        self.out.parent.mkdir(parents=True, exist_ok=True)
        swap_into_place(model, self.out)
        shutil.rmtree(self.work)
        for stage, s in report["stages"].items():
            self.progress.log(f"{stage}: {s['seconds']:.0f} s this run")

    # -- helpers ---------------------------------------------------------------------------------
    def _refuse_existing_out(self) -> None:
        from seller.bundle import CONFIG_FILE
        if not self.out.exists():
            return
        if not self.force:
            raise OutputExists(f"{self.out} already exists; pass --force to replace it (or choose another --out)")
        if not (self.out / CONFIG_FILE).is_file():
            raise OutputExists(f"{self.out} exists and is not a SELLER model folder (no {CONFIG_FILE}); "
                               "refusing to replace it even with --force")

    def _configure(self, cfg: Config) -> Config:
        """The base config pointed at this store and the work folder."""
        cfg.data.dataset = str(self.data.resolve())
        cfg.data.explanations = str((self.work / REFERENCES_FILE).resolve())
        cfg.train.out_dir = str((self.work / "model").resolve())
        cfg.train.recommender = str((self.work / "recommender").resolve())
        cfg.train.checkpoint_every = min(cfg.train.checkpoint_every, CHECKPOINT_EVERY)
        return cfg


def _without(d: dict, *keys: str) -> dict:
    return {k: v for k, v in d.items() if k not in keys}


def _without_budgets(d: dict) -> dict:
    """A config's digest ignores its time budgets and the paths fit sets: a rerun with another
    --max-minutes resumes, it does not restart."""
    return {section: _without(values, "max_minutes", "dataset", "explanations", "out_dir", "recommender")
            if isinstance(values, dict) else values for section, values in d.items()}


# -- held-out recommender figures ------------------------------------------------------------------
def recommender_split(dataset, split: dict[str, list[str]]):
    """(train sequences, validation targets, test targets): the validation and test clients'
    sequences are never trained on; every event of theirs after the first is a target, predicted
    from the events before it (a few held-out clients still give hundreds of targets)."""
    from seller.data.sequences import Target, build_sequences
    sequences = build_sequences(dataset)
    held = set(split["val"]) | set(split["test"])
    train = {c: s for c, s in sequences.items() if c not in held}

    def targets(ids) -> list[Target]:
        return [Target(c, s[:i], int(s.items[i]), str(s.event_ids[i]), int(s.timestamps[i]))
                for c, s in sequences.items() if c in set(ids) for i in range(1, len(s))]
    return train, targets(split["val"]), targets(split["test"])


def held_out_figures(rec, dataset, train: dict, test: list) -> dict:
    """HR / NDCG @10 of the recommender and of popularity (training clients' event counts) on the
    held-out test targets, full catalogue ranking as `seller bench rec`."""
    import numpy as np
    import torch
    from seller.recommend import evaluate_targets, rank_metrics, segment_index
    if not test:
        return {"n_test": 0, "n_test_clients": 0, "model": None, "popularity": None}
    n_items = len(rec.item_ids)
    counts = np.bincount(np.concatenate([s.items for s in train.values()]), minlength=n_items).astype(np.float32)
    targets = torch.tensor([t.item for t in test])
    popularity = rank_metrics(torch.from_numpy(np.tile(counts, (len(test), 1))), targets, ks=(10,))
    model = evaluate_targets(rec, test, segment_index(dataset, rec.segments), ks=(10,))
    return {"n_test": len(test), "n_test_clients": len({t.client_id for t in test}), "model": model,
            "popularity": popularity}


def evaluation_summary(results: dict) -> dict:
    """The verifier's figures and utility per method, from evaluate_model's results."""
    methods = {}
    for name, m in results.get("methods", {}).items():
        row = {}
        claims = m.get("claims") or {}
        for key in ("associate_ready_rate", "as_shown_ready_rate", "fallback_rate"):
            if key in claims:
                row[key] = claims[key]
        utility = m.get("utility") or {}
        for key in ("rate_with", "lift", "lift_vs_shuffled"):
            if key in utility:
                row[f"utility_{key}"] = utility[key]
        if "text" in m:
            row["rougeL"] = m["text"].get("rougeL")
        methods[name] = row
    return {"n_cases": results.get("n_cases"), "n_clients": results.get("n_clients"), "methods": methods,
            "skipped": results.get("skipped", {})}
