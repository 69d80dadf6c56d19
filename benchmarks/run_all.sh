#!/usr/bin/env bash
# Regenerate every benchmark result at full size, with the peers, in one go:
#
#   bash benchmarks/run_all.sh              # CPU
#   bash benchmarks/run_all.sh --device gpu # GPU (needs a CUDA jaxlib in the venv)
#
# Builds benchmarks/.venv-peers (eventsnn editable + eventax + jaxsnn) if it is missing,
# runs each script (5-18 min each on a 2-core CPU), keeps a log per script next
# to its JSON, and prints the Markdown tables of benchmarks/README.md (report.py).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=benchmarks/.venv-peers/bin/python
if [ ! -x "$PY" ]; then
    python -m venv benchmarks/.venv-peers
    "$PY" -m pip install -e . -r benchmarks/requirements-peers.txt
fi
mkdir -p benchmarks/results
for script in grad_step scaling forward crosscheck; do
    nice -n 5 "$PY" "benchmarks/$script.py" "$@" 2>&1 | tee "benchmarks/results/$script.log"
done
"$PY" benchmarks/report.py | tee benchmarks/results/summary.md
