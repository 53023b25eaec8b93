"""Protocol check for `seller bench rec --dataset beauty`: RecBole's SASRec (CE loss), same file.

Issue 3 validates our protocol against a published SASRec-CE figure (HR@10 0.0533, NDCG@10
0.0327); our ID-only SASRec-CE lands well above it. This script trains an independent, widely
used implementation, RecBole 1.2.1's SASRec with `loss_type = "CE"`, on the same
`amazon_beauty/sequential.txt` under the same protocol (last event test, second-to-last valid,
the rest trains; full ranking over all items; history not masked) and the same model size
(64-d, 2 layers, 2 heads, dropout 0.5, 50 events), and writes its figures beside ours. If our
split or metrics were off (a leak, a mis-ranked target), the two implementations would part.

RecBole is not a SELLER dependency; give it its own virtual environment:
    python -m venv /tmp/recbole && . /tmp/recbole/bin/activate
    pip install torch==2.13.0 && pip install --no-deps recbole==1.2.1
    pip install numpy scipy pandas tqdm colorlog==4.7.2 colorama==0.4.4 scikit-learn pyyaml \
        tensorboard thop tabulate plotly texttable psutil
    python benchmarks/recbole_reference.py --data ../shared/data/amazon_beauty \
        --out benchmarks/results/rec_beauty_recbole.json --max-minutes 6
It uses a GPU when torch sees one. The committed result is that command on one H200 (21
epochs in 6 minutes, validation flat from epoch 10); on 2 CPU cores it is far slower.
"""
import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

# RecBole 1.2.1 predates NumPy 2: it aliases np.float_ & co. on start-up. Give it the old names.
for _old, _new in {"float_": np.float64, "complex_": np.complex128, "unicode_": np.str_}.items():
    if _old not in np.__dict__:
        setattr(np, _old, _new)

import torch  # noqa: E402
from recbole.config import Config  # noqa: E402
from recbole.data import create_dataset, data_preparation  # noqa: E402
from recbole.model.sequential_recommender import SASRec  # noqa: E402
from recbole.trainer import Trainer  # noqa: E402
from recbole.utils import init_seed  # noqa: E402

PROTOCOL = ("leave-one-out (last event test, second-to-last valid), full ranking over all "
            "items, history not masked")
PUBLISHED = {"HR@10": 0.0533, "NDCG@10": 0.0327}  # ../shared/data/README.md


class OutOfTime(Exception):
    pass


class BudgetTrainer(Trainer):
    """RecBole's Trainer with a wall-clock budget and one line per epoch. Past the budget it
    stops before the next epoch; the best checkpoint saved so far is the one tested."""

    def __init__(self, config, model, max_minutes: float):
        super().__init__(config, model)
        self.deadline = time.time() + 60 * max_minutes
        self.epochs_run = 0

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        if time.time() > self.deadline:
            raise OutOfTime
        self.epochs_run = epoch_idx + 1
        return super()._train_epoch(train_data, epoch_idx, loss_func, show_progress)

    def _valid_epoch(self, valid_data, show_progress=False):
        score, result = super()._valid_epoch(valid_data, show_progress)
        print(f"epoch {self.epochs_run}: valid NDCG@10 {score:.5f}", flush=True)
        return score, result


def write_atomic(sequential_txt: Path, folder: Path) -> int:
    """sequential.txt (`user item item ...`, time order) -> RecBole's beauty.inter; the position
    in the line is the timestamp, so RecBole's time ordering is the file's order."""
    folder.mkdir(parents=True)
    n = 0
    with open(sequential_txt, encoding="utf-8") as f, \
            open(folder / "beauty.inter", "w", encoding="utf-8") as out:
        out.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for line_no, line in enumerate(f, 1):
            user, *items = line.split()
            if not items:
                raise ValueError(f"{sequential_txt}, line {line_no}: a user with no items")
            for pos, item in enumerate(items):
                out.write(f"{user}\t{item}\t{pos}\n")
                n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="folder holding sequential.txt")
    ap.add_argument("--out", type=Path, required=True, help="JSON to write (and .md beside it)")
    ap.add_argument("--ours", type=Path, default=Path("benchmarks/results/rec_beauty.json"),
                    help="our benchmark's JSON, quoted beside RecBole's figures")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-minutes", type=float, default=60.0,
                    help="training budget; the best epoch so far is tested when it runs out")
    args = ap.parse_args()
    source = args.data / "sequential.txt"
    if not source.is_file():
        raise SystemExit(f"{source} not found (the public Beauty data, "
                         "see ../shared/data/README.md)")

    args.out, args.ours, source = args.out.resolve(), args.ours.resolve(), source.resolve()
    work = Path(tempfile.mkdtemp(prefix="recbole_beauty_"))
    os.chdir(work)  # RecBole writes its tensorboard logs into the working directory
    n_events = write_atomic(source, work / "beauty")
    settings = {
        "data_path": str(work), "checkpoint_dir": str(work / "saved"), "seed": args.seed,
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": 50, "hidden_size": 64, "inner_size": 256, "n_layers": 2,
        "n_heads": 2, "hidden_dropout_prob": 0.5, "attn_dropout_prob": 0.5, "loss_type": "CE",
        "train_neg_sample_args": None, "learning_rate": 0.001, "train_batch_size": 256,
        "epochs": args.epochs, "stopping_step": 10, "eval_step": 1,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full",
                      "group_by": "user"},
        "metrics": ["Hit", "NDCG"], "topk": [5, 10, 20], "valid_metric": "NDCG@10",
        "metric_decimal_place": 5, "eval_batch_size": 4096, "show_progress": False,
        "use_gpu": torch.cuda.is_available(), "reproducibility": True,
    }
    config = Config(model="SASRec", dataset="beauty", config_dict=settings)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    model = SASRec(config, train.dataset).to(config["device"])
    trainer = BudgetTrainer(config, model, args.max_minutes)
    t0 = time.time()
    try:
        trainer.fit(train, valid, saved=True, show_progress=False)
        stopped = ("early stopping (10 epochs without a better valid NDCG@10)"
                   if trainer.epochs_run < args.epochs else f"the {args.epochs}-epoch cap")
    except OutOfTime:
        stopped = f"the {args.max_minutes}-minute budget"
    train_s = time.time() - t0
    # torch >= 2.6 loads weights only by default; RecBole's checkpoint also pickles its config
    best = torch.load(trainer.saved_model_file, map_location=config["device"], weights_only=False)
    model.load_state_dict(best["state_dict"])
    model.load_other_parameter(best.get("other_parameter"))
    result = trainer.evaluate(test, load_best_model=False, show_progress=False)
    run = {k.replace("hit", "HR").replace("ndcg", "NDCG"): round(float(v), 5)
           for k, v in result.items()}
    run.update(train_s=round(train_s, 1), best_epoch=int(best["epoch"]) + 1,  # RecBole counts 0..
               epochs_run=trainer.epochs_run, stopped_by=stopped)
    run["valid_NDCG@10"] = round(float(best["best_valid_score"]), 5)
    local = ("data_path", "checkpoint_dir")

    out = {"dataset": "beauty", "protocol": PROTOCOL,
           "implementation": "RecBole 1.2.1 SASRec, loss_type CE (full softmax over all items)",
           "n_users": int(dataset.user_num - 1), "n_items": int(dataset.item_num - 1),
           "n_events": n_events, "device": str(config["device"]),
           "settings": {k: v for k, v in settings.items() if k not in local},
           "models": {"recbole-sasrec-ce": run},
           "published_sasrec_ce": PUBLISHED}
    if args.ours.is_file():
        ours = json.loads(args.ours.read_text())["models"]
        out["ours"] = {m: {k: ours[m][k] for k in ("HR@10", "NDCG@10")}
                       for m in ("sasrec-ce-id", "ours") if m in ours}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(out))
    print(markdown(out))


def markdown(out: dict) -> str:
    ref = out["models"]["recbole-sasrec-ce"]
    rows = [("RecBole SASRec-CE (this run)", ref["HR@10"], ref["NDCG@10"]),
            ("published SASRec-CE", out["published_sasrec_ce"]["HR@10"],
             out["published_sasrec_ce"]["NDCG@10"])]
    rows += [(f"SELLER bench: {m}", v["HR@10"], v["NDCG@10"])
             for m, v in out.get("ours", {}).items()]
    lines = ["# Protocol check on Beauty: RecBole's SASRec-CE on the same data", "",
             f"{out['protocol']}; {out['n_users']} users, {out['n_items']} items, "
             f"{out['n_events']} events; {out['implementation']}; trained {ref['train_s']} s on "
             f"{out['device']}, {ref['epochs_run']} epochs, stopped by {ref['stopped_by']}; "
             f"tested at the best epoch by valid NDCG@10, {ref['best_epoch']}.", "",
             "| run | HR@10 | NDCG@10 | HR@10 vs RecBole | NDCG@10 vs RecBole |",
             "|---|---|---|---|---|"]
    for name, hr, ndcg in rows:
        lines.append(f"| {name} | {hr} | {ndcg} | {hr / ref['HR@10'] - 1:+.1%} | "
                     f"{ndcg / ref['NDCG@10'] - 1:+.1%} |")
    lines += ["", "All RecBole figures: " + json.dumps({k: v for k, v in ref.items()})]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
