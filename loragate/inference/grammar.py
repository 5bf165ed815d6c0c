"""Constrained decoding: `model.generate` may emit only one of a card's targets, or compact JSON that follows a
pydantic model's JSON Schema, then EOS.

Built on llguidance (docs/constrained-decoding.md: what else was tried and why this one). A `Constraint` is an
llguidance grammar, checked when it is made, so a schema the library cannot enforce is refused with the library's
reason before anything runs; `CompiledConstraint` binds it to a tokenizer once, and gives each batch a
`RowGrammars` logits processor (one matcher per row) for `model.generate`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from copy import deepcopy
from dataclasses import dataclass

import llguidance
import llguidance.hf
import torch
from pydantic import BaseModel
from tokenizers import decoders, pre_tokenizers
from transformers import LogitsProcessor, LogitsProcessorList, PreTrainedTokenizerBase

METASPACE = "\u2581"  # SentencePiece's word-start marker: a space in the text
# a tokenizer that marks word starts (SentencePiece, the tiny tier's Metaspace BPE) encodes every answer with
# its marker first, a space once decoded; allowing one space before the answer keeps the model's own tokens
LEADING_SPACE = '" "?'


class UnenforceableConstraint(ValueError):
    """llguidance cannot enforce this target set or schema; the message gives the library's reason."""


@dataclass(frozen=True)
class Constraint:
    grammar: str  # llguidance's serialized grammar: what every continuation must be, then EOS
    what: str  # names the constraint in errors: "one of 3 targets", "JSON of Item"


def checked(grammar: str, what: str, fix: str) -> Constraint:
    """`grammar` as a Constraint, or UnenforceableConstraint with llguidance's reason and `fix`."""
    is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar)
    if is_error:
        raise UnenforceableConstraint(f"{what}: llguidance cannot enforce it: {messages[0].strip()}. {fix}")
    return Constraint(grammar, what)


def one_of(targets: Sequence[str]) -> Constraint:
    """The continuation is exactly one of `targets` (optionally after one space: LEADING_SPACE), then EOS."""
    if not targets or any(not target.strip() for target in targets):
        raise UnenforceableConstraint(f"targets {list(targets)!r}: constrained decoding needs non-blank targets")
    choices = " | ".join(json.dumps(target, ensure_ascii=False) for target in sorted(set(targets)))
    return checked(llguidance.LLMatcher.grammar_from_lark(f"start: {LEADING_SPACE} ({choices})"),
                   f"one of {len(set(targets))} targets", "Check the card's labels and target_template.")


def one_of_budget(targets: Sequence[str]) -> int:
    """max_new_tokens that lets every row finish under `one_of(targets)` whatever tokens the model picks: each token
    but EOS holds at least one byte, so the longest target's bytes, the leading space and EOS."""
    return max(len(target.encode()) for target in targets) + 2


def json_of(schema_model: type[BaseModel]) -> Constraint:
    """The continuation is compact JSON (no whitespace outside strings) valid under `schema_model`'s JSON Schema
    (optionally after one space: LEADING_SPACE), then EOS. The schema is checked alone first, so a refusal gives
    llguidance's reason about the schema, not about the grammar around it."""
    schema = schema_model.model_json_schema()
    schema["x-guidance"] = {"whitespace_flexible": False}  # llguidance's compile options travel in the schema
    what = f"JSON of {schema_model.__name__}"
    fix = (f"Change {schema_model.__module__}.{schema_model.__name__} to what llguidance supports, or decode it "
           f"unconstrained.")
    checked(llguidance.LLMatcher.grammar_from_json_schema(schema), what, fix)
    return checked(llguidance.LLMatcher.grammar_from_lark(f"start: {LEADING_SPACE} answer\nanswer: %json "
                                                          f"{json.dumps(schema)}"), what, fix)


class MetaspaceVocabulary:
    """The token texts and encoder llguidance asks of a tokenizer (`llguidance.TokenizerWrapper`), for a Metaspace
    tokenizer without byte fallback (the tiny tier's), which `llguidance.hf.from_tokenizer` refuses. The marker
    is a space in every token's bytes; encoding adds no marker in front, so a text encodes as it reads."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase):
        self.eos_token_id = tokenizer.eos_token_id
        self.bos_token_id = tokenizer.bos_token_id
        self.special_token_ids = tokenizer.all_special_ids
        names = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        self.tokens = [name.replace(METASPACE, " ").encode() for name in names]
        self.encoder = deepcopy(tokenizer.backend_tokenizer)
        self.encoder.pre_tokenizer = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="never")
        self.encoder.post_processor = None
        self.encoder.no_padding()
        self.encoder.no_truncation()

    def __call__(self, text: str) -> list[int]:
        return self.encoder.encode(text, add_special_tokens=False).ids


def vocabulary(tokenizer: PreTrainedTokenizerBase) -> llguidance.LLTokenizer:
    """`tokenizer`'s vocabulary as llguidance sees it: the bytes of every token. Byte-level and byte-fallback
    tokenizers (the hub's) go through llguidance's own reader; a plain Metaspace one through MetaspaceVocabulary."""
    if isinstance(tokenizer.backend_tokenizer.decoder, decoders.Metaspace):
        return llguidance.LLTokenizer(llguidance.TokenizerWrapper(MetaspaceVocabulary(tokenizer)))
    return llguidance.hf.from_tokenizer(tokenizer)


def allowed_tokens(bitmask: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """llguidance's packed mask (int32 words, bit j of word i: token 32*i + j) as booleans, shape (rows, vocab_size).
    Unpacked here rather than with llguidance.torch, whose kernel needs torch.compile (a C compiler on CPU), and on
    the logits' device: a hub vocabulary is (rows, 256k) booleans per step."""
    bits = (bitmask.unsqueeze(-1) >> torch.arange(32, dtype=torch.int32, device=bitmask.device)) & 1
    return bits.flatten(1)[:, :vocab_size].bool()


class RowGrammars(LogitsProcessor):
    """One llguidance matcher per row of a left-padded batch: each call feeds every row's newest token to its matcher
    and masks the logits of the tokens the grammar does not allow next. A row whose matcher has stopped (it
    consumed EOS) may only repeat EOS; generate replaces it with padding anyway."""

    def __init__(self, template: llguidance.LLMatcher, vocab_size: int, eos_token_id: int, rows: int,
                 prompt_width: int, what: str):
        self.matchers = [template.deep_copy() for _ in range(rows)]
        self.vocab_size, self.prompt_width, self.what = vocab_size, prompt_width, what
        self.bitmask = torch.zeros((rows, (vocab_size + 31) // 32), dtype=torch.int32)
        self.only_eos = torch.zeros(self.bitmask.shape[1], dtype=torch.int32)
        self.only_eos[eos_token_id // 32] = 1 << (eos_token_id % 32)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        consume = input_ids.shape[1] > self.prompt_width  # the first call sees the prompts only
        newest = input_ids[:, -1].tolist()
        for row, matcher in enumerate(self.matchers):
            if matcher.is_stopped():
                self.bitmask[row] = self.only_eos
                continue
            if consume and not matcher.consume_token(newest[row]):
                raise RuntimeError(f"constrained decoding ({self.what}): row {row} produced token {newest[row]} "
                                   f"that its grammar refuses: {matcher.get_error()}")
            matcher.unsafe_compute_mask_ptr(self.bitmask[row].data_ptr(), self.bitmask.shape[1] * 4)
        allowed = allowed_tokens(self.bitmask.to(scores.device), self.vocab_size)
        masked = torch.full_like(scores, float("-inf"))  # ids past the tokenizer's (padded embeddings) never allowed
        masked[:, : self.vocab_size] = scores[:, : self.vocab_size].masked_fill(~allowed, float("-inf"))
        return masked


class CompiledConstraint:
    """A Constraint bound to a tokenizer: its vocabulary read once, its grammar compiled once, a fresh
    `RowGrammars` per batch."""

    def __init__(self, constraint: Constraint, tokenizer: PreTrainedTokenizerBase):
        self.what = constraint.what
        self.vocab = vocabulary(tokenizer)
        self.template = llguidance.LLMatcher(self.vocab, constraint.grammar)
        if self.template.is_error():
            raise UnenforceableConstraint(f"{constraint.what}: llguidance cannot enforce it with this tokenizer: "
                                          f"{self.template.get_error()}")

    def logits_processors(self, rows: int, prompt_width: int) -> LogitsProcessorList:
        """For `model.generate` on a batch of `rows` prompts left-padded to `prompt_width` tokens."""
        return LogitsProcessorList([RowGrammars(self.template, self.vocab.vocab_size, self.vocab.eos_token, rows,
                                                prompt_width, self.what)])
