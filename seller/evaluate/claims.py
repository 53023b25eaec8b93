"""The claim verifier's figures for `seller evaluate`, the cards a reader sees, and the human
review loop (a blind sheet out, ratings back in).

Per method (results["methods"][name]["claims"]):
- associate_ready_rate: explanations with no failed claim (seller/verify.py), with a 95%
  bootstrap CI over explanations; fallback_rate: the share the app would replace with the
  grounded sentence (seller/fallback.py), i.e. 1 - associate_ready_rate;
- failing_rate[type]: explanations failing at least one claim of that type (CI each), and
  failed_per_explanation[type];
- cards: N_SHOWN random explanations verbatim with their failed claims.
Every explanation is verified on its case's target date ("today" for seasons) against the
client's events before it.

`--review-sheet N` writes review_sheet.csv / .html (N random cards across the methods run, or
those of `--review-methods`, shuffled, no method named) and review_key.csv (card -> method, and
whether the card shows the model's text or the grounded sentence). Each card is what the app
shows (seller.guard) with what a reader needs to check every word of it: the reading day, the
style asked for, the candidate's catalogue facts with its launch day, the facts of each past
piece the text names, the cited event and the client's events (the last READER_EVENTS before the
day and any older one on a day the text names). `--ratings FILE` reads a filled sheet back, joins
it with the key in the same report folder and adds per-method rubric rates to the report, and per
method what the card showed (model / alternative / grounded).
"""
from __future__ import annotations

import csv
import html
from pathlib import Path

import numpy as np
import pandas as pd

from seller.evaluate.utility import bootstrap_ci
from seller.verify import CLAIM_TYPES, MONTHS

N_SHOWN = 20  # cards per method printed verbatim in results.md
RUBRIC = ("right_kind", "facts_true", "coherent", "style_delivered")
VERDICTS = ("usable", "one_fix", "unusable")
SHEET_COLUMNS = ("card_id", "reading_day", "style", "candidate", "pieces_named", "cited_event",
                 "client_events", "text", *RUBRIC, "verdict", "note")
READER_EVENTS = 12  # the client's latest events on a sheet row (older ones only on days the text names)
YES, NO = frozenset({"y", "yes", "1", "true"}), frozenset({"n", "no", "0", "false"})


class RatingsError(ValueError):
    """A ratings file that cannot be read back: names the file, row and column."""


def _day(ts) -> str:
    return f"{ts.day} {MONTHS[ts.month - 1].capitalize()} {ts.year}"


def verify_cards(cases, gens, dataset, guard) -> list[dict]:
    """One card per explanation: what the verifier found in the method's text, and what the
    app would show instead (seller.guard.CardGuard: the text, or the grounded sentence)."""
    items = dataset.items.set_index("item_id")
    events = dataset.events.set_index("event_id") if "event_id" in dataset.events else None
    cards = []
    for case, generated in zip(cases, gens):
        history = dataset.client_history(case.client_id, before=case.target_time)
        for item_id, g in zip(case.candidates, generated):
            shown = guard.shown(g.text, item_id, history, case.style, case.target_time,
                                (g.cited_event_ids or [None])[0], g.alternatives)
            result = shown.raw
            cards.append({
                "case": case.case_id, "client_id": case.client_id, "item_id": item_id,
                "reading_day": case.target_time,
                "style": case.style, "text": g.text, "passed": result.passed,
                "grounded": shown.grounded, "shown_text": shown.text, "shown_passed": shown.checked.passed,
                "chosen": shown.chosen, "n_texts": 1 + len(g.alternatives),
                "failed": [f"{c.type}: \"{c.text}\" ({c.reason})" for c in result.failed],
                "failed_types": sorted({c.type for c in result.failed}),
                "unchecked": [f"{c.type}: \"{c.text}\" ({c.reason})" for c in shown.checked.unchecked],
                "candidate": _facts(items, item_id),
                "cited_event": _cited(events, items, g.cited_event_ids)})
    return cards


def _facts(items: pd.DataFrame, item_id: str) -> str:
    if item_id not in items.index:
        return item_id
    row = items.loc[item_id]
    facts = [str(row[c]) for c in ("subcategory", "maison", "color", "material", "hardware",
                                   "collection") if c in row.index and pd.notna(row[c])]
    launched = pd.to_datetime(row.get("launched_at"), utc=True, errors="coerce")
    facts += [f"launched {_day(launched)}"] if pd.notna(launched) else []
    return f"{row.get('name', item_id)} ({', '.join(facts)})" if facts else str(row.get("name", item_id))


def _cited(events, items, cited_ids) -> str:
    if events is None or not cited_ids or cited_ids[0] not in events.index:
        return ""
    e = events.loc[cited_ids[0]]
    name = items.at[e["item_id"], "name"] if e["item_id"] in items.index else e["item_id"]
    return f"{e['event_type']} {name} on {_day(e['timestamp'])} ({cited_ids[0]})"


def summarise_cards(cards: list[dict], n_bootstrap: int, seed: int) -> dict:
    """The verifier's figures with 95% bootstrap CIs over explanations, and N_SHOWN cards."""
    ready = np.array([c["passed"] for c in cards], dtype=float)
    shown = np.array([c["shown_passed"] for c in cards], dtype=float)
    grounded = np.array([c["grounded"] for c in cards], dtype=float)
    out = {"n": len(cards), "associate_ready_rate": float(ready.mean()),
           "associate_ready_ci": list(bootstrap_ci(ready, n_bootstrap, seed)),
           "as_shown_ready_rate": float(shown.mean()),
           "as_shown_ready_ci": list(bootstrap_ci(shown, n_bootstrap, seed)),
           "fallback_rate": float(grounded.mean()),
           "fallback_ci": list(bootstrap_ci(grounded, n_bootstrap, seed)),
           # as shown: cards holding a claim the verifier could not check (no attribute recorded, ...)
           "unchecked_rate": float(np.mean([bool(c.get("unchecked")) for c in cards])),
           "texts_per_card": max(c.get("n_texts", 1) for c in cards),
           # the model's own text shown, and of those an alternative (not its first text)
           "model_text_shown_rate": float(1 - grounded.mean()),
           "alternative_shown_rate": float(np.mean([bool(c.get("chosen")) for c in cards])),
           "coherence_rules": _rule_counts(cards),
           "failing_rate": {}, "failing_rate_ci": {}, "failed_per_explanation": {}}
    for t in CLAIM_TYPES:
        failing = np.array([t in c["failed_types"] for c in cards], dtype=float)
        out["failing_rate"][t] = float(failing.mean())
        out["failing_rate_ci"][t] = list(bootstrap_ci(failing, n_bootstrap, seed))
        out["failed_per_explanation"][t] = sum(
            f.startswith(t + ":") for c in cards for f in c["failed"]) / len(cards)
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(cards), size=min(N_SHOWN, len(cards)), replace=False)
    out["cards"] = [{k: cards[i].get(k, []) for k in ("case", "item_id", "style", "text", "passed", "failed",
                                                      "grounded", "shown_text", "unchecked")}
                    for i in sorted(picked)]
    return out


def _rule_counts(cards: list[dict]) -> dict[str, int]:
    """Explanations failing each coherence rule (seller.coherence.RULES)."""
    from seller.coherence import RULES
    return {rule: sum(any(f.startswith("coherence: ") and f"({rule}:" in f for f in c["failed"])
                      for c in cards) for rule in RULES}


# ------------------------------------------------------------------ results.md
def _pct(v, ci=None) -> str:
    return f"{v * 100:.1f}" + (f" [{ci[0] * 100:.1f}, {ci[1] * 100:.1f}]" if ci else "")


def claims_markdown(results: dict) -> list[str]:
    methods = {n: m["claims"] for n, m in results["methods"].items() if m.get("claims")}
    if not methods:
        return []
    parts = ["## Claim by claim (seller/verify.py)", "",
             "Associate-ready = an explanation with no failed claim; each failure column is the "
             "share of explanations failing at least one claim of that type; 95% bootstrap CIs "
             "over explanations. Raw = the method's own text; 'as shown' = what the app shows "
             "(seller.guard: the text when every claim passes, else the grounded sentence built "
             "from the same evidence); 'fallback' is the share so replaced. Read on each case's "
             "target date.", "",
             "| method | n | associate-ready % (raw) | as shown % | fallback % | " + " | ".join(CLAIM_TYPES) + " |",
             "|---" * (len(CLAIM_TYPES) + 5) + "|"]
    for name, c in methods.items():
        parts.append(f"| {name} | {c['n']} | {_pct(c['associate_ready_rate'], c['associate_ready_ci'])} | "
                     f"{_pct(c['as_shown_ready_rate'], c['as_shown_ready_ci'])} | "
                     f"{_pct(c['fallback_rate'], c['fallback_ci'])} | " + " | ".join(
                         _pct(c["failing_rate"][t], c["failing_rate_ci"][t]) for t in CLAIM_TYPES) + " |")
    parts.append("")
    unchecked = [f"{name} {_pct(c['unchecked_rate'])}%" for name, c in methods.items() if "unchecked_rate" in c]
    if unchecked:
        parts += ["Could not check: the share of cards, as shown, holding a claim the verifier could "
                  "not check (a colour, material or hardware word on a piece whose catalogue row "
                  "records none, a kind word for a piece without a category, ...): "
                  + ", ".join(unchecked) + ".", ""]
    for name, c in methods.items():
        if c.get("texts_per_card", 1) > 1:
            parts.append(f"- {name}: {c['texts_per_card']} texts decoded per card, the first that passes "
                         f"shown: the model's own text on {_pct(c['model_text_shown_rate'])}% of cards, "
                         f"an alternative (not its first text) on {_pct(c['alternative_shown_rate'])}%.")
        rules = {r: n for r, n in c.get("coherence_rules", {}).items() if n}
        if rules:
            parts.append(f"- {name}: coherence faults (raw texts failing each rule): "
                         + ", ".join(f"{r} {n}" for r, n in rules.items()) + ".")
    parts.append("")
    for name, c in methods.items():
        parts += [f"### {len(c['cards'])} random cards: {name}", ""]
        for card in c["cards"]:
            mark = "ready" if card["passed"] else "FAILS " + "; ".join(card["failed"])
            parts.append(f"- `{card['case'].split('@')[0]} {card['item_id']} {card['style']}` "
                         f"{card['text'] or '(empty)'} — *{mark}*")
            if card["grounded"]:
                parts.append(f"  - shown instead: {card['shown_text']}")
            if card.get("unchecked"):
                parts.append(f"  - could not check: {'; '.join(card['unchecked'])}")
        parts.append("")
    parts += ratings_markdown(results.get("ratings"))
    return parts


def ratings_markdown(ratings: dict | None) -> list[str]:
    if not ratings:
        return []
    cols = ("usable", "usable_or_one_fix", *RUBRIC)
    parts = [f"## Human ratings ({ratings['file']}, {ratings['n_rated']} cards rated blind)", "",
             "| method | n | " + " | ".join(cols) + " |", "|---" * (len(cols) + 2) + "|"]
    for name, r in ratings["methods"].items():
        parts.append(f"| {name} | {r['n']} | " + " | ".join(_pct(r[c], r[c + '_ci']) for c in cols) + " |")
    parts.append("")
    for name, r in ratings["methods"].items():
        for shows, verdicts in r.get("shows", {}).items():
            parts.append(f"- {name}, cards showing the {shows} text: "
                         + ", ".join(f"{v.replace('_', ' ')} {k}" for v, k in verdicts.items()))
    return parts + [""]


# ------------------------------------------------------------------ the review loop
def write_review_sheet(cards_by_method: dict[str, list[dict]], n: int, out_dir, seed: int, dataset,
                       methods: list[str] | None = None) -> list[Path]:
    """N random cards as the app shows them, spread evenly over `methods` (default: every
    method's), shuffled, blind (see module docstring)."""
    if n < 1:
        raise ValueError(f"--review-sheet {n}: expected at least 1 card")
    names = [m for m in (methods or cards_by_method) if cards_by_method.get(m)]
    if not names:
        raise ValueError(f"--review-methods {','.join(methods or [])}: none of these methods ran "
                         f"(ran: {', '.join(cards_by_method)})")
    rng = np.random.default_rng(seed)
    picks = []
    order = {m: list(rng.permutation(len(cards_by_method[m]))) for m in names}
    while len(picks) < n and any(order.values()):
        for m in names:
            if order[m] and len(picks) < n:
                picks.append((m, cards_by_method[m][order[m].pop()]))
    picks = [picks[i] for i in rng.permutation(len(picks))]
    items = dataset.items.set_index("item_id")
    rows = [{"card_id": f"card{j + 1:03d}", **_reader_facts(dataset, items, c),
             **{k: "" for k in (*RUBRIC, "verdict", "note")}} for j, (_, c) in enumerate(picks)]
    key = [{"card_id": r["card_id"], "method": m, "shows": _shows(c), "case": c["case"], "item_id": c["item_id"]}
           for r, (m, c) in zip(rows, picks)]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "review_sheet.csv", out / "review_sheet.html", out / "review_key.csv"]
    _write_csv(paths[0], SHEET_COLUMNS, rows)
    paths[1].write_text(_sheet_html(rows), encoding="utf-8")
    _write_csv(paths[2], ("card_id", "method", "shows", "case", "item_id"), key)
    return paths


def _shows(card: dict) -> str:
    """What the app shows on this card: the model's first text, an alternative, or the grounded sentence."""
    return "grounded" if card["grounded"] else ("alternative" if card.get("chosen") else "model")


def _reader_facts(dataset, items: pd.DataFrame, card: dict) -> dict:
    """A sheet row's facts: everything a strict reader needs to check each word of the card."""
    day, text = card["reading_day"], card["shown_text"]
    history = dataset.client_history(card["client_id"], before=day)
    named_day = history["timestamp"].map(lambda t: _day(t) in text).to_numpy(dtype=bool)
    recent = np.arange(len(history)) >= len(history) - READER_EVENTS
    events = "; ".join(f"{e.event_type} {_name(items, e.item_id)} on {_day(e.timestamp)}"
                       for e in history[named_day | recent].itertuples())
    named = [i for i in dict.fromkeys(history["item_id"]) if _name(items, i).split(" in ")[0] in text]
    return {"reading_day": _day(day), "style": card["style"], "candidate": card["candidate"],
            "pieces_named": "; ".join(_facts(items, i) for i in named), "cited_event": card["cited_event"],
            "client_events": events, "text": text}


def _name(items: pd.DataFrame, item_id: str) -> str:
    return str(items.at[item_id, "name"]) if item_id in items.index and "name" in items else str(item_id)


def _write_csv(path: Path, columns, rows) -> None:
    tmp = path.with_suffix(".csv.tmp")  # whole or not at all
    with tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(columns))
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)


def _sheet_html(rows) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in SHEET_COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in SHEET_COLUMNS)
                   + "</tr>" for r in rows)
    rubric = ("Rate each card as a strict reviewer: right_kind / facts_true / coherent / "
              "style_delivered: yes or no; verdict: usable (say it as it stands), one_fix, "
              "unusable. Fill the CSV and pass it back with --ratings.")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>SELLER review sheet</title>"
            "<style>td,th{border:1px solid #ccc;padding:4px;vertical-align:top}"
            "table{border-collapse:collapse;font:14px sans-serif}</style></head><body>"
            f"<p>{html.escape(rubric)}</p><table><tr>{head}</tr>{body}</table></body></html>")


def read_ratings(path, key_path, n_bootstrap: int = 1000, seed: int = 0) -> dict:
    """A filled review sheet -> per-method rubric rates with CIs. Rows left blank are unrated."""
    path, key_path = Path(path), Path(key_path)
    if not path.is_file():
        raise RatingsError(f"{path}: no such ratings file")
    if not key_path.is_file():
        raise RatingsError(f"{key_path}: no review key beside the report (run --review-sheet first)")
    key = {r["card_id"]: (r["method"], r.get("shows", "")) for r in csv.DictReader(key_path.open(encoding="utf-8"))}
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("card_id", *RUBRIC, "verdict") if c not in (reader.fieldnames or [])]
        if missing:
            raise RatingsError(f"{path}: missing column(s) {', '.join(missing)}")
        rated = []
        for line, row in enumerate(reader, start=2):
            rated += _rating(path, line, row, key)
    if not rated:
        raise RatingsError(f"{path}: no card is rated yet")
    per: dict[str, list[dict]] = {}
    for r in rated:
        per.setdefault(r["method"], []).append(r)
    methods = {}
    for name, rs in per.items():
        values = {"usable": [r["verdict"] == "usable" for r in rs],
                  "usable_or_one_fix": [r["verdict"] != "unusable" for r in rs],
                  **{c: [r[c] for r in rs] for c in RUBRIC}}
        methods[name] = {"n": len(rs)}
        for c, v in values.items():
            methods[name][c] = float(np.mean(v))
            methods[name][c + "_ci"] = list(bootstrap_ci(np.asarray(v, float), n_bootstrap, seed))
        shows = sorted({r["shows"] for r in rs if r["shows"]})
        methods[name]["shows"] = {s: {v: sum(r["shows"] == s and r["verdict"] == v for r in rs) for v in VERDICTS}
                                  for s in shows}
    return {"file": path.name, "n_rated": len(rated), "methods": methods}


def _rating(path, line, row, key) -> list[dict]:
    cells = {c: (row.get(c) or "").strip().lower() for c in (*RUBRIC, "verdict")}
    if not any(cells.values()):
        return []  # not rated yet
    where = f"{path}: row {line} ({row.get('card_id')!r})"
    if row.get("card_id") not in key:
        raise RatingsError(f"{where}: card_id is not in the review key")
    out = dict(zip(("method", "shows"), key[row["card_id"]]))
    for c in RUBRIC:
        if cells[c] not in YES | NO:
            raise RatingsError(f"{where}, column {c}: {cells[c]!r} is not yes/no")
        out[c] = cells[c] in YES
    verdict = cells["verdict"].replace(" ", "_")
    if verdict not in VERDICTS:
        raise RatingsError(f"{where}, column verdict: {cells['verdict']!r} is not one of "
                           f"{', '.join(VERDICTS)}")
    out["verdict"] = verdict
    return [out]


def ratings_into_report(ratings_file, out_dir) -> int:
    """`seller evaluate --ratings FILE --out DIR`: the ratings joined into DIR's report."""
    import json
    import sys

    from seller.evaluate.report import write_report

    out = Path(out_dir)
    results_file = out / "results.json"
    if not results_file.is_file():
        print(f"seller evaluate: {results_file}: no report to add ratings to", file=sys.stderr)
        return 2
    try:
        ratings = read_ratings(ratings_file, out / "review_key.csv")
    except RatingsError as e:
        print(f"seller evaluate: {e}", file=sys.stderr)
        return 2
    results = json.loads(results_file.read_text(encoding="utf-8"))
    results["ratings"] = ratings
    for p in write_report(results, out):
        print(p)
    return 0
