"""`build_user_encoder(config)`: the client-history encoder `config.kind` names.

Both kinds share sequence.py's interface (HistoryBatch -> EncoderOutput); this module sits above
them so neither imports the other's module back (gru.py builds on sequence.py's pieces).
"""
from __future__ import annotations

import torch.nn as nn

from seller.encoders.gru import GRUUserEncoder
from seller.encoders.sequence import SequenceEncoderConfig, SequentialUserEncoder


def build_user_encoder(config: SequenceEncoderConfig) -> nn.Module:
    return GRUUserEncoder(config) if config.kind == "gru" else SequentialUserEncoder(config)
