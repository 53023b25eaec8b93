"""`seller evaluate --dataset {sample,musical_instruments} --out reports/NAME/`, or a model on its
own store: `seller evaluate --data STORE --model DIR --out reports/NAME/` (`evaluate_model`).

Every method explains the same held-out cases. The test clients are the training config's own
test split (`seller.examples.split_clients` on `configs/<dataset>.toml`), so nothing here is
tuned on, or trained on, a test client. A case is one reference row of a test client: (client,
target time, true item, style, reference text). Its K candidates are the true item plus the
recommender's K-1 best other items for the history before the target (popularity among
non-test clients when no trained recommender exists; the report says which). Each method writes
one explanation per candidate; text metrics use the true item's, grounding uses all, utility
uses all K (see seller/evaluate/utility.py).
"""
from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from seller.evaluate import claims, grounding, text, utility
from seller.evaluate.methods import Case, ExplainerMethod, Generated, TemplateMethod, TextOnlyMethod
from seller.paths import shown_path
from seller.guard import CardGuard

log = logging.getLogger(__name__)

MAX_LISTED_HALLUCINATIONS = 50  # per method, in results.json
BLEU_MAX_RESAMPLES = 300  # corpus BLEU is recomputed per resample: fewer resamples than the other CIs
METHODS = ("template", "fallback", "text-only", "pepler", "seller-no-seq", "seller-dense", "seller")
# Where each trained variant lives under --models (the ADAPTER engineer's layout).
MODEL_SUBDIRS = {"seller": ".", "seller-dense": "dense", "seller-no-seq": "no-sequence",
                 "pepler": "pepler"}
ITEM_FEATURES = ("maison", "category", "subcategory", "color", "material", "hardware",
                 "collection")


@dataclass(frozen=True)
class EvalConfig:
    max_cases: int = 60  # held-out cases per method: 60 x K=4 = 240 explanations per method
    k: int = 4  # candidates per case (utility); the true item + 3 recommended ones
    n_bootstrap: int = 1000  # resamples for every CI
    max_tokens: int | None = None  # PETER's 15-token truncation for review data; None = full
    seed: int = 0  # case sampling, shuffles, bootstrap


# ------------------------------------------------------------------------------ cases
def _candidates_by_recommender(rec, dataset, client_id, target, true_item, k) -> list[str]:
    from seller.recommend import segment_index

    seq = rec.history(client_id)
    n = int(np.searchsorted(seq.timestamps, int(target.timestamp()), side="left"))
    seg = segment_index(dataset, rec.segments).get(client_id, 0)
    scores = rec.score_catalog(seq[:n], seg).numpy()  # what was bought before the target masked
    order = [rec.item_ids[i] for i in np.argsort(-scores, kind="stable")]
    return [i for i in order if i != true_item][:k - 1]


def build_cases(dataset, refs: pd.DataFrame, test_clients: list[str], config: EvalConfig,
                recommender=None, future: int = 3,
                item_words: dict[str, str] | None = None) -> tuple[list[Case], str]:
    """Sample up to `max_cases` reference rows of the test clients (styles in turn) and give
    each its candidates and future profile (`item_words`: see utility.future_profile).
    Returns (cases, where the candidates came from)."""
    rows = refs[refs["client_id"].astype(str).isin(set(test_clients))]
    if rows.empty:
        raise ValueError("no reference explanations for the test clients")
    rng = np.random.default_rng(config.seed)
    rows = rows.iloc[rng.permutation(len(rows))]
    # Round-robin over styles so every style gets its share of the budget.
    rows = rows.assign(_r=rows.groupby("style").cumcount()).sort_values(["_r", "style"], kind="stable")
    rows = rows.head(config.max_cases)
    ev = dataset.events
    pool = ev[~ev["client_id"].isin(set(test_clients))]["item_id"].value_counts().index.tolist()
    pool += [i for i in dataset.items["item_id"] if i not in set(pool)]  # never short of items
    source = "recommender top items" if recommender is not None else (
        "popular items among training clients (no trained recommender found)")
    cases = []
    for r in rows.itertuples(index=False):
        cid, iid, t = str(r.client_id), str(r.item_id), r.target_timestamp
        if recommender is not None:
            others = _candidates_by_recommender(recommender, dataset, cid, t, iid, config.k)
        else:
            others = [i for i in pool if i != iid][:config.k - 1]
        mine = ev[ev["client_id"] == cid]
        fut = list(dict.fromkeys(mine[mine["timestamp"] >= t]["item_id"]))
        fut = [iid] + [i for i in fut if i != iid]
        try:
            profile = utility.future_profile(dataset.items, fut[:future], item_words)
        except KeyError:
            profile = ""
        cases.append(Case(f"{cid}@{t.isoformat()}:{r.style}", cid, r.style, t, iid,
                          str(r.text), tuple([iid] + others), 0, profile))
    return cases, source


# ------------------------------------------------------------------------------ metrics
def score_method(cases: list[Case], gens: list[list[Generated]], dataset, checker,
                 encoder, features: list[list[str]], vocabulary: list[str],
                 config: EvalConfig) -> dict:
    hyps = [g[c.true_index].text for c, g in zip(cases, gens)]
    refs = [c.reference for c in cases]
    tcfg = text.TextMetricsConfig(max_tokens=config.max_tokens)
    out = {"text": text.text_metrics(hyps, refs, features, vocabulary, encoder, tcfg)}
    ht = [text.tokenize(h, config.max_tokens) for h in hyps]
    rt = [text.tokenize(r, config.max_tokens) for r in refs]
    rl = np.array([text.rouge_l_pair(h, r) for h, r in zip(ht, rt)]) * 100
    nb = min(config.n_bootstrap, BLEU_MAX_RESAMPLES)
    out["ci"] = {
        "rougeL": list(utility.bootstrap_ci(rl, config.n_bootstrap, config.seed)),
        "bleu4": list(utility.bootstrap_ci(
            ht, nb, config.seed, statistic=lambda ix: text.bleu([ht[i] for i in ix],
                                                                [rt[i] for i in ix], 4))),
    }
    if checker is not None and checker.vocabulary_size:
        results = [checker.check(c.client_id, item, c.target_time, g.text, g.cited_event_ids)
                   for c, gs in zip(cases, gens) for item, g in zip(c.candidates, gs)]
        out["grounding"] = grounding.summarise(results)
        # what was invented, for a reader to judge (ids only: no client names in reports)
        out["grounding"]["hallucinated"] = [
            {"case": c.case_id, "item_id": item, "kind": h.kind, "span": h.span}
            for (c, item), r in zip(((c, i) for c in cases for i in c.candidates), results)
            for h in r.hallucinations][:MAX_LISTED_HALLUCINATIONS]
        cited = np.array([len(r.citations) for r in results], dtype=float)
        bad = np.array([len(r.hallucinations) for r in results], dtype=float)
        out["ci"]["hallucination_rate"] = list(utility.bootstrap_ci(
            cited, config.n_bootstrap, config.seed,
            statistic=lambda ix: bad[ix].sum() / max(1.0, cited[ix].sum())))
    else:
        out["grounding"] = None
    ucfg = utility.UtilityConfig(k=max(2, config.k), n_bootstrap=config.n_bootstrap,
                                 seed=config.seed)
    choice = [utility.ChoiceCase(c.case_id, c.style, tuple(x.text for x in g), c.true_index,
                                 c.profile) for c, g in zip(cases, gens) if c.profile]
    out["utility"] = (utility.summarise(utility.choice_rates(choice, encoder.encode, ucfg), ucfg)
                      if choice and encoder is not None else None)
    experts: dict[str, list] = {}
    for c, gs in zip(cases, gens):
        for g in gs:
            if g.gate_weights:
                experts.setdefault(c.style, []).append(g.gate_weights)
    out["experts"] = {s: np.mean(w, axis=0).tolist() for s, w in experts.items()} or None
    return out


# ------------------------------------------------------------------------------ the methods
def run_methods(wanted: list[str], dataset, cfg, refs: pd.DataFrame, split: dict, split_source: str,
                rec, config: EvalConfig, threads: int, trained: dict[str, Path], command: str,
                review_data: bool = False, candidates: int | None = None,
                log=print) -> tuple[dict, dict[str, list[dict]]]:
    """Every wanted method explains the same held-out cases; returns (results, the verifier's
    cards per method). `trained`: model folder per trained method (SELLER and its ablations);
    `candidates`: texts decoded per card for them (None: the config's llm.candidates);
    `cfg`: the training Config whose decoding every LLM method shares."""
    from seller.prompt import layout_config, prompt_aspects
    from seller.data.review_explanations import item_aspects

    train_aspects = item_aspects(refs, split["train"]) if review_data else None
    profile_words = {i: " ".join(a[:utility.REVIEW_PROFILE_ASPECTS])
                     for i, a in train_aspects.items() if i} if review_data else None
    cases, source = build_cases(dataset, refs, split["test"], config, rec, item_words=profile_words)
    log(f"evaluate: {len(cases)} cases from {len(split['test'])} test clients, "
        f"K={config.k}, candidates: {source}")

    if review_data:  # PETER: features are the review's aspect words; lexicon = all aspects
        aspects = (refs.drop_duplicates(["client_id", "item_id"])
                   .set_index(["client_id", "item_id"])["aspects"].astype(str))
        features = [aspects.get((c.client_id, c.item_id), "").split(";") for c in cases]
        vocabulary = sorted({a for s in refs["aspects"].astype(str) for a in s.split(";") if a})
        checker = None
    else:
        items = dataset.items.set_index("item_id")
        features = [[str(items.at[c.item_id, f]) for f in ITEM_FEATURES
                     if f in items and pd.notna(items.at[c.item_id, f])] for c in cases]
        vocabulary = sorted({str(v) for f in ITEM_FEATURES if f in items
                             for v in items[f].dropna().unique()})
        checker = grounding.GroundingChecker(dataset.items, dataset.events)
    guard = None if review_data else CardGuard(dataset.items, dataset.events)
    cards_by_method: dict[str, list[dict]] = {}
    encoder = text.SentenceEncoder()

    results = {"dataset": dataset.name, "n_cases": len(cases), "n_clients": len(split["test"]),
               "k": config.k, "candidates_from": source, "methods": {}, "skipped": {},
               "command": command, "notes": [f"test clients from {split_source}"], "examples": []}
    llm = None
    for name in wanted:
        try:
            if name == "template":
                method = TemplateMethod(dataset.items, dataset.events,
                                        {i: a[0] for i, a in train_aspects.items()} if review_data else None)
            elif name == "fallback":
                from seller.evaluate.fallback_method import FallbackMethod
                if review_data:
                    raise ValueError("the grounded sentence needs item attributes")
                method = FallbackMethod(dataset)
            elif name == "text-only":
                from seller.llm.runtime import SoftPromptLLM
                llm = llm or SoftPromptLLM(cfg.llm.gguf or None, n_ctx=4096,
                                           n_threads=threads, n_seq_max=max(4, config.k),
                                           extra_buffers=cfg.llm.extra_buffers)
                # history as text: the config's lines, but at least the method's own 3 when
                # SELLER's prompt leaves the history to its soft prompts
                method = TextOnlyMethod(dataset.items, dataset.events, llm,
                                        max(cfg.data.max_fact_events, TextOnlyMethod.max_facts),
                                        cfg.llm.max_target_tokens, cfg.llm.sampling(),
                                        tuple(cfg.llm.stop),
                                        prompt_aspects(refs, split["train"], cfg.data.item_aspects),
                                        layout_config(cfg.data))
            else:
                path = Path(trained[name]).resolve()
                if not (path / "config.json").exists():
                    results["skipped"][name] = f"no trained model at {shown_path(path)}"
                    continue
                method = ExplainerMethod(path, name, dataset, threads, cfg.llm.sampling(),
                                         tuple(cfg.llm.stop), candidates or cfg.llm.candidates,
                                         cfg.llm.alternative_sampling())
        except (ImportError, TypeError, FileNotFoundError, ValueError) as e:
            results["skipped"][name] = f"{type(e).__name__}: {e}"
            continue
        t0 = time.perf_counter()
        gens = [method.explain(c, c.candidates) for c in cases]
        seconds = time.perf_counter() - t0
        n_expl = sum(len(g) for g in gens)
        scored = score_method(cases, gens, dataset, checker, encoder, features, vocabulary, config)
        scored["timing"] = {"n_explanations": n_expl, "seconds": seconds,
                            "s_per_explanation": seconds / max(1, n_expl),
                            "seconds_with_scoring": time.perf_counter() - t0}
        scored["expert_names"] = getattr(method, "expert_names", None) or None
        if guard is not None:
            cards_by_method[name] = claims.verify_cards(cases, gens, dataset, guard)
            scored["claims"] = claims.summarise_cards(cards_by_method[name], config.n_bootstrap,
                                                      config.seed)
        results["methods"][name] = scored
        results["examples"] += [{"method": name, "case": c.case_id, "reference": c.reference,
                                 "explanation": g[c.true_index].text} for c, g in
                                zip(cases[:3], gens[:3])]
        log(f"evaluate: {name}: {n_expl} explanations in {seconds:.0f}s, ROUGE-L "
            f"{scored['text']['rougeL']:.2f}")
    if llm is not None:
        llm.close()
    return results, cards_by_method


def _config_notes(results: dict, cfg, config_name: str, review_data: bool) -> None:
    """What every reader of the report must know about how the LLM methods were prompted."""
    if cfg.llm.numbers_from_prompt:
        results["notes"].append(f"Every LLM method decodes with {config_name}'s "
                                "llm.numbers_from_prompt: a number is written only if the "
                                "prompt holds it (seller.llm.sampling.NumberGuard).")
    if review_data:
        results["notes"].append(
            "Musical Instruments items have no attributes: grounding does not apply; the "
            "simulated client's profile holds its future items' "
            f"{utility.REVIEW_PROFILE_ASPECTS} most frequent aspects in training clients' "
            "reviews; texts are truncated to 15 tokens as PETER does.")
    if cfg.data.item_aspects:
        results["notes"].append(
            f"Every LLM prompt ({config_name}'s data.item_aspects) names the candidate's "
            f"{cfg.data.item_aspects} most frequent aspects in training clients' reviews, the "
            "same words the template and the simulated client read; a trained model uses the "
            "descriptions saved with it.")
    if cfg.data.system:
        results["notes"].append(f"System turn of every LLM prompt ({config_name}'s data.system): "
                                f"\"{cfg.data.system}\"")


STORE_METHODS = ("template", "fallback", "text-only", "seller")  # what evaluate_model can run


def evaluate_model(dataset, model_dir, out, *, methods=("template", "fallback", "seller"),
                   max_cases: int = 16, k: int = 4, threads: int = 2, log=print) -> dict:
    """Evaluate the model folder `model_dir` (seller train / seller fit) on `dataset`, its
    held-out clients (the folder's split.json) and the references its config names; writes
    `out`/results.json + results.md (+ charts) and returns the results. "seller" is the model
    itself; the other methods run beside it on the same cases."""
    import torch

    from seller.examples import load_explanations, split_clients
    from seller.bundle import RECOMMENDER_DIR, SPLIT_FILE, read_config
    from seller.evaluate.report import write_report
    from seller.recommend import Recommender

    unknown = [m for m in methods if m not in STORE_METHODS]
    if unknown:
        raise ValueError(f"unknown method {unknown[0]!r} (choose from {', '.join(STORE_METHODS)})")
    model_dir = Path(model_dir)
    cfg = read_config(model_dir)  # FileNotFoundError naming the folder and what to run
    torch.set_num_threads(threads)
    refs = load_explanations(cfg.data, dataset)
    split_file = model_dir / SPLIT_FILE
    if split_file.is_file():
        split, split_source = json.loads(split_file.read_text()), shown_path(split_file)
    else:
        split = split_clients(refs["client_id"].astype(str).unique(), cfg.data)
        split_source = f"split_clients(seed {cfg.data.split_seed})"
    rec = Recommender.from_pretrained(model_dir / RECOMMENDER_DIR, dataset)  # names both catalogues
    config = EvalConfig(max_cases=max_cases, k=k)
    data = f" --data {shown_path(dataset.source)}" if dataset.source else ""
    command = (f"seller evaluate{data} --model {shown_path(model_dir)} --out {shown_path(Path(out))} "
               f"--max-cases {max_cases} --k {k} --methods {','.join(methods)}")
    results, _ = run_methods(list(methods), dataset, cfg, refs, split, split_source, rec, config,
                             threads, {"seller": model_dir}, command, log=log)
    if not results["methods"]:
        raise ValueError("no method could run: " + "; ".join(
            f"{name}: {why}" for name, why in results["skipped"].items()))
    _config_notes(results, cfg, shown_path(model_dir / "config.json"), review_data=False)
    write_report(results, out)
    return results


# ------------------------------------------------------------------------------ the command
def add_arguments(parser) -> None:
    parser.add_argument("--dataset", choices=("sample", "musical_instruments"), default="sample",
                        help="a shipped benchmark, evaluated with configs/<dataset>.toml (ignored with --data)")
    parser.add_argument("--data", default=None, metavar="STORE",
                        help="a store (seller import) or CSV folder: evaluate the --model DIR trained on it")
    parser.add_argument("--out", default=None, help="report folder (default reports/<dataset>)")
    parser.add_argument("--config", default=None,
                        help="training config whose test split is evaluated (default configs/<dataset>.toml)")
    parser.add_argument("--models", default=None, help="trained models folder (default: the config's train.out_dir)")
    parser.add_argument("--methods", default=None,
                        help=f"comma-separated subset of {', '.join(METHODS)} (default: all; with "
                             f"--data: template,fallback,seller)")
    parser.add_argument("--model", action="append", default=[], metavar="METHOD=DIR",
                        help="model folder of one trained method (repeatable), e.g. seller-dense=models/x; "
                             "with --data: the model folder itself (--model DIR)")
    parser.add_argument("--max-cases", type=int, default=None,
                        help=f"held-out cases per method (default {EvalConfig.max_cases}; with --data 16)")
    parser.add_argument("--k", type=int, default=EvalConfig.k)
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp / torch threads")
    parser.add_argument("--candidates", type=int, default=None, metavar="N",
                        help="texts decoded per card for the trained methods, the first that passes "
                             "is shown (default: the config's llm.candidates)")
    parser.add_argument("--review-sheet", type=int, default=0, metavar="N",
                        help="also write N random cards as the app shows them, blind, for human rating "
                             "(review_sheet.csv/.html)")
    parser.add_argument("--review-methods", default=None, metavar="METHODS",
                        help="comma-separated methods the review sheet draws from (default: all run)")
    parser.add_argument("--ratings", default=None, metavar="FILE",
                        help="read a filled review sheet back into the report at --out (runs no method)")


def _command(args, methods: list[str]) -> str:
    """The command line that regenerates the report, with every option that changes it."""
    parts = [f"seller evaluate --dataset {args.dataset}",
             f"--out {args.out or 'reports/' + args.dataset}"]
    parts += [f"--{name} {value}" for name, value in (("config", args.config), ("models", args.models))
              if value]
    parts += [f"--max-cases {args.max_cases} --k {args.k} --methods {','.join(methods)}"]
    parts += [f"--model {m}" for m in args.model]
    parts += [f"--candidates {args.candidates}"] if getattr(args, "candidates", None) else []
    parts += [f"--review-sheet {args.review_sheet}"] if getattr(args, "review_sheet", 0) else []
    parts += [f"--review-methods {args.review_methods}"] if getattr(args, "review_methods", None) else []
    return " ".join(parts)


def _repo() -> Path:
    return Path(__file__).resolve().parents[2]


def _run_on_store(args) -> int:
    """`seller evaluate --data STORE --model DIR [--out DIR]`."""
    from seller.data.dataset import load_dataset
    if len(args.model) != 1 or "=" in args.model[0]:
        print("seller evaluate: --data STORE needs one --model DIR (the model folder trained on it)",
              file=sys.stderr)
        return 2
    if not args.out:
        print("seller evaluate: --data STORE needs --out DIR (the report folder)", file=sys.stderr)
        return 2
    methods = [m.strip() for m in (args.methods or "template,fallback,seller").split(",") if m.strip()]
    results = evaluate_model(load_dataset(args.data), args.model[0], args.out, methods=tuple(methods),
                             max_cases=args.max_cases or 16, k=args.k, threads=args.threads,
                             log=lambda m: print(m, file=sys.stderr))
    for name, why in results["skipped"].items():
        print(f"evaluate: {name} not run: {why}", file=sys.stderr)
    print(Path(args.out) / "results.md")
    return 0


def run(args) -> int:
    if args.data:
        return _run_on_store(args)
    args.max_cases = args.max_cases or EvalConfig.max_cases
    wanted = [m.strip() for m in (args.methods or ",".join(METHODS)).split(",") if m.strip()]
    unknown = [m for m in wanted if m not in METHODS]
    if unknown:
        print(f"seller evaluate: unknown method {unknown[0]!r} (choose from {', '.join(METHODS)})",
              file=sys.stderr)
        return 2
    if args.ratings:
        return claims.ratings_into_report(args.ratings, args.out or _repo() / "reports" / args.dataset)
    stray = [m for m in (args.review_methods or "").split(",") if m and m not in wanted]
    if stray:  # checked before any method runs: the sheet is written last
        print(f"seller evaluate: --review-methods {stray[0]!r} is not one of the methods run "
              f"({', '.join(wanted)})", file=sys.stderr)
        return 2
    overrides = dict(m.split("=", 1) for m in args.model if "=" in m)
    bad = [m for m in args.model if "=" not in m] + [k for k in overrides if k not in MODEL_SUBDIRS]
    if bad:
        print(f"seller evaluate: --model {bad[0]!r}: expected METHOD=DIR with METHOD one of "
              f"{', '.join(MODEL_SUBDIRS)}", file=sys.stderr)
        return 2
    import torch

    from seller.examples import load_dataset, load_explanations, split_clients
    from seller.config import load_config

    torch.set_num_threads(args.threads)
    cfg_path = Path(args.config or _repo() / "configs" / f"{args.dataset}.toml")
    cfg = load_config(cfg_path)
    dataset = load_dataset(cfg.data)
    refs = load_explanations(cfg.data, dataset)
    models = Path(args.models or _repo() / cfg.train.out_dir)
    split_file = models / "split.json"
    if split_file.exists():  # the exact clients the shipped model held out
        split = json.loads(split_file.read_text())
        split_source = shown_path(split_file)
    else:
        split = split_clients(refs["client_id"].astype(str).unique(), cfg.data)
        split_source = f"split_clients({cfg_path.name}: seed {cfg.data.split_seed})"
    rec = None
    rec_dir = _repo() / cfg.train.recommender
    if rec_dir.exists():
        from seller.recommend import Recommender
        rec = Recommender.from_pretrained(rec_dir, dataset)
    review_data = args.dataset == "musical_instruments"
    config = EvalConfig(max_cases=args.max_cases, k=args.k, max_tokens=15 if review_data else None)
    candidates = args.candidates or cfg.llm.candidates
    if candidates < 1:
        print(f"seller evaluate: --candidates must be >= 1, got {candidates}", file=sys.stderr)
        return 2
    trained = {name: overrides.get(name) or models / sub for name, sub in MODEL_SUBDIRS.items()}
    results, cards_by_method = run_methods(
        wanted, dataset, cfg, refs, split, split_source, rec, config, args.threads, trained,
        _command(args, wanted), review_data, candidates, log=lambda m: print(m, file=sys.stderr))
    if not results["methods"]:
        print("seller evaluate: no method could run: " + "; ".join(
            f"{k}: {v}" for k, v in results["skipped"].items()), file=sys.stderr)
        return 1
    _config_notes(results, cfg, cfg_path.name, review_data)
    from seller.evaluate.report import write_report
    out = args.out or _repo() / "reports" / args.dataset
    paths = write_report(results, out)
    if args.review_sheet:
        paths += claims.write_review_sheet(cards_by_method, args.review_sheet, out, config.seed, dataset,
                                           args.review_methods.split(",") if args.review_methods else None)
    for p in paths:
        print(p)
    return 0
