"""Extractive QA on an encoder with a span head: windows over long contexts, span decoding, the null threshold.

Task-independent: an example is a question (`fields["question"]`) on a context (`fields["context"]`), with its
first gold answer at `fields["answer_start"]` (-1: unanswerable) and every gold answer in `references`.

A context longer than one window is read in overlapping windows (`stride` tokens shared), so an answer cut by
one window's edge is whole in the next. The model scores every (start, end) token pair of each window; the
answer is the best pair inside the context over all windows, and "no answer" is the [CLS] token (index 0, as in
BERT and RoBERTa). Whether to say "no answer" is a threshold on null score minus span score, chosen on the eval
split (`choose_null_threshold`), as the official SQuAD v2 evaluation does: the raw scores of a fresh or barely
trained head are not calibrated against each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from transformers import PreTrainedTokenizerBase

from loragate.data.examples import Example
from loragate.inference.engine import length_batches
from loragate.inference.mixed_batches import candidates, row_adapters
from loragate.metrics.text import squad_v2_scores
from loragate.progress import SILENT, reporter
from loragate.training.lora import pad_features

CLS = 0  # the token a span head points both ends at for "no answer"

Feature = dict[str, list[int] | int]
# No token_type_ids: peft's PeftModelForQuestionAnswering.forward (0.21) does not pass them on, so an adapter
# trains and answers with every segment id 0. The base gets the same inputs, so base and tuned read the same
# thing and a disabled adapter reproduces the base exactly (tests/tasks/test_squad_v2.py checks it). RoBERTa has no
# segment ids to lose; a BERT checkpoint fine-tuned with them reads a little worse, base and tuned alike.
MODEL_INPUTS = ("input_ids", "attention_mask")


@dataclass(frozen=True)
class Window:
    """One tokenized window of one example. `inputs` is all the model gets; the rest maps its tokens back."""

    example: int  # index into the examples it was built from
    inputs: Feature
    offsets: tuple[tuple[int, int] | None, ...]  # each token's characters in the context; None off the context


@dataclass(frozen=True)
class SpanPrediction:
    """An example's best span over all its windows and the score of answering nothing instead."""

    text: str  # context[start:end]; "" when no window holds a valid span
    score: float  # start logit + end logit of that span; -inf when there is none
    null_score: float  # min over windows of the [CLS] start + end logits (the window most sure there is an answer)
    start: int = -1  # character offsets of the span in the context
    end: int = -1

    @property
    def null_margin(self) -> float:
        """null_score - score: "no answer" wins where this exceeds the threshold."""
        return self.null_score - self.score


def gold_span(example: Example) -> tuple[int, int] | None:
    """Characters [start, end) of the first gold answer in the context, or None when unanswerable; raises if
    answer_start does not point at the answer text (a shifted offset would train the head on the wrong words)."""
    if not example.references:
        return None
    text, context = example.references[0], example.fields["context"]
    start = int(example.fields["answer_start"])
    if start < 0 or context[start : start + len(text)] != text:
        raise ValueError(f"example {example.id}: answer_start {start} points at "
                         f"{context[max(start, 0) : max(start, 0) + len(text)]!r}, not the answer {text!r}")
    return start, start + len(text)


def _check_room(tokenizer: PreTrainedTokenizerBase, examples: list[Example], max_length: int, stride: int) -> None:
    """Each window must hold the question and more than `stride` context tokens, or windows cannot advance;
    the tokenizer's own error for this names neither the example nor the fix."""
    if not 0 <= stride < max_length:
        raise ValueError(f"qa.stride {stride} must be at least 0 and below qa.max_length {max_length}")
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    questions = tokenizer([ex.fields["question"] for ex in examples], add_special_tokens=False).input_ids
    for example, ids in zip(examples, questions):
        room = max_length - specials - len(ids)
        if room <= stride:
            raise ValueError(f"example {example.id}: its question is {len(ids)} tokens, which leaves {room} context "
                             f"tokens per window of qa.max_length {max_length}, not more than qa.stride {stride}; "
                             f"raise qa.max_length or lower qa.stride")


def qa_windows(tokenizer: PreTrainedTokenizerBase, examples: list[Example], max_length: int, stride: int,
               with_positions: bool) -> list[Window]:
    """Question + context windows of every example, in example order. Only the context is cut
    (truncation="only_second"); consecutive windows share `stride` context tokens. With `with_positions`, each
    window's inputs carry the answer's start/end token positions, or [CLS] when the example is unanswerable or
    its answer is not wholly inside that window."""
    if not examples:
        return []
    _check_room(tokenizer, examples, max_length, stride)
    encoded = tokenizer(
        [ex.fields["question"] for ex in examples],
        [ex.fields["context"] for ex in examples],
        truncation="only_second",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_token_type_ids=False,  # see MODEL_INPUTS
    )
    spans = [gold_span(ex) for ex in examples] if with_positions else []
    windows = []
    for row, index in enumerate(encoded["overflow_to_sample_mapping"]):
        sequence = encoded.sequence_ids(row)
        offsets = tuple(tuple(off) if seq == 1 else None for off, seq in zip(encoded["offset_mapping"][row], sequence))
        inputs: Feature = {key: encoded[key][row] for key in MODEL_INPUTS}
        if with_positions:
            inputs["start_positions"], inputs["end_positions"] = _positions(offsets, spans[index])
        windows.append(Window(index, inputs, offsets))  # type: ignore[arg-type]
    return windows


def _positions(offsets: tuple[tuple[int, int] | None, ...], span: tuple[int, int] | None) -> tuple[int, int]:
    """Token positions of the first token holding the span's first character and the last holding its last."""
    context = [i for i, off in enumerate(offsets) if off is not None]
    if span is None or not context:
        return CLS, CLS
    start, end = span
    if offsets[context[0]][0] > start or offsets[context[-1]][1] < end:  # type: ignore[index]
        return CLS, CLS  # the answer is (partly) outside this window
    first = max(i for i in context if offsets[i][0] <= start)  # type: ignore[index]
    last = min(i for i in context if offsets[i][1] >= end)  # type: ignore[index]
    return first, last


def qa_features(tokenizer: PreTrainedTokenizerBase, examples: list[Example], max_length: int, stride: int,
                with_positions: bool) -> list[Feature]:
    """The model inputs of `qa_windows` (with start/end positions for training), nothing else: what
    `train_features` takes."""
    return [window.inputs for window in qa_windows(tokenizer, examples, max_length, stride, with_positions)]


def _window_logits(model: torch.nn.Module, windows: list[Window], pad_id: int, batch_size: int,
                   progress: bool = False) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(start, end) logits of each window, unpadded, in window order, from length-sorted batches (`batch_size`
    windows, each once per candidate of a mixed model); with `progress`, each batch's windows are counted as steps of
    the current phase."""
    model.eval()
    device = next(model.parameters()).device
    lengths = [len(w.inputs["input_ids"]) for w in windows]  # type: ignore[arg-type]
    out: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(windows)
    counter = (reporter() if progress else SILENT).steps(len(windows), "windows")
    for rows in length_batches(lengths, batch_size * candidates(model)):
        batch = pad_features([windows[i].inputs for i in rows], pad_id)
        result = model(**{k: v.to(device) for k, v in batch.items()},
                       **row_adapters(model, [windows[i].example for i in rows]))
        starts, ends = result.start_logits.float().cpu(), result.end_logits.float().cpu()
        for j, i in enumerate(rows):
            out[i] = (starts[j, : lengths[i]], ends[j, : lengths[i]])
        counter.advance(len(rows))
    return out  # type: ignore[return-value]


@torch.no_grad()
def window_logits(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, examples: list[Example],
                  max_length: int, stride: int, batch_size: int,
                  progress: bool = False) -> tuple[list[Window], list[tuple[torch.Tensor, torch.Tensor]]]:
    """Every window of every example and its (start, end) logits: what `best_spans` and `first_window_logits`
    read."""
    windows = qa_windows(tokenizer, examples, max_length, stride, with_positions=False)
    return windows, _window_logits(model, windows, tokenizer.pad_token_id, batch_size, progress)


def best_spans(examples: list[Example], windows: list[Window], logits: list[tuple[torch.Tensor, torch.Tensor]],
               max_answer_tokens: int) -> list[SpanPrediction]:
    """Each example's best span over all its windows: start <= end, at most `max_answer_tokens` tokens, both
    ends on context tokens (never the question or a special token), scored start + end logit; and its null
    score. The text is cut from the context by character offsets, so it is exactly a span of the context."""
    best: list[tuple[float, int, int]] = [(-math.inf, -1, -1) for _ in examples]
    null = [math.inf for _ in examples]
    for window, (start_logits, end_logits) in zip(windows, logits):
        null[window.example] = min(null[window.example], float(start_logits[CLS] + end_logits[CLS]))
        in_context = torch.tensor([off is not None for off in window.offsets])
        if not in_context.any():
            continue
        scores = start_logits[:, None] + end_logits[None, :]
        allowed = in_context[:, None] & in_context[None, :]
        allowed &= torch.ones_like(allowed).triu().tril(max_answer_tokens - 1)  # 0 <= end - start < max tokens
        scores = scores.masked_fill(~allowed, -math.inf)
        flat = int(scores.argmax())
        score = float(scores.view(-1)[flat])
        if score > best[window.example][0]:
            first, last = divmod(flat, scores.shape[1])
            best[window.example] = (score, window.offsets[first][0], window.offsets[last][1])  # type: ignore[index]
    return [SpanPrediction(example.fields["context"][start:end] if start >= 0 else "", score, null_score, start, end)
            for example, (score, start, end), null_score in zip(examples, best, null)]


def predict_spans(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, examples: list[Example],
                  max_length: int, stride: int, batch_size: int, max_answer_tokens: int,
                  progress: bool = False) -> list[SpanPrediction]:
    """`best_spans` of the model's window logits."""
    windows, logits = window_logits(model, tokenizer, examples, max_length, stride, batch_size, progress)
    return best_spans(examples, windows, logits, max_answer_tokens)


def answers(predictions: list[SpanPrediction], threshold: float) -> list[str]:
    """The predicted answer texts: "" (no answer) where null_score - span score > threshold, else the span."""
    return ["" if p.null_margin > threshold else p.text for p in predictions]


def choose_null_threshold(predictions: list[SpanPrediction], examples: list[Example],
                          metric: Literal["exact", "f1"] = "exact") -> float:
    """The threshold on null_score - span score that maximises `metric` over `examples` (the eval split).

    Candidates lie between consecutive observed margins (midpoints), plus -inf (always "no answer") and +inf
    (never): a midpoint is the threshold least tied to one example, and where eval is best served by abstaining
    on every question, so is test, wherever its margins lie. Ties go to the other metric, then to the lowest
    threshold, which answers fewest: answering questions whose spans score nothing on eval is no evidence that
    the reader can answer them. (A nearest-0 tie-break and a finite "below all" let an adapter whose spans were
    all wrong on real SQuAD v2 eval answer 577 of 706 test questions: docs/real-data.md.)"""
    if len(predictions) != len(examples):
        raise ValueError(f"{len(predictions)} predictions for {len(examples)} examples")
    if not examples:
        raise ValueError("no examples to choose a null threshold on")
    references = [list(ex.references) for ex in examples]
    span = squad_v2_scores([p.text for p in predictions], references)
    null = squad_v2_scores([""] * len(examples), references)
    other = "f1" if metric == "exact" else "exact"
    margins = [p.null_margin for p in predictions]
    finite = sorted({m for m in margins if math.isfinite(m)})
    if not finite:
        return 0.0
    candidates = [-math.inf, *((a + b) / 2 for a, b in zip(finite, finite[1:])), math.inf]

    # Sweep the candidates upwards: an example switches from "no answer" to its span once the threshold
    # reaches its margin. totals[k]: (metric, other) summed with the first k examples (by margin) on their span.
    order = sorted(range(len(examples)), key=lambda i: margins[i])
    gain = [(span[f"{metric}_per_example"][i] - null[f"{metric}_per_example"][i],
             span[f"{other}_per_example"][i] - null[f"{other}_per_example"][i]) for i in order]
    base = (sum(null[f"{metric}_per_example"]), sum(null[f"{other}_per_example"]))
    best: tuple[tuple[float, float, float], float] | None = None
    k, totals = 0, base
    for threshold in candidates:
        while k < len(order) and margins[order[k]] <= threshold:
            totals = (totals[0] + gain[k][0], totals[1] + gain[k][1])
            k += 1
        key = (round(totals[0], 9), round(totals[1], 9), -threshold)
        if best is None or key > best[0]:
            best = (key, threshold)
    return best[1]  # type: ignore[index]


@torch.no_grad()
def qa_logits(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, examples: list[Example],
              max_length: int, stride: int, batch_size: int) -> torch.Tensor:
    """Start and end logits of each example's first window, zero-padded to `max_length`: examples x 2 x
    max_length. The same batches every call, so two models' logits compare exactly (adapter disabled vs base,
    merged vs unmerged adapter)."""
    windows = qa_windows(tokenizer, examples, max_length, stride, with_positions=False)
    firsts: dict[int, Window] = {}
    for window in windows:
        firsts.setdefault(window.example, window)
    first = [firsts[i] for i in range(len(examples))]
    return padded_logits(_window_logits(model, first, tokenizer.pad_token_id, batch_size), max_length)


def padded_logits(logits: list[tuple[torch.Tensor, torch.Tensor]], max_length: int) -> torch.Tensor:
    """One window's logits per example, zero-padded: examples x 2 x max_length."""
    out = torch.zeros(len(logits), 2, max_length)
    for i, (start_logits, end_logits) in enumerate(logits):
        out[i, 0, : len(start_logits)] = start_logits
        out[i, 1, : len(end_logits)] = end_logits
    return out


def first_window_logits(examples: list[Example], windows: list[Window],
                        logits: list[tuple[torch.Tensor, torch.Tensor]], max_length: int) -> torch.Tensor | None:
    """`qa_logits` from a prediction's own window logits, where every example fits one window: its windows are
    then qa_logits' windows, in the same length-sorted batches, so the bits are the same. None where a long context
    made more windows (their batches differ): qa_logits computes the probe then."""
    if len(windows) != len(examples):
        return None
    return padded_logits(logits, max_length)
