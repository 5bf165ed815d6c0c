"""Text metrics for the text tasks (SQuAD v2 QA, instruction tuning): SQuAD v2 EM/F1, ROUGE, BLEU, METEOR.

Each metric is implemented once, here. The `evaluate` modules in loragate/metrics/evaluate_modules/<name>/ are thin
wrappers whose `_compute` calls these functions, so `evaluate.load(<that directory>)` and a direct call give
the same numbers. Nothing is fetched from the evaluate hub or nltk's downloader: the gate runs offline.

Key convention, the same for every metric: `<name>` is the aggregate a report shows, `<name>_per_example`
the per-example list (paired gates compare base and tuned example by example).
"""

from __future__ import annotations

import io
import os
import re
import string
import warnings
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # evaluate pulls in datasets/pyarrow; only load_metric needs it, so it is imported there
    import evaluate
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

MODULES_DIR = Path(__file__).parent / "evaluate_modules"
METRIC_NAMES = ("squad_v2", "rouge", "bleu", "meteor")


class MetricUnavailable(RuntimeError):
    """A metric cannot be computed honestly on this machine (e.g. METEOR without WordNet's synonyms)."""


def load_metric(name: str) -> evaluate.EvaluationModule:
    """The project's own evaluate module `name`, loaded from its local directory, never a hub id.

    Cached: evaluate.load imports the script each time, and callers only use `compute()`, which keeps no
    state between calls. Don't use `add_batch` on the shared instance from several places at once.
    """
    if name not in METRIC_NAMES:
        raise KeyError(f"Unknown text metric {name!r}. Available: {', '.join(METRIC_NAMES)}")
    return _load_metric(name)


@lru_cache(maxsize=None)
def _load_metric(name: str) -> evaluate.EvaluationModule:
    import evaluate  # pulls in datasets and pyarrow (seconds): only when a metric module is loaded

    # in memory: compute() then writes no arrow cache files, and parallel workers share no file locks
    return evaluate.load(str(MODULES_DIR / name), keep_in_memory=True)


def _check_pairs(predictions: Sequence[object], references: Sequence[object]) -> None:
    """Scores over zero examples, or over misaligned lists, would be numbers that mean nothing: refuse them."""
    if len(predictions) != len(references):
        raise ValueError(f"lengths differ: {len(predictions)} predictions, {len(references)} references")
    if not predictions:
        raise ValueError("no examples to score")


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _mean_or_none(values: Sequence[float]) -> float | None:
    """None for a subset with no examples: nothing was measured, which 0 would hide."""
    return _mean(values) if values else None


# --- SQuAD v2 --------------------------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """The official SQuAD normalization, in its order: lower case, drop punctuation (not replaced by a space,
    so "don't" -> "dont"), replace the articles a/an/the by a space, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _exact(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def _token_f1(prediction: str, gold: str) -> float:
    """Bag-of-tokens F1 of the normalized strings; if either side is empty, 1 only when both are."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def squad_v2_scores(predictions: list[str], references: list[list[str]]) -> dict:
    """SQuAD v2 exact match and token F1, each 0..1 (the official script prints them x100).

    references[i] are example i's gold answers; the max over them is taken. An example whose gold list is
    empty or holds only empty strings is unanswerable, and its right answer is the empty string: EM = F1 = 1
    iff the prediction normalizes to "". As in the official script, gold answers that normalize to "" are
    dropped before scoring (and an example left with none is scored as unanswerable), while HasAns/NoAns is
    decided on the raw gold texts. There is no no-answer-probability threshold: the prediction is taken as is.

    Returns exact, f1 (means), exact_per_example, f1_per_example, HasAns_exact, HasAns_f1, HasAns_total,
    NoAns_exact, NoAns_f1, NoAns_total. A split's means are None when it has no examples (not 0: nothing
    was measured).
    """
    _check_pairs(predictions, references)
    exact: list[float] = []
    f1: list[float] = []
    has_answer: list[bool] = []
    for prediction, golds in zip(predictions, references):
        has_answer.append(any(gold.strip() for gold in golds))
        scored = [gold for gold in golds if normalize_answer(gold)] or [""]
        exact.append(max(_exact(prediction, gold) for gold in scored))
        f1.append(max(_token_f1(prediction, gold) for gold in scored))
    result: dict = {"exact": _mean(exact), "f1": _mean(f1), "exact_per_example": exact, "f1_per_example": f1}
    for split, wanted in (("HasAns", True), ("NoAns", False)):
        idx = [i for i, has in enumerate(has_answer) if has == wanted]
        result[f"{split}_exact"] = _mean_or_none([exact[i] for i in idx])
        result[f"{split}_f1"] = _mean_or_none([f1[i] for i in idx])
        result[f"{split}_total"] = len(idx)
    return result


# --- ROUGE -----------------------------------------------------------------------------------------------

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


@lru_cache(maxsize=1)
def _rouge_scorer():  # noqa: ANN202 - rouge_score ships no type hints
    from rouge_score import rouge_scorer  # imports nltk and absl: only when a text task is scored

    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


def rouge_scores(predictions: list[str], references: list[str]) -> dict[str, float | list[float]]:
    """F-measure of ROUGE-1, ROUGE-2 and ROUGE-L (LCS over the whole text, not rougeLsum) by rouge-score,
    with its Porter stemmer on so "cats"/"cat" match.

    rouge-score's tokenizer lower-cases and keeps only [a-z0-9] runs: non-ASCII words are dropped, so these
    numbers are only meaningful for English. Returns rouge1/rouge2/rougeL (means) and
    rouge1_per_example/... (lists).
    """
    _check_pairs(predictions, references)
    scorer = _rouge_scorer()
    per_example: dict[str, list[float]] = {kind: [] for kind in ROUGE_TYPES}
    for prediction, reference in zip(predictions, references):
        scores = scorer.score(reference, prediction)  # rouge-score's order is (target, prediction)
        for kind in ROUGE_TYPES:
            per_example[kind].append(float(scores[kind].fmeasure))
    result: dict[str, float | list[float]] = {kind: _mean(values) for kind, values in per_example.items()}
    result.update({f"{kind}_per_example": values for kind, values in per_example.items()})
    return result


# --- BLEU ------------------------------------------------------------------------------------------------

def _reference_streams(references: list[list[str]]) -> list[list[str | None]]:
    """sacrebleu wants one stream per reference slot; an example with fewer references pads with None."""
    for i, refs in enumerate(references):
        if not refs:
            raise ValueError(f"example {i} has no reference: BLEU needs at least one")
    width = max(len(refs) for refs in references)
    return [[refs[k] if k < len(refs) else None for refs in references] for k in range(width)]


def corpus_bleu(predictions: list[str], references: list[list[str]]) -> float:
    """Corpus BLEU (0..100) by sacrebleu with its defaults (13a tokenizer, case-sensitive, no smoothing):
    n-gram counts are pooled over the corpus, so this is not the mean of sentence_bleu."""
    import sacrebleu  # only when a text task is scored, not for every gate run

    _check_pairs(predictions, references)
    return float(sacrebleu.corpus_bleu(predictions, _reference_streams(references)).score)


def sentence_bleu(predictions: list[str], references: list[list[str]]) -> list[float]:
    """Per-example BLEU (0..100), sacrebleu's sentence_bleu (exp smoothing, effective order), for pairing
    base and tuned per example; the headline number is corpus_bleu."""
    import sacrebleu  # only when a text task is scored, not for every gate run

    _check_pairs(predictions, references)
    for i, refs in enumerate(references):
        if not refs:
            raise ValueError(f"example {i} has no reference: BLEU needs at least one")
    return [float(sacrebleu.sentence_bleu(p, list(refs)).score) for p, refs in zip(predictions, references)]


def bleu_statistics(predictions: list[str], references: list[list[str]]) -> np.ndarray:
    """Per example, the counts corpus BLEU pools (examples x 10): hypothesis length, closest reference length,
    matching and total n-grams for n = 1..4. Summed over any subset of examples they give that subset's corpus
    BLEU (`bleu_from_statistics`), so corpus BLEU can be bootstrapped by resampling rows."""
    from sacrebleu.metrics import BLEU  # only when a text task is scored, not for every gate run

    _check_pairs(predictions, references)
    scorer = BLEU(effective_order=True)  # changes only the sentence score, not the counts read here
    rows = []
    for hypothesis, refs in zip(predictions, references):
        score = scorer.sentence_score(hypothesis, list(refs))
        rows.append([score.sys_len, score.ref_len, *score.counts, *score.totals])
    return np.array(rows, dtype=float).reshape(len(rows), 10)


def bleu_from_statistics(pooled: np.ndarray) -> np.ndarray:
    """Corpus BLEU (0..100) from pooled statistics (..., 10), as sacrebleu's corpus_bleu computes it: exp
    smoothing of zero n-gram matches, brevity penalty, geometric mean of the four precisions."""
    sys_len, ref_len, correct, total = pooled[..., 0], pooled[..., 1], pooled[..., 2:6], pooled[..., 6:10]
    log_precision = np.zeros(correct.shape)
    smooth = np.ones(sys_len.shape)
    alive = np.ones(sys_len.shape, dtype=bool)  # sacrebleu stops at the first order without n-grams
    for n in range(4):
        alive &= total[..., n] > 0
        zero = correct[..., n] == 0
        smooth = np.where(alive & zero, smooth * 2, smooth)
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.where(zero, 100.0 / (smooth * total[..., n]), 100.0 * correct[..., n] / total[..., n])
            log_precision[..., n] = np.where(alive, np.log(precision), -9999999999.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        penalty = np.where(sys_len < ref_len, np.exp(1 - ref_len / np.maximum(sys_len, 1e-300)), 1.0)
    penalty = np.where((sys_len > 0) & (correct.sum(axis=-1) > 0), penalty, 0.0)  # no match at all: 0
    return penalty * np.exp(log_precision.mean(axis=-1))


def bleu_scores(predictions: list[str], references: list[list[str]]) -> dict[str, float | list[float]]:
    """corpus_bleu as `bleu` and sentence_bleu as `bleu_per_example` (what the evaluate module returns)."""
    return {"bleu": corpus_bleu(predictions, references),
            "bleu_per_example": sentence_bleu(predictions, references)}


# --- METEOR ----------------------------------------------------------------------------------------------

DEFAULT_WORDNET_DIR = Path("/usr/share/wordnet")  # Debian/Ubuntu's wordnet-base (WordNet 3.0)
# The files nltk's reader reads for synsets and morphology. Not index.sense: nltk opens it lazily, only for
# sense-key lookups and for mapping to other WordNet versions, neither of which METEOR does.
_WORDNET_FILES = tuple(f"{kind}.{pos}" for kind in ("index", "data") for pos in ("noun", "verb", "adj", "adv")) \
    + tuple(f"{pos}.exc" for pos in ("noun", "verb", "adj", "adv"))

# WordNet's lexicographer files, numbered as documented in lexnames(5WN) (WordNet 3.0). The data files refer
# to them by number; nltk reads the number -> name table from a file `lexnames`, which Princeton's dict/
# and nltk_data ship but Debian's wordnet-base does not (it documents the list in the man page instead).
_LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling",
    "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person",
    "noun.phenomenon", "noun.plant", "noun.possession", "noun.process", "noun.quantity", "noun.relation",
    "noun.shape", "noun.state", "noun.substance", "noun.time", "verb.body", "verb.change",
    "verb.cognition", "verb.communication", "verb.competition", "verb.consumption", "verb.contact",
    "verb.creation", "verb.emotion", "verb.motion", "verb.perception", "verb.possession", "verb.social",
    "verb.stative", "verb.weather", "adj.ppl",
)
_SYNTACTIC_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}  # lexnames' third field
_LEXNAMES_FILE = "".join(f"{number:02d}\t{name}\t{_SYNTACTIC_CATEGORY[name.split('.')[0]]}\n"
                         for number, name in enumerate(_LEXNAMES))

# Words with inner apostrophes ("don't") or a run of punctuation as one token each. A plain regex instead of
# nltk.word_tokenize, which needs the punkt model from nltk's downloader; METEOR lower-cases tokens itself.
_TOKEN = re.compile(r"\w+(?:['\u2019]\w+)*|[^\w\s]+")


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def wordnet_dir() -> Path:
    """$WNSEARCHDIR (WordNet's own variable for its database directory) if set, else Debian's location."""
    return Path(os.environ.get("WNSEARCHDIR") or DEFAULT_WORDNET_DIR)


def _wordnet() -> WordNetCorpusReader:
    directory = wordnet_dir()
    missing = [name for name in _WORDNET_FILES if not (directory / name).is_file()]
    if missing:
        raise MetricUnavailable(
            f"METEOR needs WordNet's synonyms, and WordNet's database is not in {directory} (missing "
            f"{', '.join(missing)}): install Debian's wordnet-base (apt-get install wordnet-base), or point "
            "WNSEARCHDIR at a WordNet 3.0 dict directory. METEOR is not computed without synonyms.")
    return _wordnet_reader(str(directory.resolve()))


@lru_cache(maxsize=None)
def _wordnet_reader(directory: str) -> WordNetCorpusReader:
    """nltk's own WordNet reader over the directory's files (reading them takes ~2 s, hence the cache)."""
    import nltk  # about 0.5 s: only when METEOR is computed
    from nltk.corpus.reader.wordnet import WordNetCorpusReader  # (nltk: only for METEOR)

    class DictDirWordNet(WordNetCorpusReader):
        """nltk's reader, taking two things a bare WordNet 3.0 dict directory (Debian's) lacks from here."""

        def open(self, file: str):  # noqa: ANN202 - a text stream, as CorpusReader.open returns
            # Only when the directory has no `lexnames`: the documented table above, in the file's format.
            if file == "lexnames" and not os.path.isfile(os.path.join(directory, file)):
                return io.StringIO(_LEXNAMES_FILE)
            return super().open(file)

        def map_wn(self, version: str = "wordnet"):  # noqa: ANN202
            # nltk maps the loaded WordNet onto its packaged "wordnet" corpus via both copies' index.sense, for
            # the multilingual (OMW) lookups only. There is no OMW here and no nltk_data, so no mapping.
            return None

    # nltk (3.10+) opens corpus files only under its data roots; registering the directory on nltk.data.path
    # is its documented way to authorize a corpus kept elsewhere. A symlink farm would not do: nltk resolves
    # links and refuses targets outside the reader's root.
    if directory not in nltk.data.path:
        nltk.data.path.append(directory)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The multilingual functions are not available")
        return DictDirWordNet(directory, None)


def meteor_available() -> str | None:
    """None if METEOR can be computed here, else the reason (for pytest.skip or a report's note)."""
    try:
        _wordnet()
    except MetricUnavailable as exc:
        return str(exc)
    return None


def meteor_scores(predictions: list[str], references: Sequence[str | Sequence[str]]) -> list[float]:
    """Per-example METEOR (0..1) by nltk's meteor_score (exact, then Porter-stem, then WordNet-synonym
    matching; default alpha/beta/gamma), with WordNet from wordnet_dir(). references[i] is one reference or
    a list of them (the best is taken). Raises MetricUnavailable without WordNet rather than score exact
    matches only, which would silently be a different metric.

    nltk matches synonyms after stemming, on the stemmed forms, so a synonym whose stem is not itself a
    WordNet lemma ("large" -> "larg") is not matched: a property of nltk's METEOR, kept as is.
    """
    from nltk.translate.meteor_score import meteor_score  # (nltk: only for METEOR)

    _check_pairs(predictions, references)
    wordnet = _wordnet()
    scores = []
    for i, (prediction, refs) in enumerate(zip(predictions, references)):
        refs = [refs] if isinstance(refs, str) else list(refs)
        if not refs:
            raise ValueError(f"example {i} has no reference: METEOR needs at least one")
        scores.append(float(meteor_score([_tokens(r) for r in refs], _tokens(prediction), wordnet=wordnet)))
    return scores


def meteor_summary(predictions: list[str], references: Sequence[str | Sequence[str]]) -> dict[str, float | list[float]]:
    """meteor_scores as `meteor_per_example` and their mean as `meteor` (what the evaluate module returns)."""
    per_example = meteor_scores(predictions, references)
    return {"meteor": _mean(per_example), "meteor_per_example": per_example}
