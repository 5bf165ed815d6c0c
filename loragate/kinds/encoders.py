"""What the encoder kinds (sequence classification, extractive QA) share: a pretrained encoder with a new head
(MiniLM offline, or a hub id or directory), trained on tokenized features with the head's own loss."""

from __future__ import annotations

from peft import PeftModel

from loragate.card.options import RunOptions
from loragate.card.settings import CardError, Tier
from loragate.data.examples import Example, Splits
from loragate.data.task import Task
from loragate.kinds.defaults import KindDefaults
from loragate.models.bases import LoadedBase, load_encoder
from loragate.training.lora import TrainResult, features_loss, train_features


class EncoderKind(KindDefaults):
    """Defaults of an encoder kind; each kind says how its examples become features."""

    name: str

    def head(self, task: Task, tier: Tier) -> tuple[type, dict]:
        """The head's model class (AutoModelFor..., or MeanPooledClassifier) and its config (labels, for a
        classifier)."""
        raise NotImplementedError

    def load_base(self, task: Task, tier: Tier, splits: Splits, options: RunOptions) -> LoadedBase:
        if options.quantize is not None:
            raise CardError(f"--quantize {options.quantize}: {task.card.name} is a {task.card.kind} task on an "
                            f"encoder; quantization is for causal bases. Drop --quantize or choose causal tasks with "
                            f"--task")
        name = options.base_model or task.card.tier(tier).base_model
        head, head_config = self.head(task, tier)
        return load_encoder(name, head, head_config, options.device, options.dtype,
                            head_seed=task.card.tier(tier).train.seed)

    def answer_tokens(self, task: Task, base: LoadedBase, examples: list[Example]) -> list[int] | None:
        """Nothing: the head reads the prompt alone."""
        return [0] * len(examples)

    def features(self, task: Task, base: LoadedBase, examples: list[Example], max_length: int) -> list[dict]:
        """Tokenized training features with the head's targets."""
        raise NotImplementedError

    def train(self, task: Task, tier: Tier, model: PeftModel, base: LoadedBase, splits: Splits,
              options: RunOptions) -> TrainResult:
        settings = task.card.tier(tier).train
        features, eval_features = (self.features(task, base, part, settings.max_length)
                                   for part in (splits.train, splits.eval))
        result = train_features(model, features, settings, base.tokenizer.pad_token_id, options.progress,
                                f"train {task.card.name}/{tier}")
        result.eval_loss = features_loss(model, eval_features, base.tokenizer.pad_token_id)
        return result
