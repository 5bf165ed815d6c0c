"""Hugging Face tokens are masked in reports, load errors and pytest's output (RELIABILITY case 27)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loragate.models.bases import ModelLoadError, load_causal
from loragate.redact import MASK, redact
from loragate.report.writer import RenderedRun, write_rendered

TOKEN = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz0123"  # fake, in a user token's shape


def test_redact_masks_the_environment_token_and_anything_shaped_like_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "my-org-token-1234")
    text = redact(f"Authorization: Bearer my-org-token-1234; other {TOKEN}; hf_short stays")
    assert text == f"Authorization: Bearer {MASK}; other {MASK}; hf_short stays"
    monkeypatch.setenv("HF_TOKEN", "x")
    assert redact("x marks the spot") == "x marks the spot", "a placeholder token must not blank the text"


def test_reports_never_hold_the_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    run = RenderedRun(task="iris", tier="tiny", verdict="PASS", table=f"base {TOKEN}", json={"base": TOKEN},
                      markdown=f"base {TOKEN}", html=f"<p>{TOKEN}</p>", summary=f"base {TOKEN}", plots=())
    out = write_rendered([run], tmp_path)
    for name in ("report.json", "report.md", "report.html", "summary.md"):
        text = (out / name).read_text()
        assert TOKEN not in text and MASK in text, f"{name}: {text[:200]}"
    assert json.loads((out / "report.json").read_text())["runs"][0]["base"] == MASK


def test_a_load_error_does_not_repeat_the_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with pytest.raises(ModelLoadError) as error:
        load_causal(str(tmp_path / f"missing-{TOKEN}"), "cpu", __import__("torch").float32)
    assert TOKEN not in str(error.value) and MASK in str(error.value)


FAILING_TEST = """
import os

def test_leaks():
    print("token is", os.environ["HF_TOKEN"])
    assert os.environ["HF_TOKEN"] == "something else"
"""


@pytest.mark.slow
def test_pytest_output_and_junit_mask_a_failing_tests_token(pytester: pytest.Pytester,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_leak=FAILING_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--junitxml=junit.xml", "-rA")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    output = result.stdout.str() + result.stderr.str()
    assert TOKEN not in output, "the token reached pytest's output"
    assert MASK in output, "the failure should still show where the token was"
    assert TOKEN not in (pytester.path / "junit.xml").read_text()
