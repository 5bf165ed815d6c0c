"""Sequence classification: an encoder with a new head over the card's labels; the prediction is its argmax."""

from loragate.kinds.registry import KINDS, KindSpec
from loragate.metrics.registry import LABEL_METRICS

KINDS.register("sequence_classification", KindSpec("sequence_classification", "SEQ_CLS", encoder=True, labels=True,
                                                   metrics=LABEL_METRICS, pooling=True))
