"""The side-by-side table of SELLER with N texts per card (n1/, n4/, n8/ results.json from
`seller evaluate ... --candidates N`) and the bench app runs (app_latency_n*.json).

    python reports/claims/coherence-16/summarise.py > reports/claims/coherence-16/candidates.md
"""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def pct(v, ci=None) -> str:
    return f"{100 * v:.1f}" + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")


def main() -> None:
    print("| texts per card | raw associate-ready % (first text) | model text shown % | of which an alternative % "
          "| fallback % | as shown passing % | decode s per card (shared CPU) |\n|---|---|---|---|---|---|---|")
    for run in sorted(HERE.glob("n*/results.json"), key=lambda p: int(p.parent.name[1:])):
        m = json.loads(run.read_text())["methods"]["seller"]
        c = m["claims"]
        print(f"| {c['texts_per_card']} | {pct(c['associate_ready_rate'], c['associate_ready_ci'])} | "
              f"{pct(c['model_text_shown_rate'])} | {pct(c['alternative_shown_rate'])} | "
              f"{pct(c['fallback_rate'], c['fallback_ci'])} | {pct(c['as_shown_ready_rate'])} | "
              f"{m['timing']['s_per_explanation']:.2f} |")
    print("\nCoherence faults of the first texts (explanations failing each rule), and texts failing "
          "each claim type:\n")
    first = json.loads((HERE / "n1" / "results.json").read_text())["methods"]["seller"]["claims"]
    print(", ".join(f"{r} {n}" for r, n in first["coherence_rules"].items()) + "\n")
    print(", ".join(f"{t} {pct(v)}%" for t, v in first["failing_rate"].items()) + "\n")
    print("| bench app run | texts per card | five checked cards median / p90 (s) | first card median (s) | "
          "load average at the end |\n|---|---|---|---|---|")
    for run in sorted(HERE.glob("app_latency_n*.json")):
        r = json.loads(run.read_text())
        print(f"| {run.name} | {r.get('candidates', 1)} | {r['all_s']['median']:.2f} / {r['all_s']['p90']:.2f} | "
              f"{r['first_words_s']['median']:.2f} | {', '.join(f'{x:.1f}' for x in r['machine']['load_average_end'])} |")


if __name__ == "__main__":
    main()
