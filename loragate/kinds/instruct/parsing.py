"""An instruction response as the gate parses it: any non-empty text."""

from __future__ import annotations

from pydantic import BaseModel

from loragate.data.parsing import ParsedOutput


class InstructAnswer(BaseModel):
    response: str


def parse_response(text: str) -> ParsedOutput:
    """Any non-empty text is a response; empty or whitespace-only output is invalid. Never raises."""
    if not text.strip():
        return ParsedOutput(None, "empty output" if not text else "empty output (whitespace only)")
    return ParsedOutput(InstructAnswer(response=text.strip()), None)
