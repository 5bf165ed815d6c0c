"""Predictions: batched greedy generation, next-token logits, label scoring, decoding under a grammar, and the
`Predictions` every later layer reads. Heavy (torch): this `__init__` imports nothing."""
