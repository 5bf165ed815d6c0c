"""`python -m loragate.merge OUT_DIR SHARD_REPORT.json...`: the same command as `python -m loragate merge`
(loragate.__main__, loragate.report.merge), under the name the release workflow's documentation gives it."""

from __future__ import annotations

import sys

from loragate.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["merge", *sys.argv[1:]]))
