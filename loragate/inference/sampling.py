"""Seeded sampling that batching does not change: each sample of each example draws from its own generator.

`model.generate(do_sample=True)` draws every row of a batch from one global generator, so an example's samples
would depend on which examples share its batch and in what order. Here generation stays greedy and `RowSampler`, the
last logits processor, picks each row's token itself (temperature, then nucleus top_p, then one uniform draw from
the row's generator seeded by (seed, example, sample) through the inverse CDF), and leaves only that token possible.
Row r of a batch takes its t-th draw for its t-th token whatever else is in the batch. On CPU the same seed gives the
same samples at any batch size; on a GPU the logits themselves may differ in their last bits between batch sizes
(other kernels), which changes a draw only where the uniform falls within that difference of a boundary between two
tokens' cumulative probabilities: the same seed, batch size and GPU give the same samples.
"""

from __future__ import annotations

import hashlib

import torch
from transformers import LogitsProcessor

from loragate.card.sampling import SamplingSettings
from loragate.data.examples import Example


def row_seed(seed: int, example: int, sample: int) -> int:
    """The seed of sample `sample` of example `example` (its index in the split): a hash, so neighbouring examples'
    generators share no stream, and sample s of an example is the same whatever k is."""
    digest = hashlib.sha256(f"loragate-sampling:{seed}:{example}:{sample}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def repeat_samples(examples: list[Example], samples: int) -> list[Example]:
    """Each example `samples` times in a row (example-major): the rows a sampled evaluation predicts and scores. The
    copies keep the example's id and input, so its samples are one cluster of the paired bootstrap
    (loragate.data.examples.input_groups) and reports find its input by id."""
    return [ex for ex in examples for _ in range(samples)]


def sample_positions(prompts: list[str], samples: int) -> list[tuple[int, int]]:
    """(example, sample) of each row of `prompts`, which hold `samples` copies of each example's prompt in a row
    (repeat_samples); anything else is a caller's bug, refused before a token is drawn."""
    if len(prompts) % samples:
        raise ValueError(f"sampling k={samples}: {len(prompts)} prompts are not k copies of each example; pass the "
                         f"examples through repeat_samples")
    positions = [divmod(row, samples) for row in range(len(prompts))]
    if any(prompts[row] != prompts[example * samples] for row, (example, _) in enumerate(positions)):
        raise ValueError(f"sampling k={samples}: the prompts are not k consecutive copies of each example's prompt; "
                         f"pass the examples through repeat_samples")
    return positions


def pick(scores: torch.Tensor, temperature: float, top_p: float, uniforms: torch.Tensor) -> torch.Tensor:
    """The token each row's uniform (in [0, 1)) selects from its `scores` (rows x vocab) at `temperature` within the
    nucleus `top_p`: the likeliest tokens until their probabilities reach top_p, the likeliest always kept, a token
    the model or a grammar ruled out (probability 0) never. In float64, ties broken by token id (a stable sort), row by
    row: no row's pick depends on another's."""
    probabilities = torch.softmax(scores.double() / temperature, dim=-1)
    ordered, tokens = torch.sort(probabilities, dim=-1, descending=True, stable=True)
    before = ordered.cumsum(-1) - ordered  # the mass of the likelier tokens
    kept = (before < top_p) & (ordered > 0)
    nucleus = torch.where(kept, ordered, torch.zeros_like(ordered)).cumsum(-1)
    target = uniforms.to(nucleus.device, torch.float64) * nucleus[:, -1]
    chosen = (nucleus <= target[:, None]).sum(-1).clamp(max=kept.sum(-1) - 1)  # the first cumulative above it
    return tokens.gather(-1, chosen[:, None]).squeeze(-1)


class RowSampler(LogitsProcessor):
    """The last logits processor of a greedy `generate`: draws each row's next token with its own generator and
    leaves only that token's score finite, so greedy decoding takes it. After a grammar's processor it samples
    among the tokens the grammar allows."""

    def __init__(self, settings: SamplingSettings, positions: list[tuple[int, int]]):
        self.temperature, self.top_p = settings.temperature, settings.top_p
        self.generators = [torch.Generator().manual_seed(row_seed(settings.seed, example, sample))
                           for example, sample in positions]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        uniforms = torch.cat([torch.rand(1, generator=generator, dtype=torch.float64) for generator in self.generators])
        tokens = pick(scores, self.temperature, self.top_p, uniforms)
        only = torch.full_like(scores, float("-inf"))
        return only.scatter(-1, tokens[:, None], 0.0)
