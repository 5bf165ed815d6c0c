"""What the causal kinds (generative classification, structured output, instruct) share: a causal base (tiny, built
offline, or a hub id or directory), prompts in its chat template where the card says `chat_template: true`,
completion-only training, greedy generation, next-token logits as the probe."""

from __future__ import annotations

import time

import torch
from peft import PeftModel

from loragate.card.options import RunOptions
from loragate.card.settings import Tier
from loragate.data.examples import Example, Splits
from loragate.data.task import Task
from loragate.inference.engine import Generations, generate, next_token_logits
from loragate.inference.grammar import Constraint
from loragate.inference.predictions import Predictions
from loragate.kinds.defaults import KindDefaults
from loragate.models.bases import LoadedBase, load_causal, tiny_base_dir
from loragate.models.chat import TINY_CHAT_TEMPLATE, format_splits, render_tiny_splits
from loragate.training.distributed import current
from loragate.training.lora import TrainResult, train_lora


class CausalKind(KindDefaults):
    """Defaults of a causal kind; each kind overrides what it does differently."""

    def chat_formatted(self, task: Task) -> bool:
        """Whether prompts go through the base's chat template: the card's `chat_template`."""
        return task.card.chat_template

    def tiny_tokenizer_text(self, task: Task, splits: Splits) -> tuple[str | None, list[str]]:
        """(chat template, texts) the tiny base's tokenizer is trained on: for chat-formatted prompts, the tiny
        template and the prompts it renders, whatever `splits` holds, so the tiny base formats them as the text it
        learned."""
        if not self.chat_formatted(task):
            return None, splits.texts()
        return TINY_CHAT_TEMPLATE, render_tiny_splits(splits, task.card.prompt_template).texts()

    def base_source(self, task: Task, tier: Tier, splits: Splits, options: RunOptions) -> tuple[str, str | None]:
        """(hub id or directory the base loads from, the name shown for it where that is not the path): the tiny
        base is built here on first use. export-data reads the tokenizer from the same place."""
        name = options.base_model or task.card.tier(tier).base_model
        if name != "tiny":
            return name, None
        template, texts = self.tiny_tokenizer_text(task, splits)
        spec = task.card.tier(tier).tiny_base  # data-parallel: rank 0 builds it, the others load what it built
        path = current().from_main(lambda: tiny_base_dir(options.cache, task.card.name, spec, texts, template))
        return str(path), f"tiny:{task.card.name}"

    def load_base(self, task: Task, tier: Tier, splits: Splits, options: RunOptions) -> LoadedBase:
        source, shown = self.base_source(task, tier, splits, options)
        return load_causal(source, options.device, options.dtype, display_name=shown, quantize=options.quantize)

    def for_base(self, task: Task, splits: Splits, base: LoadedBase) -> Splits:
        """Chat-formatted prompts rendered again from their fields with the loaded base's own chat template (a
        ChatTemplateError naming the card field where it has none; a no-op on the tiny base, whose template rendered
        the text it learned); other splits as they are."""
        if not self.chat_formatted(task):
            return splits
        return format_splits(splits, base.tokenizer, task.card.prompt_template)

    def answer_tokens(self, task: Task, base: LoadedBase, examples: list[Example]) -> list[int] | None:
        """Each example's own target and EOS, as training and the reference's perplexity read them."""
        targets = base.tokenizer([ex.target for ex in examples], add_special_tokens=False).input_ids if examples else []
        return [len(ids) + 1 for ids in targets]

    def train(self, task: Task, tier: Tier, model: PeftModel, base: LoadedBase, splits: Splits,
              options: RunOptions) -> TrainResult:
        return train_lora(model, base.tokenizer, splits.train, splits.eval, task.card.tier(tier).train,
                          progress=options.progress, desc=f"train {task.card.name}/{tier}",
                          eval_every=self.eval_every(task))

    def eval_every(self, task: Task) -> int:
        """Optimizer steps between points of the validation curve the manifest records; 0: none."""
        return 0

    def budget(self, task: Task, tier: Tier, base: LoadedBase) -> tuple[int, list[str] | None]:
        """(max new tokens, labels whose parse may stop a row early, or None)."""
        raise NotImplementedError

    def generations(self, task: Task, tier: Tier, model: torch.nn.Module, base: LoadedBase, prompts: list[str],
                    progress: bool = False, batch_size: int | None = None) -> Generations:
        """Greedy outputs under the card's eval settings; sampled where it sets eval.sampling (`prompts` then
        hold each example's k copies, loragate.inference.sampling.repeat_samples)."""
        budget, labels = self.budget(task, tier, base)
        settings = task.card.tier(tier).eval
        return generate(model, base.tokenizer, prompts, budget, batch_size or settings.batch_size, labels=labels,
                        progress=progress, sampling=settings.sampling)

    def predict(self, task: Task, model: torch.nn.Module, base: LoadedBase, examples: list[Example], tier: Tier,
                progress: bool, desc: str, calibration: list[Example] | float, batch_size: int) -> Predictions:
        """Free generations, parsed: the schema gate reads them."""
        started = time.perf_counter()
        generations = self.generations(task, tier, model, base, [ex.prompt for ex in examples], progress, batch_size)
        return parsed_predictions(task, examples, generations, started)

    def constrained_budget(self, task: Task, tier: Tier, base: LoadedBase, examples: list[Example]) -> int:
        """max_new_tokens under the kind's grammar (kinds whose spec `constrains`)."""
        raise NotImplementedError

    def predict_constrained(self, task: Task, model: torch.nn.Module, base: LoadedBase, examples: list[Example],
                            tier: Tier, progress: bool, desc: str, batch_size: int,
                            constraint: Constraint) -> Predictions:
        """Generations under `constraint` (greedy, or sampled as free ones are), parsed as free ones are: the same
        parser decides validity."""
        started = time.perf_counter()
        generations = generate(model, base.tokenizer, [ex.prompt for ex in examples],
                               self.constrained_budget(task, tier, base, examples), batch_size, progress=progress,
                               constraint=constraint, sampling=task.card.tier(tier).eval.sampling)
        return parsed_predictions(task, examples, generations, started)

    def probe_logits(self, task: Task, tier: Tier, model: torch.nn.Module, base: LoadedBase,
                     examples: list[Example]) -> torch.Tensor:
        return next_token_logits(model, base.tokenizer, [ex.prompt for ex in examples],
                                 task.card.tier(tier).eval.batch_size)


def parsed_predictions(task: Task, examples: list[Example], generations: Generations, started: float) -> Predictions:
    """`generations` of `examples`, each parsed by the task; seconds counted from `started`."""
    return Predictions(ids=[ex.id for ex in examples], gold=[ex.label for ex in examples], outputs=generations.texts,
                       parsed=[task.parse(text) for text in generations.texts],
                       seconds=time.perf_counter() - started, generations=generations)
