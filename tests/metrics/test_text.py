"""Text metrics against hand-computed values, and the project's evaluate modules loaded offline from their
local directories giving the same numbers as loragate.metrics.text."""

from __future__ import annotations

import math
import socket

import pytest

from loragate.metrics import text as tm
from loragate.metrics.text import (
    MetricUnavailable,
    corpus_bleu,
    meteor_available,
    meteor_scores,
    normalize_answer,
    rouge_scores,
    sentence_bleu,
    squad_v2_scores,
)


def needs_wordnet() -> None:
    reason = meteor_available()
    if reason is not None:
        pytest.skip(reason)


# --- SQuAD v2 --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "normalized"), [
    ("The  Quick, Brown-Fox! ", "quick brownfox"),  # case; punctuation dropped, not spaced; article; spaces
    ("An apple a day", "apple day"),                 # all three articles, as whole words only
    ("Theatre and anthem", "theatre and anthem"),    # "the"/"an" inside words stay
    ("A.B.C.", "abc"),                               # "A." loses its dot, then "abc" is no article
    ("\tthe\n", ""),
])
def test_squad_normalization(text: str, normalized: str) -> None:
    assert normalize_answer(text) == normalized


def test_squad_partial_overlap_f1_by_hand() -> None:
    # "the big red dog" -> big red dog ; "red dog barked" -> red dog barked ; common 2: P = R = 2/3, F1 = 2/3
    result = squad_v2_scores(["the big red dog"], [["red dog barked"]])
    assert result["exact_per_example"] == [0.0]
    assert result["f1_per_example"] == [pytest.approx(2 / 3)]


def test_squad_takes_max_over_gold_answers() -> None:
    # "red dog" vs "red dog barked": common 2, P=1, R=2/3, F1=.8 ; vs "a dog" -> dog: common 1, P=1/2, R=1, F1=2/3
    result = squad_v2_scores(["red dog", "Denver Broncos"],
                             [["red dog barked", "a dog"], ["Broncos", "the Denver Broncos.", "Denver"]])
    assert result["f1_per_example"] == [pytest.approx(0.8), 1.0]
    assert result["exact_per_example"] == [0.0, 1.0]  # only the normalized match of the 2nd gold is exact


@pytest.mark.parametrize("gold", [[], [""], ["", "  "]])
@pytest.mark.parametrize(("prediction", "score"), [("", 1.0), ("The.", 1.0), ("no idea", 0.0)])
def test_squad_unanswerable(gold: list[str], prediction: str, score: float) -> None:
    # "The." normalizes to "" and so counts as abstaining
    result = squad_v2_scores([prediction], [gold])
    assert (result["exact"], result["f1"]) == (score, score)
    assert (result["NoAns_total"], result["HasAns_total"]) == (1, 0)
    assert result["HasAns_exact"] is None and result["HasAns_f1"] is None  # nothing measured, not 0


def test_squad_hasans_noans_split_by_hand() -> None:
    result = squad_v2_scores(
        ["Denver Broncos", "the big red dog", "", "Paris"],
        [["Denver Broncos"], ["red dog barked"], [], [""]],
    )
    # per example EM: 1, 0, 1, 0 ; F1: 1, 2/3, 1, 0 ; first two answerable, last two not
    assert result["exact_per_example"] == [1.0, 0.0, 1.0, 0.0]
    assert result["f1_per_example"] == pytest.approx([1.0, 2 / 3, 1.0, 0.0])
    assert result["exact"] == 0.5 and result["f1"] == pytest.approx((1 + 2 / 3 + 1 + 0) / 4)
    assert (result["HasAns_total"], result["NoAns_total"]) == (2, 2)
    assert result["HasAns_exact"] == 0.5 and result["HasAns_f1"] == pytest.approx(5 / 6)
    assert result["NoAns_exact"] == 0.5 and result["NoAns_f1"] == 0.5


def test_squad_gold_that_normalizes_to_empty_is_scored_like_the_official_script() -> None:
    # answerable by its raw text, but "the" normalizes to "", so only an empty prediction matches it
    result = squad_v2_scores(["", "the"], [["the"], ["the"]])
    assert result["exact_per_example"] == [1.0, 1.0] and result["HasAns_total"] == 2


def test_squad_refuses_misaligned_or_empty_input() -> None:
    with pytest.raises(ValueError, match="lengths differ"):
        squad_v2_scores(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="no examples"):
        squad_v2_scores([], [])


# --- ROUGE -----------------------------------------------------------------------------------------------

def test_rouge_by_hand() -> None:
    result = rouge_scores(["the gunman killed police", "the cat sat"],
                          ["police killed the gunman", "the cat sat on the mat"])
    # 1: same bag of 4 words -> R1 = 1 ; bigrams {the gunman, gunman kill, kill police} vs {police kill,
    #    kill the, the gunman}: 1 of 3 each way -> R2 = 1/3 ; LCS "the gunman" = 2 of 4 -> RL = 1/2
    # 2: the cat sat in a 6-word reference: P = 3/3, R = 3/6 -> F = 2/3 ; bigrams 2/2 vs 2/5 -> F = 4/7 ;
    #    LCS 3 -> F = 2/3
    assert result["rouge1_per_example"] == pytest.approx([1.0, 2 / 3])
    assert result["rouge2_per_example"] == pytest.approx([1 / 3, 4 / 7])
    assert result["rougeL_per_example"] == pytest.approx([0.5, 2 / 3])
    assert result["rouge1"] == pytest.approx((1 + 2 / 3) / 2)
    assert result["rouge2"] == pytest.approx((1 / 3 + 4 / 7) / 2)
    assert result["rougeL"] == pytest.approx((0.5 + 2 / 3) / 2)


def test_rouge_stems() -> None:
    # Porter: cats -> cat, running -> run, runs -> run: every unigram and bigram matches
    result = rouge_scores(["Cats running"], ["cat runs"])
    assert result["rouge1_per_example"] == [1.0] and result["rouge2_per_example"] == [1.0]


# --- BLEU ------------------------------------------------------------------------------------------------

def test_bleu_identical_is_100_and_disjoint_is_0() -> None:
    assert corpus_bleu(["the cat sat on the mat"], [["the cat sat on the mat"]]) == pytest.approx(100.0)
    assert corpus_bleu(["the cat sat on the mat"], [["a dog ran far away"]]) == 0.0
    assert sentence_bleu(["the cat sat on the mat"], [["the cat sat on the mat"]]) == [pytest.approx(100.0)]


def test_bleu_by_hand() -> None:
    # "the cat sat on the mat" vs "the cat sat on a mat": 1-grams 5/6 (one "the" clipped), 2-grams 3/5,
    # 3-grams 2/4, 4-grams 1/3; equal lengths, no brevity penalty: (5/6 * 3/5 * 2/4 * 1/3) ** (1/4) = 12 ** -0.25
    assert corpus_bleu(["the cat sat on the mat"], [["the cat sat on a mat"]]) == pytest.approx(100 * 12 ** -0.25)
    # all precisions 1 but 4 words for a 6-word reference: brevity penalty exp(1 - 6/4)
    assert corpus_bleu(["the cat sat on"], [["the cat sat on the mat"]]) == pytest.approx(100 * math.exp(-0.5))


def test_bleu_pools_counts_over_the_corpus_and_takes_several_references() -> None:
    predictions = ["the cat sat on the mat", "the cat sat on the mat"]
    # the 2nd example has two references (one matching exactly), the 1st one: padded for sacrebleu
    references = [["the cat sat on a mat"], ["a dog ran", "the cat sat on the mat"]]
    # pooled n-gram matches: (5+6)/12, (3+5)/10, (2+4)/8, (1+3)/6 ; lengths 12 vs 12
    expected = 100 * (11 / 12 * 8 / 10 * 6 / 8 * 4 / 6) ** 0.25
    assert corpus_bleu(predictions, references) == pytest.approx(expected)
    per_example = sentence_bleu(predictions, references)
    assert per_example == pytest.approx([100 * 12 ** -0.25, 100.0])
    assert expected != pytest.approx(sum(per_example) / 2)  # corpus BLEU is not the mean of sentence BLEU


def test_bleu_refuses_an_example_without_reference() -> None:
    with pytest.raises(ValueError, match="example 1 has no reference"):
        corpus_bleu(["a", "b"], [["a"], []])


# --- METEOR ----------------------------------------------------------------------------------------------

def test_meteor_identical_by_hand() -> None:
    needs_wordnet()
    # 6 of 6 words match in one chunk: P = R = Fmean = 1, penalty 0.5 * (1 chunk / 6 matches) ** 3 = 1/432
    assert meteor_scores(["the cat sat on the mat"], ["the cat sat on the mat"]) == [pytest.approx(1 - 1 / 432)]
    # case is ignored and "." is a 7th token, matched too: 1 - 0.5 * (1/7) ** 3
    assert meteor_scores(["The cat sat on the mat."], ["the cat sat on the mat."]) == [
        pytest.approx(1 - 0.5 / 343)]


def test_meteor_uses_wordnet_synonyms() -> None:
    needs_wordnet()
    from nltk.translate.meteor_score import meteor_score

    class NoSynonyms:
        def synsets(self, word: str) -> list:
            return []

    prediction, reference = "the car is red", "the auto is red"
    # exact/stem only: 3 of 4 match in 2 chunks (the | is red): Fmean 3/4, penalty 0.5 * (2/3) ** 3 = 4/27
    exact_only = meteor_score([reference.split()], prediction.split(), wordnet=NoSynonyms())
    assert exact_only == pytest.approx(0.75 * (1 - 4 / 27))
    # WordNet: car.n.01 has the lemma "auto", so 4 of 4 match in one chunk: 1 - 0.5 * (1/4) ** 3
    with_wordnet = meteor_scores([prediction], [reference])
    assert with_wordnet == [pytest.approx(1 - 0.5 / 64)]
    assert with_wordnet[0] > exact_only
    # several references: the best one counts
    assert meteor_scores([prediction], [["a blue bus", reference]]) == with_wordnet


def test_wordnet_lexnames_table_matches_the_data() -> None:
    needs_wordnet()
    wordnet = tm._wordnet()
    # the table supplied for Debian's missing `lexnames` file must name the data files' lexicographer numbers
    assert wordnet.synset("dog.n.01").lexname() == "noun.animal"
    assert wordnet.synset("run.v.01").lexname() == "verb.motion"
    assert wordnet.synset("big.a.01").lexname() == "adj.all"


def test_meteor_unavailable_without_wordnet(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("WNSEARCHDIR", str(tmp_path))  # a directory with no WordNet in it
    reason = meteor_available()
    assert reason is not None and "apt-get install wordnet-base" in reason
    with pytest.raises(MetricUnavailable, match="wordnet-base"):
        meteor_scores(["the car"], ["the auto"])


def test_meteor_tokenizer_splits_punctuation_without_punkt() -> None:
    assert tm._tokens("Don't stop, now!") == ["Don't", "stop", ",", "now", "!"]


# --- the evaluate modules --------------------------------------------------------------------------------

CASES = {
    "squad_v2": ({"predictions": ["Denver Broncos", "the big red dog", "", "Paris"],
                  "references": [["Denver Broncos"], ["red dog barked"], [], [""]]}, squad_v2_scores),
    "rouge": ({"predictions": ["the gunman killed police", "the cat sat"],
               "references": ["police killed the gunman", "the cat sat on the mat"]}, rouge_scores),
    "bleu": ({"predictions": ["the cat sat on the mat", "the cat sat on the mat"],
              "references": [["the cat sat on a mat"], ["a dog ran", "the cat sat on the mat"]]}, tm.bleu_scores),
    "meteor": ({"predictions": ["the car is red", "the cat sat on the mat"],
                "references": ["the auto is red", "the cat sat on the mat"]}, tm.meteor_summary),
}


@pytest.mark.parametrize("name", tm.METRIC_NAMES)
def test_evaluate_module_loads_offline_and_matches_the_library(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if name == "meteor":
        needs_wordnet()
    import evaluate

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(evaluate.config, "HF_EVALUATE_OFFLINE", True)

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"evaluate.load({name!r}) tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    module = evaluate.load(str(tm.MODULES_DIR / name), keep_in_memory=True)  # its local directory, not a hub id
    assert isinstance(module, evaluate.EvaluationModule)
    inputs, library = CASES[name]
    assert module.compute(**inputs) == library(**inputs)
    assert tm.load_metric(name).compute(**inputs) == library(**inputs)


def test_load_metric_refuses_unknown_names() -> None:
    with pytest.raises(KeyError, match="Unknown text metric 'rogue'"):
        tm.load_metric("rogue")


def test_pooled_bleu_statistics_give_sacrebleus_corpus_bleu() -> None:
    """Corpus BLEU from per-example counts, so it can be bootstrapped: equal to sacrebleu on random corpora,
    including no match at all, empty hypotheses and orders without n-grams."""
    import random

    import sacrebleu

    from loragate.metrics.text import bleu_from_statistics, bleu_statistics

    rng = random.Random(0)
    words = "the a cat dog sat on mat big red ran".split()
    for _ in range(300):
        n = rng.randint(1, 5)
        hypotheses = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 8))) for _ in range(n)]
        references = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 8))) for _ in range(n)]
        expected = sacrebleu.corpus_bleu(hypotheses, [references]).score
        pooled = bleu_statistics(hypotheses, [[ref] for ref in references]).sum(axis=0)
        assert float(bleu_from_statistics(pooled)) == pytest.approx(expected, abs=1e-9), (hypotheses, references)
