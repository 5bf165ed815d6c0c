"""Sequence classification on an encoder (MiniLM): tokenized features, batched logits, the predicted label.

The head reads the whole text at once, so a prediction is the argmax over the card's labels: every output
is in the schema by construction, and the validity gate holds trivially. What the gate checks instead is
that the head learned the labels, per class.
"""

from __future__ import annotations

import torch
from transformers import AutoModelForSequenceClassification, PreTrainedTokenizerBase

from loragate.data.examples import Example
from loragate.inference.engine import length_batches
from loragate.inference.mixed_batches import candidates, row_adapters
from loragate.models.mean_pooling import MeanPooledClassifier
from loragate.progress import SILENT, reporter
from loragate.training.lora import pad_features


def classifier_head(labels: list[str], pooling: str = "cls") -> tuple[type, dict]:
    """The head class and config of a classifier over `labels`, in the card's order: the model's own
    ([CLS]) head, or with `pooling` "mean" a linear layer over the mean of the token states."""
    head = MeanPooledClassifier if pooling == "mean" else AutoModelForSequenceClassification
    return head, {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
                                                "label2id": {label: i for i, label in enumerate(labels)}}


def classification_features(tokenizer: PreTrainedTokenizerBase, examples: list[Example], labels: list[str],
                            max_length: int) -> list[dict[str, list[int] | int]]:
    """Token ids of each example's text with its label index. A text longer than `max_length` tokens is an
    error: cutting it could cut the words that decide the label."""
    index = {label: i for i, label in enumerate(labels)}
    encoded = tokenizer([ex.prompt for ex in examples])
    features = []
    for row, example in enumerate(examples):
        ids = encoded["input_ids"][row]
        if len(ids) > max_length:
            raise ValueError(f"example {example.id}: {len(ids)} tokens > train.max_length {max_length}; raise "
                             f"train.max_length in the card, or set train.truncation to left or right (examples are "
                             f"fitted by loragate.data.truncation.fit_splits before training)")
        feature = {name: encoded[name][row] for name in encoded.keys()}
        features.append({**feature, "labels": index[example.label]})
    return features


@torch.no_grad()
def classify_logits(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, examples: list[Example],
                    batch_size: int, progress: bool = False) -> torch.Tensor:
    """Head logits (examples x labels) in example order, from length-sorted batches (`batch_size` examples, each
    once per candidate of a mixed model); with `progress`, each batch's examples are counted as steps of the current
    phase."""
    model.eval()
    device = next(model.parameters()).device
    encoded = tokenizer([ex.prompt for ex in examples])
    rows = [{name: encoded[name][i] for name in encoded.keys()} for i in range(len(examples))]
    logits: list[torch.Tensor | None] = [None] * len(examples)
    counter = (reporter() if progress else SILENT).steps(len(examples), "examples")
    for batch_rows in length_batches([len(row["input_ids"]) for row in rows], batch_size * candidates(model)):
        batch = pad_features([rows[i] for i in batch_rows], tokenizer.pad_token_id)
        out = model(**{k: v.to(device) for k, v in batch.items()}, **row_adapters(model, batch_rows)).logits
        out = out.float().cpu()
        for i, row_logits in zip(batch_rows, out):
            logits[i] = row_logits
        counter.advance(len(batch_rows))
    return torch.stack(logits)  # type: ignore[arg-type]
