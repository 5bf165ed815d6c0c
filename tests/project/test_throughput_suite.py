"""suites/test_throughput.py's own figures, with stand-ins for the run and pytest-benchmark (the end-to-end run is
tests/plugin/test_throughput_in_report.py, slow)."""

from __future__ import annotations

from types import SimpleNamespace

from loragate.inference.predictions import Predictions
from suites.test_throughput import test_evaluation_throughput as evaluation_throughput


class StandInBenchmark:
    """pytest-benchmark's fixture as the suite uses it: one timed call, its median and extra_info."""

    def __init__(self, median: float) -> None:
        self.stats = SimpleNamespace(stats=SimpleNamespace(median=median))
        self.extra_info: dict = {}

    def pedantic(self, target, args, **_: object):
        return target(*args)


def test_an_untimed_run_pass_gives_no_run_figure_rather_than_dividing_by_zero() -> None:
    """The run's tuned predictions may carry seconds 0 (not timed): run_examples_per_s is None, as report.json's."""
    untimed = Predictions(ids=["a", "b"], gold=["x", "y"], outputs=["x", "y"], parsed=[], seconds=0.0)
    run = SimpleNamespace(tier="tiny", model=None, tuned_predictions=untimed, benchmark_seconds=None,
                          predict=lambda model: untimed)
    benchmark = StandInBenchmark(median=0.5)
    evaluation_throughput(run, benchmark)
    assert benchmark.extra_info == {"examples": 2, "examples_per_s": 4.0, "run_examples_per_s": None}
    assert run.benchmark_seconds == 0.5
