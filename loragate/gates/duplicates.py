"""Repeated inputs, within the test split and across splits: a test row repeated four times is one question asked
four times, and a test input also in eval, or an eval input also in train, measures memory. Test inputs also in
train are the leakage gate's (checks.leakage_gate).

Both fail by default. A card whose inputs repeat by design (binned Iris: 81 possible prompts) allows them with
`gates.max_leakage: null`, which then reports the counts without gating, or a share, the largest it accepts."""

from __future__ import annotations

from loragate.data.examples import Example, Splits, also_in, input_key
from loragate.gates.result import EPSILON, GateResult

ALLOW = "set gates.max_leakage: null in the card where inputs repeat by design"
SHOWN = 10  # ids a finding names


def repeated_in(examples: list[Example]) -> list[str]:
    """Ids of the examples whose input (input_key) an earlier example of the same list already has."""
    seen: set[str] = set()
    repeats = []
    for ex in examples:
        key = input_key(ex)
        if key in seen:
            repeats.append(ex.id)
        seen.add(key)
    return repeats


def named(ids: list[str]) -> str:
    return f"{', '.join(ids[:SHOWN])}{' ...' if len(ids) > SHOWN else ''}"


def over(count: int, total: int, max_share: float | None) -> bool:
    """Whether `count` of `total` exceeds the card's share; None (repeats allowed) never does."""
    return max_share is not None and total > 0 and count / total > max_share + EPSILON


def allowed(evidence: str, max_share: float | None) -> str:
    return evidence + (" (not gated: the card allows repeated inputs)" if max_share is None else "")


def repeated_test_gate(splits: Splits, max_share: float | None) -> GateResult:
    """Test rows that repeat an earlier test row's input: each copy counted as an independent example inflates n
    and a floor passes on fewer distinct inputs than it claims."""
    repeats, n = repeated_in(splits.test), len(splits.test)
    evidence = allowed(f"{len(repeats)} of {n} test rows repeat another test row's input "
                       f"({n - len(repeats)} distinct inputs)", max_share)
    if not over(len(repeats), n, max_share):
        return GateResult("duplicated test inputs", None, evidence)
    return GateResult("duplicated test inputs", f"{evidence}: {named(repeats)}; remove the repeated rows from the "
                      f"test data, or {ALLOW}", evidence)


def cross_split_gate(splits: Splits, max_share: float | None) -> GateResult:
    """Test inputs also in eval, and eval inputs also in train: a test row copied into the training file can land
    in eval, and an eval input seen in training makes eval loss and early stopping measure memory."""
    test_in_eval, eval_in_train = also_in(splits.test, splits.eval), also_in(splits.eval, splits.train)
    pairs = [("test", "eval", test_in_eval, len(splits.test)), ("eval", "train", eval_in_train, len(splits.eval))]
    evidence = allowed("; ".join(f"{len(ids)} of {n} {split} inputs also in {other}"
                                 for split, other, ids, n in pairs), max_share)
    problems = [f"{split} inputs also in {other}: {named(ids)}" for split, other, ids, n in pairs
                if over(len(ids), n, max_share)]
    if not problems:
        return GateResult("cross-split duplicates", None, evidence)
    return GateResult("cross-split duplicates", f"{evidence}; {'; '.join(problems)}; remove them from one of the "
                      f"splits (a row in both data files, or repeated in one), or {ALLOW}", evidence)


def duplicate_gates(splits: Splits, max_share: float | None) -> list[GateResult]:
    """The repeated-input gates of a run, beside the train/test leakage gate; `max_share`: the card's
    gates.max_leakage."""
    return [repeated_test_gate(splits, max_share), cross_split_gate(splits, max_share)]
