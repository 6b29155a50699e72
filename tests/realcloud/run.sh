#!/usr/bin/env bash
# The realcloud suite (ctest -L realcloud): starts the real OpenStack services on loopback
# (openstack.sh), runs the client's contract tests and the agreement script against them, and
# stops everything, also on failure. Each step is bounded.
#
#   [RA_REALCLOUD_IP=127.0.61.1] tests/realcloud/run.sh BUILD/bin/realcloud_contract_tests
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
contract=${1:?usage: run.sh PATH/TO/realcloud_contract_tests}
dir=$(mktemp -d /tmp/ra-realcloud.XXXXXX)
chmod 755 "$dir"
stop() { "$here/openstack.sh" stop --dir "$dir" || true; }
trap stop EXIT

started=$(date +%s)
if ! timeout 900 "$here/openstack.sh" start --dir "$dir" --ip "${RA_REALCLOUD_IP:-127.0.60.1}"; then
  echo "realcloud: the OpenStack services did not start (logs under $dir)" >&2
  exit 1
fi
echo "realcloud: services up in $(( $(date +%s) - started ))s"
grep -E '^RA_VERSION_' "$dir/openstack.env" | sed 's/^/realcloud: /'

status=0
RA_REALCLOUD_ENV="$dir/openstack.env" timeout 900 "$contract" --gtest_color=no || status=1
timeout 300 /usr/bin/python3 "$here/agreement.py" --env "$dir/openstack.env" || status=1
if [ "$status" != 0 ]; then
  echo "realcloud: FAILED; the services' logs:" >&2
  for log in "$dir"/log/*.log; do
    [ -f "$log" ] || continue
    if grep -qE 'ERROR|Traceback' "$log"; then
      echo "--- $log (errors, last 40)" >&2
      grep -E 'ERROR|Traceback' -A3 "$log" | tail -40 >&2
    fi
  done
fi
exit $status
