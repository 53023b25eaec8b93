"""Writing an evaluation: results.json (everything), results.md (the main table) and
charts.html (plotly: metric bars with 95% CIs, expert utilisation per style).

`results` is the plain dict `seller.evaluate.runner` assembles:
    {"dataset", "command", "n_cases", "k", "candidates_from", "notes": [...],
     "methods": {name: {"text": {...}, "ci": {metric: [lo, hi]}, "grounding": {...} | None,
                        "utility": {...}, "timing": {...}, "experts": {style: [w...]} | None}},
     "skipped": {name: reason}, "examples": [...]}
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from seller.evaluate.claims import claims_markdown

COLUMNS = [  # (header, section, key, scale, digits)
    ("BLEU-1", "text", "bleu1", 1, 2), ("BLEU-4", "text", "bleu4", 1, 2),
    ("ROUGE-1", "text", "rouge1", 1, 2), ("ROUGE-2", "text", "rouge2", 1, 2),
    ("ROUGE-L", "text", "rougeL", 1, 2), ("MiniLM", "text", "semantic", 1, 3),
    ("USR", "text", "usr", 1, 3), ("DIV", "text", "div", 1, 2), ("FMR", "text", "fmr", 1, 3),
    ("FCR", "text", "fcr", 1, 3), ("len", "text", "length", 1, 1),
    ("rep", "text", "repetition", 1, 3),
    ("vocab. halluc. %", "grounding", "hallucination_rate", 100, 2),
    ("cites past %", "grounding", "history_citation_rate", 100, 1),
    ("ready %", "claims", "associate_ready_rate", 100, 1),
    ("click (with)", "utility", "rate_with", 1, 3),
    ("click (shuffled)", "utility", "rate_shuffled", 1, 3),
    ("lift", "utility", "lift", 1, 3),
]


def _fmt(v, digits: int, scale: float = 1) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v * scale:.{digits}f}"


def markdown_table(results: dict) -> str:
    lines = ["| method | " + " | ".join(c[0] for c in COLUMNS) + " | lift 95% CI | s/expl |",
             "|---" * (len(COLUMNS) + 3) + "|"]
    for name, m in results["methods"].items():
        cells = [_fmt((m.get(sec) or {}).get(key), d, s) for _, sec, key, s, d in COLUMNS]
        ci = (m.get("utility") or {}).get("lift_ci")
        cells.append(f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "–")
        cells.append(_fmt(m["timing"]["s_per_explanation"], 2))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_report(results: dict) -> str:
    parts = [f"# Evaluation: {results['dataset']}", "",
             f"Regenerate: `{results['command']}`", "",
             f"{results['n_cases']} held-out cases (client, target, style) from "
             f"{results['n_clients']} test clients; {results['k']} candidates per case "
             f"({results['candidates_from']}). Text metrics follow PETER's definitions "
             "(ROUGE F-measure x100, corpus BLEU x100; see seller/evaluate/text.py); "
             "'vocab. halluc.' counts catalogue words and months not true of the history or the item "
             "(seller/evaluate/grounding.py; it cannot see an invented name or a wrong verb); "
             "'ready' is the claim verifier's associate-ready rate (seller/verify.py, below); click rates come from "
             "the simulated client (seller/evaluate/utility.py), 'without' = 1/K.", "",
             markdown_table(results), ""]
    if any(m.get("ci") for m in results["methods"].values()):
        parts += ["95% bootstrap CIs over cases:", ""]
        for name, m in results["methods"].items():
            ci = "; ".join(f"{k} [{lo:.2f}, {hi:.2f}]" for k, (lo, hi) in m.get("ci", {}).items())
            parts.append(f"- {name}: {ci}")
        parts.append("")
    styles = sorted({s for m in results["methods"].values()
                     for s in ((m.get("utility") or {}).get("by_style") or {})})
    if styles:
        parts += ["Utility lift by style (95% CI):", "",
                  "| method | " + " | ".join(styles) + " |", "|---" * (len(styles) + 1) + "|"]
        for name, m in results["methods"].items():
            by = (m.get("utility") or {}).get("by_style") or {}
            parts.append(f"| {name} | " + " | ".join(
                f"{by[s]['lift']:.3f} [{by[s]['lift_ci'][0]:.3f}, {by[s]['lift_ci'][1]:.3f}]"
                if s in by else "–" for s in styles) + " |")
        parts.append("")
    invented = {name: (m.get("grounding") or {}).get("hallucinated") for name, m in results["methods"].items()}
    if any(invented.values()):
        parts += ["Invented citations (catalogue values or dates not true of the client's earlier "
                  "events nor of the item; the first 10 per method, all listed in results.json):", ""]
        for name, found in invented.items():
            if found:
                parts.append(f"- {name}: " + "; ".join(
                    f"{h['kind']} \"{h['span']}\" ({h['case'].split('@')[0]}, {h['item_id']})" for h in found[:10]))
        parts.append("")
    parts += claims_markdown(results)
    if results.get("skipped"):
        parts += ["Methods not run:", ""]
        parts += [f"- {n}: {why}" for n, why in results["skipped"].items()] + [""]
    if results.get("notes"):
        parts += ["Notes:", ""] + [f"- {n}" for n in results["notes"]] + [""]
    return "\n".join(parts)


def charts_html(results: dict) -> str:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = list(results["methods"])
    ms = [results["methods"][n] for n in names]
    panels = [("ROUGE-L (PETER)", "text", "rougeL"), ("BLEU-4", "text", "bleu4"),
              ("Utility lift (click rate - 1/K)", "utility", "lift"),
              ("Hallucination rate", "grounding", "hallucination_rate")]
    fig = make_subplots(rows=2, cols=2, subplot_titles=[p[0] for p in panels])
    for i, (_, sec, key) in enumerate(panels):
        ys, lo, hi = [], [], []
        for m in ms:
            v = (m.get(sec) or {}).get(key)
            ys.append(v)
            ci = ((m.get("utility") or {}).get("lift_ci") if key == "lift"
                  else m.get("ci", {}).get(key))
            lo.append(v - ci[0] if ci and v is not None else 0)
            hi.append(ci[1] - v if ci and v is not None else 0)
        fig.add_trace(go.Bar(x=names, y=ys, name=key, showlegend=False,
                             error_y=dict(type="data", array=hi, arrayminus=lo)),
                      row=i // 2 + 1, col=i % 2 + 1)
    fig.update_layout(height=750, title=f"SELLER evaluation: {results['dataset']} "
                                        f"({results['n_cases']} cases, bars = 95% CI)")
    html = [fig.to_html(full_html=False, include_plotlyjs=True)]
    for name, m in results["methods"].items():
        experts = m.get("experts")
        if not experts:
            continue
        ef = go.Figure()
        for style, weights in sorted(experts.items()):
            labels = m.get("expert_names") or [f"expert {j}" for j in range(len(weights))]
            ef.add_trace(go.Bar(x=labels, y=weights, name=style))
        ef.update_layout(barmode="group", height=380, yaxis_title="mean gate weight",
                         title=f"{name}: expert utilisation per style")
        html.append(ef.to_html(full_html=False, include_plotlyjs=False))
    return ("<!doctype html><html><head><meta charset='utf-8'><title>SELLER evaluation"
            "</title></head><body>" + "\n".join(html) + "</body></html>")


def write_report(results: dict, out_dir: str | Path) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.json", out / "results.md", out / "charts.html"]
    paths[0].write_text(json.dumps(results, indent=2, default=float) + "\n", encoding="utf-8")
    paths[1].write_text(markdown_report(results), encoding="utf-8")
    paths[2].write_text(charts_html(results), encoding="utf-8")
    return paths
