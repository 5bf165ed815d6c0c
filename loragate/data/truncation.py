"""Examples longer than train.max_length: refused, or their prompts cut from the left or right; and
`max_length: auto` resolved from the data.

One rule for every split and every kind that fits its inputs to max_length: an example takes its prompt's tokens
(special tokens included) plus the tokens its answer needs after the prompt (`Kind.answer_tokens`: a causal
classifier's longest label + EOS, so the length of a cut prompt cannot tell its label; an instruct response + EOS;
nothing for an encoder's head). A prompt that does not fit is cut here, once, as text at a token boundary: training,
generation, label scoring and the probes all read the same cut prompt, so evaluation inputs are truncated exactly as
training inputs are. The answer is never cut.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from loragate.card.settings import CardError, TrainSettings
from loragate.data.examples import Example, Splits

SPLITS = ("train", "eval", "test")


@dataclass(frozen=True)
class InputFit:
    """How a run's examples were fitted to train.max_length, for the manifest and the reports."""

    max_length: int
    auto: bool  # resolved from the data (the card said `auto`)
    cap: int | None  # the base's max position embeddings, the most `auto` may resolve to
    longest: int  # tokens the longest example needs, before any cut
    truncation: str  # refuse, left or right
    truncated: dict[str, int]  # split -> examples whose prompt was cut
    examples: dict[str, int]  # split -> examples

    def to_json(self) -> dict[str, object]:
        return {"max_length": self.max_length, "max_length_from": "auto" if self.auto else "card", "cap": self.cap,
                "longest_example_tokens": self.longest, "truncation": self.truncation,
                "truncated": dict(self.truncated), "examples": dict(self.examples)}

    def note(self) -> str | None:
        """One line for the tables where prompts were cut; None where every example was kept as it was (the
        resolved number of an `auto` is in the manifest and report.json, not on every table)."""
        if not any(self.truncated.values()):
            return None
        source = (f"auto: the longest example's {self.longest} tokens" if self.auto else "the card's")
        if self.auto and self.cap is not None and self.longest > self.cap:
            source += f", capped at the base's {self.cap} positions"
        cut = ", ".join(f"{self.truncated[name]} of {self.examples[name]} {name}" for name in SPLITS)
        return f"train.max_length {self.max_length} ({source}); truncation {self.truncation}: prompts cut in {cut}"


def position_cap(model: PreTrainedModel) -> int | None:
    """The most positions the base reads (config.max_position_embeddings, of its text model where it has several)."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return getattr(config, "max_position_embeddings", None)


def cut_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str, room: int, side: str) -> str:
    """`prompt` with tokens dropped from `side` until it encodes (special tokens included) to at most `room` tokens.
    Cut as text at a token boundary (the fast tokenizer's offsets) and encoded again, since that text is what every
    later step tokenizes; a boundary that encodes differently costs one more token."""
    if not tokenizer.is_fast:
        raise CardError(f"train.truncation {side}: {type(tokenizer).__name__} is not a fast tokenizer, so it gives no "
                        f"offsets to cut prompts at; load a fast tokenizer or set train.truncation: refuse")
    encoded = tokenizer(prompt, return_offsets_mapping=True)
    spans = [(start, end) for start, end in encoded["offset_mapping"] if end > start]  # special tokens are empty
    keep = room - (len(encoded["input_ids"]) - len(spans))
    while True:
        if keep <= 0:
            text = ""
        elif side == "left":
            text = prompt[spans[len(spans) - keep][0]:] if keep < len(spans) else prompt
        else:
            text = prompt[: spans[keep - 1][1]] if keep < len(spans) else prompt
        if keep <= 0 or len(tokenizer(text).input_ids) <= room:
            return text
        keep -= 1


def fit_splits(splits: Splits, tokenizer: PreTrainedTokenizerBase, answers: dict[str, list[int]],
               train: TrainSettings, cap: int | None, where: str) -> tuple[Splits, InputFit]:
    """The splits with each example fitted to `train.max_length` (resolved here when `auto`): as they were where they
    fit; else refused, or their prompts cut, as `train.truncation` says. `answers[split]` holds each example's answer
    tokens (Kind.answer_tokens); `where` (tiers.<tier>) names the card's tier in the errors' --set."""
    specials = len(tokenizer("").input_ids)
    parts: dict[str, list[Example]] = {name: getattr(splits, name) for name in SPLITS}
    needs = {name: [len(ids) + answer for ids, answer in zip(tokenizer([ex.prompt for ex in examples]).input_ids
                                                             if examples else [], answers[name])]
             for name, examples in parts.items()}
    longest = max((need for split in needs.values() for need in split), default=1)
    auto = train.max_length == "auto"
    max_length = (min(longest, cap) if cap is not None else longest) if auto else train.resolved_max_length()
    over = [(need, name, row) for name, split in needs.items() for row, need in enumerate(split) if need > max_length]
    for need, name, row in over:
        if answers[name][row] + specials > max_length:
            example = parts[name][row]
            raise CardError(
                f"example {example.id} ({name} split): its answer takes {answers[name][row]} tokens, which with the "
                f"prompt's {specials} special tokens exceed train.max_length {max_length}; truncation cuts prompts, "
                f"never the answer: raise it with --set {where}.train.max_length={answers[name][row] + specials + 1}")
    if over and train.truncation == "refuse":
        need, name, row = max(over)
        lift = (f"lift it with --set {where}.train.max_length={need} or " if cap is None or need <= cap else
                f"the base reads at most {cap} positions, so ")
        raise CardError(
            f"{len(over)} examples take more than train.max_length {max_length} tokens (prompt + answer; the longest, "
            f"example {parts[name][row].id} of the {name} split, takes {need}): {lift}cut their prompts "
            f"with --set {where}.train.truncation=right (or =left)")
    fitted = {name: list(examples) for name, examples in parts.items()}
    for need, name, row in over:
        example = fitted[name][row]
        room = max_length - answers[name][row]
        fitted[name][row] = replace(example, prompt=cut_prompt(tokenizer, example.prompt, room, train.truncation))
    truncated = {name: sum(1 for _, split, _ in over if split == name) for name in SPLITS}
    fit = InputFit(max_length=max_length, auto=auto, cap=cap, longest=longest, truncation=train.truncation,
                   truncated=truncated, examples={name: len(examples) for name, examples in parts.items()})
    return Splits(**fitted), fit
