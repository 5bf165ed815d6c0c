"""A card's tier block (tiers.tiny, tiers.full): the base, the LoRA, how to train and how to evaluate."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, StrictBool, field_validator, model_validator

from loragate.card.sampling import SamplingSettings
from loragate.card.strict import CardError, Strict

Tier = Literal["tiny", "full"]
TIERS: tuple[Tier, ...] = ("tiny", "full")


class TinyBase(Strict):
    """A Llama-architecture base built offline, with a tokenizer trained on the task's own text."""

    hidden_size: int = Field(128, gt=0, description="width of the residual stream")
    intermediate_size: int = Field(256, gt=0, description="MLP width")
    num_hidden_layers: int = Field(2, gt=0)
    num_attention_heads: int = Field(4, gt=0)
    vocab_size: int = Field(384, gt=16, description="BPE vocabulary trained on the task text")
    max_position_embeddings: int = Field(256, gt=0)
    initializer_range: float = Field(
        0.1, gt=0, description="init std; Llama's 0.02 leaves tied logits too flat for a tiny model to be confident"
    )
    seed: int = Field(0, description="same seed -> bit-identical weights -> same fingerprint")

    @model_validator(mode="after")
    def heads_divide_width(self) -> TinyBase:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} must be a multiple of num_attention_heads "
                f"{self.num_attention_heads}: change one of them"
            )
        return self


class LoraSettings(Strict):
    r: int = Field(gt=0, description="LoRA rank")
    alpha: float = Field(gt=0, description="scaling numerator: the update is scaled by alpha / r")
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(min_length=1, description="module name suffixes to adapt")
    modules_to_save: list[str] = Field(
        default_factory=list, description="modules trained in full and saved with the adapter: a new task head"
    )


class TrainSettings(Strict):
    """How the gate trains an adapter; epochs, batch_size and lr are needed only where it trains one (a card that only
    gates adapters trained elsewhere, --adapter, may leave them out, or the whole block: max_length and truncation
    then keep their defaults for evaluation)."""

    epochs: int | None = Field(None, gt=0)
    batch_size: int | None = Field(None, gt=0)
    grad_accum: int = Field(1, gt=0, description="micro-batches per optimizer step")
    lr: float | None = Field(None, gt=0)
    weight_decay: float = Field(0.0, ge=0.0)
    warmup_steps: int = Field(0, ge=0)
    max_length: int | Literal["auto"] = Field(
        "auto", description="prompt + answer tokens of one example; auto: the longest tokenized example of train, eval "
        "and test, capped at the base's max position embeddings (loragate.data.truncation); the resolved value is "
        "recorded in the adapter's manifest")
    truncation: Literal["refuse", "left", "right"] = Field(
        "refuse", description="an example longer than max_length: refuse (an error naming the --set that lifts it), "
        "or drop prompt tokens from the left or right until prompt + answer fit; the answer is never cut")
    batching: Literal["grouped", "dynamic", "max", "packed"] = Field(
        "dynamic",
        description="dynamic: shuffled batches padded to their longest (the trajectory of max, 1.5x its tokens/s on "
        "CPU); grouped: batches of similar length (sorted within seeded, shuffled mega-batches), least padding and "
        "about 2.2x max's tokens/s, but 7-14% higher eval loss after the same epochs on the benchmark's data; max: "
        "every batch padded to max_length; packed: (almost) no padding, the shuffled examples end to end in rows of "
        "up to max_length tokens, position ids restarting per example, as many rows a micro-batch as "
        "tokens_per_batch holds: about 2x max's tokens/s at dynamic's eval loss on the benchmark's data (causal kinds "
        "only, one process)",
    )
    tokens_per_batch: int | None = Field(
        None, gt=0, description="packed only: the token budget of one micro-batch (tokens_per_batch // max_length "
        "packed rows, or one row of tokens_per_batch tokens where that is less) instead of a count of examples; "
        "default batch_size x max_length, the tensor size of a max batch")
    gradient_checkpointing: StrictBool = Field(
        False, description="recompute activations in the backward pass: less GPU memory, about 30% more time"
    )
    seed: int = 0

    @model_validator(mode="after")
    def budget_needs_packing(self) -> TrainSettings:
        if self.tokens_per_batch is not None and self.batching != "packed":
            raise ValueError(f"tokens_per_batch {self.tokens_per_batch} applies only to batching: packed (this card "
                             f"has batching: {self.batching}): set batching: packed or remove tokens_per_batch")
        return self

    @field_validator("max_length", mode="before")
    @classmethod
    def tokens_or_auto(cls, value: object) -> object:
        """One message for both forms, instead of one per member of the union."""
        if value != "auto" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{value!r} is neither a positive number of tokens nor 'auto'")
        return value

    def resolved_max_length(self) -> int:
        """max_length as a number; `auto` is resolved from the data once the base's tokenizer is loaded."""
        if self.max_length == "auto":
            raise CardError("train.max_length is still 'auto': resolve it with loragate.data.truncation.fit_inputs "
                            "before training")
        return self.max_length


class EvalSettings(Strict):
    batch_size: int = Field(32, gt=0)
    max_new_tokens: int | None = Field(
        None, gt=0, description="generation budget; default: the longest tokenized target + 1 for EOS"
    )
    decode: Literal["generate", "score"] = Field(
        "generate",
        description="generate: the parsed greedy output is the prediction; score: where that output parses, the "
        "label whose continuation the model finds likeliest (one batched forward pass) is the prediction",
    )
    constrain: Literal["none", "schema"] = Field(
        "none",
        description="the deployment's decoding, which the gates read: none (free greedy text), or schema (greedy "
        "under the output's grammar: one of the labels, or JSON of the structured output's pydantic model); with "
        "schema, or with --constrain, both are computed and reported side by side",
    )
    sampling: SamplingSettings | None = Field(
        None, description="the deployment samples: k seeded samples per test example, which the gates read "
        "(metrics average over them); default: greedy",
    )


class TierSettings(Strict):
    base_model: str = Field(description="'tiny' (built offline), a hub id, or a local directory")
    tiny_base: TinyBase = TinyBase()
    lora: LoraSettings | None = Field(
        None, description="the LoRA the gate trains; optional where the card only gates adapters trained elsewhere "
        "(--adapter), which carry their own")
    train: TrainSettings = TrainSettings()
    eval: EvalSettings = EvalSettings()
    pooling: Literal["cls", "mean"] = Field(
        "cls", description="sequence classification: what the new head reads. cls: the first token through the "
        "checkpoint's pooler (AutoModelForSequenceClassification); mean: the token states averaged over the "
        "attention mask (loragate.models.mean_pooling), how sentence-embedding models such as all-MiniLM-L6-v2 were "
        "trained",
    )

    def training_gaps(self) -> list[str]:
        """What this tier lacks to train an adapter (lora, train.epochs, ...): empty where the gate can train one."""
        gaps = ["lora"] if self.lora is None else []
        return gaps + [f"train.{name}" for name in ("epochs", "batch_size", "lr") if getattr(self.train, name) is None]
