"""The cards the app serves on a reading day after the sample's histories end (1 December 2026):
every test client x its 5 recommendations x 3 styles, through Explainer.explain_many as the
Clienteling page calls it (guard on, alternatives on demand). Writes served_today.json and .md.

    PYTHONPATH=. python reports/claims/lora-32/served_today.py
"""
import json
from datetime import date
from pathlib import Path

from seller.explain import Explainer

HERE, DAY, MODEL = Path(__file__).parent, date(2026, 12, 1), "models/sample"


def main() -> None:
    ex = Explainer.from_pretrained(MODEL)
    cards = []
    try:
        for cid in json.loads(Path(MODEL, "split.json").read_text())["test"]:
            recs = [r.item_id for r in ex.recommend(cid, k=5)]
            for style in ("feature", "style", "occasion"):
                for item, e in zip(recs, ex.explain_many(cid, recs, style, today=DAY)):
                    cards.append({"client_id": cid, "item_id": item, "style": style, "text": e.text,
                                  "shows": "grounded" if e.grounded else ("alternative" if e.candidate else "model"),
                                  "failed_claims": e.failed_claims})
    finally:
        ex.close()
    (HERE / "served_today.json").write_text(json.dumps(cards, indent=1, ensure_ascii=False))
    n = len(cards)
    count = {s: sum(c["shows"] == s for c in cards) for s in ("model", "alternative", "grounded")}
    lines = [f"# Cards served on {DAY.isoformat()} ({ex.model_version}, {n} cards)", "",
             "| shows | cards | share |", "|---|---|---|"]
    lines += [f"| {s} | {k} | {k / n:.1%} |" for s, k in count.items()]
    lines += ["", "Every card not the model's first text:", ""]
    lines += [f"- `{c['client_id']} {c['item_id']} {c['style']}` ({c['shows']}) {c['text']} — first text failed: "
              f"{'; '.join(c['failed_claims'][:2])}" for c in cards if c["shows"] != "model"]
    (HERE / "served_today.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
