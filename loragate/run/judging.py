"""Base and tuned predictions on the test split scored and gated: against base (the card's checks), against the
trivial predictor, and per subgroup, in the decoding mode the card declares, with the other mode reported. Their
statistical comparisons are judged as one family (loragate.gates.family), which the run widens with its later gates."""

from __future__ import annotations

from dataclasses import dataclass, field

from loragate.data.examples import Example, input_groups
from loragate.data.task import Task
from loragate.gates.checks import (
    GateResult,
    Subgroup,
    run_gates,
    subgroup_gates,
    trivial_gates,
)
from loragate.gates.family import controlled
from loragate.inference.predictions import Constant, Predictions
from loragate.kinds import card_checks
from loragate.metrics.scores import Metrics, with_input_groups
from loragate.run.decoding_modes import (
    CONSTRAINED,
    FREE,
    Decoded,
    ModeDelta,
    mode_deltas,
    name_the_gap,
)
from loragate.run.steps import kind, samples_per_example, score, score_subgroups


@dataclass(frozen=True)
class Judged:
    """Base and tuned predictions on the test split scored and gated: against base (the card's checks), against
    the trivial predictor, and per subgroup; in the mode the card declares (`gated`), with the other reported.
    run_task adds the leakage gate and, given the last release, its metrics and the regression gates against it."""

    base_metrics: Metrics
    tuned_metrics: Metrics
    constant: Constant
    constant_metrics: Metrics
    subgroups: list[Subgroup]
    gates: list[GateResult]
    gated: Decoded
    reported: Decoded | None = None
    mode_deltas: list[ModeDelta] = field(default_factory=list)
    baseline_metrics: Metrics | None = None  # the last release's, where run_task was given it (judge_run)


def judge_predictions(task: Task, test: list[Example], base: Predictions, tuned: Predictions,
                      constrained: tuple[Predictions, Predictions] | None = None, decoding: str = FREE) -> Judged:
    """Every gate that reads only the test split's predictions; tests feed it constructed predictions (an adapter
    that always abstains) to prove the gate refuses them without a model. `base` and `tuned` are free outputs,
    `constrained` the (base, tuned) outputs under the grammar where computed; the gates read the `decoding` mode
    and the other is scored and reported. Where the gates read free outputs, a failed validity gate names the gap
    to the constrained outputs' validity."""
    if decoding == CONSTRAINED and constrained is None:
        raise ValueError(f"task {task.card.name}: the card declares constrained decoding, but only free predictions "
                         f"were given")
    gates = task.card.gates
    modes = {FREE: (base, tuned), CONSTRAINED: constrained}
    gated_base, gated_tuned = modes[decoding]

    def scored(predictions: Predictions) -> Metrics:  # intervals resample the rows of one input together
        return score_by_input(task, test, predictions)

    base_metrics, tuned_metrics = scored(gated_base), scored(gated_tuned)
    gated = Decoded(decoding, gated_base, gated_tuned, base_metrics, tuned_metrics)
    constant = kind(task).constant(task, test)
    constant_metrics = scored(constant.predictions)
    subgroups = score_subgroups(task, test, gated_base, gated_tuned)
    results = controlled([*run_gates(card_checks(task.card), tuned_metrics, base_metrics),
                          *trivial_gates(gates, constant.name, tuned_metrics, constant_metrics),
                          *subgroup_gates(gates, subgroups)], gates)
    if constrained is None:
        return Judged(base_metrics, tuned_metrics, constant, constant_metrics, subgroups, results, gated)
    other = CONSTRAINED if decoding == FREE else FREE
    reported = Decoded(other, *modes[other], scored(modes[other][0]), scored(modes[other][1]))
    free, under_grammar = (gated, reported) if decoding == FREE else (reported, gated)
    if decoding == FREE:
        results = name_the_gap(results, free.tuned_metrics, under_grammar.tuned_metrics, gates.min_validity)
    deltas = mode_deltas(free.tuned_metrics, under_grammar.tuned_metrics, list(gates.min_delta), gates)
    return Judged(base_metrics, tuned_metrics, constant, constant_metrics, subgroups, results, gated, reported, deltas)


def score_by_input(task: Task, test: list[Example], predictions: Predictions) -> Metrics:
    """The kind's metrics of `predictions` on the test split, whose paired intervals draw the rows of one input
    together: a test row repeated four times is one input, not four independent examples."""
    if predictions.ids != [ex.id for ex in test]:
        raise ValueError(f"task {task.card.name}: predictions cover other examples than the test split, in another "
                         f"order; cannot tell which rows share an input")
    return with_input_groups(score(task, predictions), input_groups(test), samples_per_example(test))
