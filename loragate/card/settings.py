"""Task cards: the pydantic-validated YAML that says what a task trains, asks and gates on.

A card is data. Code lives in the task module only where YAML is not enough (loading, parsing).
Every model forbids unknown fields, so a typo in a card is an error naming the file and field.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    StrictBool,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from loragate.card.label_names import label_names, label_values
from loragate.card.loader import load_yaml
from loragate.card.templates import check_template, template_fields
from loragate.registry import Registry

Tier = Literal["tiny", "full"]
TIERS: tuple[Tier, ...] = ("tiny", "full")


class CardError(ValueError):
    """A card that cannot be used; the message names the file, the field and the fix."""


class Strict(BaseModel):
    """Every card block: unknown fields refused, values fixed, and no NaN or infinity in any number (a NaN threshold
    compares false both ways, so a gate on it would pass anything). A yes/no field is a StrictBool: only true or
    false, since pydantic would read the strings yes, on, off (YAML 1.1 booleans) as booleans."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def no_boolean_as_number(cls, value: Any, info: ValidationInfo) -> Any:
        """pydantic reads true as 1 and false as 0 where a number is due (`min_validity: false` would gate nothing,
        `max_leakage: true` would allow every repeat): a boolean is refused wherever the field takes no boolean."""
        if info.field_name is not None and boolean_where_number(value, cls.model_fields[info.field_name].annotation):
            raise ValueError(f"{value!r} where a number is due: booleans are not numbers here; write the number")
        return value


def boolean_where_number(value: Any, annotation: Any) -> bool:
    """Whether `value` holds a boolean where `annotation` takes none (in a dict's values or a list's items too)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if isinstance(value, bool):
        return not takes_boolean(annotation)
    if isinstance(value, Mapping) and origin is dict and len(args) == 2:
        return any(boolean_where_number(item, args[1]) for item in value.values())
    if isinstance(value, list) and origin is list and args:
        return any(boolean_where_number(item, args[0]) for item in value)
    return False


def takes_boolean(annotation: Any) -> bool:
    """Whether a field of `annotation` takes a boolean: bool, StrictBool, a union or Literal holding one, or Any."""
    origin = get_origin(annotation)
    if annotation is bool or annotation is Any:
        return True
    if origin is Annotated:
        return takes_boolean(get_args(annotation)[0])
    if origin is Union or origin is UnionType:
        return any(takes_boolean(arg) for arg in get_args(annotation))
    if origin is Literal:
        return any(isinstance(arg, bool) for arg in get_args(annotation))
    return False


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


REGRESSION_MARGIN = 0.02  # max_regression's default: a release may be worse than the last by at most this, shown
ONE_MARGIN = TypeAdapter(Annotated[float, Field(ge=0.0, allow_inf_nan=False, strict=True)])
EACH_MARGIN = TypeAdapter(dict[str, Annotated[float, Field(ge=0.0, allow_inf_nan=False, strict=True)]])


class GateSettings(Strict):
    min_delta: dict[str, float] = Field(
        default_factory=dict, description="metric -> smallest tuned - base delta that passes"
    )
    max_class_drop: float = Field(0.0, ge=0.0, description="largest per-class accuracy loss vs base")
    min_class_accuracy: float = Field(0.0, ge=0.0, le=1.0, description="floor every class must reach")
    min_validity: float = Field(1.0, ge=0.0, le=1.0, description="share of tuned outputs that parse")
    max_leakage: float | None = Field(
        0.0, ge=0.0, le=1.0,
        description="largest share of test inputs repeated elsewhere: also in train (train/test leakage), twice in "
        "test (duplicated test inputs), in both test and eval or eval and train (cross-split duplicates); null "
        "where inputs repeat by design (binned Iris): the counts are reported, not gated",
    )
    floors: dict[str, float] = Field(
        default_factory=dict, description="metric -> value the tuned model must reach (at most, if lower is better)"
    )
    min_delta_over_trivial: dict[str, float] | None = Field(
        None, description="metric -> smallest tuned - trivial delta, against the best constant predictor of the test "
        "split (majority class, always abstain, most common response); null: min_delta's margins, or where "
        "min_delta is empty 0.01 on the first of the kind's metrics a constant can be scored on (KindSpec.metrics in "
        "table order, perplexity skipped: accuracy, exact, rouge1, object_exact), so a tie with the constant fails; "
        "{}: no trivial-predictor gate, an explicit choice every report states"
    )
    max_field_drop: float = Field(
        0.0, ge=0.0, description="structured output: largest per-field exact-match loss vs base"
    )
    min_field_score: float = Field(
        0.0, ge=0.0, le=1.0, description="structured output: exact match every field must reach"
    )
    max_subgroup_drop: dict[str, float] = Field(
        default_factory=dict, description="metric -> largest loss vs base in any subgroup (QA: has/no answer; the "
        "card's `subgroups` field)"
    )
    min_subgroup_score: dict[str, float] = Field(
        default_factory=dict, description="metric -> value every subgroup must reach (at most, if lower is better)"
    )
    max_regression: float | dict[str, float] = Field(
        REGRESSION_MARGIN, description="with --baseline-adapter or --baseline-report: the non-inferiority margin, the "
        "largest drop against the last release that the paired interval's lower bound of tuned - baseline may show "
        "(judged on the bound whatever judge_on says); one number for every gated metric, or metric -> margin (metrics "
        "not named keep the default 0.02; a metric named here is compared even where min_delta does not name it)"
    )
    curve_rtol: float = Field(0.05, gt=0, description="with --baseline-adapter: training curve tolerance per step")
    curve_alpha: float = Field(0.01, gt=0, lt=1, description="sign test level for a curve shifted to one side")
    judge_on: Literal["point", "lower_bound"] = Field(
        "point", description="compare min_delta with the observed delta, or with its CI's lower bound"
    )
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="of the paired bootstrap interval")
    power: float = Field(0.8, gt=0.0, lt=1.0, description="for the minimum detectable effect")
    bootstrap_resamples: int = Field(10_000, ge=1_000)
    bootstrap_seed: int = 0
    allow_target_in_prompt: StrictBool = Field(
        False, description="let prompt_template read a field target_template reads (the answer shown in the prompt): "
        "refused at card validation unless true, and stated in every report when true"
    )
    training_health: Literal["report", "gate"] = Field(
        "report", description="divergence, over-fitting and a flat loss, read from the adapter's loss curves "
        "(loragate.gates.training_health): report (a note in every report, failing nothing) or gate (each a gate "
        "that fails); an adapter without curves (trained elsewhere) is 'not known', never ok"
    )
    max_eval_loss_rise: float = Field(
        0.25, gt=0, description="divergence: the largest share by which the eval loss may end above its best (the "
        "training loss, smoothed, where the kind logs no eval curve)"
    )
    max_train_eval_gap: float = Field(
        1.0, gt=0, description="over-fitting: the largest final eval loss - final training loss, in nats (1.0: the "
        "eval perplexity 2.7 times the training one)"
    )
    min_train_loss_fall: float = Field(
        0.05, ge=0, lt=1, description="flat loss: the smallest share by which the smoothed training loss must fall "
        "from its start"
    )
    _kind_margins: dict[str, float] = PrivateAttr(default_factory=dict)  # the kind's default margins over the
    # trivial predictor (KindSpec.trivial_margins), set by TaskCard once it knows the kind
    _scorable: frozenset[str] = PrivateAttr(default_factory=frozenset)  # the kind's metrics a constant predictor can
    # be scored on (not perplexity: a constant response has no likelihood), set with _kind_margins

    @field_validator("max_regression", mode="plain")
    @classmethod
    def margins(cls, value: Any) -> float | dict[str, float]:
        """One margin, or metric -> margin: validated as the form given, so an error names its field (and metric)
        alone; pydantic's union reported each member's errors."""
        return (EACH_MARGIN if isinstance(value, Mapping) else ONE_MARGIN).validate_python(value)

    def regression_margins(self) -> dict[str, float]:
        """Each metric compared with the last release -> its non-inferiority margin: the gated metrics (min_delta's)
        and those max_regression names."""
        named = self.max_regression if isinstance(self.max_regression, dict) else {}
        default = REGRESSION_MARGIN if isinstance(self.max_regression, dict) else self.max_regression
        return {**{metric: default for metric in self.min_delta}, **named}

    def over_trivial(self) -> dict[str, float]:
        """The margins tuned must show over the trivial predictor: the card's, else min_delta's, else the kind's
        default, so leaving min_delta out never removes the gate; only `min_delta_over_trivial: {}` does."""
        if self.min_delta_over_trivial is not None:
            return self.min_delta_over_trivial
        if any(metric in self._kind_margins for metric in self.min_delta) or not self._scorable.isdisjoint(
                self.min_delta):
            return self.min_delta
        return {**self.min_delta, **self._kind_margins}  # min_delta names no metric a constant can be scored on

    def metric_fields(self) -> dict[str, list[str]]:
        """Each gates field that names metrics -> the metrics it names, as the card wrote them."""
        return {"min_delta": list(self.min_delta), "floors": list(self.floors),
                "max_regression": list(self.max_regression) if isinstance(self.max_regression, dict) else [],
                "min_delta_over_trivial": list(self.min_delta_over_trivial or {}),
                "max_subgroup_drop": list(self.max_subgroup_drop), "min_subgroup_score": list(self.min_subgroup_score)}

    def waived(self) -> list[str]:
        """The protections the card turned off on purpose, each a note every report states."""
        notes = []
        if self.min_delta_over_trivial == {}:
            notes.append("trivial predictor not gated: the card sets gates.min_delta_over_trivial: {}")
        if self.allow_target_in_prompt:
            notes.append("the prompt may read the target's fields: the card sets gates.allow_target_in_prompt: true")
        return notes


DataFormat = Literal["jsonl", "csv", "tsv", "json", "hf"]


class SplitFractions(Strict):
    """How a card's data file is cut: shares of all its rows (a test file the card names is never cut)."""

    test: float | None = Field(
        None, gt=0, lt=1, description="share of the file's rows for test; only with data.file (a named test file is "
        "used as it is)"
    )
    eval: float = Field(0.2, gt=0, lt=1, description="share of the rows for eval (of data.file, or of data.train)")
    seed: int = Field(0, description="same seed, same cut")


class DataSettings(Strict):
    """A card-only task's data: one file cut by `split`, or train and test files (and eval, else cut from train).
    Paths are relative to the card file; a directory is a Hugging Face dataset saved with `save_to_disk`."""

    file: str | None = Field(None, description="one file holding every row, cut into train/eval/test by `split`")
    train: str | None = None
    eval: str | None = Field(None, description="optional: without it, split.eval of the train rows become eval")
    test: str | None = Field(None, description="used as it is, never re-split")
    split: SplitFractions | None = None
    format: DataFormat | None = Field(
        None, description="jsonl, csv, tsv, json (a list of objects) or hf; default: told by each path's suffix, a "
        "directory is hf"
    )
    columns: dict[str, str] = Field(
        default_factory=dict, description="card field -> the file's column holding it (e.g. label: category)"
    )
    header: StrictBool = Field(True, description="CSV/TSV: the first row names the columns; false: every row is data "
                               "and `names` names the columns")
    names: list[str] | None = Field(None, description="with header: false, each column's name, in the file's order")
    id: str | Literal[False] | None = Field(
        None, description="the file's column whose value names each row in reports and errors (unique within a file); "
        "default: a column named `id` where the file has one, else the file's name and the row's line; false: the "
        "file's name and the row's line always")

    @model_validator(mode="after")
    def names_without_header(self) -> DataSettings:
        if self.header and self.names is not None:
            raise ValueError("data.names names the columns of a file without a header row: add data.header: false, "
                             "or rename a header's columns with data.columns")
        if not self.header and not self.names:
            raise ValueError("data.header: false needs the columns' names: add data.names: [label, title, ...], one "
                             "per column, in the file's order")
        repeated = sorted({name for name in self.names or [] if self.names.count(name) > 1})
        if repeated:
            raise ValueError(f"data.names repeats {repeated}: give each column its own name")
        return self

    @model_validator(mode="after")
    def one_layout(self) -> DataSettings:
        named = [name for name in ("train", "eval", "test") if getattr(self, name) is not None]
        if self.file is not None:
            if named:
                raise ValueError(f"data names both 'file' and {named}: give one file to cut (file + split) or the "
                                 f"split files (train, test, optionally eval), not both")
            if self.split is None or self.split.test is None:
                raise ValueError("data.file needs the shares to cut it: add split: {test: 0.2, eval: 0.2, seed: 0}")
            if self.split.test + self.split.eval >= 1:
                raise ValueError(f"data.split: test {self.split.test} + eval {self.split.eval} leave no rows for "
                                 f"train; make their sum less than 1")
            return self
        if self.train is None or self.test is None:
            raise ValueError("data needs either 'file' (with split: {test: 0.2, eval: 0.2}) or both 'train' and "
                             "'test' (eval optional)")
        if self.split is not None and self.split.test is not None:
            raise ValueError("data.split.test: the test file data.test is used as it is, never re-split; remove "
                             "split.test")
        if self.eval is not None and self.split is not None:
            raise ValueError("data.split: every split is a named file, so nothing is cut; remove split")
        return self

def kinds() -> Registry[Any]:
    """The kinds' registry (of loragate.kinds.registry.KindSpec): imported on first use, since each kind's package
    imports this module to declare its card block."""
    from loragate.kinds import KINDS  # registration by design: the kind packages import this module

    return KINDS


def block_owners() -> dict[str, str]:
    """Each registered kind's card block -> the kind that declares it. Two kinds declaring one block, or a block
    named like a field of every card, would silently change other cards: refused, naming both."""
    owners: dict[str, str] = {}
    for spec in kinds().entries():
        if spec.block is None:
            continue
        if spec.block in TaskCard.model_fields:
            raise ValueError(f"kind {spec.name} declares a card block {spec.block!r}, which is a field of every card; "
                             f"name its block otherwise")
        if spec.block in owners:
            raise ValueError(f"kinds {owners[spec.block]} and {spec.name} both declare the card block "
                             f"{spec.block!r}; name one of them otherwise")
        owners[spec.block] = spec.name
    return owners


def line_error(err: Any, prefix: tuple[str, ...] = ()) -> Any:
    """One of pydantic's errors as ValidationError.from_exception_data takes it, its location under `prefix`. Its
    message is kept as rendered, under its type, whatever the type (a block's own PydanticCustomError too)."""
    return {"type": PydanticCustomError(err["type"], err["msg"]), "loc": (*prefix, *err["loc"]), "input": err["input"]}


class TaskCard(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    kind: str = Field(description="a registered task kind (loragate.kinds), which may add a block of its own")
    labels: list[str] = Field(default_factory=list, description="the classes, classification kinds need 2+: a list "
                              "of names (text or whole numbers), or a mapping from the data's values to the names "
                              "({1: World, 2: Sports}; loragate.card.label_names)")
    prompt_template: str = Field(description="str.format template over the example's named fields ({text}; a "
                                 "literal brace is written {{ or }}); it may not read a field target_template reads "
                                 "unless gates.allow_target_in_prompt is true")
    target_template: str = Field(" {label}", description="what the model should generate after the prompt, a "
                                 "template as prompt_template is")
    chat_template: StrictBool = Field(
        False, description="causal kinds: the prompt (prompt_template over the example's fields) is the user turn of "
        "a conversation rendered with the base tokenizer's chat template up to the assistant header, as TRL's SFT "
        "renders conversational data, in training, evaluation and export-data alike; a base whose tokenizer has none "
        "is refused when it loads. The instruct kind always does this")
    tiers: dict[Tier, TierSettings]
    gates: GateSettings
    subgroups: str | None = Field(
        None, description="an example field (e.g. domain) whose values split the test set into subgroups, each "
        "scored, reported and gated by gates.max_subgroup_drop and gates.min_subgroup_score"
    )
    data: DataSettings | None = Field(
        None, description="a card-only task's data files (loragate.tasks.card_task); a task module loads its own"
    )
    _path: Path | None = PrivateAttr(None)  # the YAML file the card was read from, where it was read from one
    _blocks: dict[str, BaseModel] = PrivateAttr(default_factory=dict)  # the kinds' blocks this card holds, validated
    _label_values: dict[str, str] = PrivateAttr(default_factory=dict)  # `labels` as a mapping: data value -> name

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def label_values(self) -> dict[str, str]:
        """The data's label value -> the label's name: the card's `labels` mapping, else each label is its own."""
        return self._label_values or {label: label for label in self.labels}

    @field_validator("labels", mode="before")
    @classmethod
    def labels_as_names(cls, labels: object) -> object:
        return label_names(labels)

    @model_validator(mode="wrap")
    @classmethod
    def labels_mapping(cls, data: Any, handler: ModelWrapValidatorHandler[TaskCard]) -> TaskCard:
        """A `labels` mapping is kept (the names are the labels; the data's values are translated as rows are read)."""
        card = handler(data)
        if isinstance(data, Mapping):
            card._label_values = label_values(data.get("labels"))
        return card

    @field_serializer("labels")
    def labels_as_written(self, labels: list[str]) -> list[str] | dict[str, str]:
        """A mapping dumps as a mapping, so a card dumped and validated again (`--set`) keeps it."""
        return dict(self._label_values) if self._label_values else labels

    @field_validator("labels")
    @classmethod
    def labels_unique(cls, labels: list[str]) -> list[str]:
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        if duplicates:
            raise ValueError(f"labels repeat {duplicates}: list each label once")
        return labels

    @field_validator("prompt_template", "target_template")
    @classmethod
    def fillable(cls, template: str) -> str:
        return check_template(template)

    @field_validator("kind")
    @classmethod
    def kind_registered(cls, kind: str) -> str:
        if kind not in kinds():
            raise ValueError(kinds().unknown_message(kind))
        return kind

    @model_validator(mode="wrap")
    @classmethod
    def kind_blocks(cls, data: Any, handler: ModelWrapValidatorHandler[TaskCard]) -> TaskCard:
        """A kind's card block (`qa:`, `instruct:`, ...) is declared by the kind's own package (KindSpec.block), not
        here: the blocks are taken out, the rest of the card is validated, then each block against its kind's model;
        every problem is reported at once, each at its field."""
        if not isinstance(data, Mapping):
            return handler(data)
        owners = block_owners()
        errors: list[dict[str, Any]] = []
        blocks: dict[str, BaseModel] = {}
        for name, owner in owners.items():
            if data.get(name) is not None:
                try:
                    blocks[name] = kinds().get(owner).block_model.model_validate(data[name])
                except ValidationError as exc:
                    errors += [line_error(err, (name,)) for err in exc.errors()]
        try:
            card = handler({key: value for key, value in data.items() if key not in owners})
        except ValidationError as exc:
            raise ValidationError.from_exception_data(cls.__name__, [*map(line_error, exc.errors()), *errors]) from None
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        card._blocks = blocks
        card.kind_has_what_it_needs()
        card.gates_fit_kind()
        card.answer_not_in_prompt()
        return card

    @model_serializer(mode="wrap")
    def with_blocks(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> dict[str, Any]:
        """The card as its YAML reads, every kind's block included after `subgroups`, where the card declared them
        before the kinds did (None where the card has none, so `--set qa.stride=32` can fill a block left out);
        `include`, `exclude` and `exclude_none` apply to the blocks as to the other fields."""
        data = handler(self)
        blocks = {}
        for name in block_owners():
            block = self._blocks.get(name)
            if (info.include is not None and name not in info.include) or (block is None and info.exclude_none):
                continue
            exclude = info.exclude.get(name) if isinstance(info.exclude, dict) else None
            if exclude is True or (isinstance(info.exclude, set) and name in info.exclude):
                continue
            blocks[name] = None if block is None else block.model_dump(mode=info.mode, exclude=exclude,
                                                                       exclude_none=info.exclude_none)
        position = list(data).index("subgroups") + 1 if "subgroups" in data else len(data)
        keys = list(data)
        return {**{key: data[key] for key in keys[:position]}, **blocks, **{key: data[key] for key in keys[position:]}}

    def block(self, name: str) -> Any:
        """The card's `name` block (a kind's settings, validated by the kind's model), or None where it has none.
        A changed block goes through validation again (`TaskCard.model_validate(card.model_dump())` with the change,
        as loragate.card.overrides does), not through model_copy(update=...), which does not see blocks."""
        return self._blocks.get(name)

    def kind_has_what_it_needs(self) -> None:
        spec = kinds().get(self.kind)
        if spec.labels and len(self.labels) < 2:
            raise ValueError(f"kind {self.kind} needs at least two labels; list them under 'labels'")
        if spec.block is not None and self.block(spec.block) is None:
            raise ValueError(f"kind {self.kind} needs a '{spec.block}' block; add '{spec.block}: {{}}' for its "
                             f"defaults")
        foreign = sorted(name for name in self._blocks if name != spec.block)
        if foreign:
            owners = block_owners()
            raise ValueError(f"the '{foreign[0]}' block belongs to kind {owners[foreign[0]]}, and this card's kind is "
                             f"{self.kind}, which reads {'no block' if spec.block is None else repr(spec.block)}: "
                             f"remove '{foreign[0]}', or change the kind")
        cutting = [tier for tier, settings in self.tiers.items() if settings.train.truncation != "refuse"]
        if spec.windows and cutting:
            raise ValueError(f"tiers.{cutting[0]}.train.truncation: kind {self.kind} reads long inputs in strided "
                             f"windows ({spec.block}.max_length, {spec.block}.stride) and cuts nothing; remove "
                             f"train.truncation")
        pooled = sorted(tier for tier, settings in self.tiers.items() if settings.pooling != "cls")
        if pooled and not spec.pooling:
            readers = [name for name in kinds().names() if kinds().get(name).pooling]
            raise ValueError(f"tiers {pooled}: pooling is read only by the kinds {', '.join(readers)}, and this "
                             f"card's kind is {self.kind}; remove 'pooling' from those tiers")
        if self.chat_template and spec.encoder:
            raise ValueError(f"chat_template: kind {self.kind} reads prompts with an encoder and its own head, which "
                             f"no chat template formats; remove chat_template")

    def gates_fit_kind(self) -> None:
        """Every metric the gates name is one the kind computes (a gate on another fails only after training, or is
        never judged), and the trivial-predictor gate gets the kind's default margins where the card names none."""
        spec = kinds().get(self.kind)
        self.gates._kind_margins = spec.trivial_margins()
        self.gates._scorable = frozenset(spec.constant_scorable())
        if not spec.metrics:  # a project's kind that declares no metrics: nothing to check the names against
            if not self.gates.over_trivial() and self.gates.min_delta_over_trivial is None:
                raise ValueError(f"kind {self.kind} declares no metrics (KindSpec.metrics), so the trivial-predictor "
                                 f"gate has no default margins: set gates.min_delta or gates.min_delta_over_trivial")
            return
        computed = spec.gated_metrics()
        for field, metrics in self.gates.metric_fields().items():
            for metric in metrics:
                if metric not in computed:
                    close = difflib.get_close_matches(metric, computed, n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    raise ValueError(f"gates.{field}.{metric}: kind {self.kind} does not compute {metric!r}{hint}; "
                                     f"it computes {', '.join(computed)}: gate on one of those")

    def answer_not_in_prompt(self) -> None:
        """A prompt that reads a field the target reads shows the model its answer: it trains to a perfect score
        that measures nothing. Refused unless the card says so (gates.allow_target_in_prompt)."""
        target = template_fields(self.target_template)
        prompt = template_fields(self.prompt_template)
        shared = [name for name in prompt if name in target]
        if target and all(name in prompt for name in target) and not self.gates.allow_target_in_prompt:
            raise ValueError(f"prompt_template {self.prompt_template!r} reads {shared}, which target_template "
                             f"{self.target_template!r} reads too: the prompt would show the model the answer it is "
                             f"gated on. Take {{{shared[0]}}} out of prompt_template, or set "
                             f"gates.allow_target_in_prompt: true if the prompt must hold it")

    def tier(self, tier: Tier) -> TierSettings:
        if tier not in self.tiers:
            raise CardError(f"task {self.name!r} has no {tier!r} tier: add tiers.{tier} to its card")
        return self.tiers[tier]

    def trainable(self, tier: Tier) -> TierSettings:
        """The tier's settings where they say how to train an adapter; else a CardError naming what is missing: such
        a card gates only adapters trained elsewhere."""
        gaps = self.tier(tier).training_gaps()
        if gaps:
            where = f"{self.path}: " if self.path is not None else f"task {self.name!r}: "
            raise CardError(f"{where}tiers.{tier} has no {', '.join(gaps)}, so the gate cannot train its adapter: gate "
                            f"an adapter trained elsewhere (--adapter=PATH), or add "
                            f"{', '.join(f'tiers.{tier}.{gap}' for gap in gaps)} to the card")
        return self.tier(tier)

    @classmethod
    def from_yaml(cls, path: Path) -> TaskCard:
        try:
            raw = load_yaml(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise CardError(f"{path}: cannot read the card: {exc}") from exc
        try:
            card = cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"field '{'.'.join(str(part) for part in err['loc'])}': {err['msg']}" for err in exc.errors()
            )
            raise CardError(f"{path}: {problems}. Fix the card and run again.") from exc
        card._path = path
        return card
