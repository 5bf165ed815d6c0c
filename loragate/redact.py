"""Hugging Face tokens never reach a report, an error message or pytest's output: reports are uploaded as
artifacts, and GitHub's masking of secrets in logs is not guaranteed (RELIABILITY case 27)."""

from __future__ import annotations

import os
import re

TOKEN_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")  # where huggingface_hub reads a token from
TOKEN_PATTERN = re.compile(r"hf_[A-Za-z0-9]{20,}")  # the shape of a user access token, set or not
MASK = "hf_***"


def redact(text: str) -> str:
    """`text` with the token of the environment, and anything shaped like a token, replaced by hf_***."""
    for name in TOKEN_VARIABLES:
        value = os.environ.get(name, "")
        if len(value) >= 8:  # a placeholder like "" or "x" is no secret, and would blank unrelated text
            text = text.replace(value, MASK)
    return TOKEN_PATTERN.sub(MASK, text)
