"""SQuAD v2 task data and QA mechanics: the generator, the SQuAD JSON loader and its errors, windows over long
contexts, span decoding, the null threshold. No training: a forward pass of MiniLM on a few examples at most."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoModelForQuestionAnswering

import loragate.kinds.extractive_qa.pipeline as qa_pipeline
import loragate.run.task_run as run_module
from loragate.card.settings import CardError, LoraSettings
from loragate.data.examples import Example
from loragate.kinds import kind_of
from loragate.kinds.extractive_qa.spans import (
    CLS,
    SpanPrediction,
    answers,
    choose_null_threshold,
    first_window_logits,
    predict_spans,
    qa_features,
    qa_logits,
    qa_windows,
    window_logits,
)
from loragate.metrics.text import squad_v2_scores
from loragate.models.bases import LoadedBase, load_encoder
from loragate.run.task_run import TaskRun
from loragate.tasks import get_task
from loragate.tasks.squad_v2 import (
    MIN_UNANSWERABLE,
    QARow,
    build_splits,
    generate_rows,
    generated_splits,
    make_example,
    parse_answer,
    read_squad_json,
    span_start,
)
from loragate.training.lora import attach_lora

SPLITS = ("train", "eval", "test")


@pytest.fixture(scope="module")
def minilm() -> LoadedBase:
    return load_encoder("minilm", AutoModelForQuestionAnswering, {}, "cpu", torch.float32)


@pytest.fixture(scope="module")
def splits():
    return generated_splits()


def qa_example(i: int, context: str, question: str, *golds: str) -> Example:
    starts = [context.index(gold) for gold in golds]
    return make_example(QARow(f"q{i}", context, question, tuple(zip(golds, starts))))


# --- generated data ----------------------------------------------------------------------------------------

def test_generator_is_deterministic_and_ids_are_unique() -> None:
    first, again = generate_rows(), generate_rows()
    assert first == again, "the same seed gave other rows"
    assert generate_rows(seed=1) != first, "the seed is not used"
    ids = [row.id for row in first]
    assert len(set(ids)) == len(ids), "generated ids repeat"
    assert generated_splits().data_hash() == generated_splits().data_hash(), "the split is not deterministic"


def test_every_split_is_a_third_unanswerable_and_passages_do_not_leak(splits) -> None:
    contexts = []
    for name in SPLITS:
        part = getattr(splits, name)
        share = sum(ex.label == "unanswerable" for ex in part) / len(part)
        assert share >= MIN_UNANSWERABLE, f"{name}: only {share:.0%} unanswerable"
        assert all((ex.label == "unanswerable") == (ex.references == () and ex.target == "") for ex in part)
        contexts.append({ex.fields["context"] for ex in part})
    assert not (contexts[0] & contexts[2]) and not (contexts[0] & contexts[1]) and not (contexts[1] & contexts[2]), \
        "a passage appears in two splits"
    sizes = [len(getattr(splits, name)) for name in SPLITS]
    assert sizes[0] > 250 and sizes[1] >= 50 and sizes[2] >= 80, sizes


def test_every_gold_answer_is_a_span_at_its_answer_start(splits) -> None:
    multi = 0
    for name in SPLITS:
        for ex in getattr(splits, name):
            context, start = ex.fields["context"], int(ex.fields["answer_start"])
            sentences = context.count(". ") + 1
            assert 2 <= sentences <= 5, f"{ex.id}: {sentences} sentences"
            if ex.references:
                assert context[start : start + len(ex.target)] == ex.target == ex.references[0], ex
                assert all(ref in context for ref in ex.references), ex
                multi += name == "test" and len(ex.references) > 1
            else:
                assert start == -1, ex
    assert multi >= 10, f"only {multi} test questions accept several gold answers"


def test_span_start_refuses_text_outside_its_sentence() -> None:
    with pytest.raises(ValueError, match="'1742' is not a span of its sentence"):
        span_start("Founded in 1800.", 0, "Founded in 1800.", "1742", "passage 0")


# --- the SQuAD v2 JSON loader -----------------------------------------------------------------------------

def paragraph(n: int, impossible_too: bool = True) -> dict:
    context = f"Town {n} was founded in {1700 + n} by Ada {n}."
    qas = [{"id": f"a{n}", "question": f"When was town {n} founded?", "is_impossible": False,
            "answers": [{"text": str(1700 + n), "answer_start": context.index(str(1700 + n))},
                        {"text": f"in {1700 + n}", "answer_start": context.index(f"in {1700 + n}")},
                        {"text": str(1700 + n), "answer_start": context.index(str(1700 + n))}]}]
    if impossible_too:
        qas.append({"id": f"u{n}", "question": f"Who is the mayor of town {n}?", "is_impossible": True,
                    "answers": [], "plausible_answers": [{"text": f"Ada {n}", "answer_start": 0}]})
    return {"context": context, "qas": qas}


def squad(paragraphs: int = 10) -> dict:
    return {"version": "v2.0", "data": [{"title": "T", "paragraphs": [paragraph(n) for n in range(paragraphs)]}]}


def write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "dev-v2.0.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document), encoding="utf-8")
    return path


def test_squad_json_loads_and_splits_by_passage(tmp_path: Path) -> None:
    path = write(tmp_path, squad())
    rows = read_squad_json(path)
    assert len(rows) == 20
    assert rows[0].answers == (("1700", 22), ("in 1700", 19)), "answers: every distinct gold, duplicates once"
    assert rows[1].answers == (), "plausible_answers are not answers"
    built = build_splits(rows, path)
    ids = [{ex.id for ex in getattr(built, name)} for name in SPLITS]
    assert all(ids) and sum(map(len, ids)) == 20 and len(set().union(*ids)) == 20, ids
    for name in SPLITS:
        for ex in getattr(built, name):  # a passage's two questions stay together
            assert f"a{ex.id[1:]}" in ids[SPLITS.index(name)] and f"u{ex.id[1:]}" in ids[SPLITS.index(name)]
    example = next(ex for ex in built.test + built.eval + built.train if ex.id == "a3")
    assert example.references == ("1703", "in 1703") and example.target == "1703" and example.label == "answerable"
    assert example.prompt == "When was town 3 founded?" and example.fields["answer_start"] == "22"


def _bad(mutate) -> dict:  # noqa: ANN001 - a function editing the document in place
    document = squad()
    mutate(document)
    return document


QA = lambda d: d["data"][0]["paragraphs"][2]["qas"][0]  # noqa: E731


@pytest.mark.parametrize("document, message", [
    ("{not json", r"dev-v2.0.json:1:2: not JSON .*pass the SQuAD v2 file itself"),
    ([], r"top level: expected an object with 'data', got list"),
    ({"version": "v2.0"}, r"top level: missing field 'data'"),
    ({"data": []}, r"no questions under data\[\].paragraphs\[\].qas"),
    (_bad(lambda d: d["data"][0].pop("paragraphs")), r"data\[0\]: missing field 'paragraphs'"),
    (_bad(lambda d: d["data"][0]["paragraphs"][1].pop("context")),
     r"data\[0\].paragraphs\[1\]: missing field 'context'"),
    (_bad(lambda d: d["data"][0]["paragraphs"][1].update(context=" ")), r"paragraphs\[1\].context: empty context"),
    (_bad(lambda d: QA(d).pop("question")), r"data\[0\].paragraphs\[2\].qas\[0\]: missing field 'question'"),
    (_bad(lambda d: QA(d).pop("id")), r"qas\[0\]: missing field 'id'"),
    (_bad(lambda d: QA(d).pop("answers")), r"qas\[0\]: missing field 'answers'"),
    (_bad(lambda d: QA(d).update(id="a1")), r"qas\[0\].id: id 'a1' repeats data\[0\].paragraphs\[1\].qas\[0\]"),
    (_bad(lambda d: QA(d).update(is_impossible="no")), r"qas\[0\].is_impossible: expected true or false"),
    (_bad(lambda d: QA(d).update(answers=[])), r"qas\[0\].answers: is_impossible is false but no answers"),
    (_bad(lambda d: QA(d).update(is_impossible=True)), r"qas\[0\].answers: is_impossible is true but 3 answers"),
    (_bad(lambda d: QA(d)["answers"][1].pop("text")), r"qas\[0\].answers\[1\]: missing field 'text'"),
    (_bad(lambda d: QA(d)["answers"][1].update(answer_start="21")),
     r"answers\[1\].answer_start: expected int, got str"),
    (_bad(lambda d: QA(d)["answers"][0].update(answer_start=3)),
     r"data\[0\].paragraphs\[2\].qas\[0\].answers\[0\].answer_start: 3 points at 'n 2 ', not the answer text '1702'; "
     r"the text first occurs at 22: set answer_start to 22"),
    (_bad(lambda d: QA(d)["answers"][0].update(text="1999")), r"the text does not occur in the context at all"),
])
def test_squad_json_errors_name_the_place_and_the_fix(tmp_path: Path, document: object, message: str) -> None:
    path = write(tmp_path, document)
    with pytest.raises(ValueError, match=message) as caught:
        read_squad_json(path)
    assert str(caught.value).startswith(str(path)), caught.value


def test_squad_json_not_utf8_and_too_few_passages(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes('{"data": "caf\xe9"}'.encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8 text"):
        read_squad_json(path)
    path = write(tmp_path, squad(paragraphs=2))
    with pytest.raises(ValueError, match="2 distinct passages; the split needs at least 3"):
        build_splits(read_squad_json(path), path)


def test_missing_is_impossible_means_no_answers_listed(tmp_path: Path) -> None:
    document = squad(paragraphs=3)
    for par in document["data"][0]["paragraphs"]:
        for qa in par["qas"]:
            qa.pop("is_impossible")
    rows = read_squad_json(write(tmp_path, document))
    assert [bool(row.answers) for row in rows] == [True, False] * 3


# --- windows, spans, thresholds ---------------------------------------------------------------------------

def long_example() -> Example:
    filler = " ".join(f"The {word} stone lies near the mill." for word in ("grey", "red", "blue", "old", "new") * 6)
    context = f"{filler} The lighthouse of Varnel was lit in 1787 by Ines Dorr. {filler}"
    return qa_example(0, context, "When was the lighthouse of Varnel lit?", "1787", "in 1787")


def test_windows_cover_a_long_context_with_stride(minilm: LoadedBase) -> None:
    example, max_length, stride = long_example(), 64, 16
    windows = qa_windows(minilm.tokenizer, [example], max_length, stride, with_positions=True)
    assert len(windows) > 3, f"{len(windows)} windows over a long context"
    context = example.fields["context"]
    hits = 0
    for window, after in zip(windows, [*windows[1:], None]):
        ids = window.inputs["input_ids"]
        assert len(ids) <= max_length and ids[0] == minilm.tokenizer.cls_token_id
        spans = [off for off in window.offsets if off is not None]
        if after is not None:  # consecutive windows share `stride` context tokens
            assert spans[-stride:] == [off for off in after.offsets if off is not None][:stride]
        start, end = window.inputs["start_positions"], window.inputs["end_positions"]
        if start == CLS:
            assert end == CLS
            continue
        hits += 1
        assert context[window.offsets[start][0] : window.offsets[end][1]] == "1787"
    assert hits >= 1, "the answer is in no window"
    assert [o for o in windows[0].offsets if o][0][0] == 0, "the first window does not start at the context's start"
    assert max(o[1] for o in windows[-1].offsets if o) == len(context), "the last window stops short of the end"
    features = qa_features(minilm.tokenizer, [example], max_length, stride, with_positions=True)
    assert features == [w.inputs for w in windows] and set(features[0]) == {
        "input_ids", "attention_mask", "start_positions", "end_positions"}
    assert "start_positions" not in qa_features(minilm.tokenizer, [example], max_length, stride, False)[0]


def test_unanswerable_and_bad_answer_start_and_no_room(minilm: LoadedBase) -> None:
    context = "Velmora was founded in 1742 by the weaver Odile Marsk."
    unanswerable = make_example(QARow("u", context, "Who is the mayor of Velmora?", ()))
    feature, = qa_features(minilm.tokenizer, [unanswerable], 64, 16, with_positions=True)
    assert (feature["start_positions"], feature["end_positions"]) == (CLS, CLS)
    shifted = Example("bad", "q", "1742", "answerable", {"context": context, "question": "When?", "answer_start": "3"},
                      ("1742",))
    with pytest.raises(ValueError, match="example bad: answer_start 3 points at 'mora', not the answer '1742'"):
        qa_features(minilm.tokenizer, [shifted], 64, 16, with_positions=True)
    with pytest.raises(ValueError, match="example u: its question is 9 tokens, which leaves 4 context tokens .* "
                                         "not more than qa.stride 8"):
        qa_features(minilm.tokenizer, [unanswerable], 16, 8, with_positions=False)


def predictions(margins_and_texts: list[tuple[float, str]]) -> list[SpanPrediction]:
    return [SpanPrediction(text, score=0.0, null_score=margin) for margin, text in margins_and_texts]


def test_choose_null_threshold_maximises_exact_match() -> None:
    context = "Odile Marsk founded Velmora in 1742 and Tarn in 1750."
    examples = [qa_example(0, context, "a?", "1742"), qa_example(1, context, "b?", "1750"),
                make_example(QARow("n2", context, "c?", ())), make_example(QARow("n3", context, "d?", ())),
                qa_example(4, context, "e?", "Tarn")]
    preds = predictions([(-3.0, "1742"), (1.0, "1750"), (2.0, "1742"), (-1.0, "Tarn"), (4.0, "Velmora")])
    threshold = choose_null_threshold(preds, examples)
    chosen = answers(preds, threshold)
    # Best EM is 3/5, reached by any threshold in [-3, -1) (span for 0 only) or in [1, 2) (spans for 0, 1 and the
    # unanswerable 3). The tie goes to the one answering fewer: the midpoint of -3 and -1.
    assert threshold == -2.0, threshold
    assert chosen == ["1742", "", "", "", ""], chosen
    refs = [list(ex.references) for ex in examples]
    best = max(squad_v2_scores(answers(preds, t / 4), refs)["exact"] for t in range(-30, 30))
    assert squad_v2_scores(chosen, refs)["exact"] == best == 0.6


def test_choose_null_threshold_abstains_where_answering_gained_nothing_on_eval() -> None:
    """Real SQuAD v2 (docs/real-data.md): every eval span was wrong, so answering or not tied on eval, and the
    old tie-break (the threshold nearest 0) answered most test questions, and a finite "below all" (-3, the
    lowest margin - 1) still answered 511 of 706: test margins sat lower than eval's. Ties now go to answering fewest,
    and abstaining on all is -inf."""
    context = "Odile Marsk founded Velmora in 1742."
    examples = [qa_example(0, context, "a?", "1742"), make_example(QARow("n1", context, "b?", ()))]
    preds = predictions([(-2.0, "Velmora"), (3.0, "1742")])  # a wrong span, then an unanswerable question
    threshold = choose_null_threshold(preds, examples)
    assert threshold == -math.inf, threshold  # abstain on all, wherever test margins lie
    assert answers(preds, threshold) == ["", ""]
    assert answers(predictions([(-1.0, "Marsk"), (-9.0, "1742")]), threshold) == ["", ""], \
        "test questions the old tie-break (0.5) or a finite 'below all' (-3) answered"


def test_choose_null_threshold_extremes_and_no_span() -> None:
    context = "Velmora was founded in 1742."
    examples = [make_example(QARow("n0", context, "a?", ())), make_example(QARow("n1", context, "b?", ()))]
    preds = predictions([(-5.0, "1742"), (-2.0, "Velmora")])
    assert answers(preds, choose_null_threshold(preds, examples)) == ["", ""], "all unanswerable: always null"
    assert answers(preds, choose_null_threshold(preds, examples[:1] + examples[1:])) == ["", ""]
    no_span = [SpanPrediction("", -math.inf, 0.0)]
    assert answers(no_span, choose_null_threshold(no_span, examples[:1])) == [""]
    with pytest.raises(ValueError, match="2 predictions for 1 examples"):
        choose_null_threshold(preds, examples[:1])


@pytest.mark.slow
def test_predict_spans_stay_inside_the_context(minilm: LoadedBase) -> None:
    examples = [long_example(), *generated_splits().test[:6]]
    preds = predict_spans(minilm.model, minilm.tokenizer, examples, 64, 16, batch_size=4, max_answer_tokens=5)
    assert len(preds) == len(examples)
    for example, pred in zip(examples, preds):
        context = example.fields["context"]
        assert 0 <= pred.start < pred.end <= len(context), pred
        assert pred.text == context[pred.start : pred.end] and pred.text.strip(), pred
        assert example.fields["question"] not in pred.text
        assert len(minilm.tokenizer(pred.text, add_special_tokens=False).input_ids) <= 5, pred.text
        assert math.isfinite(pred.score) and math.isfinite(pred.null_score)
    again = predict_spans(minilm.model, minilm.tokenizer, examples, 64, 16, batch_size=3, max_answer_tokens=5)
    assert [p.text for p in again] == [p.text for p in preds], "the batch size changed the answers"


@pytest.mark.slow
def test_a_predictions_first_window_logits_are_qa_logits_bit_for_bit(minilm: LoadedBase) -> None:
    """The probe taken from the prediction's own pass (one window per question) is what qa_logits computes, so
    the parameter checks compare like with like; a long context (several windows) leaves it to qa_logits."""
    short = generated_splits().test[:7]
    windows, logits = window_logits(minilm.model, minilm.tokenizer, short, 128, 16, batch_size=3)
    probe = first_window_logits(short, windows, logits, 128)
    assert probe is not None and torch.equal(probe, qa_logits(minilm.model, minilm.tokenizer, short, 128, 16, 3))
    with_long = [long_example(), *short]
    windows, logits = window_logits(minilm.model, minilm.tokenizer, with_long, 64, 16, batch_size=3)
    assert len(windows) > len(with_long) and first_window_logits(with_long, windows, logits, 64) is None


def test_a_repeated_prediction_answers_at_the_threshold_chosen_before(minilm: LoadedBase,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The throughput benchmark repeats the tuned prediction at the gate's threshold: it times the answers, not
    another pass over the eval split."""
    task, qa_kind = get_task("squad_v2"), kind_of("extractive_qa")
    test, calibration = generated_splits().test[:6], generated_splits().eval[:6]
    first = qa_kind.predict(task, minilm.model, minilm, test, "tiny", False, "first", calibration, 4)

    def calibrated_again(*args, **kwargs):
        raise AssertionError("chose the threshold again")

    monkeypatch.setattr(qa_pipeline, "choose_null_threshold", calibrated_again)
    again = qa_kind.predict(task, minilm.model, minilm, test, "tiny", False, "again", first.threshold, 4)
    assert (again.outputs, again.threshold) == (first.outputs, first.threshold)


def test_the_throughput_round_passes_the_gates_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    """TaskRun.predict, which the throughput benchmark times, hands the kind the tuned threshold where the gate chose
    one, else the eval split to calibrate on."""
    calibrations = []
    monkeypatch.setattr(run_module, "predict", lambda *args, calibration, constraint: calibrations.append(calibration))
    run = SimpleNamespace(task=None, base=None, tier="tiny", name="squad_v2/tiny", splits=generated_splits(),
                          decoding=run_module.FREE, constraint=None, tuned_predictions=SimpleNamespace(threshold=-0.5))
    TaskRun.predict(run, model=None)
    run.tuned_predictions.threshold = None
    TaskRun.predict(run, model=None)
    assert calibrations == [-0.5, run.splits.eval]


@pytest.mark.slow
def test_qa_logits_are_deterministic_and_a_disabled_adapter_is_the_base() -> None:
    base = load_encoder("minilm", AutoModelForQuestionAnswering, {}, "cpu", torch.float32)
    examples = [long_example(), *generated_splits().eval[:5]]
    before = qa_logits(base.model, base.tokenizer, examples, 64, 16, batch_size=4)
    assert before.shape == (6, 2, 64)
    assert torch.equal(before, qa_logits(base.model, base.tokenizer, examples, 64, 16, batch_size=4))
    lora = LoraSettings(r=4, alpha=8, target_modules=["query", "value"])
    model = attach_lora(base.model, lora, 0, task_type="QUESTION_ANS", modules_to_save=["qa_outputs"])
    with torch.no_grad():  # a trained-looking adapter: nonzero B and a changed head copy
        for name, param in model.named_parameters():
            if param.requires_grad:
                param.add_(0.05)
    tuned = qa_logits(model, base.tokenizer, examples, 64, 16, batch_size=4)
    assert not torch.allclose(tuned, before), "the adapter changed nothing"
    with model.disable_adapter():
        assert torch.equal(qa_logits(model, base.tokenizer, examples, 64, 16, batch_size=4), before)


# --- the task class ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, answer", [("  in 1742 \n", "in 1742"), ("", ""), ("\x00{]", "\x00{]")])
def test_any_string_parses_as_an_answer(text: str, answer: str) -> None:
    parsed = parse_answer(text)
    assert parsed.valid and parsed.reason is None and parsed.value.answer == answer


def test_task_class() -> None:
    from loragate.tasks.squad_v2 import SquadV2Task

    try:
        task = SquadV2Task()
    except CardError as exc:  # the draft card's `qa:` block waits for the schema's extractive_qa support
        pytest.skip(f"squad_v2.yaml does not validate yet: {exc}")
    assert task.parse(" 1742").value.answer == "1742"
    assert task.ceiling([]) is None
    assert task.load_splits().data_hash() == generated_splits().data_hash()
