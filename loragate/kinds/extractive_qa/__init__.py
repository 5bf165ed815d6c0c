"""Extractive QA: an encoder with a span head over strided windows; no answer when the null score wins."""

from loragate.kinds.registry import KINDS, KindSpec

KINDS.register("extractive_qa", KindSpec("extractive_qa", "QUESTION_ANS", encoder=True, labels=False, block="qa",
                                           windows=True))
