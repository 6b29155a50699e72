#!/usr/bin/env bash
# Benchmarks of replica-autoscaler in the sandbox, printed as a small table (bench/bench.py says
# what each figure means). Not part of CI: a run takes several minutes.
#
#   bench/run.sh [--runs N] [--latency-scale F] [--only t1,t4,reaction]
#                                     (defaults: 3 runs, realistic latencies x 0.25, all three)
#   bench/run.sh cpu [--binary B]... [--runs N] [--window S]
#                                     the cycle's CPU per cycle per cluster (bench/cycle_cpu.py);
#                                     several --binary alternate runs, to compare builds
#   bench/run.sh datasize [--size-gb 20] [--tables 4500] [--wal-gb W] [--n N] [--runs 3]
#                         [--mode stream|archive|both] [--keep-data DIR]
#                                     scaling a primary of real size: streaming catch-up against
#                                     catch-up from a pgBackRest archive (bench/datasize.py; root)
#   bench/run.sh scale [--clusters 100] [--replicas 20] [--runs 3] [--window S]
#                                     the scale of one instance (bench/scale.py): list calls per
#                                     cycle, cycle CPU, RSS, GET /v1/clusters latency
# Environment: BUILD_DIR (default build/) holds bin/replica-autoscaler (used when no --binary).
# See bench/README.md.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin="${BUILD_DIR:-$here/build}/bin/replica-autoscaler"
if [ "${1:-}" = cpu ]; then
  shift
  case " $* " in
    *" --binary"*) exec /usr/bin/python3 "$here/bench/cycle_cpu.py" "$@" ;;
    *) exec /usr/bin/python3 "$here/bench/cycle_cpu.py" --binary "$bin" "$@" ;;
  esac
fi
if [ "${1:-}" = datasize ]; then
  shift
  case " $* " in
    *" --binary"*) exec /usr/bin/python3 "$here/bench/datasize.py" "$@" ;;
    *) exec /usr/bin/python3 "$here/bench/datasize.py" --binary "$bin" "$@" ;;
  esac
fi
if [ "${1:-}" = scale ]; then
  shift
  case " $* " in
    *" --binary"*) exec /usr/bin/python3 "$here/bench/scale.py" "$@" ;;
    *) exec /usr/bin/python3 "$here/bench/scale.py" --binary "$bin" "$@" ;;
  esac
fi
if [ ! -x "$bin" ]; then
  echo "bench: $bin is not built (scripts/setup.sh, or set BUILD_DIR)" >&2
  exit 1
fi
exec /usr/bin/python3 "$here/bench/bench.py" --binary "$bin" "$@"
