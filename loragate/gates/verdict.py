"""A task run's one verdict, from everything the gate checked of it: the card's gates, and each gate test of its
(task, tier) case that pytest collected.

PASS needs every card gate passed and every gate test run and passed. A failed gate or test is FAIL. A gate the
test split cannot decide (a drop whose interval straddles its margin) is INCONCLUSIVE, failing the run as well unless
the card says `gates.inconclusive: warn`: then it passes, its line naming those gates. A case whose gate tests did not
all run (`pytest --lf`, `-k`, one suite file) is PARTIAL, naming what did not run: it checked too little to ship. The
exit code, the table and every report file read this one verdict.

A verdict reached under gates the run changed with `--set gates....` says so wherever it is shown ("PASS with gates
changed by --set: gates.min_delta.accuracy=0"): `--set gates.min_field_score=0` once turned a FAIL into "All 6 gates
passed", marked only by a note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# The modules of suites that make up the gate of each case; one never collected (`pytest -m smoke
# suites/test_quality.py`, or --lf skipping files without failures) left part of the gate unrun.
GATE_SUITES = ("test_schema", "test_quality", "test_parameters", "test_gguf_export", "test_throughput")

Status = Literal["PASS", "FAIL", "INCONCLUSIVE", "PARTIAL"]
INCONCLUSIVE_TEST = ("loragate.gate", "INCONCLUSIVE")  # the user property of a gate test that failed only because its
# gates could not be decided (suites/test_quality.py): its outcome is "inconclusive", not "failed"


def case_name(task: str, tier: str, candidate: str = "") -> str:
    """How a case is named wherever it is shown: "iris/tiny", or "iris/tiny[r8]" for candidate r8 among several."""
    return f"{task}/{tier}[{candidate}]" if candidate else f"{task}/{tier}"


@dataclass
class CaseTests:
    """The gate tests of one case: every one collected (before -k, -m or --lf left some out) and the outcome
    of each that ran."""

    collected: list[str] = field(default_factory=list)  # node ids
    outcomes: dict[str, str] = field(default_factory=dict)  # node id -> passed | failed | inconclusive | skipped

    def record(self, nodeid: str, outcome: str) -> None:
        """A report of one phase: a failure in any phase fails the test, an inconclusive one unless another phase
        failed; a skip counts as having run (the test decided it does not apply, with its reason)."""
        held = self.outcomes.get(nodeid)
        if held != "failed" and not (held == "inconclusive" and outcome != "failed"):
            self.outcomes[nodeid] = outcome

    def not_run(self) -> list[str]:
        missing = [nodeid for nodeid in self.collected if nodeid not in self.outcomes]
        modules = {nodeid.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py") for nodeid in self.collected}
        return missing + [f"{name}.py (not collected)" for name in GATE_SUITES if name not in modules]

    def failed(self) -> list[str]:
        return [nodeid for nodeid, outcome in self.outcomes.items() if outcome == "failed"]

    def inconclusive(self) -> list[str]:
        return [nodeid for nodeid, outcome in self.outcomes.items() if outcome == "inconclusive"]


@dataclass(frozen=True)
class Verdict:
    status: Status
    reasons: tuple[str, ...] = ()  # what failed, could not be decided, or did not run
    gates_overridden: tuple[str, ...] = ()  # the run's --set overrides of the card's gates (gate_overrides)
    warned: tuple[str, ...] = ()  # gates left INCONCLUSIVE under `gates.inconclusive: warn`: a pass that says so

    @property
    def passed(self) -> bool:
        return self.status == "PASS"

    @property
    def line(self) -> str:
        """The status as every headline shows it: "PASS", "PASS with gates changed by --set: gates.x=0", "PASS with
        INCONCLUSIVE gates (gates.inconclusive: warn): per-class regression"."""
        parts = [self.status]
        if self.warned:
            parts.append(f"with INCONCLUSIVE gates (gates.inconclusive: warn): {', '.join(self.warned)}")
        if self.gates_overridden:
            parts.append(f"with gates changed by --set: {', '.join(self.gates_overridden)}")
        return " ".join(parts)


GATED_BLOCKS = ("gates", "retention")  # the card's blocks that decide a verdict: its thresholds, its probes' margins


def gate_overrides(overrides: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The `--set path=value` overrides that change the card's gates (path `gates` or below it, or `retention`, whose
    probes are gates too: `--set retention=[]` drops them), as given."""
    return tuple(text for text in overrides if text.partition("=")[0].strip().split(".")[0] in GATED_BLOCKS)


def judge_case(gate_findings: list[str], tests: CaseTests | None, overrides: tuple[str, ...] = (),
               undecided: list[str] = (), warned: list[str] = ()) -> Verdict:
    """The verdict of a run whose card gates found `gate_findings` (empty: all passed) and could not decide
    `undecided`, given its gate tests and the run's --set `overrides` (those of the gates are named by the verdict);
    `warned` names the gates left undecided under `gates.inconclusive: warn`. Without test outcomes (the library
    called directly, not through pytest) the card's gates decide alone."""
    changed = gate_overrides(overrides)
    failed = [f"gate test failed: {nodeid}" for nodeid in (tests.failed() if tests else [])]
    if gate_findings or failed:
        return Verdict("FAIL", (*gate_findings, *undecided, *failed), changed)
    inconclusive = [f"gate test inconclusive: {nodeid}" for nodeid in (tests.inconclusive() if tests else [])]
    if undecided or inconclusive:
        return Verdict("INCONCLUSIVE", (*undecided, *inconclusive), changed)
    not_run = tests.not_run() if tests else []
    if not_run:
        shown = ", ".join(name.split("::")[-1] for name in not_run[:5]) + (" ..." if len(not_run) > 5 else "")
        return Verdict("PARTIAL", (f"{len(not_run)} gate tests of this case did not run ({shown}): run the whole "
                                   f"gate (pytest -m smoke, or -m full --gpu) before shipping",), changed)
    return Verdict("PASS", gates_overridden=changed, warned=tuple(warned))
