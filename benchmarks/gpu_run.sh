#!/usr/bin/env bash
# The GPU check on a lent GPU machine, in one call of the device tool, from the repository root there:
#   here:  python -m benchmarks.gpu_bundle                 (the wheels the machine lacks, into .whl/)
#   there: bash benchmarks/gpu_run.sh                      (carry: [".whl"]; extra arguments go to gpu_check)
# Installs the carried wheels beside the image's packages (no index: nothing outside the machine is reachable),
# runs benchmarks/gpu_check.py, and leaves in $OUT what the tool brings back: gpu-check.json, gpu-check.md and
# one archive of the steps' logs and results and the gate's reports (not the 2 GB base or the adapters).
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?OUT is the folder the device tool brings back}"
# where the wheels are, where they install, where the check writes (tests/project/test_gpu_bundle.py points them elsewhere)
wheels=${GPU_RUN_WHEELS:-.whl} site=${GPU_RUN_SITE:-/tmp/site} check=${GPU_RUN_CHECK:-/tmp/gpu-check}

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$wheels"/*.whl \
  || { echo "gpu_run.sh: the carried wheels did not install: run python -m benchmarks.gpu_bundle and carry .whl" >&2
       exit 1; }
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
python3 -m benchmarks.gpu_check --out "$check" "$@"
code=$?
cp "$check"/gpu-check.json "$check"/gpu-check.md "$OUT"/
tar -czf "$OUT"/gpu-check-logs.tgz -C "$check" logs steps $(cd "$check" && ls -d gate/reports 2>/dev/null)
exit $code
