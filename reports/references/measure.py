"""Mine the sample's references and measure them: yield per evidence type and style, the
verifier's pass rate (re-checked here, independently of the miner's own check), and how often a
mined reference cites the same earlier event as the planted ground truth (sample_data/
intents.csv anchor_event_id, for targets that are planted intent events).

    PYTHONPATH=. python reports/references/measure.py      # writes summary.json beside it
"""
import json
from pathlib import Path

import pandas as pd

from seller.data.dataset import load_sample
from seller.references import evidence_summary, mine_references
from seller.verify import ClaimVerifier

HERE = Path(__file__).parent


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
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
