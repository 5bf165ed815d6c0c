"""The plugin as a user meets it: `pytest` in a fresh directory, loragate loaded by its pytest11 entry point.

Every run here is a subprocess (runpytest_subprocess), so the entry point, option parsing, usage errors and
exit codes are the real ones. No test here trains or loads a model: the tests written into the temporary
directory take only `gate_case` / `pytestconfig` and assert on values.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys

import pytest

from loragate.plugin.options import parse_base_model
from loragate.tasks import TASKS

USAGE_ERROR = pytest.ExitCode.USAGE_ERROR  # 4

GATE_CASE_TEST = """
from loragate.tasks import TASKS

def test_case(gate_case):
    task, tier, candidate = gate_case
    assert task in TASKS.names() and tier in ("tiny", "full") and candidate == ""
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


def in_a_fresh_process(code: str) -> bool:
    """Whether `code` runs without error in a new interpreter: what torch or bitsandbytes says of this machine, asked
    without loading them here (pytester would take them out of sys.modules after the test; see conftest.py)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


@pytest.mark.slow
def test_help_lists_the_options(gate_dir: pytest.Pytester) -> None:
    result = run(gate_dir, "--help")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines([
        "loragate release gate:",
        "  --gpu *run on CUDA*",
        "  --task=NAME *",
        "  --task-dir=DIR *",
        "  --base-model=ID|PATH *",
        "  --adapter=[NAME=]PATH",
        "  --pick-best *",
        "  --allow-foreign-adapter",
        "  --data=PATH|ID *",
        "  --retrain *",
        "  --report-dir=DIR *",
    ])


@pytest.mark.slow
def test_loading_the_plugin_does_not_import_torch(gate_dir: pytest.Pytester) -> None:
    """pytest --help, a collect-only and every test that runs no gate stay fast: torch, transformers and
    peft load only when a test asks for a run (they took `pytest --help` from 0.7 s to 8 s)."""
    gate_dir.makepyfile(test_plain="""
        import sys

        def test_nothing_heavy_loaded():
            heavy = sorted(name for name in ("torch", "transformers", "peft") if name in sys.modules)
            assert not heavy, heavy
    """)
    result = run(gate_dir, "-q")
    result.assert_outcomes(passed=1)


@pytest.mark.slow
def test_markers_are_registered(gate_dir: pytest.Pytester) -> None:
    result = run(gate_dir, "--markers")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines([
        "@pytest.mark.smoke: tiny tier*",
        "@pytest.mark.full: full tier*--gpu*",
        "@pytest.mark.gpu: needs CUDA*",
        "@pytest.mark.benchmark: throughput measurement*",
    ], consecutive=False)


@pytest.mark.slow
def test_strict_markers_accepts_the_gate_markers(gate_dir: pytest.Pytester) -> None:
    gate_dir.makepyfile(test_marked="""
        import pytest

        @pytest.mark.smoke
        def test_smoke(): pass

        @pytest.mark.full
        def test_full(): pass

        @pytest.mark.gpu
        def test_gpu(): pass

        @pytest.mark.benchmark
        def test_benchmark(): pass
    """)
    result = run(gate_dir, "--strict-markers", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.stdout.fnmatch_lines(["4 tests collected*"])


@pytest.mark.slow
def test_strict_markers_rejects_an_unknown_marker(gate_dir: pytest.Pytester) -> None:
    gate_dir.makepyfile(test_typo="""
        import pytest

        @pytest.mark.smoek
        def test_typo(): pass
    """)
    result = run(gate_dir, "--strict-markers")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*'smoek' not found in `markers` configuration option*"])


@pytest.mark.slow
def test_unknown_task_suggests_the_close_name(gate_dir: pytest.Pytester) -> None:
    result = run(gate_dir, "--task", "iros")
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: --task: Unknown task 'iros'. Did you mean 'iris'? Available: {', '.join(TASKS.names())}"])


@pytest.mark.slow
def test_unknown_task_lists_the_available_tasks(gate_dir: pytest.Pytester) -> None:
    result = run(gate_dir, "--task", "nope")
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --task: Unknown task 'nope'. Available: {', '.join(TASKS.names())}"])
    assert "Did you mean" not in result.stderr.str()


@pytest.mark.slow
def test_gpu_without_cuda_is_a_usage_error_at_start(gate_dir: pytest.Pytester) -> None:
    if in_a_fresh_process("import sys, torch; sys.exit(not torch.cuda.is_available())"):
        pytest.skip("this machine has CUDA: --gpu is valid here")
    gate_dir.makepyfile(test_cases=GATE_CASE_TEST)
    result = run(gate_dir, "--gpu", "-rs")
    assert result.ret == USAGE_ERROR, result.stdout.str()
    result.stderr.fnmatch_lines(["ERROR: --gpu: CUDA is not available to torch *Run without --gpu*"])
    out = result.stdout.str()
    assert "skipped" not in out and "collected" not in out, out


@pytest.mark.slow
def test_full_tier_without_gpu_is_skipped_with_the_reason(gate_dir: pytest.Pytester) -> None:
    gate_dir.makepyfile(test_cases=GATE_CASE_TEST)
    result = run(gate_dir, "test_cases.py", "-m", "full", "-rs", "--task", "iris")
    result.assert_outcomes(skipped=1, deselected=1)
    result.stdout.fnmatch_lines(["SKIPPED ?1? *: the full tier runs on a GPU: add --gpu (pytest -m full --gpu)"])


@pytest.mark.slow
def test_a_run_whose_every_gate_test_was_skipped_fails(gate_dir: pytest.Pytester) -> None:
    """`pytest -m full` without --gpu checks nothing: a release job must not read that as a pass."""
    gate_dir.makepyfile(test_cases=GATE_CASE_TEST)
    result = run(gate_dir, "test_cases.py", "-m", "full", "--task", "iris")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    result.stdout.fnmatch_lines(["loragate: FAILED: all 1 selected gate tests were skipped, so nothing was checked*"
                                 "add --gpu*"])
    assert run(gate_dir, "--task", "iris").ret == pytest.ExitCode.OK, "a smoke case ran: the skipped full case is fine"


@pytest.mark.slow
def test_smoke_selects_only_the_tiny_case(gate_dir: pytest.Pytester) -> None:
    gate_dir.makepyfile(test_cases=GATE_CASE_TEST)
    result = run(gate_dir, "test_cases.py", "-m", "smoke", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK
    ids = [line for line in result.outlines if "::" in line]
    assert ids == [f"test_cases.py::test_case[{name}-tiny]" for name in TASKS.names()], result.outlines


@pytest.mark.slow
def test_gate_case_values_without_a_marker_filter(gate_dir: pytest.Pytester) -> None:
    gate_dir.makepyfile(test_cases=GATE_CASE_TEST)
    result = run(gate_dir, "-v", "--task", "iris")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*test_case?iris-tiny? PASSED*", "*test_case?iris-full? SKIPPED*"], consecutive=False)


@pytest.mark.slow
def test_a_repeated_task_is_gated_once(gate_dir: pytest.Pytester) -> None:
    gate_dir.makepyfile(test_cases=GATE_CASE_TEST)
    result = run(gate_dir, "--task", "iris", "--task", "iris", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK
    ids = [line for line in result.outlines if "::" in line]
    assert ids == ["test_cases.py::test_case[iris-tiny]", "test_cases.py::test_case[iris-full]"], result.outlines


@pytest.mark.slow
@pytest.mark.parametrize("flag", ["--adapter", "--data", "--base-model"])
def test_single_task_options_need_an_explicit_task(gate_dir: pytest.Pytester, flag: str) -> None:
    """Where several tasks would run: the same command line must not change meaning when a task is added."""
    adapter = gate_dir.mkdir("adapter")
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    (adapter / "config.json").write_text("{}")  # so the same directory also passes --base-model's check
    result = run(gate_dir, flag, str(adapter))
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: {flag} applies to one task: add --task NAME (one of {', '.join(TASKS.names())})"])


@pytest.mark.slow
def test_adapter_dir_without_config_names_the_path(gate_dir: pytest.Pytester) -> None:
    adapter = gate_dir.mkdir("not-an-adapter")
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    result = run(gate_dir, "--task", "iris", "--adapter", "not-an-adapter")
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(["*argument --adapter: not-an-adapter has no adapter_config.json*"])


@pytest.mark.slow
def test_adapter_that_does_not_exist_names_the_path(gate_dir: pytest.Pytester) -> None:
    result = run(gate_dir, "--task", "iris", "--adapter", "some/dir")
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(["*argument --adapter: some/dir does not exist: point --adapter at*"])


@pytest.mark.slow
def test_base_model_path_that_does_not_exist(gate_dir: pytest.Pytester) -> None:
    result = run(gate_dir, "--task", "iris", "--base-model", "./notadir-with-config")
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(["*argument --base-model: ./notadir-with-config: no such directory (a path, not a "
                                 "hub id: it starts with '.')*"])


@pytest.mark.slow
def test_a_mistyped_path_whose_directory_exists_is_not_taken_for_a_hub_id(gate_dir: pytest.Pytester) -> None:
    """`--base-model=bases/tiny-iris` with bases/ present was tried on the hub: 57 s of retries, then a message about
    connectivity."""
    gate_dir.mkdir("bases")
    result = run(gate_dir, "--task", "iris", "--base-model=bases/tiny-iris")
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(["*argument --base-model: bases/tiny-iris: no such directory (a path, not a hub id: "
                                 "its directory 'bases' exists)*"])


@pytest.mark.parametrize("value, reason", [("~/no-such-model-dir", "it starts with '~'"),
                                           ("/no-such-dir/model", "it starts with '/'"),
                                           ("models/no-such-model", "its directory 'models' exists")])
def test_a_value_that_looks_like_a_path_is_refused_as_one(value: str, reason: str, tmp_path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(f"{value}: no such directory (a path, not a hub id: "
                                                                   f"{reason})")):
        parse_base_model(value)
    assert parse_base_model("no-such-org/model") == "no-such-org/model"  # a hub id where no directory says otherwise


@pytest.mark.slow
def test_base_model_dir_without_config(gate_dir: pytest.Pytester) -> None:
    gate_dir.mkdir("notamodel")
    result = run(gate_dir, "--task", "iris", "--base-model", "notamodel")
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(["*argument --base-model: notamodel has no config.json*"])


OPTIONS_TEST = """
import json
from loragate.plugin.hooks import gate_session

def test_options(pytestconfig):
    session = gate_session(pytestconfig)
    values = {k: str(v) if v is not None else None for k, v in vars(session.options).items()}
    print("OPTIONS=" + json.dumps({**values, "tasks": session.tasks, "report_dir": str(session.report_dir)}))
"""


def session_options(result: pytest.RunResult) -> dict:
    (line,) = [line for line in result.outlines if "OPTIONS=" in line]
    return json.loads(line.split("OPTIONS=", 1)[1])


@pytest.mark.slow
def test_hub_id_is_accepted_at_parse_time(gate_dir: pytest.Pytester) -> None:
    gate_dir.makepyfile(test_options=OPTIONS_TEST)
    result = run(gate_dir, "--task", "iris", "--base-model", "org/name", "-s")
    result.assert_outcomes(passed=1)
    assert session_options(result)["base_model"] == "org/name"


@pytest.mark.slow
def test_accepted_paths_reach_the_session_resolved(gate_dir: pytest.Pytester) -> None:
    gate_dir.makepyfile(test_options=OPTIONS_TEST)
    model = gate_dir.mkdir("model")
    (model / "config.json").write_text("{}")
    adapter = gate_dir.mkdir("adapter")
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    result = run(gate_dir, "--task", "iris", "--base-model", "model", "--adapter", "adapter", "--retrain",
                 "--allow-foreign-adapter", "--report-dir", "out", "-s")
    result.assert_outcomes(passed=1)
    options = session_options(result)
    root = gate_dir.path.resolve()
    assert options["base_model"] == str(model.resolve())
    assert options["adapter"] == str(adapter.resolve())
    assert options["retrain"] == "True" and options["device"] == "cpu"
    assert options["allow_foreign_adapter"] == "True"
    assert options["store_root"] == str(root / "adapters")
    assert options["tasks"] == ["iris"]
    assert options["report_dir"] == str(root / "out")


def loragate_lines(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if "loragate" in line and not line.startswith("plugins:")]


@pytest.mark.slow
def test_no_summary_when_no_gate_ran(gate_dir: pytest.Pytester) -> None:
    gate_dir.makepyfile(test_plain="def test_ok():\n    pass\n")
    result = run(gate_dir)
    result.assert_outcomes(passed=1)
    assert loragate_lines(result) == []
    assert "report:" not in result.stdout.str()
    assert not (gate_dir.path / "reports").exists()


@pytest.mark.slow
def test_summary_names_a_case_that_did_not_run(gate_dir: pytest.Pytester) -> None:
    """The counterpart of the test above: the closing section does appear once the session holds a result."""
    gate_dir.makepyfile(test_failed_run="""
        from loragate.plugin.hooks import gate_session

        def test_record_failure(pytestconfig):
            gate_session(pytestconfig).failures[("iris", "tiny", "")] = RuntimeError("no base")
    """)
    result = run(gate_dir)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*loragate: base vs tuned*", "iris/tiny: did not run: RuntimeError: no base"])
    assert not (gate_dir.path / "reports").exists()  # nothing ran, so there is no report to write


@pytest.mark.slow
def test_the_outermost_gate_session_freezes_its_objects_once_the_report_is_written(gate_dir: pytest.Pytester) -> None:
    """pytest's last collections (unraisableexception's, at unconfigure) walked every object torch and transformers
    made: 1.3 s of the smoke gate. The outermost session freezes them after its report; a session run inside a
    test process (pytester's in-process runs) leaves that process's collector alone until exit."""
    gate_dir.makeconftest("""
        import gc

        def pytest_unconfigure(config):
            print(f"frozen at unconfigure: {gc.get_freeze_count() > 0}")
    """)
    gate_dir.makepyfile(test_failed_run="""
        from loragate.plugin.hooks import gate_session

        def test_record_failure(pytestconfig):
            gate_session(pytestconfig).failures[("iris", "tiny", "")] = RuntimeError("no base")
    """)
    result = run(gate_dir)
    result.assert_outcomes(passed=1)
    assert "frozen at unconfigure: True" in result.outlines
    run_inside_another_session(gate_dir)  # its test: the inner run passes, and nothing is frozen after it


@pytest.mark.slow
def test_a_gate_run_collects_without_the_garbage_collector_and_freezes_what_it_imported(
        gate_dir: pytest.Pytester) -> None:
    """The collector's full passes while collection imported torch, transformers and peft took 2-3 s of the smoke
    gate. Only a run that selects gate tests (-m smoke or full), not inside another session, freezes the heap."""
    gate_dir.makepyfile(test_probe="""
        import gc
        import pytest

        ENABLED_WHILE_COLLECTING = gc.isenabled()

        def report():
            print(f"collector on while collecting: {ENABLED_WHILE_COLLECTING}, on now: {gc.isenabled()}, "
                  f"frozen: {gc.get_freeze_count() > 0}")

        @pytest.mark.smoke
        def test_gate_probe():
            report()

        def test_plain_probe():
            report()
    """)
    gate = run(gate_dir, "-s", "-m", "smoke", "test_probe.py")
    assert "collector on while collecting: False, on now: True, frozen: True" in gate.stdout.str()
    for plain in (run(gate_dir, "-s", "test_probe.py"), run(gate_dir, "-s", "-m", "not smoke", "test_probe.py"),
                  run_inside_another_session(gate_dir, "-s", "-m", "smoke", "test_probe.py")):
        assert "on now: True, frozen: False" in plain.stdout.str()


def run_inside_another_session(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """pytest run with `args` from a test of an outer session (what pytester's in-process runs do), the outer
    session in a subprocess: run in this process, the inner run's imports (numpy, torch) would be taken out of
    sys.modules after the test by pytester, and the next import of them in this process would fail."""
    pytester.makepyfile(outer_session=f"""
        import gc
        import pytest

        def test_inner_session():
            assert pytest.main(["-p", "no:cacheprovider", *{list(args)!r}]) == 0
            assert gc.get_freeze_count() == 0
    """)
    result = run(pytester, "-s", "outer_session.py")
    result.assert_outcomes(passed=1)
    return result


@pytest.mark.slow
def test_the_deprecations_libraries_raise_against_each_other_stay_out_of_a_users_run(gate_dir: pytest.Pytester) -> None:
    """A user's gate printed 15 such warnings under every run (torch's mkldnn module via transformers, peft calling a
    renamed transformers API); a user's own deprecations still show."""
    gate_dir.makepyfile(test_warns="""
        import warnings

        def test_libraries():
            warnings.warn("`torch.jit.script_method` is deprecated. Please switch to `torch.compile`",
                          DeprecationWarning)
            warnings.warn("`is_gradient_checkpointing` is deprecated and will be removed in v6.", FutureWarning)

        def test_users_own():
            warnings.warn("`my_helper` is deprecated", DeprecationWarning)
    """)
    result = run(gate_dir)
    result.assert_outcomes(passed=2, warnings=1)
    assert "my_helper" in result.stdout.str() and "script_method" not in result.stdout.str()


@pytest.mark.slow
def test_a_case_that_did_not_run_shows_its_traceback_once(gate_dir: pytest.Pytester) -> None:
    """pytest re-raises a session fixture's error in every test that uses it: a bad --data file printed the same
    traceback under each of the case's gate tests (1,163 lines for one wrong label). Now the first shows it and
    every other names the error in one line. (A bad data file now stops the run at start-up, tests/plugin/
    test_data_check.py; a max_length too short for the answers is found only once the base's tokenizer is known.)"""
    result = run(gate_dir, "-m", "smoke", "--task", "iris", "--set", "tiers.tiny.train.max_length=2", "-k",
                 "parameters")
    errors = result.parseoutcomes()["errors"]
    assert errors > 2
    assert sum(line.startswith("E   ") for line in result.outlines) == 1  # one traceback
    assert sum(line.startswith("iris/tiny did not run: CardError: ") for line in result.outlines) == errors - 1
    result.stdout.fnmatch_lines(["iris/tiny did not run: CardError: example *train.max_length 2*"
                                 "*(the traceback is under this case's first error)"])


@pytest.mark.slow
def test_quantize_without_bitsandbytes_is_a_usage_error_at_start(gate_dir: pytest.Pytester) -> None:
    """A bitsandbytes that does not import (missing, or built without a backend for this machine)."""
    gate_dir.mkpydir("bitsandbytes").joinpath("__init__.py").write_text("raise ImportError('no backend here')\n")
    gate_dir.makepyfile(test_cases=GATE_CASE_TEST)
    result = run(gate_dir, "--quantize", "4bit", "--task", "iris")
    assert result.ret == USAGE_ERROR, result.stdout.str()
    result.stderr.fnmatch_lines(["ERROR: --quantize 4bit needs bitsandbytes, which does not import (no backend here): "
                                 "pip install 'loragate[quantize]', or drop --quantize"])


@pytest.mark.slow
def test_the_gate_under_torchrun_is_a_usage_error_naming_data_parallel_training(
        gate_dir: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """torchrun would run every test once per process, each rank gating and writing the same report."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    gate_dir.makepyfile(test_cases=GATE_CASE_TEST)
    result = run(gate_dir, "--task", "iris", "--collect-only")
    assert result.ret == USAGE_ERROR, result.stdout.str()
    result.stderr.fnmatch_lines(["ERROR: the gate runs as one process*torchrun --nproc_per_node N train_fixtures.py*"])


@pytest.mark.slow
def test_quantize_with_encoder_tasks_is_a_usage_error_naming_the_causal_ones(gate_dir: pytest.Pytester) -> None:
    if not in_a_fresh_process("import bitsandbytes"):
        pytest.skip("bitsandbytes does not import here")
    gate_dir.makepyfile(test_cases=GATE_CASE_TEST)
    result = run(gate_dir, "--quantize", "4bit", "--collect-only")  # every task: the encoder ones included
    assert result.ret == USAGE_ERROR, result.stdout.str()
    result.stderr.fnmatch_lines(["ERROR: --quantize 4bit is for causal bases; squad_v2, sst2_encoder, topics run on an "
                                 "encoder: choose tasks with --task (instruct, iris, sst2) or drop --quantize"])
    assert run(gate_dir, "--quantize", "4bit", "--task", "iris", "--collect-only").ret == pytest.ExitCode.OK


STORE_ROOT_TEST = """
from loragate.plugin.hooks import gate_session

def test_store_root(pytestconfig):
    print("STORE", gate_session(pytestconfig).options.store_root)
"""


@pytest.mark.slow
def test_a_path_option_outside_the_project_does_not_move_the_store(gate_dir: pytest.Pytester,
                                                                   tmp_path_factory: pytest.TempPathFactory) -> None:
    """pytest roots the run at `--report-dir /elsewhere`'s value (it reads it as a test path before the plugin
    loads); the adapter store stayed beside the project's config regardless, with a warning that says why."""
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    gate_dir.makepyfile(test_store=STORE_ROOT_TEST)
    result = run(gate_dir, "-s", "-W", "default", "--report-dir", str(elsewhere))
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert "configfile:" not in result.stdout.str()  # the scenario: pytest rooted the run elsewhere, no ini read
    result.stdout.fnmatch_lines([f"*STORE {gate_dir.path / 'adapters'}",
                                 "*it takes the value of --report-dir * for a test path. "
                                 "Write it as one argument (--report-dir=*"])
    assert not (elsewhere / "adapters").exists()


def test_xdist_workers_take_one_gpu_each_round_robin() -> None:
    from loragate.plugin.startup import worker_device

    assert worker_device(None, 4) == "cuda"
    assert [worker_device(f"gw{k}", 2) for k in range(5)] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1", "cuda:0"]


@pytest.mark.slow
@pytest.mark.parametrize("where", ["/proc/loragate-reports", "{tmp}/a-file/reports"])
def test_an_unwritable_report_dir_is_a_usage_error_before_anything_runs(gate_dir: pytest.Pytester, where: str) -> None:
    (gate_dir.path / "a-file").write_text("not a directory")
    gate_dir.makepyfile(test_cases=GATE_CASE_TEST)
    result = run(gate_dir, f"--report-dir={where.format(tmp=gate_dir.path)}", "--task", "iris")
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(["*--report-dir *: * pass --report-dir DIR somewhere writable*"])
    assert "test_cases.py" not in result.stdout.str()  # nothing was collected, nothing ran


@pytest.mark.slow
def test_an_unwritable_step_summary_is_a_usage_error(gate_dir: pytest.Pytester,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(gate_dir.path))  # a directory
    gate_dir.makepyfile(test_cases=GATE_CASE_TEST)
    result = run(gate_dir, "--task", "iris")
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(["*GITHUB_STEP_SUMMARY=*: * is a directory, not a file*"])


@pytest.mark.slow
def test_an_export_dir_under_a_file_is_a_usage_error(gate_dir: pytest.Pytester) -> None:
    (gate_dir.path / "a-file").write_text("x")
    gate_dir.makepyfile(test_cases=GATE_CASE_TEST)
    result = run(gate_dir, "--export=a-file/dist", "--task", "iris")
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(["*--export */a-file/dist: */a-file is a file, not a directory*"])
