"""Retention probes run (loragate.run.probes, loragate.run.retention): checked before any model loads, text cut into
paired rows, and end to end on the tiny tier, where an over-trained adapter that degrades what its base could do
fails the probes and an adapter trained as the card says passes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from loragate.card.overrides import apply_overrides
from loragate.card.settings import CardError
from loragate.run.probes import check_probes
from loragate.tasks import get_task

IRIS_CARD = Path(get_task("iris").card.path)


def probing(task: str, value: str):
    return apply_overrides(get_task(task).card, (f"retention={value}",))


@pytest.mark.parametrize(("task", "value", "message"), [
    ("sst2_encoder", "[{task: sst2, metric: accuracy, max_drop: 0.05}]",
     "retention: kind sequence_classification answers through a head trained for this card's task"),
    ("iris", "[{task: sst, metric: accuracy, max_drop: 0.05}]", "retention[0].task: Unknown task 'sst'. Did you mean "
                                                                "'sst2'"),
    ("iris", "[{task: sst2_encoder, metric: accuracy, max_drop: 0.05}]",
     "retention[0].task: sst2_encoder is a sequence_classification task, answered by a head of its own"),
    ("iris", "[{task: iris, metric: accuracy, max_drop: 0.05}]", "retention[0].task: iris is this card's own task"),
    ("iris", "[{task: sst2, metric: acuracy, max_drop: 0.05}]", "retention[0].metric: Unknown metric 'acuracy'. Did "
                                                                "you mean 'accuracy'"),
    ("iris", "[{task: sst2, metric: rougeL, max_drop: 0.05}]",
     "retention[0].metric: sst2 is a generative_classification task, which does not compute 'rougeL'"),
    ("iris", "[{task: sst2, metric: accuracy, max_drop: 0.05}, {text_file: nowhere/general.txt, max_rise: 0.05}]",
     f"retention[1].text_file: {IRIS_CARD.parent / 'nowhere/general.txt'} does not exist; paths in `retention` are "
     f"relative to the card's file"),
])
def test_a_probe_that_cannot_run_is_refused_before_any_model_loads(task: str, value: str, message: str) -> None:
    with pytest.raises(CardError) as caught:
        check_probes(probing(task, value), ["tiny"])
    text = str(caught.value)
    assert message in text, text
    assert text.startswith(f"{get_task(task).card.path}: "), "the error names the card's file"


def test_a_text_file_needs_lines_to_resample(tmp_path: Path) -> None:
    one = tmp_path / "one.txt"
    one.write_text("a single passage\n\n   \n")
    with pytest.raises(CardError, match=r"retention\[0\].text_file: .*one.txt holds 1 non-blank line"):
        check_probes(probing("iris", f"[{{text_file: {one}, max_rise: 0.05}}]"), ["tiny"])
    two = tmp_path / "two.txt"
    two.write_text("one passage\nanother\n")
    check_probes(probing("iris", f"[{{text_file: {two}, max_rise: 0.05}}, {{task: sst2, metric: macro_f1, "
                                 f"max_drop: 0.05}}]"), ["tiny", "full"])


class Words:
    """A stand-in tokenizer: one id per word after a BOS of 0."""

    def __call__(self, lines: list[str]):
        class Encoded:
            input_ids = [[0, *(len(word) for word in line.split())] for line in lines]
        return Encoded()


def test_text_rows_score_every_token_after_the_first_once() -> None:
    from loragate.run.retention import text_rows
    from loragate.training.lora import IGNORE

    lines = ["a bb ccc", "d " * 9, ""]
    rows = text_rows(Words(), lines, width=4)
    scored = [label for _, labels in rows for label in labels if label != IGNORE]
    assert scored == [1, 2, 3, *[1] * 9], "each token after BOS once, in order; a BOS-only line scores nothing"
    assert all(len(ids) <= 4 for ids, _ in rows)
    assert [ids for ids, _ in rows][1:] == [[0, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1]], \
        "a long line is cut into rows that overlap by the one unscored token"


def pretrained_base(out: Path, cache: Path, lines: list[str], steps: int = 250) -> Path:
    """A tiny causal base that is good at `lines`: the Iris card's tiny base (vocab 768, its tokenizer trained on
    them) trained on them as a language model, each line then EOS, for `steps` batches of 16 (about 7 s). The random
    tiny base knows nothing a probe could measure it losing."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from loragate.models.bases import tiny_base_dir

    spec = get_task("iris").card.tier("tiny").tiny_base.model_copy(update={"vocab_size": 768})
    source = tiny_base_dir(cache, "retention", spec, lines)
    model, tokenizer = AutoModelForCausalLM.from_pretrained(source), AutoTokenizer.from_pretrained(source)
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        batch = tokenizer([lines[i] + tokenizer.eos_token for i in torch.randint(0, len(lines), (16,)).tolist()],
                          return_tensors="pt", padding=True)
        loss = model(**batch, labels=batch.input_ids.masked_fill(batch.attention_mask == 0, -100)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.mark.slow
def test_retention_fails_an_over_trained_adapter_and_passes_the_cards_own(tmp_path: Path) -> None:
    """The base is trained on Iris and SST-2 text (so it answers SST-2 and reads that text well); an Iris adapter
    trained as the card says keeps both, one trained 15 epochs at lr 3e-2 loses both and the gate fails it."""
    from loragate.card.options import RunOptions
    from loragate.run.task_run import run_task

    iris, sst2 = get_task("iris").load_splits(), get_task("sst2").load_splits()
    lines = [ex.prompt + ex.target for splits in (iris, sst2) for split in (splits.train, splits.eval, splits.test)
             for ex in split]
    general = tmp_path / "general.txt"
    general.write_text("\n".join(lines) + "\n")
    base = pretrained_base(tmp_path / "base", tmp_path / "cache", lines)
    # SST-2's 80 test rows cannot show a drop under 0.05 once one row is lost (Tango's score interval of the kept
    # adapter: -0.013 [-0.067, +0.034], p=0.12); under 0.15 they can, in the run's family of 9
    probes = f"retention=[{{text_file: {general}, max_rise: 0.05}}, {{task: sst2, metric: accuracy, max_drop: 0.15}}]"

    def gated(*overrides: str):
        return run_task("iris", "tiny", RunOptions(base_model=str(base), store_root=tmp_path / "adapters",
                                                   cache=tmp_path / "cache", progress=False,
                                                   overrides=(probes, *overrides)))

    kept = gated()
    text, task = kept.retention
    rows = sum(1 for line in general.read_text().splitlines() if line.strip())  # SST-2's prompts hold two lines
    assert (text.source, text.n, task.source, task.probe, task.n) == ("text", rows, "task", "sst2", 80)
    assert task.gate.numbers.reference >= 0.9, "the base must be good at the probe for it to measure anything"
    assert text.gate.passed and task.gate.passed, (text.gate.finding, task.gate.finding)
    assert -text.gate.numbers.low < 0.05, text.gate.evidence
    assert [r.check for r in kept.gates if r.check.startswith("retention ")] == [text.gate.check, task.gate.check]
    family = sum(len(r.comparisons) for r in kept.gates)
    assert text.gate.comparisons[0].family == task.gate.comparisons[0].family == family > 2, \
        "the probes are judged in one family with the target's comparisons (Holm)"

    lost = gated("tiers.tiny.train.epochs=15", "tiers.tiny.train.lr=3e-2")
    text, task = lost.retention
    assert not text.gate.passed and not task.gate.passed
    assert text.gate.finding.startswith(f"{general} perplexity 1 - tuned/base "), text.gate.finding
    assert "base perplexity 27." in text.gate.finding and "allowed +5.0%" in text.gate.finding, text.gate.finding
    assert -text.gate.numbers.delta > 1.0, "the over-trained adapter more than doubles the perplexity"
    assert task.gate.numbers.tuned < task.gate.numbers.reference - 0.5, task.gate.evidence
    assert lost.verdict.status == "FAIL"
    assert any(reason.startswith(f"retention {general}: perplexity: ") for reason in lost.verdict.reasons)
    shown_side_by_side(lost, general)


def shown_side_by_side(run, general: Path) -> None:
    """The target's deltas and the probes' in one Retention section of the table, report.md and report.html, and
    each probe in report.json."""
    from loragate.report.writer import render

    rendered = render(run)
    table = rendered.table.splitlines()
    title = next(index for index, line in enumerate(table) if line.strip().startswith("Retention: "))
    section = [line.split() for line in table[title + 2 : title + 6]]
    assert [row[:2] for row in section] == [["target:", "iris"], ["target:", "iris"], ["retention:", str(general)],
                                            ["retention:", "sst2"]], table[title:title + 6]
    assert section[2][-1] == section[3][-1] == "FAIL" and "rise" in section[2], section
    assert "**Retention: " in rendered.markdown and f"| retention: {general} | perplexity |" in rendered.markdown
    assert "<h3>Retention: " in rendered.html
    probes = rendered.json["retention"]
    assert [(p["probe"], p["source"], p["metric"], p["status"]) for p in probes] == [
        (str(general), "text", "perplexity", "FAIL"), ("sst2", "task", "accuracy", "FAIL")]
    assert probes[0]["base"] == run.retention[0].gate.numbers.reference and probes[1]["n"] == 80


@pytest.mark.slow
def test_a_probe_task_that_samples_is_scored_on_its_samples(monkeypatch, fresh_base) -> None:
    """A probe task whose card samples (eval.sampling) is answered k times an example, as a run of it would be, and
    scored on every sample, each example's samples drawn together."""
    from loragate.run import retention

    sampled = get_task("sst2")
    sampled.card = apply_overrides(sampled.card, ("tiers.tiny.eval.decode=generate",
                                                  "tiers.tiny.eval.sampling={temperature: 1.0, samples: 2}"))
    monkeypatch.setattr(retention, "get_task", lambda name: sampled)
    card = probing("iris", "[{task: sst2, metric: accuracy, max_drop: 0.05}]")
    probes = retention.base_probes(card, "tiny", fresh_base)
    (result,) = retention.judge_probes(probes, "tiny", fresh_base.model, fresh_base, card.gates, 32)
    assert result.n == 80 and "n=80 x 2 samples" in result.gate.evidence, result.gate.evidence  # 160 rows
