"""What is written to disk and read back: the adapter store (adapters/<task>/<tier>/<key>/ with a manifest) and
the merged-model exports (safetensors, GGUF). Heavy: this `__init__` imports nothing."""
