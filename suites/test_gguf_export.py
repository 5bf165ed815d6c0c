"""The merged adapter survives export: as merged safetensors it reloads bit-identical, and written as a q8_0 GGUF
and read back by transformers it answers like the adapter model, through a tokenizer that encodes the test
prompts as the base's does. With --export DIR the files are kept in DIR/<task>-<tier>/, else in a temp dir."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch

from loragate.kinds import KINDS
from loragate.run.steps import score
from loragate.run.task_run import PROBE
from loragate.store.export import (
    ExportError,
    agreement,
    gguf_unsupported,
    load_gguf,
    metric_tolerance,
    reload_mismatch,
    save_merged,
    tokenization_mismatches,
    write_gguf,
)

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from loragate.run.task_run import TaskRun

def export_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, run: TaskRun) -> Path:
    """DIR/<task>-<tier>/ (DIR/<task>-<tier>-<candidate>/ for one of several candidates) under --export DIR, else a
    fresh temp dir."""
    name = "-".join(part for part in (run.task.card.name, run.tier, run.candidate) if part)
    kept = request.config.getoption("export")
    if kept is None:
        return tmp_path_factory.mktemp(f"export-{name}")
    out = Path(kept) / name
    out.mkdir(parents=True, exist_ok=True)
    return out


def test_merged_safetensors_reload_bit_identical(task_run: TaskRun, merged_model: PreTrainedModel,
                                                 request: pytest.FixtureRequest,
                                                 tmp_path_factory: pytest.TempPathFactory) -> None:
    out = export_dir(request, tmp_path_factory, task_run) / "merged"
    save_merged(merged_model, task_run.base.tokenizer, out)
    parameter = next(merged_model.parameters())
    reloaded = type(merged_model).from_pretrained(out, dtype=parameter.dtype, use_safetensors=True).to(parameter.device)
    mismatch = reload_mismatch(reloaded, merged_model)
    assert mismatch is None, f"{task_run.name}: merged safetensors in {out} reload with {mismatch}"
    # the same tensors and config make the same forward: a few test examples show the files load into it
    actual, expected = (task_run.probe(model) for model in (reloaded.eval(), merged_model))
    assert torch.equal(actual, expected), (
        f"{task_run.name}: merged safetensors in {out} reload with the same tensors and config, yet their logits on "
        f"the first {PROBE} test examples are up to {(actual - expected).abs().max().item():.2e} away")


@pytest.fixture(scope="module")
def read_back(gate_case: tuple[str, str, str], request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> tuple[TaskRun, PreTrainedModel, PreTrainedTokenizerBase]:
    """(task run, model, tokenizer): the merged adapter model written as q8_0 GGUF and read back, on the run's
    device and dtype. Skips, with the reason, where no GGUF can be written: an encoder task is skipped before its
    run is requested, so this file alone does not evaluate it."""
    task, tier, _ = gate_case
    kind = request.getfixturevalue("gate_session").task(task).card.kind  # the card with the run's --set
    if KINDS.get(kind).encoder:
        pytest.skip(f"{task}/{tier}: {kind} is an encoder task; GGUF export covers causal Llama-architecture models")
    run: TaskRun = request.getfixturevalue("task_run")
    reason = gguf_unsupported(run.model.get_base_model())
    if reason is not None:
        pytest.skip(f"{run.name}: {reason}")
    path = export_dir(request, tmp_path_factory, run) / "model.q8_0.gguf"
    try:
        write_gguf(request.getfixturevalue("merged_model"), run.base.tokenizer, path, "q8_0")
    except ExportError as exc:  # a refusal (a tokenizer GGUF cannot carry), not a broken export
        pytest.skip(f"{run.name}: {exc}")
    parameter = next(run.model.parameters())
    return run, *load_gguf(path, str(parameter.device), parameter.dtype)


def test_gguf_next_tokens_agree_with_the_adapter_model(read_back) -> None:
    run, model, _ = read_back
    result = agreement(run.test_logits(model), run.tuned_logits)
    problem = result.problem()
    assert problem is None, (f"{run.name}: q8_0 GGUF read back vs the adapter model on {len(run.splits.test)} test "
                             f"prompts: {problem}")


def test_gguf_tokenizer_encodes_test_texts_as_the_base_does(read_back) -> None:
    run, _, tokenizer = read_back
    texts = [text for ex in run.splits.test for text in (ex.prompt, ex.prompt + ex.target)]
    mismatches = tokenization_mismatches(tokenizer, run.base.tokenizer, texts)
    shown = [f"{texts[i]!r}: {tokenizer(texts[i])['input_ids']} vs {run.base.tokenizer(texts[i])['input_ids']}"
             for i in mismatches[:3]]
    assert not mismatches, (f"{run.name}: the q8_0 GGUF's tokenizer encodes {len(mismatches)} of {len(texts)} test "
                            f"prompts (alone and with their target) differently from the base's, e.g. "
                            + "; ".join(shown))


def test_gguf_task_metrics_stay_within_tolerance(read_back) -> None:
    run, model, _ = read_back
    with torch.no_grad():
        exported = score(run.task, run.predict(model))
    drifted = []
    for metric in run.task.card.gates.min_delta:  # the card's gated metrics, headline first
        tuned, read = run.tuned_metrics.value(metric), exported.value(metric)
        tolerance = metric_tolerance(metric, tuned)
        if abs(read - tuned) > tolerance:
            drifted.append(f"{metric} {tuned:.4f} -> {read:.4f} ({read - tuned:+.4f}, tolerance +/-{tolerance:.4f})")
    assert not drifted, (f"{run.name}: the q8_0 GGUF read back scores differently from the adapter model on "
                         f"{len(run.splits.test)} test examples: " + "; ".join(drifted))
