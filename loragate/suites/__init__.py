"""The gate: the test modules `pytest -m smoke` and `pytest -m full` run for every selected task and tier.

A package, so pytest imports them as `loragate.suites.test_*` wherever loragate is installed, and a project's own
`test_quality.py` cannot shadow one. The plugin adds this directory to the run (loragate.plugin.gate_paths)."""
