"""Model: what is loaded, on which hardware, and how fast it explains."""
import json
import os
import time

import pandas as pd
import streamlit as st
import torch

from app import auth, services
from seller.paths import REPO_ROOT

scope = auth.scope("model")
st.header("Model", anchor=False)
explainer, rec = services.explainer(), services.recommender()
a, b = st.columns(2)
a.metric("Explanation model", services.model_version(explainer.value) if explainer.value else "not installed")
b.metric("Recommender", type(getattr(rec.value, "recommender", rec.value)).__name__
         if rec.value is not None else "not installed")
for notice in {explainer.notice, rec.notice} - {None}:
    st.info(f":material/info: {notice}")
if explainer.value is not None:
    ex = explainer.value
    adapter = getattr(ex, "adapter", None)
    llm = getattr(ex, "llm", None)
    st.dataframe(pd.DataFrame({"": ["model version", "adapter", "experts", "LLM (GGUF)", "served weights",
                                    "max new tokens"],
                               "value": [services.model_version(ex), type(adapter).__name__,
                                         ", ".join(getattr(adapter, "expert_names", []) or []),
                                         str(getattr(llm, "path", "")), str(getattr(llm, "served_path", "")),
                                         str(getattr(ex, "max_tokens", ""))]}),
                 hide_index=True)

st.subheader("Hardware", anchor=False)
rows = {"CPU cores": os.cpu_count(), "torch threads": torch.get_num_threads(), "torch": torch.__version__,
        "CUDA": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "not available"}
try:
    import llama_cpp

    from seller.llm.buffers import machine_cpu
    rows["llama.cpp GPU offload"] = "supported" if llama_cpp.llama_supports_gpu_offload() else "CPU only"
    rows["llama-cpp-python"] = llama_cpp.__version__
    cpu = machine_cpu()
    rows["CPU"] = cpu["model_name"]
    rows["CPU AMX flags"] = ", ".join(cpu["cpu_amx"]) or "none"
    rows["llama.cpp CPU features"] = ", ".join(cpu["llama_cpp_features"])
except ImportError:
    rows["llama-cpp-python"] = "not installed"
served = getattr(explainer.value, "llm", None)
if served is not None:
    rows["LLM weights in"] = ", ".join(f"{name} {mib:.0f} MiB" for name, mib in served.weight_buffers.items())
    decision = served.buffer_decision
    rows["llama.cpp extra buffer types"] = f"{'on' if decision.use_extra else 'off'} ({decision.setting}: {decision.reason})"
st.dataframe(pd.DataFrame({"": list(rows), "value": [str(v) for v in rows.values()]}), hide_index=True, width=520)

st.subheader("Measured speed", anchor=False)
cache = services.explanation_cache()
with cache.lock:
    latencies = [e.latency_s for e in cache.entries.values() if getattr(e, "latency_s", None) is not None]
    firsts = list(cache.first_chunk_s.values())
if latencies:
    c1, c2, c3 = st.columns(3)
    c1.metric("Explanations generated", len(latencies))
    c2.metric("Median generation time", f"{pd.Series(latencies).median():.2f} s")
    c3.metric("Median time to first words", f"{pd.Series(firsts).median():.2f} s" if firsts else "—")
else:
    st.caption("No explanations generated in this server yet.")

bench = REPO_ROOT / "benchmarks" / "results" / "app_latency.json"
if bench.is_file():
    result = json.loads(bench.read_text())
    st.caption(f"`seller bench app` ({result['model_version']}, {result['threads']} threads, "
               f"{len(result['clients'])} clients): first words {result['first_words_s']['median']:.2f} s, "
               f"all {result['k']} cards {result['all_s']['median']:.2f} s (medians, prompt-lookup "
               f"guesses on; targets "
               f"{result['targets']['first_words_s']} s and {result['targets']['all_s']} s).")

if explainer.value is not None and st.button("Measure now", icon=":material/speed:"):
    client_id = st.session_state.get("client_id") or scope.clients["client_id"].iloc[0]
    style = services.experiment().variants[0]
    model = scope.guard(explainer.value)
    start = time.perf_counter()  # shares the worker with every session, as a card would
    recs = model.recommend(client_id, k=5)
    first = None
    for _ in model.explain(client_id, recs[0].item_id, style, stream=True):
        first = first or time.perf_counter() - start
    total = time.perf_counter() - start
    st.success(f"Client {client_id}: first words after {first or total:.2f} s, whole explanation {total:.2f} s "
               "(recommendation included, not cached).")
