"""A verdict reached under gates the run changed with --set names them (issue 32, point 6: `--set
gates.min_field_score=0` turned a FAIL into "All 6 gates passed", marked only by a note)."""

from __future__ import annotations

from loragate.gates.verdict import gate_overrides, judge_case

OVERRIDES = ("tiers.tiny.train.epochs=5", "gates.min_field_score=0", " gates.min_delta = {accuracy: 0}",
             "gates={min_validity: 0}", "name=gatesx")


def test_only_the_overrides_of_the_gates_count() -> None:
    assert gate_overrides(OVERRIDES) == ("gates.min_field_score=0", " gates.min_delta = {accuracy: 0}",
                                         "gates={min_validity: 0}")
    assert gate_overrides(("tiers.tiny.train.lr=1e-3", "gatesx.a=1")) == ()


def test_a_pass_under_changed_gates_says_so_in_its_line() -> None:
    verdict = judge_case([], None, ("gates.min_field_score=0", "tiers.tiny.train.epochs=5"))
    assert verdict.status == "PASS" and verdict.passed
    assert verdict.gates_overridden == ("gates.min_field_score=0",)
    assert verdict.line == "PASS with gates changed by --set: gates.min_field_score=0"


def test_a_fail_names_them_too_and_a_plain_run_reads_as_before() -> None:
    assert judge_case(["validity: 0.5 < 1"], None, ("gates.min_validity=0.9",)).line == \
        "FAIL with gates changed by --set: gates.min_validity=0.9"
    plain = judge_case([], None, ("tiers.tiny.train.epochs=5",))
    assert plain.line == "PASS" and plain.gates_overridden == ()


def test_overriding_the_retention_probes_counts_as_changing_the_gates() -> None:
    """A retention probe is a gate (issue 33, point 3): `--set retention=[]` removed a failing probe, and the run
    passed without a word."""
    assert gate_overrides(("retention=[]", "tiers.tiny.train.epochs=5", "retentionx=1")) == ("retention=[]",)
    assert judge_case([], None, ("retention=[]",)).line == "PASS with gates changed by --set: retention=[]"
