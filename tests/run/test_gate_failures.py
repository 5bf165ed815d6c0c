"""The gate itself, run as a user runs it, must fail on adapters that should not ship."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from loragate.card.options import RunOptions
from loragate.data.examples import Example, Splits
from loragate.gates.checks import leakage_gate
from loragate.report.writer import text_table
from loragate.run import steps as run_module
from loragate.run.task_run import PROBE, run_task
from loragate.suites.test_parameters import test_disable_adapter_reproduces_base_exactly as disabled_adapter_check
from loragate.tasks import get_task
from tests.run.test_baseline_adapter import committed_adapter, zeroed_copy

ROOT = Path(__file__).resolve().parents[2]


def gate(*args: str, report_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-m", "smoke", "-p", "no:cacheprovider",
                           "--report-dir", str(report_dir), *args], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.slow
def test_an_adapter_with_no_effect_fails_the_gate(tmp_path: Path) -> None:
    noop = zeroed_copy(committed_adapter(), tmp_path / "noop")
    result = gate("suites/test_parameters.py", "suites/test_quality.py", "--task", "iris", "--adapter", str(noop),
                  report_dir=tmp_path / "reports")
    assert result.returncode == 1, result.stdout[-3000:]
    assert "adapter has no effect: max logit change 0.00e+00" in result.stdout, result.stdout[-3000:]
    assert "FAILED suites/test_quality.py::test_metric_deltas_meet_card_minimums[iris-tiny]" in result.stdout
    assert "iris/tiny: FAIL" in result.stdout


@pytest.mark.slow
def test_a_base_weight_changed_under_the_adapter_fails_the_disabled_adapter_check(tmp_path: Path) -> None:
    """The check reads the first PROBE test examples only; a change to one base weight still shows there."""
    run = run_task("iris", "tiny", RunOptions(store_root=ROOT / "adapters", cache=tmp_path / "cache", progress=False))
    disabled_adapter_check(run)  # the committed adapter passes
    base_weight = next(p for name, p in run.model.named_parameters() if name.endswith("base_layer.weight"))
    with torch.no_grad():
        base_weight[0, 0] += 1e-3
    with pytest.raises(AssertionError, match=rf"iris/tiny: with the adapter disabled, logits on the first {PROBE} "
                                             rf"test examples differ from base by up to \d"):
        disabled_adapter_check(run)


def test_leakage_is_found_through_case_and_spacing() -> None:
    def ex(i: str, prompt: str) -> Example:
        return Example(id=i, prompt=prompt, target=" a", label="a")

    splits = Splits(train=[ex("tr-0", "Review: good  film")], eval=[],
                    test=[ex("te-0", "review: GOOD film"), ex("te-1", "Review: bad film")])
    assert splits.leaked() == ["te-0"]


def test_leakage_gate_refuses_above_the_card_share_and_names_the_examples() -> None:
    refused = leakage_gate(["te-0", "te-3"], 10, max_share=0.0)
    assert not refused.passed
    assert "2 of 10 test inputs also in train (20.0% > allowed 0.0%): te-0, te-3" in refused.finding
    assert leakage_gate(["te-0"], 10, max_share=0.1).passed
    assert leakage_gate(["te-0"] * 9, 10, max_share=None).passed, "a card that allows repeats is not gated"


@pytest.mark.slow
def test_out_of_memory_halves_the_eval_batch_and_the_report_says_so(monkeypatch, tmp_path) -> None:
    """A GPU out-of-memory error during evaluation retries the whole prediction at half the batch size, down to
    1; greedy predictions do not depend on the batch, and the report names the batch that ran."""
    kind = run_module.kind(get_task("iris"))
    real = type(kind).predict
    seen: list[int] = []

    def flaky(*args, **kwargs):
        batch_size = args[-1]
        seen.append(batch_size)
        if batch_size > 8:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(kind, *args, **kwargs)

    monkeypatch.setattr(kind, "predict", flaky)
    with pytest.warns(UserWarning) as caught:
        halved = run_task("iris", "tiny", RunOptions(cache=tmp_path, progress=False))
    messages = [str(warning.message) for warning in caught]
    assert "tuned iris/tiny: out of memory at eval batch size 32; retrying at 16" in messages, messages
    assert seen[:3] == [32, 16, 8], seen
    assert halved.tuned_predictions.batch_size == 8 and halved.tuned_predictions.card_batch_size == 32
    assert "note: tuned predictions ran at eval batch 8, halved from the card's 32" in text_table(halved)
    monkeypatch.undo()
    plain = run_task("iris", "tiny", RunOptions(cache=tmp_path, progress=False))
    assert plain.tuned_predictions.outputs == halved.tuned_predictions.outputs
    assert "ran at eval batch" not in text_table(plain)  # its notes name the family of its gates, no batch


def test_out_of_memory_at_batch_one_is_an_error_naming_the_fix(monkeypatch) -> None:
    def always(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(run_module.kind(get_task("iris")), "predict", always)
    with pytest.warns(UserWarning), pytest.raises(RuntimeError, match="out of memory even at eval batch size 1 "
                                                                      r"\(card: 32\); use a smaller base"):
        run_module.predict(get_task("iris"), None, None, [], "tiny", False, "tuned iris/tiny")
