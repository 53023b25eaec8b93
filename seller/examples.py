"""Explanation training data: (client history before t, candidate item, style) -> reference text.

Each row of an explanations table (sample_data/explanations.csv, or review sentences for the
public data) becomes an `ExplanationExample`. The client's history is every event strictly
before the row's `target_timestamp`, so no example ever sees the future it explains. Clients,
not rows, are split into train / val / test, so held-out clients are wholly unseen.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from seller.config import DataConfig
from seller.data.sequences import ClientSequence, holdout_clients

REQUIRED = ("client_id", "item_id", "target_timestamp", "style", "text")


class TrainingDataError(ValueError):
    """Reference explanations are missing, malformed or inconsistent with the dataset."""


@dataclass(frozen=True)
class ExplanationExample:
    client_id: str
    item_id: str
    item_row: int  # row of the candidate in dataset.items
    style: str
    text: str
    target_ts: int  # unix seconds; the history is every event strictly before it
    n_history: int  # how many of the client's sequence events come before target_ts
    cited_event_ids: tuple[str, ...] = ()
    intent: str = ""  # the sample data's planted intent, used only to name experts

    def request(self, teacher_forced: bool = False):
        """This row for the explanation step: its history before `target_ts`; teacher-forced,
        with the reference and the events it cites (training and validation losses)."""
        from seller.adapter.pipeline import StepRequest
        if not teacher_forced:
            return StepRequest(self.client_id, self.item_id, self.style, self.target_ts)
        return StepRequest(self.client_id, self.item_id, self.style, self.target_ts, self.text, self.cited_event_ids)


def load_dataset(cfg: DataConfig):
    """The configured dataset (`sample`, `musical_instruments`, or a store / CSV directory)."""
    if cfg.dataset == "sample":
        from seller.data.dataset import load_sample
        return load_sample()
    if cfg.dataset == "musical_instruments":
        from seller.data.public import load_musical_instruments
        return load_musical_instruments()
    from seller.data.dataset import load_dataset as load
    return load(cfg.dataset)


def load_explanations(cfg: DataConfig, dataset) -> pd.DataFrame:
    """The reference explanations, validated against the dataset and filtered to `cfg.styles`:
    a CSV file, "reviews" (review sentences) or "mined" (seller.references, from `dataset`)."""
    if cfg.explanations == "reviews":
        from seller.data.review_explanations import extract_reference_explanations, load_reviews
        frame, source = extract_reference_explanations(load_reviews()), "review sentences"
    elif cfg.explanations == "mined":
        from seller.references import NothingToMineError, mine_references
        try:  # mined from the dataset's own history (seller/references.py)
            frame, source = mine_references(dataset, styles=tuple(cfg.styles)), "mined references"
        except NothingToMineError as e:
            raise TrainingDataError(f"data.explanations = \"mined\": {e}") from e
    else:
        path = Path(cfg.explanations)
        if not path.is_file():
            raise TrainingDataError(f"data.explanations: file not found: {path}")
        frame, source = pd.read_csv(path, dtype={"client_id": str, "item_id": str}), str(path)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise TrainingDataError(f"{source}: missing column(s) {', '.join(missing)} (need {', '.join(REQUIRED)})")
    frame = frame.dropna(subset=["text"])
    frame = frame[frame["text"].astype(str).str.strip() != ""]
    for style in cfg.styles:
        if not (frame["style"] == style).any():
            found = ", ".join(sorted(frame["style"].dropna().unique())) or "none"
            raise TrainingDataError(f"{source}: no reference explanations for style {style!r} "
                                    f"(styles present: {found}); drop it from data.styles or add rows")
    frame = frame[frame["style"].isin(cfg.styles)].reset_index(drop=True)
    known_items = set(dataset.items["item_id"].astype(str))
    bad = ~frame["item_id"].astype(str).isin(known_items)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise TrainingDataError(f"{source}: row {row + 2}: item_id {frame['item_id'][row]!r} is not in the catalog "
                                f"of dataset {dataset.name!r}")
    ts = pd.to_datetime(frame["target_timestamp"], utc=True, errors="coerce")
    if ts.isna().any():
        row = int(np.flatnonzero(ts.isna())[0])
        raise TrainingDataError(f"{source}: row {row + 2}: target_timestamp "
                                f"{frame['target_timestamp'][row]!r} is not a date-time")
    return frame.assign(target_timestamp=ts)


def build_examples(frame: pd.DataFrame, dataset, sequences: dict[str, ClientSequence],
                   max_samples: int = 0) -> list[ExplanationExample]:
    item_row = pd.Index(dataset.items["item_id"].astype(str))
    seconds = ((frame["target_timestamp"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy()
    cited = frame["cited_event_ids"] if "cited_event_ids" in frame else pd.Series([""] * len(frame))
    intents = frame["intent"].fillna("").astype(str) if "intent" in frame else pd.Series([""] * len(frame))
    out = []
    for cid, iid, style, text, t, c, intent in zip(frame["client_id"].astype(str), frame["item_id"].astype(str),
                                                   frame["style"], frame["text"], seconds, cited, intents):
        seq = sequences.get(cid)
        n = int(np.searchsorted(seq.timestamps, t, side="left")) if seq is not None else 0
        ids = tuple(x for x in str(c).replace(",", ";").split(";") if x.strip() and x != "nan") if c == c else ()
        out.append(ExplanationExample(cid, iid, int(item_row.get_loc(iid)), style, str(text).strip(), int(t), n,
                                      tuple(x.strip() for x in ids), intent))
    if max_samples:
        rng = np.random.default_rng(0)
        keep = sorted(rng.choice(len(out), size=min(max_samples, len(out)), replace=False))
        out = [out[i] for i in keep]
    return out


def split_clients(client_ids, cfg: DataConfig) -> dict[str, list[str]]:
    """Whole clients into train / val / test; a pure function of the ids and `cfg.split_seed`."""
    ids = sorted(set(map(str, client_ids)))
    rest, test = holdout_clients(ids, cfg.test_clients, seed=cfg.split_seed)
    val_share = cfg.val_clients / (1.0 - cfg.test_clients)
    train, val = holdout_clients(rest, val_share, seed=cfg.split_seed + 1)
    return {"train": train, "val": val, "test": test}


def split_examples(examples: list[ExplanationExample], split: dict[str, list[str]]) -> dict[str, list[ExplanationExample]]:
    where = {c: name for name, ids in split.items() for c in ids}
    out = {name: [] for name in split}
    for ex in examples:
        out[where[ex.client_id]].append(ex)
    return out
