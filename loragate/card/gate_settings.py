"""A card's `gates` block: the thresholds a fine-tune must meet to be released."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, StrictBool, TypeAdapter, field_validator

from loragate.card.strict import Strict

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
    correction: Literal["holm", "none"] = Field(
        "holm", description="the run's PASS claims (per task and tier: every delta judged on its interval's bound, "
        "every per-class, per-field and per-subgroup drop, every gate against the last release, every retention "
        "probe) form one family, and its drops' FAIL claims another, each controlled by Holm's step-down at "
        "1 - confidence (holm), or each claim judged at 1 - confidence alone (none)"
    )
    inconclusive: Literal["fail", "warn"] = Field(
        "fail", description="a non-inferiority gate (max_class_drop, max_field_drop, max_subgroup_drop, "
        "max_regression) whose interval straddles its margin: the split cannot decide it. fail: the run fails as "
        "INCONCLUSIVE; warn: it passes, every report showing the word"
    )
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
