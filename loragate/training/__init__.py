"""LoRA training with peft (batching, packing, the loop, a hard stop on NaN) and data-parallel ranks. Heavy
(torch, peft): this `__init__` imports nothing."""
