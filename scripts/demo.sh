#!/usr/bin/env bash
# The sandbox demo (README: "Run the main job").
#
# Today (issue #2) it shows `replica-autoscaler plan`: a real VictoriaMetrics on loopback is fed
# two hours of sample load for a cluster "orders" ending in a surge, and plan evaluates the
# cluster's policies against it — before the surge and now — acting on nothing. The full sandbox
# (cloud simulator, HAProxy, PostgreSQL replicas, the running service) comes with issue #5.
#
#   scripts/demo.sh           run it and stop everything at the end
#   scripts/demo.sh --keep    leave VictoriaMetrics running for exploration
# Environment: RA_DEMO_PORT (VictoriaMetrics port, default 18428), RA_DEMO_DIR (default .sandbox/)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
keep=0
for arg in "$@"; do
  case "$arg" in
    --keep) keep=1 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "demo.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

scripts/setup.sh

port=${RA_DEMO_PORT:-18428}
dir=${RA_DEMO_DIR:-"$here/.sandbox"}
url="http://127.0.0.1:$port"
bin="$here/build/bin/replica-autoscaler"
mkdir -p "$dir"

if [ -f "$dir/victoria-metrics.pid" ] && kill -0 "$(cat "$dir/victoria-metrics.pid")" 2>/dev/null; then
  echo "demo: stopping the VictoriaMetrics a previous --keep left running"
  kill "$(cat "$dir/victoria-metrics.pid")"; sleep 1
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "demo: port $port is taken by another program; set RA_DEMO_PORT to a free one" >&2
  exit 1
fi

rm -rf "$dir/vm-data"
echo "==> starting VictoriaMetrics on $url (data in $dir/vm-data, log in $dir/victoria-metrics.log)"
victoria-metrics -httpListenAddr="127.0.0.1:$port" -storageDataPath="$dir/vm-data" \
  -retentionPeriod=1d >"$dir/victoria-metrics.log" 2>&1 &
vm_pid=$!
echo "$vm_pid" >"$dir/victoria-metrics.pid"
cleanup() {
  if [ "$keep" = 0 ]; then
    kill "$vm_pid" 2>/dev/null || true
    wait "$vm_pid" 2>/dev/null || true
    rm -f "$dir/victoria-metrics.pid"
  fi
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -fsS "$url/health" >/dev/null 2>&1 && break
  kill -0 "$vm_pid" 2>/dev/null || { echo "demo: VictoriaMetrics exited:" >&2; tail -5 "$dir/victoria-metrics.log" >&2; exit 1; }
  sleep 0.1
done

echo "==> loading two hours of sample load for cluster 'orders' (2 replicas), ending in a surge"
tests/sandbox/metrics/load_sample.py --url "$url"

sed "s|http://127.0.0.1:18428|$url|" tests/sandbox/plan-demo.yaml >"$dir/plan-demo.yaml"
echo
echo "==> replica-autoscaler validate $dir/plan-demo.yaml --no-secret-check"
"$bin" validate "$dir/plan-demo.yaml" --no-secret-check

echo
echo "==> replica-autoscaler plan --config $dir/plan-demo.yaml --current 2"
"$bin" plan --config "$dir/plan-demo.yaml" --current 2

echo "==> the same as JSON, for scripts (first lines)"
"$bin" plan --config "$dir/plan-demo.yaml" --current 2 --json | head -n 20

if [ "$keep" = 1 ]; then
  echo
  echo "VictoriaMetrics keeps running at $url (pid $vm_pid). Try:"
  echo "  $bin plan --config $dir/plan-demo.yaml --current 4"
  echo "  curl -s '$url/api/v1/query' --data-urlencode 'query=sum(haproxy_backend_current_sessions)'"
  echo "Stop it with: kill $vm_pid"
fi
