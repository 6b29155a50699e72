#!/usr/bin/env bash
# The sandbox demo (README: "Run the main job"): the service scaling a PostgreSQL read cluster on
# a simulated OpenStack cloud, everything on loopback.
#
# It installs and builds (scripts/setup.sh), starts the sandbox (tests/sandbox/sandbox.py up: a
# Patroni cluster on etcd - a PostgreSQL primary with pgbench data, a failover candidate and the
# donor standby -, the cloud simulator whose servers are real standbys, HAProxy behind the Data
# Plane API double, VictoriaMetrics scraping HAProxy's exporter and the service, and
# `replica-autoscaler serve` with target tracking on sessions per replica), then drives the
# scenario (tests/sandbox/demo/scenario.py): the first replica is built from a golden snapshot; a
# surge of pgbench -C -S through HAProxy scales 1 -> 3; a lull scales back to 1 while light load
# keeps connecting; a live view every 2 s; a summary with the time of each phase and the queries
# run and failed. Bounded (15 minutes by default).
#
#   scripts/demo.sh           run it and stop everything at the end
#   scripts/demo.sh --keep    leave it all running for exploration (stop: sandbox.py down)
# Environment: RA_DEMO_DIR (default .sandbox/), RA_DEMO_TIMEOUT (seconds, default 900),
# RA_DEMO_PROFILE (fast or realistic cloud latencies, default fast), RA_DEMO_OCTET (PostgreSQL
# and replicas on 127.0.N.x, default 210), BUILD_DIR (default build/).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
keep=0
for arg in "$@"; do
  case "$arg" in
    --keep) keep=1 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "demo.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

scripts/setup.sh

dir=${RA_DEMO_DIR:-"$here/.sandbox"}
timeout_s=${RA_DEMO_TIMEOUT:-900}
bin="${BUILD_DIR:-$here/build}/bin/replica-autoscaler"
sandbox=(/usr/bin/python3 "$here/tests/sandbox/sandbox.py")

echo "==> starting the sandbox in $dir"
started=0
cleanup() {
  status=$?
  if [ "$keep" = 0 ] && [ "$started" = 1 ]; then
    echo "==> stopping the sandbox"
    "${sandbox[@]}" down --root "$dir" || true
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
started=1
"${sandbox[@]}" up --root "$dir" --binary "$bin" --profile "${RA_DEMO_PROFILE:-fast}" \
  --octet "${RA_DEMO_OCTET:-210}"

echo
"$bin" validate "$dir/service/config.yaml" | sed 's/^/    /'
echo
# The scenario bounds itself; timeout(1) is the last resort should something hang regardless.
timeout --kill-after=30 "$((timeout_s + 120))" \
  /usr/bin/python3 "$here/tests/sandbox/demo/scenario.py" --root "$dir" --timeout "$timeout_s"

if [ "$keep" = 1 ]; then
  api=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["api_url"])' "$dir/state.json")
  echo
  echo "Everything keeps running. Explore:"
  "${sandbox[@]}" status --root "$dir" | sed 's/^/  /'
  echo
  echo "  curl -s -H \"Authorization: Bearer \$(cat $dir/service/secrets/read-only.token)\" $api/v1/clusters/orders"
  echo "  $bin status --api $api --token-file $dir/service/secrets/read-only.token"
  echo "  $bin scale orders 2 --api $api --token-file $dir/service/secrets/admin.token --wait"
  echo "  pgbench -n -C -S -c 16 -T 60 -h 127.0.0.1 -p \$(python3 -c 'import json;print(json.load(open(\"$dir/state.json\"))[\"frontend_port\"])') -U postgres postgres"
  echo "  the service's log: $dir/service.log; its events: $dir/service/events.jsonl"
  echo "Stop it all with: tests/sandbox/sandbox.py down --root $dir"
fi
