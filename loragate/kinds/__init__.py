"""Task kinds, one package each: everything that differs between generative classification, sequence
classification, extractive QA and instruction tuning. The run (loragate.run.task_run) is one pipeline over the `Kind`
protocol and never asks which kind it holds.

A kind registers itself in its own package's `__init__.py` with one line, `KINDS.register(name, KindSpec(...))`,
as PEFT registers a tuning method. The spec holds the facts the plugin and the cards need (PEFT task type, encoder
or causal, labels or text) and no torch: `spec.pipeline()` imports the kind's `pipeline` module only when a run
needs it, so `pytest --help` and card loading stay fast.
"""

from loragate.kinds import (  # noqa: F401  (each kind package registers itself: one line a kind)
    extractive_qa,
    generative_classification,
    instruct,
    sequence_classification,
    structured_output,
)
from loragate.kinds.protocol import ExampleTable, Kind, ScoredRun
from loragate.kinds.registry import KINDS, KindSpec, card_checks, kind_of

__all__ = ["KINDS", "ExampleTable", "Kind", "KindSpec", "ScoredRun", "card_checks", "kind_of"]
