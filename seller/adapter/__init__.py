"""The adapter: (client history, candidate item, style) -> soft prompts for a frozen LLM.

    fusion.py    CandidateHistoryFusion: the item attends over per-event states (+ summary, style)
    moe.py       MoEAdapter (top-k gated bottleneck experts), DenseAdapter (the "without MoE" ablation)
    pepler.py    PEPLERAdapter: user-ID + item-ID soft prompts (baseline)
    base.py      AdapterShape, AdapterInputs, AdapterOutput (soft_prompts (B,P,n_embd), gate_weights (B,E),
                 attention (B,T), aux_loss), rms_match
    io.py        build_adapter(cfg, shape), save_pretrained(adapter, dir), from_pretrained(dir, n_embd=...)
    pipeline.py  ExplanationPipeline: encoders -> AdapterInputs, attention -> cited events, layout

Not adapters, so not here: the prompt's text (seller/prompt.py), training examples and client
splits (seller/examples.py), the frozen LLM's loss on a reference (seller/llm/lm_loss.py).
"""
