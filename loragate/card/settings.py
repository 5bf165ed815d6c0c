"""Task cards: the pydantic-validated YAML that says what a task trains, asks and gates on.

A card is data. Code lives in the task module only where YAML is not enough (loading, parsing).
Every model forbids unknown fields, so a typo in a card is an error naming the file and field.

The card (TaskCard) is here; its blocks live by job beside it and are re-exported from here: Strict and CardError
in loragate.card.strict, the tier blocks in loragate.card.tier_settings, `gates` in loragate.card.gate_settings and
`data` in loragate.card.data_settings.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    StrictBool,
    ValidationError,
    field_serializer,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from loragate.card.candidates import Candidates, check_variants
from loragate.card.data_settings import DataFormat, DataSettings, SplitFractions
from loragate.card.gate_settings import REGRESSION_MARGIN, GateSettings
from loragate.card.label_names import label_names, label_values
from loragate.card.loader import load_yaml
from loragate.card.retention import RetentionProbe
from loragate.card.sampling import sampling_problem
from loragate.card.strict import CardError, Strict
from loragate.card.templates import check_template, template_fields
from loragate.card.tier_settings import (
    TIERS,
    EvalSettings,
    LoraSettings,
    Tier,
    TierSettings,
    TinyBase,
    TrainSettings,
)
from loragate.registry import Registry

__all__ = ["CardError", "Strict", "TIERS", "Tier", "TinyBase", "LoraSettings", "TrainSettings", "EvalSettings",
           "TierSettings", "REGRESSION_MARGIN", "GateSettings", "DataFormat", "DataSettings", "SplitFractions",
           "TaskCard"]


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
    retention: list[RetentionProbe] = Field(
        default_factory=list, description="probes on which tuned must stay within a margin of base: another task "
        "(its test split and a metric) or a general-text file (perplexity); loragate.card.retention"
    )
    candidates: Candidates | None = Field(
        None, description="several adapters gated together: when the task passes (pick: all or best) and a sweep of "
        "training settings loragate trains (variants); loragate.card.candidates"
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

    @model_validator(mode="wrap")
    @classmethod
    def variants_apply(cls, data: Any, handler: ModelWrapValidatorHandler[TaskCard]) -> TaskCard:
        """Each candidate variant applied to each tier and validated as a card (loragate.card.candidates): around
        kind_blocks (defined after it, so it runs outside), as a variant's card carries the kinds' blocks."""
        card = handler(data)
        check_variants(card)
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
        for tier, settings in self.tiers.items():
            problem = sampling_problem(f"tiers.{tier}.eval.sampling", self.kind, spec.peft_task_type == "CAUSAL_LM"
                                       and not spec.encoder, settings.eval.decode) if settings.eval.sampling else None
            if problem:
                raise ValueError(problem)

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
