"""A tier's `eval.sampling`: the deployment samples, so the gate does too. k samples per test example, each drawn
from its own seeded generator (loragate.inference.sampling), so the same seed gives the same samples; metrics
average over the samples and intervals resample each example with all of its samples. Greedy decoding stays the
default (no `sampling` block)."""

from __future__ import annotations

from pydantic import Field

from loragate.card.strict import Strict


class SamplingSettings(Strict):
    """How the deployment samples: temperature and nucleus (top_p), k samples per example, the seed they start from."""

    temperature: float = Field(gt=0.0, le=10.0, description="softmax temperature; 0 is greedy: leave `sampling` out")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus: sample among the likeliest tokens whose "
                         "probabilities add up to top_p; 1.0 keeps every token")
    samples: int = Field(gt=1, le=100, description="k, samples per test example: every metric averages over them "
                         "and the report shows how often they disagree (one sample says nothing about stability)")
    seed: int = Field(0, ge=0, description="sample s of example e is drawn from a generator seeded by (seed, e, s): "
                      "the same seed gives the same samples, whatever the batch")

    def line(self) -> str:
        """How reports name it: "sampled at T=0.7, top_p=0.9, k=5, seed=0"."""
        return f"sampled at T={self.temperature:g}, top_p={self.top_p:g}, k={self.samples}, seed={self.seed}"


def sampling_problem(where: str, kind: str, generates: bool, decode: str) -> str | None:
    """Why `eval.sampling` at `where` (tiers.tiny.eval.sampling) cannot apply, or None: only text a causal model
    generates token by token (`generates`: not an encoder) can be sampled; an encoder's label or span and a label
    scored by its likelihood (decode: score) have nothing to draw."""
    if not generates:
        return (f"{where}: kind {kind} reads its answer from an encoder's head (a label or a span), which generates "
                f"no text to sample; remove eval.sampling")
    if decode == "score":
        return (f"{where}: decode: score takes each example's likeliest label, which no sample changes; set "
                f"decode: generate to gate sampled labels, or remove eval.sampling")
    return None
