"""Base models: the tiny causal base built offline, any base loaded by hub id or path (4-bit and 8-bit too),
fingerprints, chat templates, and the parameter invariants of a LoRA model. Heavy (torch, transformers): this
`__init__` imports nothing."""
