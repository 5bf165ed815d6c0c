"""The repository's root conftest, thin on purpose. The gate's plugin loads from its `pytest11` entry point
(loragate.plugin.hooks), as in any project that installs loragate, so `pytest -m smoke` here runs what a user's
project runs: the suites in suites/, the fixtures in fixtures/ (both shipped in the wheel as loragate.suites and
loragate.fixtures). The library's tests share tests/conftest.py; the benchmarks, benchmarks/conftest.py."""

collect_ignore = ["examples"]  # each example is a project of its own, gated from its own directory
