"""loragate: a pytest release gate for LoRA fine-tunes of small LLMs."""

__version__ = "0.1.0"
