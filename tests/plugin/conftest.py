"""pytester, refusing a test that loads numpy or torch into this process for the first time.

pytester takes out of sys.modules what a test imported, when the test ends. numpy and torch cannot be loaded twice
in one process: the next import of them here, in another test, fails ("cannot load module more than once per
process") or crashes (torch: a segfault), far from the test that caused it. That happens where they were not loaded
before the tests ran (a run of tests/plugin alone; `pytest tests` loads them while collecting). A test asks such a
library in a subprocess instead (test_hooks.in_a_fresh_process, run_inside_another_session)."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

ONCE_PER_PROCESS = ("numpy", "torch")


@pytest.fixture
def pytester(pytester: pytest.Pytester) -> Iterator[pytest.Pytester]:
    before = {name for name in ONCE_PER_PROCESS if name in sys.modules}
    yield pytester
    loaded = [name for name in ONCE_PER_PROCESS if name in sys.modules and name not in before]
    if loaded:
        pytest.fail(f"this test loaded {loaded} into the test process, and pytester takes them out of sys.modules "
                    f"now: the next import of them in this process would fail or crash. Load them in a subprocess "
                    f"(runpytest_subprocess, or subprocess.run) instead", pytrace=False)
