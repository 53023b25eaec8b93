"""Reference explanations mined from a retailer's own history, for training the explainer on a
store that has no explanation texts (`seller references --data STORE --out refs.csv`).

    frame = mine_references(dataset)           # one row per (target, style) with strong evidence
    evidence_summary(frame)                    # references per evidence type and style

Targets: each client's first engagement beyond a view with a piece (a purchase, try-on or
wishlist; the first, so the history is the one a recommendation would have been made on,
and later engagements with the same piece would only restate it), when the client had at
least one earlier event with another piece to cite. Views are left out (browsing, most of a
store's events), returns too (a rejection is no reason to recommend); a store of views only
(MovieLens: a rating is a viewing) has its first views as targets. The history is every
event strictly before the target; nothing after it is used, except co-occurrence, which counts
other clients only.

Each target gets one reference per style for which the history holds strong evidence (seller/
fallback.py, the engine the serving fallback uses too): feature a shared detail, style a taste
line over two pieces or a move between collections, occasion a season, launch or holidays
ahead of the target date, and for pieces with no attributes co-occurrence (other clients who
had a piece of this history went on to the candidate). Weak evidence is dropped: fewer
references rather than empty ones. Every text is checked by seller/verify.py; one that fails
is phrased again (up to PHRASINGS), then dropped and counted (`frame.attrs["rejected"]`; on the
sample every first phrasing passes).

Evidence yield on the sample (1,373 targets): see reports/references/README.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pandas as pd

from seller.fallback import GroundedSentenceBuilder
from seller.verify import ClaimVerifier

STYLES = ("feature", "style", "occasion")
TARGET_TYPES = ("purchase", "try_on", "wishlist")
PHRASINGS = 4  # phrasings tried before a text that fails the verifier is dropped
COLUMNS = ("client_id", "item_id", "target_timestamp", "style", "text", "cited_event_ids",
           "cited_item_ids", "evidence", "target_event_id")


class NothingToMineError(ValueError):
    """The dataset holds no target with evidence for any requested style."""


def mining_targets(dataset, clients=None, max_targets: int | None = None, seed: int = 0) -> pd.DataFrame:
    """The target events (see the module docstring), in (client, time) order; at most
    `max_targets`, drawn at random with `seed`."""
    events = dataset.events
    if clients is not None:
        events = events[events["client_id"].isin(set(map(str, clients)))]
    engaged = events[events["event_type"].isin(TARGET_TYPES)]
    if engaged.empty:  # views only: what they looked at is all the store knows
        engaged = events[events["event_type"] != "return"]
    first = engaged.drop_duplicates(["client_id", "item_id"], keep="first")
    start = events.groupby("client_id")["timestamp"].min()
    targets = first[first["timestamp"] > first["client_id"].map(start)]  # some event strictly before
    if max_targets is not None and len(targets) > max_targets:
        targets = targets.sample(max_targets, random_state=seed).sort_index()
    return targets


def mine_references(dataset, styles=STYLES, clients=None, seed: int = 0,
                    max_targets: int | None = None) -> pd.DataFrame:
    """Reference explanations (COLUMNS) for `dataset`'s targets in `styles`, for `clients`
    (default all), from at most `max_targets` targets (a large store: about 100 a second).
    Raises NothingToMineError naming the counts when no row can be mined."""
    bad = [s for s in styles if s not in STYLES]
    if bad:
        raise ValueError(f"styles: {', '.join(map(repr, bad))} not among {', '.join(STYLES)}")
    if dataset.events.empty:
        raise NothingToMineError(f"dataset {dataset.name!r} has no events to mine references from")
    builder = GroundedSentenceBuilder(dataset.items, dataset.events)
    verifier = ClaimVerifier(dataset.items, follow_ons=builder.follow_ons)  # co-occurrence counts checked
    targets = mining_targets(dataset, clients, max_targets, seed)
    rows, rejected = [], 0
    for t in targets.itertuples(index=False):
        history = dataset.client_history(t.client_id, before=t.timestamp)
        for style in styles:
            found = builder.evidence(t.item_id, history, style, t.timestamp)
            if not found.strong:
                continue
            s = _verified(builder, verifier, found, t, history, seed)
            if s is None:
                rejected += 1
                continue
            rows.append((t.client_id, t.item_id, t.timestamp.isoformat(), style, s.text,
                         ";".join(s.cited_event_ids),
                         ";".join(str(r["item_id"]) for r in found.rows), s.evidence,
                         str(getattr(t, "event_id", ""))))
    if not rows:
        raise NothingToMineError(
            f"dataset {dataset.name!r}: no reference could be mined ({len(dataset.events)} events, "
            f"{len(targets)} target(s): a client's first purchase, try-on or wishlist of a piece "
            f"after an earlier event; none with evidence for {', '.join(styles)})")
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame.attrs.update(targets=len(targets), rejected=rejected)
    return frame


def _verified(builder, verifier, found, target, history, seed: int):
    """The evidence's sentence, in another phrasing when one trips the verifier (a catalogue
    with a film called "This" reads "This ..." as a name), or None when none passes."""
    for attempt in range(PHRASINGS):
        s = builder.sentence(found, target.item_id, history, target.timestamp, seed + 7919 * attempt)
        if verifier.verify(s.text, target.item_id, history, target.timestamp).passed:
            return s
    return None


def evidence_summary(frame: pd.DataFrame) -> dict:
    """References per evidence type, per style, and per both; the targets they came from."""
    both: dict[str, dict[str, int]] = {}
    for (kind, style), n in Counter(zip(frame["evidence"], frame["style"])).most_common():
        both.setdefault(kind, {})[style] = n
    return {"references": len(frame),
            "targets_with_a_reference": int(frame[["client_id", "item_id", "target_timestamp"]]
                                            .drop_duplicates().shape[0]),
            "targets": frame.attrs.get("targets"), "rejected_by_verifier": frame.attrs.get("rejected"),
            "by_style": dict(Counter(frame["style"]).most_common()),
            "by_evidence": dict(Counter(frame["evidence"]).most_common()),
            "by_evidence_and_style": both}


def write_csv(frame: pd.DataFrame, out: Path, force: bool = False) -> None:
    """Write `frame` to `out` atomically (a temporary file beside it, then a rename)."""
    out = Path(out)
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists; pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            frame.to_csv(f, index=False)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as a plain open() would make it, not mkstemp's 0600
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------- `seller references`
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="a store (seller import), a CSV folder, or 'sample'")
    parser.add_argument("--out", required=True, help="CSV to write (refused if it exists)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    parser.add_argument("--styles", default=",".join(STYLES), help="comma-separated styles")
    parser.add_argument("--seed", type=int, default=0, help="phrasing variation (and the targets drawn)")
    parser.add_argument("--max-targets", type=int, default=None,
                        help="mine at most this many targets, drawn at random (large stores)")


def run(args) -> int:
    from seller.data.dataset import load_dataset, load_sample

    out = Path(args.out)
    if out.exists() and not args.force:
        print(f"seller references: {out} exists; pass --force to replace it", file=sys.stderr)
        return 2
    dataset = load_sample() if args.data == "sample" else load_dataset(args.data)
    styles = tuple(s.strip() for s in args.styles.split(",") if s.strip())
    try:
        frame = mine_references(dataset, styles=styles, seed=args.seed, max_targets=args.max_targets)
    except NothingToMineError as e:
        print(f"seller references: {e}", file=sys.stderr)
        return 1
    write_csv(frame, out, force=args.force)
    summary = evidence_summary(frame)
    print(f"{summary['references']} references for {summary['targets_with_a_reference']} of "
          f"{summary['targets']} targets written to {out}")
    for kind, per_style in summary["by_evidence_and_style"].items():
        print(f"  {kind}: " + ", ".join(f"{style} {n}" for style, n in per_style.items()))
    if summary["rejected_by_verifier"]:
        print(f"  {summary['rejected_by_verifier']} texts failed the claim verifier and were left out")
    return 0
