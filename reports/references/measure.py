"""Mine the sample's references and measure them: yield per evidence type and style, the
verifier's pass rate (re-checked here, independently of the miner's own check), and how often a
mined reference cites the same earlier event as the planted ground truth (sample_data/
intents.csv anchor_event_id, for targets that are planted intent events).

    PYTHONPATH=. python reports/references/measure.py      # writes summary.json beside it

It also writes reading/sheet.csv (60 random mined references with the candidate's catalogue
facts, the cited pieces' facts, the client's last 12 events before the target day and every event the text cites, for a
blind rubric reading) and reading/key.csv (each card's evidence type and row).
"""
import json
from pathlib import Path

import pandas as pd

from seller.data.dataset import load_sample
from seller.references import evidence_summary, mine_references
from seller.verify import ClaimVerifier

HERE = Path(__file__).parent
FACTS = ("subcategory", "maison", "color", "material", "hardware", "collection", "season", "launched_at")


def anchor_agreement(frame: pd.DataFrame, intents: pd.DataFrame) -> dict:
    planted = intents.set_index("event_id")["anchor_event_id"].dropna()
    rows = frame[frame["target_event_id"].isin(planted.index)]
    cites = rows["cited_event_ids"].str.split(";")
    main = rows["cited_event_ids"].str.split(";").str[0] == rows["target_event_id"].map(planted)
    anywhere = [a in c for a, c in zip(rows["target_event_id"].map(planted), cites)]
    per_target = rows.assign(main=main.to_numpy()).groupby("target_event_id")["main"].any()
    return {"planted_targets_mined": int(per_target.size),
            "references_on_planted_targets": int(len(rows)),
            "main_cited_event_is_anchor": round(float(main.mean()), 3),
            "anchor_among_cited_events": round(float(pd.Series(anywhere).mean()), 3),
            "targets_with_a_reference_citing_the_anchor": round(float(per_target.mean()), 3),
            "by_style": {s: round(float(g.mean()), 3) for s, g in main.groupby(rows["style"])},
            "by_intent": {k: round(float(g.mean()), 3) for k, g in
                          main.groupby(rows["target_event_id"].map(intents.set_index("event_id")["intent"]))}}


def _facts(items: pd.DataFrame, item_id: str) -> str:
    row = items.loc[item_id]
    values = [str(row[c])[:10] if c == "launched_at" else str(row[c]) for c in FACTS
              if c in row and isinstance(row[c], str) or (c == "launched_at" and pd.notna(row.get(c)))]
    return f"{row['name']} ({', '.join(values)})"


def reading_sheet(dataset, frame: pd.DataFrame, n: int = 60, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    items = dataset.items.set_index("item_id")
    drawn = frame.sample(n, random_state=seed).reset_index()
    sheet, key = [], []
    for k, r in enumerate(drawn.itertuples(), 1):
        day = pd.Timestamp(r.target_timestamp)
        before = dataset.client_history(r.client_id, before=day)
        cited_events = before["event_id"].isin(str(r.cited_event_ids).split(";"))
        # the last 12, and the events the text cites when older: the reader checks every claim
        history = before[cited_events | (pd.Series(range(len(before)), index=before.index) >= len(before) - 12)]
        events = "; ".join(f"{e.event_type} {items.loc[e.item_id, 'name']} on {e.timestamp.day} "
                           f"{e.timestamp:%B %Y}" for e in history.itertuples())
        cited = "; ".join(_facts(items, i) for i in r.cited_item_ids.split(";"))
        sheet.append({"card_id": f"ref{k:02d}", "reading_day": day.date().isoformat(),
                      "style_requested": r.style, "candidate": _facts(items, r.item_id),
                      "cited_pieces": cited, "client_events": events, "text": r.text})
        key.append({"card_id": f"ref{k:02d}", "evidence": r.evidence, "row": r.index})
    return pd.DataFrame(sheet), pd.DataFrame(key)


def main() -> None:
    dataset = load_sample()
    frame = mine_references(dataset)
    verifier = ClaimVerifier(dataset.items)
    passed = sum(verifier.verify(r.text, r.item_id, dataset.client_history(
        r.client_id, before=pd.Timestamp(r.target_timestamp)), r.target_timestamp).passed
        for r in frame.itertuples())
    intents = pd.read_csv("sample_data/intents.csv", dtype=str)
    summary = {**evidence_summary(frame), "verifier_pass_rate": passed / len(frame),
               "anchor_agreement": anchor_agreement(frame, intents)}
    (HERE / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    sheet, key = reading_sheet(dataset, frame)
    (HERE / "reading").mkdir(exist_ok=True)
    sheet.to_csv(HERE / "reading" / "sheet.csv", index=False)
    key.to_csv(HERE / "reading" / "key.csv", index=False)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
