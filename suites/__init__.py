"""The gate: the test modules `pytest -m smoke` and `pytest -m full` run for every selected task and tier.

This directory is shipped in the wheel as the package `loragate.suites` (pyproject's package-dir), so pytest imports
the modules as `loragate.suites.test_*` wherever loragate is installed, and a project's own `test_quality.py`
cannot shadow one. The plugin adds them to a gate run (loragate.plugin.hooks)."""
