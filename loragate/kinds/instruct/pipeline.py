"""Instruction tuning's steps: prompts in the base's chat template, greedy responses within the card's budget,
the reference responses' perplexity, overlap metrics, and the chat template recorded with the adapter."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import torch

from loragate.card.settings import CardError, TaskCard, Tier
from loragate.data.card_files import prompt_fields, template_fields, text_value
from loragate.data.examples import Example
from loragate.data.parsing import ParsedOutput
from loragate.data.task import Task
from loragate.inference.predictions import Constant, Predictions
from loragate.kinds.causal import CausalKind
from loragate.kinds.instruct.metrics import instruct_metrics
from loragate.kinds.instruct.parsing import parse_response
from loragate.kinds.registry import KINDS
from loragate.kinds.text_report import TextReport
from loragate.kinds.trivial_predictors import most_common_response
from loragate.metrics.scores import TextMetrics
from loragate.models.bases import LoadedBase
from loragate.models.chat import example_messages, render_tiny
from loragate.store.adapters import AdapterStoreError, manifest_of
from loragate.training.lora import example_losses


def chat_template_sha256(base: LoadedBase) -> str | None:
    template = getattr(base.tokenizer, "chat_template", None)
    return hashlib.sha256(template.encode()).hexdigest() if isinstance(template, str) else None


class Instruct(TextReport, CausalKind):
    spec = KINDS.get("instruct")

    def chat_formatted(self, task: Task) -> bool:
        """Always: an instruct prompt is a conversation (CausalKind renders it with the base's chat template)."""
        return True

    def eval_every(self, task: Task) -> int:
        """The card's `instruct.eval_every`: the validation curve (loss and perplexity) while training."""
        return task.card.block("instruct").eval_every

    def budget(self, task: Task, tier: Tier, base: LoadedBase) -> tuple[int, list[str] | None]:
        budget = task.card.tier(tier).eval.max_new_tokens
        if budget is None:
            raise CardError(f"task {task.card.name}: an instruct card needs tiers.{tier}.eval.max_new_tokens, the "
                            f"response budget; set it to the longest response you accept, in tokens")
        return budget, None

    def predict(self, task: Task, model: torch.nn.Module, base: LoadedBase, examples: list[Example], tier: Tier,
                progress: bool, desc: str, calibration: list[Example] | float, batch_size: int) -> Predictions:
        """Greedy responses, and each reference response's NLL given its prompt (for perplexity)."""
        predictions = super().predict(task, model, base, examples, tier, progress, desc, calibration, batch_size)
        nll, tokens = example_losses(model, base.tokenizer, examples, task.card.tier(tier).train.resolved_max_length(),
                                     batch_size)
        return replace(predictions, references=[list(ex.references) for ex in examples], nll=nll, tokens=tokens)

    def score(self, task: Task, predictions: Predictions) -> TextMetrics:
        """A constant response (no generations) counts as terminated and has no perplexity."""
        generations = predictions.generations
        terminated = generations.terminated if generations else [True] * len(predictions.ids)
        return instruct_metrics(predictions.ids, predictions.outputs, [refs[0] for refs in predictions.references],
                                [p.valid for p in predictions.parsed], terminated, predictions.nll, predictions.tokens)

    def manifest_facts(self, base: LoadedBase) -> dict:
        return {"chat_template_sha256": chat_template_sha256(base)}

    def check_adapter(self, task: Task, base: LoadedBase, adapter_dir: Path) -> None:
        """An adapter evaluated under another chat template than it was trained with would be gated on prompts it
        never saw; refused when its loragate manifest recorded its template."""
        manifest = manifest_of(adapter_dir)
        trained = manifest.chat_template_sha256 if manifest else None
        current = chat_template_sha256(base)
        if trained and trained != current:
            raise AdapterStoreError(
                f"{adapter_dir}: trained under chat template {trained[:12]}, but the base's tokenizer ({base.name}) "
                f"has {(current or 'none')[:12]}: evaluate with the tokenizer it was trained with, or retrain "
                f"(--retrain)")

    def constant(self, task: Task, examples: list[Example]) -> Constant:
        return most_common_response(task, examples)

    def subgroups(self, task: Task, examples: list[Example]) -> dict[str, list[int]]:
        return {}

    def card_example(self, card: TaskCard, row_id: str, row: dict[str, object], source: str) -> Example:
        """The user turn is the prompt template over the row's fields (a `system` field, if any, a system turn),
        rendered with the tiny chat template until a base is loaded; the reference is the target template."""
        fields = prompt_fields(card, row, source)
        if "system" in row:
            fields["system"] = text_value(row, "system", source, "the system turn")
        target = card.target_template.format(**{name: text_value(row, name, source, "read by target_template")
                                                 for name in template_fields(card.target_template)})
        return Example(id=row_id, prompt=render_tiny(example_messages(fields, card.prompt_template)), target=target,
                       label="", fields=fields, references=(target.strip(),))

    def card_parse(self, card: TaskCard, text: str) -> ParsedOutput:
        return parse_response(text)


KIND = Instruct()
