"""The plugin's start-up checks: everything about a run that can fail without a model (option combinations, each
selected card with the --set overrides, the device, the places the run will write) fails in pytest_configure as
a usage error naming the fix, before any test is collected (loragate.plugin.hooks calls them)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from loragate.card.options import OptionError
from loragate.card.overrides import OverrideError, apply_overrides
from loragate.card.settings import TIERS, CardError, TaskCard
from loragate.kinds import KINDS
from loragate.plugin.options import (
    named_candidates,
    require_cuda,
    require_one_task,
    require_quantizable,
    require_trainable,
)
from loragate.plugin.preflight import directory_problem, file_problem
from loragate.run.decoding_modes import constrains, task_constraint
from loragate.run.probes import check_probes
from loragate.tasks import TASKS, get_task

GATE_SELECTED = re.compile(r"\b(smoke|full)\b")  # a -m expression naming a gate marker
SINGLE_TASK_OPTIONS = ("adapter", "baseline_adapter", "baseline_report", "data", "base_model")


def check_options(config: pytest.Config, chosen: list[str], tasks: list[str]) -> str:
    """The option combinations and each selected card with the --set overrides, checked before any model loads;
    returns this process's device."""
    if config.getoption("baseline_adapter") and config.getoption("baseline_report"):
        raise pytest.UsageError("--baseline-adapter and --baseline-report name the same thing: pass one")
    try:
        require_one_task({flag: config.getoption(flag) for flag in SINGLE_TASK_OPTIONS}, chosen, TASKS.names(), tasks)
        device = run_device(config)
        require_quantizable(config.getoption("quantize"), tasks)
        check_cards(config, tasks)
        check_candidates(config, tasks)
        if not config.getoption("adapter") and GATE_SELECTED.search(config.option.markexpr or ""):
            # a gate run that trains, or loads what the store trained: each card must say how to train
            require_trainable([apply_overrides(get_task(name).card, tuple(config.getoption("overrides")))
                               for name in tasks], list(TIERS) if config.getoption("gpu") else ["tiny"])
    except (OptionError, OverrideError, CardError) as exc:
        raise pytest.UsageError(str(exc)) from exc
    return device


def check_candidates(config: pytest.Config, tasks: list[str]) -> None:
    """Candidates named once each (named_candidates), and --pick-best only where there are candidates to pick from:
    --adapter given more than once, or a selected card's `candidates.variants`."""
    given = config.getoption("adapter") or []
    named_candidates(given)
    if config.getoption("pick_best") and len(given) < 2:
        overrides = tuple(config.getoption("overrides"))
        cards = [apply_overrides(get_task(name).card, overrides) for name in tasks]
        if len(given) == 1 or not any(card.candidates is not None and card.candidates.variants for card in cards):
            raise OptionError("--pick-best picks among candidates: give --adapter more than once, or gate a card "
                              "whose candidates.variants lists a sweep")


def run_device(config: pytest.Config) -> str:
    """cpu; with --gpu, this process's CUDA device (an OptionError where torch sees no CUDA)."""
    if not config.getoption("gpu"):
        return "cpu"
    require_cuda()
    import torch  # loads torch: only with --gpu, never at pytest start-up

    return worker_device(getattr(config, "workerinput", {}).get("workerid"), torch.cuda.device_count())


def check_cards(config: pytest.Config, tasks: list[str]) -> None:
    """Each selected task's card must take the --set overrides (a bad path or value stops the run here), pass its
    kind's own start-up check (structured output: the output schema it declares loads, found before any model
    loads), decode under its grammar where asked, and name retention probes that can run (loragate.run.probes)."""
    overrides = tuple(config.getoption("overrides"))
    cards = [apply_overrides(get_task(name).card, overrides) for name in tasks]
    names = [card.name for card in cards]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:  # their runs would share a report name and one verdict would hide the other
        raise OptionError(f"--set name: {len(names)} tasks would all be named {repeated[0]!r}; rename one task at a "
                          f"time (add --task NAME)")
    flag = config.getoption("constrain")
    for card in cards:
        check = KINDS.get(card.kind).check_card
        if check is not None:
            check(card, constrains(card, list(card.tiers), flag))
        check_probes(card, list(TIERS) if config.getoption("gpu") else ["tiny"])  # retention: names, metrics, files
    require_constrainable(cards, flag)


def require_constrainable(cards: list[TaskCard], flag: bool) -> None:
    """Each card that will decode under its grammar (--constrain, or eval.constrain: schema in a tier) has a kind
    that supports it and a grammar llguidance can enforce, checked before any model loads: an OptionError names
    the task and kind, or gives the library's reason. Nothing is ever decoded free in a refused grammar's place."""
    if not any(constrains(card, list(card.tiers), flag) for card in cards):
        return
    from loragate.inference.grammar import UnenforceableConstraint  # loads torch and llguidance: not at start-up

    for card in cards:
        if constrains(card, list(card.tiers), flag):
            try:
                task_constraint(card)
            except UnenforceableConstraint as exc:
                raise OptionError(f"task {card.name}: constrained decoding refused: {exc}") from exc


def check_outputs(config: pytest.Config, rootdir: Path) -> None:
    """What the run will write (report, store, export, the job summary), before any model loads: a place that
    cannot be written is a usage error naming it, not a traceback after every test passed."""
    places = [("--report-dir", rootdir / config.getoption("report_dir"), "pass --report-dir DIR somewhere writable"),
              ("the adapter store", rootdir / "adapters", "run from a writable checkout of the project")]
    if config.getoption("export") is not None:
        places.append(("--export", rootdir / config.getoption("export"), "pass --export DIR somewhere writable"))
    for what, path, fix in places:
        problem = directory_problem(path)
        if problem is not None:
            raise pytest.UsageError(f"{what} {path}: {problem}; {fix}")
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        problem = file_problem(Path(step_summary))
        if problem is not None:
            raise pytest.UsageError(f"GITHUB_STEP_SUMMARY={step_summary}: {problem}; point it at a writable file "
                                    f"or unset it")


def worker_device(worker_id: str | None, gpus: int) -> str:
    """The CUDA device of this process: under pytest-xdist (`--gpu -n N`) worker gwK takes GPU K mod the GPU
    count, so N tasks gate in parallel on N GPUs instead of all on cuda:0; without xdist, cuda:0."""
    if worker_id is None:
        return "cuda"
    return f"cuda:{int(worker_id.removeprefix('gw')) % gpus}"
