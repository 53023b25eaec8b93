"""GRUUserEncoder: the GRU4Rec-style variant of SequentialUserEncoder, same interface.

Same inputs (start token + item vector + event features + position) and outputs
(`EncoderOutput(states (B, T+1, d), summary (B, d), attention)`), so the recommender, benchmark
and adapter switch between them by `SequenceEncoderConfig.kind`. A GRU has no attention map:
`attention` is None, and the recommender's per-item event attributions (gradient x input) are
the way to see which events weighed most.
"""
from __future__ import annotations

import torch.nn as nn

from seller.encoders.sequence import (EncoderOutput, EventEmbedding, HistoryBatch,
                                      SequenceEncoderConfig, last_position)


class GRUUserEncoder(nn.Module):
    def __init__(self, config: SequenceEncoderConfig):
        super().__init__()
        self.config = config
        self.embed = EventEmbedding(config)
        self.gru = nn.GRU(config.d_model, config.d_model, num_layers=1, batch_first=True)
        self.ln_f = nn.LayerNorm(config.d_model)

    def forward(self, history: HistoryBatch, need_attention: bool = False) -> EncoderOutput:
        x = self.embed(history)  # (B, T+1, d); right padding: real steps never see a pad
        states, _ = self.gru(x)
        states = self.ln_f(states)
        return EncoderOutput(states, last_position(states, history.lengths), None)
