"""--adapter and --baseline-adapter at start-up: a wrong path is one usage error naming the flag, before any model
loads; a project with one task needs no --task for them; a card without lora/train gates only adapters trained
elsewhere; `--base-model=PATH` (one argument) keeps pytest's rootdir."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from loragate.card.options import OptionError
from loragate.card.settings import TaskCard
from loragate.plugin.options import adapter_parser, require_one_task, require_trainable
from loragate.tasks import get_task
from tests.plugin.test_discovery import pytest_in, write_flowers

ROOT = Path(__file__).resolve().parents[2]


def an_adapter(directory: Path, weights: str = "adapter_model.safetensors") -> Path:
    directory.mkdir(parents=True)
    (directory / "adapter_config.json").write_text("{}")
    (directory / weights).write_bytes(b"")
    return directory


@pytest.mark.parametrize("flag", ["--adapter", "--baseline-adapter"])
def test_an_adapter_path_is_checked_as_parsed_naming_its_own_flag(tmp_path: Path, flag: str) -> None:
    parse = adapter_parser(flag)
    assert parse(str(an_adapter(tmp_path / "ok"))) == (tmp_path / "ok").resolve()
    missing = tmp_path / "nowhere"
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(f"{missing} does not exist: point {flag} at a "
                                                                   f"directory written by peft's save_pretrained")):
        parse(str(missing))
    (tmp_path / "file").write_text("")
    with pytest.raises(argparse.ArgumentTypeError, match="is a file, not an adapter directory"):
        parse(str(tmp_path / "file"))
    broken = an_adapter(tmp_path / "broken")
    (broken / "adapter_config.json").write_text('{"r": 8,')
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(f"{broken / 'adapter_config.json'} is not readable "
                                                                   f"JSON (")):
        parse(str(broken))
    pickled = an_adapter(tmp_path / "pickled", "adapter_model.bin")
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(
            f"{pickled} has no adapter_model.safetensors, only ['adapter_model.bin']: pickle formats are never "
            f"loaded")):
        parse(str(pickled))
    for bad in (missing, pickled):
        with pytest.raises(argparse.ArgumentTypeError) as caught:
            parse(str(bad))
        other = "--adapter" if flag == "--baseline-adapter" else "--baseline-adapter"
        assert f"point {other} " not in str(caught.value), caught.value


def test_a_single_task_option_needs_no_task_where_the_project_has_one() -> None:
    require_one_task({"adapter": Path("a")}, [], ["flowers", "iris"], ["flowers"])
    require_one_task({"adapter": Path("a")}, ["iris"], ["flowers", "iris"], ["iris"])
    with pytest.raises(OptionError, match="--adapter applies to one task: add --task NAME"):
        require_one_task({"adapter": Path("a")}, [], ["a", "b"], ["a", "b"])
    with pytest.raises(OptionError, match="--adapter applies to one task"):
        require_one_task({"adapter": Path("a")}, ["a", "b"], ["a", "b"], ["a", "b"])


def card_without_training() -> TaskCard:
    raw = get_task("iris").card.model_dump(exclude_none=True)
    for tier in raw["tiers"].values():
        tier.pop("lora")
        tier.pop("train")
    return TaskCard.model_validate(raw)


def test_a_card_without_lora_and_train_gates_only_adapters_trained_elsewhere() -> None:
    card = card_without_training()
    assert card.tier("tiny").lora is None and card.tier("tiny").train.max_length == "auto"
    with pytest.raises(OptionError, match=re.escape(
            "task 'iris': tiers.tiny has no lora, train.epochs, train.batch_size, train.lr, so the gate cannot train "
            "its adapter: gate an adapter trained elsewhere (--adapter=PATH), or add tiers.tiny.lora")):
        require_trainable([card], ["tiny"])
    require_trainable([get_task("iris").card], ["tiny", "full"])


@pytest.mark.slow
def test_a_pickle_only_adapter_is_refused_once_at_start_up(tmp_path: Path) -> None:
    """It was refused 21 times, once per gate test, after the base had loaded."""
    pickled = an_adapter(tmp_path / "pickled", "adapter_model.bin")
    result = pytest_in(ROOT, "-m", "smoke", "--task", "iris", f"--adapter={pickled}")
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout[-2000:]
    errors = [line for line in result.stderr.splitlines() if "pickle formats are never loaded" in line]
    assert len(errors) == 1 and "argument --adapter:" in errors[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.slow
def test_adapter_in_a_project_of_one_task_needs_no_task_flag(tmp_path: Path) -> None:
    write_flowers(tmp_path / "tasks")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "flowers"\n\n[tool.loragate]\ntasks = "tasks"\n')
    an_adapter(tmp_path / "adapter")
    result = pytest_in(tmp_path, "-m", "smoke", "--adapter=adapter", "--collect-only", "-q")
    assert result.returncode == pytest.ExitCode.OK, result.stdout[-2000:] + result.stderr[-2000:]
    assert "[flowers-tiny]" in result.stdout


@pytest.mark.slow
def test_base_model_as_one_argument_keeps_the_projects_rootdir(tmp_path: Path) -> None:
    """README's form: `--base-model=PATH` outside the project; the two-argument form made pytest take the path for
    a test path, root the run there and warn."""
    base = tmp_path / "elsewhere" / "base"
    base.mkdir(parents=True)
    (base / "config.json").write_text("{}")
    project = tmp_path / "project"
    project.mkdir()
    result = pytest_in(project, "--task", "iris", f"--base-model={base}", "--collect-only", "-q", "-W", "default")
    assert result.returncode in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED), result.stderr[-2000:]
    assert "for a test path" not in result.stdout + result.stderr
    spaced = pytest_in(project, "--task", "iris", "--base-model", str(base), "--collect-only", "-q", "-W", "default")
    assert "it takes the value of --base-model" in spaced.stdout + spaced.stderr


@pytest.mark.slow
def test_a_gate_run_that_would_train_without_lora_and_train_is_refused_at_start_up(tmp_path: Path) -> None:
    """The card is valid (it gates adapters trained elsewhere); a gate run without --adapter is one usage error, and
    a run of the project's own tests is not the gate's business."""
    card = write_flowers(tmp_path / "tasks").with_suffix(".yaml")
    card.write_text("\n".join(line for line in card.read_text().splitlines()
                              if not line.strip().startswith(("lora:", "train:"))) + "\n")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "flowers"\n\n[tool.loragate]\ntasks = "tasks"\n')
    (tmp_path / "test_own.py").write_text("def test_own():\n    pass\n")
    refused = pytest_in(tmp_path, "-m", "smoke", "--collect-only", "-q")
    assert refused.returncode == pytest.ExitCode.USAGE_ERROR, refused.stdout[-2000:] + refused.stderr[-2000:]
    assert f"ERROR: {card}: tiers.tiny has no lora, train.epochs, train.batch_size, train.lr, so the gate cannot " \
           f"train its adapter: gate an adapter trained elsewhere (--adapter=PATH)" in refused.stderr, refused.stderr
    own = pytest_in(tmp_path, "test_own.py", "-q")
    assert own.returncode == pytest.ExitCode.OK, own.stdout[-2000:] + own.stderr[-2000:]
