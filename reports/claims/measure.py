"""Claim verifier on texts already written: the committed report's example cards, 60 random
sample references, and the template baseline, each read on its case's target date.

    python reports/claims/measure.py > reports/claims/results.md
"""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pandas as pd

from seller.data.dataset import load_sample
from seller.evaluate.methods import Case, TemplateMethod
from seller.evaluate.utility import bootstrap_ci
from seller.fallback import GroundedSentenceBuilder
from seller.verify import CLAIM_TYPES, ClaimVerifier

REPO = Path(__file__).resolve().parents[2]
N_REFERENCES = 60


def line(name, results) -> str:
    ready = [float(r.passed) for r in results]
    lo, hi = bootstrap_ci(ready, 2000, 0)
    fails = {t: sum(any(c.type == t for c in r.failed) for r in results) for t in CLAIM_TYPES}
    return (f"| {name} | {len(results)} | {100 * sum(ready) / len(ready):.1f} [{100 * lo:.1f}, {100 * hi:.1f}] | "
            + " | ".join(str(fails[t]) for t in CLAIM_TYPES) + " |")


def main() -> None:
    ds = load_sample()
    verifier = ClaimVerifier(ds.items)
    refs = pd.read_csv(REPO / "sample_data" / "explanations.csv")
    refs["target_timestamp"] = pd.to_datetime(refs["target_timestamp"], utc=True)
    by_case = {(r.client_id, r.target_timestamp, r.style): r for r in refs.itertuples()}

    def verify(text, client, item, when):
        return verifier.verify(text, item, ds.client_history(client, before=when), when)

    report = json.loads((REPO / "reports" / "sample" / "results.json").read_text())
    per_method: dict[str, list] = {}
    shown = []
    for e in report["examples"]:
        client, rest = e["case"].split("@", 1)
        when, style = pd.Timestamp(rest.rsplit(":", 1)[0]), rest.rsplit(":", 1)[1]
        row = by_case[(client, when, style)]
        r = verify(e["explanation"], client, row.item_id, when)
        per_method.setdefault(e["method"], []).append(r)
        shown.append((e["method"], e["explanation"], r))

    rng = random.Random(0)
    sampled = [refs.iloc[i] for i in rng.sample(range(len(refs)), N_REFERENCES)]
    ref_results = [verify(r.text, r.client_id, r.item_id, r.target_timestamp) for r in sampled]
    template = TemplateMethod(ds.items, ds.events)
    builder = GroundedSentenceBuilder(ds.items)
    template_results, fallback_results, pairs = [], [], []
    for r in sampled:
        case = Case("c", r.client_id, r.style, r.target_timestamp, r.item_id, r.text, (r.item_id,), 0, "")
        t = template.explain(case, [r.item_id])[0].text
        history = ds.client_history(r.client_id, before=r.target_timestamp)
        f = builder.build(r.item_id, history, r.style, r.target_timestamp).text
        template_results.append(verify(t, r.client_id, r.item_id, r.target_timestamp))
        fallback_results.append(verify(f, r.client_id, r.item_id, r.target_timestamp))
        pairs.append((r.style, t, f))

    head = ("| texts | n | associate-ready % [95% CI] | " + " | ".join(f"{t} fails" for t in CLAIM_TYPES)
            + " |\n|---" + "|---" * (len(CLAIM_TYPES) + 2) + "|")
    out = ["# Claim verifier on texts already written", "",
           "Regenerate: `python reports/claims/measure.py > reports/claims/results.md` "
           "(seller/verify.py; each text read on its case's target date against the client's "
           "earlier events; fails = texts failing at least one claim of that type).", "",
           "## The committed report's example cards (reports/sample/results.json, true item of the first 3 cases)",
           "", head]
    out += [line(m, rs) for m, rs in per_method.items()]
    out += ["", f"## {N_REFERENCES} random rows of sample_data/explanations.csv, and the template and "
            "the grounded fallback on the same slots", "", head,
            line("references", ref_results), line("template", template_results),
            line("fallback", fallback_results), "", "## The example cards, claim by claim", ""]
    for method, text, r in shown:
        out.append(f"- {method}: {text} — " + ("**ready**" if r.passed else "fails: " + "; ".join(
            f"{c.type} \"{c.text}\" ({c.reason})" for c in r.failed)))
    out += ["", "## Template and fallback side by side (first 12 slots)", ""]
    for style, t, f in pairs[:12]:
        out += [f"- {style}: template: {t}", f"  fallback: {f}"]
    failed_refs = [(r.text, r.failed) for r in ref_results if not r.passed]
    if failed_refs:
        out += ["", "## References that fail", ""]
        out += [f"- {t} — " + "; ".join(f"{c.type} \"{c.text}\"" for c in fs) for t, fs in failed_refs]
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
