"""Issue 33, point 4: a card that samples (eval.sampling) is gated on k samples of each test example. Metrics average
over the samples, the k samples of an example are one cluster of the paired interval (so it is wider than if they were
independent examples), subgroups too; an unstable model shows low agreement and its least stable
examples; a kind or decode that cannot sample is refused at start-up."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from loragate.card.options import RunOptions
from loragate.card.overrides import OverrideError, apply_overrides
from loragate.card.settings import CardError
from loragate.data.examples import Example
from loragate.inference.predictions import Predictions, constant_predictions
from loragate.metrics.stats import paired_score_interval
from loragate.report.rows import sampling_notes
from loragate.report.stability import least_stable, stability_markdown
from loragate.run.judging import judge_predictions
from loragate.run.steps import sampled_rows
from loragate.run.task_run import checked_task
from loragate.tasks import get_task

ROOT = Path(__file__).resolve().parents[2]
K = 5
SAMPLED = ("tiers.tiny.eval.decode=generate", f"tiers.tiny.eval.sampling={{temperature: 0.7, samples: {K}, seed: 0}}")
N = 40
RNG = np.random.default_rng(7)
LABELS = ["positive", "negative"]
GOLD = RNG.integers(0, 2, N)
# each example is easy or hard for each model: its samples agree with each other far more than two examples do
BASE_SKILL = np.where(RNG.random(N) < 0.5, 0.9, 0.1)
TUNED_SKILL = np.where(RNG.random(N) < 0.75, 0.9, 0.1)


def sst2(*overrides: str):
    task = get_task("sst2")
    task.card = apply_overrides(task.card, overrides)
    return task


def reviews() -> list[Example]:
    """N distinct reviews (no input repeats), half in domain a, half in b."""
    return [Example(id=f"r{i}", prompt=f"Review: film {i}\nSentiment:", target=f" {LABELS[GOLD[i]]}",
                    label=LABELS[GOLD[i]], fields={"sentence": f"film {i}", "domain": "ab"[i % 2]}) for i in range(N)]


def samples_of(task, rows: list[Example], skill: np.ndarray, seed: int) -> Predictions:
    """A model's answers to `rows` (K samples of each review, in a row): right with the review's own probability."""
    draws = np.random.default_rng(seed).random(len(rows))
    outputs = [f" {ex.label}" if draw < skill[row // K] else f" {LABELS[1 - LABELS.index(ex.label)]}"
               for row, (ex, draw) in enumerate(zip(rows, draws))]
    return constant_predictions(rows, outputs, task.parse)


def accuracy_gate(judged):
    return next(r for r in judged.gates if r.check == "accuracy delta").numbers


def test_a_sampled_card_answers_each_example_k_times_and_metrics_average_over_the_samples() -> None:
    task = sst2(*SAMPLED)
    rows = sampled_rows(task, "tiny", reviews())
    assert [ex.id for ex in rows[:K + 1]] == ["r0"] * K + ["r1"]
    assert sampled_rows(sst2(), "tiny", reviews()) == reviews(), "greedy stays the default: each example once"
    base, tuned = samples_of(task, rows, BASE_SKILL, 1), samples_of(task, rows, TUNED_SKILL, 2)
    judged = judge_predictions(task, rows, base, tuned)
    right = np.array([out.strip() == ex.label for out, ex in zip(tuned.outputs, rows)]).reshape(N, K)
    assert judged.tuned_metrics.n == N * K
    assert judged.tuned_metrics.accuracy == pytest.approx(right.mean(axis=1).mean()), "not the mean over samples"
    assert judged.tuned_metrics.input_groups == tuple(np.repeat(np.arange(N), K)), \
        "an example's K samples are not one cluster"
    assert judged.tuned_metrics.samples == K
    evidence = next(r for r in judged.gates if r.check == "accuracy delta").evidence
    assert f"n={N} x {K} samples," in evidence and "McNemar n/a: rows repeat inputs" in evidence, evidence


def test_only_k_copies_of_each_example_in_a_row_count_as_samples() -> None:
    from loragate.run.steps import samples_per_example

    task = sst2(*SAMPLED)
    assert samples_per_example(sampled_rows(task, "tiny", reviews())) == K
    assert samples_per_example(reviews()) == 1 and samples_per_example([]) == 1
    first, second = reviews()[:2]
    assert samples_per_example([first, second, first, second]) == 1, "repeated ids out of blocks are not samples"


def test_the_interval_resamples_each_example_with_its_samples_and_is_wider_than_independent_rows() -> None:
    task = sst2(*SAMPLED)
    rows = sampled_rows(task, "tiny", reviews())
    base, tuned = samples_of(task, rows, BASE_SKILL, 1), samples_of(task, rows, TUNED_SKILL, 2)
    clustered = accuracy_gate(judge_predictions(task, rows, base, tuned))
    settings = task.card.gates
    gold, base_index, tuned_index = (np.array([LABELS.index(label) for label in labels]) for labels in
                                     ([ex.label for ex in rows], [p.strip() for p in base.outputs],
                                      [p.strip() for p in tuned.outputs]))
    expected = paired_score_interval(base_index == gold, tuned_index == gold, settings.confidence,
                                     clusters=np.repeat(np.arange(N), K))  # right/wrong: Tango's, on clusters
    assert (clustered.low, clustered.high) == pytest.approx((expected.low, expected.high), abs=1e-12)
    # the same answers as N x K distinct examples, greedy: the interval of independent rows
    independent = [replace(ex, prompt=f"{ex.prompt} #{row}") for row, ex in enumerate(rows)]
    plain = sst2("tiers.tiny.eval.decode=generate")
    naive = accuracy_gate(judge_predictions(plain, independent, base, tuned))
    assert naive.delta == pytest.approx(clustered.delta)
    width, naive_width = clustered.high - clustered.low, naive.high - naive.low
    assert width > 1.4 * naive_width, f"clustered interval {width:.3f} wide, independent rows {naive_width:.3f}"


def test_subgroup_intervals_resample_an_example_with_its_samples() -> None:
    task = sst2(*SAMPLED, "subgroups=domain")
    rows = sampled_rows(task, "tiny", reviews())
    base, tuned = samples_of(task, rows, BASE_SKILL, 1), samples_of(task, rows, TUNED_SKILL, 2)
    judged = judge_predictions(task, rows, base, tuned)
    domain_a = next(group for group in judged.subgroups if group.name == "domain=a")
    assert domain_a.n == N // 2 * K
    assert domain_a.tuned.input_groups == tuple(np.repeat(np.arange(N // 2), K)), \
        "a subgroup's samples of one example are not one cluster"
    assert domain_a.tuned.samples == K, "a subgroup's gates would count its samples as examples"


def a_run(task, rows: list[Example], base: Predictions, tuned: Predictions, test: list[Example]) -> SimpleNamespace:
    """What the report's sampling parts read of a TaskRun."""
    return SimpleNamespace(task=task, tier="tiny", splits=SimpleNamespace(test=test), base_predictions=base,
                           tuned_predictions=tuned)


def test_an_unstable_model_reports_low_agreement_and_lists_its_least_stable_examples(fresh_base, iris_splits) -> None:
    """The untrained tiny base at temperature 3 is a deliberately unstable model; greedy, it agrees with itself."""
    from loragate.inference.engine import generate

    task = get_task("iris")
    hot = f"tiers.tiny.eval.sampling={{temperature: 3.0, samples: {K}, seed: 0}}"
    task.card = apply_overrides(task.card, ("tiers.tiny.eval.decode=generate", hot))
    test = iris_splits.test[:12]
    rows = sampled_rows(task, "tiny", test)
    prompts = [ex.prompt for ex in rows]
    sampled = generate(fresh_base.model, fresh_base.tokenizer, prompts, 4, 16,
                       sampling=task.card.tier("tiny").eval.sampling)
    greedy = generate(fresh_base.model, fresh_base.tokenizer, prompts, 4, 16)
    as_predictions = [constant_predictions(rows, outputs.texts, task.parse) for outputs in (greedy, sampled)]
    run = a_run(task, rows, *as_predictions, test)
    base_note, tuned_note = sampling_notes(run)[1:]
    assert f"all {K} agree on 12 of 12 examples" in base_note, base_note  # greedy: one answer K times
    listed = least_stable(run)
    assert len(listed) >= 8 and all(ex.majority <= 0.6 for ex in listed[:8]), [(e.id, e.answers) for e in listed]
    assert [ex.majority for ex in listed] == sorted(ex.majority for ex in listed), "not the least stable first"
    assert listed[0].input.startswith("sepal_length: "), listed[0].input
    markdown = "\n".join(stability_markdown(run))
    assert "**Least stable tuned examples: " in markdown and listed[0].answers in markdown, markdown
    assert sampling_notes(run)[0].startswith(f"sampled at T=3, top_p=1, k={K}, seed=0: every metric averages")


def test_sampling_where_nothing_is_generated_is_refused_when_the_card_loads() -> None:
    sampling = f"tiers.tiny.eval.sampling={{temperature: 0.7, samples: {K}}}"
    with pytest.raises(OverrideError, match="decode: score takes each example's likeliest label"):
        sst2(sampling)
    with pytest.raises(CardError, match="--baseline-report: iris samples at tiers.tiny.eval.sampling"):
        checked_task("iris", "tiny", RunOptions(baseline_report=Path("report.json"),
                                                overrides=("tiers.tiny.eval.decode=generate", sampling)))


def test_sampling_an_encoder_kind_is_a_usage_error_at_start_up(gate_dir: pytest.Pytester) -> None:
    result = gate_dir.runpytest_subprocess("-p", "no:cacheprovider", "-m", "smoke", "--task", "sst2_encoder", "--set",
                                           f"tiers.tiny.eval.sampling={{temperature: 0.7, samples: {K}}}")
    output = result.stdout.str()[-3000:] + result.stderr.str()[-3000:]
    assert result.ret == pytest.ExitCode.USAGE_ERROR and "Traceback" not in output, output
    errors = [line for line in result.errlines if line.strip()]
    assert len(errors) == 1 and "kind sequence_classification reads its answer from an encoder's head" in errors[0], \
        output


@pytest.mark.slow
def test_a_sampled_gate_run_reports_its_setting_agreement_and_clustered_intervals(tmp_path: Path) -> None:
    """Iris on the tiny tier with the committed adapter, sampled by --set: every report file and the JUnit properties
    name the setting, the reports show base's and tuned's agreement and the least stable examples, and the accuracy
    interval is the score interval of its inputs (clusters), not of its rows."""
    setting = f"tiers.tiny.eval.sampling={{temperature: 0.7, top_p: 0.9, samples: {K}, seed: 0}}"
    result = subprocess.run([sys.executable, "-m", "pytest", "-m", "smoke", "-p", "no:cacheprovider", "--task", "iris",
                             "--set", "tiers.tiny.eval.decode=generate", "--set", setting, "--report-dir",
                             str(tmp_path / "reports"), f"--junitxml={tmp_path / 'junit.xml'}",
                             "suites/test_quality.py"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode in (0, 1), result.stdout[-3000:] + result.stderr[-3000:]
    (report_dir,) = (tmp_path / "reports").iterdir()
    (run,) = json.loads((report_dir / "report.json").read_text())["runs"]
    line = f"sampled at T=0.7, top_p=0.9, k={K}, seed=0"
    assert run["sampling"]["line"] == line and run["sampling"]["tuned"]["examples"] == 30, run["sampling"]
    assert len(run["predictions"]) == 30 * K
    markdown = (report_dir / "report.md").read_text()
    assert f"n=30 x {K} samples" in markdown and f"note: {line}: every metric averages" in markdown
    assert "note: agreement of tuned's samples: " in markdown and "Least stable tuned examples" in markdown
    assert f" of 30 examples ({K} samples each)**" in markdown, "the wrong outputs' heading counts rows"
    assert "Least stable tuned examples" in (report_dir / "report.html").read_text()
    evidence = next(g for g in run["gates"] if g["check"] == "accuracy delta")["evidence"]
    assert f"n=30 x {K} samples," in evidence and "McNemar n/a: rows repeat inputs" in evidence, evidence
    assert line in (report_dir / "summary.md").read_text()
    assert f'name="loragate.sampling" value="{line}"' in (tmp_path / "junit.xml").read_text()
    gated = next(row for row in run["gated"] if row["check"] == "accuracy delta")
    labels = run["metrics"]["tuned"]["labels"]
    index = {label: i for i, label in enumerate(labels)}
    gold, base, tuned = (np.array([index.get(p[key], len(labels)) if p[key] is not None else len(labels)
                                   for p in run["predictions"]]) for key in ("gold", "base", "tuned"))
    first_seen: dict[str, int] = {}  # each input's cluster id in first-seen order, as input_groups numbers them
    clusters = np.array([first_seen.setdefault(json.dumps(p["input"], sort_keys=True), len(first_seen))
                         for p in run["predictions"]])
    expected = paired_score_interval(base == gold, tuned == gold, 0.95, clusters=clusters)
    naive = paired_score_interval(base == gold, tuned == gold, 0.95)
    assert (gated["low"], gated["high"]) == pytest.approx((expected.low, expected.high), abs=1e-9), (gated, expected)
    assert gated["high"] - gated["low"] > naive.high - naive.low, (gated, naive)
