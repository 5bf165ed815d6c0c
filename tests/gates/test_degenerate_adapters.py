"""Adapters that ignore their input must fail the gate, naming the cause, at any test-split size: one label for
everything, always abstaining, nothing at all, the same text every time. Predictions are constructed (no model)
and go through the run's own scoring and gates (loragate.run.task_run.judge_predictions).

Each case has a large split (n=2000) where the gain over a weak base clears the card's interval gate, so only
the trivial-predictor and subgroup gates stand between it and a release."""

from __future__ import annotations

from dataclasses import replace

import pytest
from scipy.stats import norm

from loragate.data.examples import Example
from loragate.inference.predictions import Predictions, constant_predictions
from loragate.run.judging import Judged, judge_predictions
from loragate.tasks import get_task

SIZES = [40, 2000]


def failures(judged: Judged) -> dict[str, str]:
    return {r.check: r.finding for r in judged.gates if not r.passed}


def base_gates_pass(judged: Judged, task: str) -> None:
    """At n=2000 the gain over base is real: the card's delta gates alone would ship this adapter."""
    names = {f"{metric} delta" for metric in get_task(task).card.gates.min_delta}
    failed = {name: finding for name, finding in failures(judged).items() if name in names}
    assert not failed, failed


def predictions(task: str, examples: list[Example], outputs: list[str]) -> Predictions:
    return constant_predictions(examples, outputs, get_task(task).parse)


# --- classification: a weak base (mostly unparsed), a tuned model that answers one label ---

def labelled(task: str, n: int) -> list[Example]:
    labels = get_task(task).card.labels
    return [Example(id=f"ex-{i}", prompt=f"text {i}", target=labels[i % len(labels)], label=labels[i % len(labels)])
            for i in range(n)]


def alike(n: int) -> str:
    """The lower bound of a right/wrong metric's delta where tuned and the constant agree on all n examples: Tango's
    score interval leaves -z^2 / (n + z^2) (the bootstrap's was 0)."""
    z2 = float(norm.ppf(0.975)) ** 2
    return f"{-z2 / (n + z2):+.3f}"


def weak_base(task: str, examples: list[Example]) -> Predictions:
    """Right on every tenth example, "None" (unparsed, as the seed's base answered half the time) on the rest:
    accuracy 0.1, macro F1 0.18, so a one-label adapter's macro F1 of 0.33 clears +0.10."""
    return predictions(task, examples, [ex.label if i % 10 == 0 else "None" for i, ex in enumerate(examples)])


@pytest.mark.slow
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("task", ["sst2", "sst2_encoder"])
def test_one_label_for_everything_fails_naming_the_majority_class(task: str, n: int) -> None:
    examples = labelled(task, n)
    tuned = predictions(task, examples, ["positive"] * n)
    judged = judge_predictions(get_task(task), examples, weak_base(task, examples), tuned)
    found = failures(judged)
    assert f"accuracy delta over majority class 'positive' lower bound {alike(n)} < required +0.100" in \
        found.get("accuracy vs majority class 'positive'", ""), found
    assert "class 'negative' accuracy 0.000 < floor 0.700" in found.get("per-class floor", ""), found
    if n == 2000:
        base_gates_pass(judged, task)


@pytest.mark.slow
@pytest.mark.parametrize("n", SIZES)
def test_a_four_class_adapter_that_answers_one_topic_fails(n: int) -> None:
    examples = labelled("topics", n)
    base = predictions("topics", examples, ["nonsense"] * n)  # never a topic: accuracy 0
    tuned = predictions("topics", examples, ["World"] * n)  # +0.25 over base, nothing over the majority class
    found = failures(judge_predictions(get_task("topics"), examples, base, tuned))
    assert "over majority class 'World'" in found.get("accuracy vs majority class 'World'", ""), found


@pytest.mark.slow
@pytest.mark.parametrize("task", ["sst2", "sst2_encoder"])
def test_no_output_at_all_fails_validity_and_the_trivial_gate(task: str) -> None:
    examples = labelled(task, 2000)
    judged = judge_predictions(get_task(task), examples, weak_base(task, examples),
                               predictions(task, examples, [""] * 2000))
    found = failures(judged)
    assert "2000 of 2000 outputs did not parse" in found.get("validity", ""), found
    assert "accuracy vs majority class 'positive'" in found, found


# --- extractive QA: the squad_v2 case of issue #17 ---

def questions(n: int) -> list[Example]:
    """n questions, half unanswerable (no reference)."""
    return [Example(id=f"q-{i}", prompt=f"question {i}", target="", label="",
                    references=(f"answer {i}",) if i % 2 == 0 else ()) for i in range(n)]


def answers_everything(examples: list[Example]) -> Predictions:
    """A base that never abstains and gets 60% of the answerable questions right: EM 0.3, has-answer F1 0.6."""
    answerable = [ex for ex in examples if ex.references]
    right = {ex.id for ex in answerable[: round(0.6 * len(answerable))]}
    return predictions("squad_v2", examples, [ex.references[0] if ex.id in right else "wrong" for ex in examples])


@pytest.mark.slow
@pytest.mark.parametrize("n", [40, 300, 2000])
def test_an_adapter_that_always_abstains_fails_naming_has_answer_f1_and_the_abstainer(n: int) -> None:
    """squad_v2 on real data: EM rose (0.347 -> 0.422) because the adapter answered nothing and half the questions
    have no answer. At n=300 its delta's lower bound clears +0.05; it must fail at every size."""
    examples = questions(n)
    judged = judge_predictions(get_task("squad_v2"), examples, answers_everything(examples),
                               predictions("squad_v2", examples, [""] * n))
    found = failures(judged)
    for metric, bound in (("exact", alike(n)), ("f1", "+0.000")):  # f1 keeps the bootstrap: [0, 0] where alike
        assert f"{metric} delta over always abstain lower bound {bound} < required +0.050" in \
            found.get(f"{metric} vs always abstain", ""), found
    floor = f"subgroup 'has answer' f1 0.000 < floor 0.500 (base 0.600, n={n // 2})"
    assert floor in found.get("subgroup floor", ""), found
    assert judged.constant.name == "always abstain" and judged.constant_metrics.value("exact") == 0.5
    if n >= 300:
        base_gates_pass(judged, "squad_v2")


@pytest.mark.slow
def test_the_same_answer_to_every_question_fails() -> None:
    examples = questions(2000)
    found = failures(judge_predictions(get_task("squad_v2"), examples, answers_everything(examples),
                                       predictions("squad_v2", examples, ["answer 0"] * 2000)))
    assert "exact delta over always abstain" in found.get("exact vs always abstain", ""), found
    assert "subgroup 'no answer' f1 0.000 < floor 0.500" in found.get("subgroup floor", ""), found


@pytest.mark.slow
def test_a_reader_that_answers_passes_the_new_gates() -> None:
    """The gates are not a refusal of every QA adapter: one that answers 90% of the answerable questions and
    abstains on the rest passes both."""
    examples = questions(2000)
    good = [ex.references[0] if ex.references and i % 20 else "" for i, ex in enumerate(examples)]
    found = failures(judge_predictions(get_task("squad_v2"), examples, answers_everything(examples),
                                       predictions("squad_v2", examples, good)))
    assert not found, found


# --- instruct: the same response to every prompt, or none ---

def prompts(n: int) -> list[Example]:
    return [Example(id=f"p-{i}", prompt=f"what is the capital of land {i}?", target="", label="",
                    references=(f"the capital of land {i} is town {i}",)) for i in range(n)]


def responses(examples: list[Example], outputs: list[str], nll_per_token: float) -> Predictions:
    """Responses with a reference NLL (what the model's likelihood gives perplexity), 8 tokens each."""
    return replace(predictions("instruct", examples, outputs), nll=[nll_per_token * 8] * len(examples),
                   tokens=[8] * len(examples))


@pytest.mark.slow
@pytest.mark.parametrize("n", SIZES)
def test_the_same_response_to_every_prompt_fails_naming_the_constant_response(n: int) -> None:
    examples = prompts(n)
    base = responses(examples, ["no idea"] * n, nll_per_token=3.0)
    tuned = responses(examples, [examples[0].references[0]] * n, nll_per_token=1.0)  # perplexity 20 -> 2.7
    judged = judge_predictions(get_task("instruct"), examples, base, tuned)
    found = failures(judged)
    check = "rougeL vs constant response 'the capital of land 0 is town 0'"
    assert "rougeL delta over constant response 'the capital of land 0 is town 0' lower bound +0.000 < required " \
           "+0.050" in found.get(check, ""), found
    (perplexity,) = [r for r in judged.gates if r.check.startswith("perplexity vs constant")]
    assert perplexity.passed and "a constant response has no likelihood" in perplexity.evidence, perplexity
    if n == 2000:
        base_gates_pass(judged, "instruct")


@pytest.mark.slow
def test_an_empty_response_to_every_prompt_fails() -> None:
    examples = prompts(2000)
    found = failures(judge_predictions(get_task("instruct"), examples,
                                       responses(examples, ["no idea"] * 2000, 3.0),
                                       responses(examples, [""] * 2000, 1.0)))
    assert "2000 of 2000 outputs did not parse" in found.get("validity", ""), found
    assert "rougeL delta over constant response" in "".join(found.values()), found
