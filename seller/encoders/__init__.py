"""Encoders: what an item is (item.py, text.py) and what a client did, in order (sequence.py, gru.py).

- `ItemSemanticEncoder` (item.py): attributes + price band + MiniLM text (+ warm ID) -> (N, d).
- `SequentialUserEncoder` (sequence.py) / `GRUUserEncoder` (gru.py): one interface,
  `HistoryBatch -> EncoderOutput(states (B, T+1, d), summary (B, d), attention (B, T+1) | None)`;
  `build_user_encoder(SequenceEncoderConfig)` (user.py) picks one by `kind`.
- `embed_texts` (text.py): offline all-MiniLM-L6-v2 with an on-disk content-hash cache.
"""
