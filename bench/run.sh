#!/usr/bin/env bash
# Benchmarks of replica-autoscaler in the sandbox, printed as a small table (bench/bench.py says
# what each figure means). Not part of CI: a run takes several minutes.
#
#   bench/run.sh [--runs N] [--latency-scale F]   (defaults: 3 runs, realistic latencies x 0.25)
# Environment: BUILD_DIR (default build/) holds bin/replica-autoscaler.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin="${BUILD_DIR:-$here/build}/bin/replica-autoscaler"
if [ ! -x "$bin" ]; then
  echo "bench: $bin is not built (scripts/setup.sh, or set BUILD_DIR)" >&2
  exit 1
fi
exec /usr/bin/python3 "$here/bench/bench.py" --binary "$bin" "$@"
