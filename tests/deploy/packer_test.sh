#!/usr/bin/env bash
# Packer templates (packer/*.pkr.hcl) with Debian's packer 1.6.6:
#   1. `packer fmt -check` and `packer validate -syntax-only`;
#   2. `packer validate` with OS_* pointing at the cloud simulator's Keystone
#      (tests/sandbox/cloudsim), so the openstack builder really authenticates with an
#      application credential — and fails to with a wrong secret;
#   3. no secret in a template, and image names carry the version and the build time.
#
#   tests/deploy/packer_test.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_cmd packer python3 curl ansible-playbook

work=$(mktemp -d "${TMPDIR:-/tmp}/ra-packer-test.XXXXXX")
sim_pid=
cleanup() {
  local rc=$?
  if [ -n "$sim_pid" ]; then kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; fi
  [ $rc -eq 0 ] || { echo "--- cloudsim log"; tail -30 "$work/cloudsim.log" 2>/dev/null; }
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export CHECKPOINT_DISABLE=1  # no update check from packer
cd "$ra_src/packer"
templates=(replica.pkr.hcl service.pkr.hcl)
touch "$work/replica-autoscaler_0.1.0_amd64.deb"
vars=(-var version=0.1.0 -var source_image=debian-12-genericcloud-amd64 -var flavor=m1.small
      -var 'networks=["00000000-0000-0000-0000-000000000001"]')
vars_for() { [ "$1" = service.pkr.hcl ] && echo "-var package_deb=$work/replica-autoscaler_0.1.0_amd64.deb" || true; }

for t in "${templates[@]}"; do
  check "$t is formatted (packer fmt -check)" packer fmt -check "$t"
  check "$t passes packer validate -syntax-only" packer validate -syntax-only "$t"
  check "$t has no secret in it" bash -c "! grep -Eiq '(password|secret|token)[a-z_]*[[:space:]]*=' '$t'"
  name=$(echo 'local.image_name' | timeout 60 packer console "${vars[@]}" $(vars_for "$t") "$t")
  check "$t names the image <prefix>-<version>-<UTC time> ($name)" \
    bash -c "[[ '$name' =~ ^[a-z0-9-]+-0\\.1\\.0-20[0-9]{12}$ ]]"
done

# The cloud simulator's Keystone (application credential ac-demo / ac-demo-secret).
port=$(free_port)
mkdir -p "$work/cloud"
python3 "$ra_src/tests/sandbox/cloudsim/cloudsim.py" --port "$port" --root "$work/cloud" \
  --app-cred-id ra-packer --app-cred-secret packer-test-secret --capture "$work/requests.jsonl" \
  >"$work/cloudsim.log" 2>&1 &
sim_pid=$!
wait_http "http://127.0.0.1:$port/identity/v3" 30 || fail "the cloud simulator did not start"

export OS_AUTH_URL=http://127.0.0.1:$port/identity/v3 OS_AUTH_TYPE=v3applicationcredential
export OS_APPLICATION_CREDENTIAL_ID=ra-packer OS_REGION_NAME=RegionOne
unset OS_CLOUD OS_USERNAME OS_PASSWORD OS_PROJECT_NAME OS_PROJECT_ID OS_TOKEN 2>/dev/null || true
for t in "${templates[@]}"; do
  before=$(grep -c '"path": "/identity/v3/auth/tokens"' "$work/requests.jsonl" 2>/dev/null || true)
  out=$(OS_APPLICATION_CREDENTIAL_SECRET=packer-test-secret timeout 120 packer validate "${vars[@]}" $(vars_for "$t") "$t" 2>&1) ||
    { echo "$out"; fail "$t: packer validate against the simulator's Keystone"; }
  echo "ok: $t passes packer validate against the cloud simulator's Keystone"
  after=$(grep -c '"path": "/identity/v3/auth/tokens"' "$work/requests.jsonl" 2>/dev/null || true)
  check "$t: the openstack builder authenticated (POST /v3/auth/tokens seen by the simulator)" test "${after:-0}" -gt "${before:-0}"
  check "$t: with the application credential" bash -c "grep '\"path\": \"/identity/v3/auth/tokens\"' '$work/requests.jsonl' | tail -1 | grep -q application_credential"
  if OS_APPLICATION_CREDENTIAL_SECRET=wrong-secret timeout 120 packer validate "${vars[@]}" $(vars_for "$t") "$t" >"$work/bad.log" 2>&1; then
    fail "$t: packer validate passed with a wrong secret (authentication did not happen)"
  fi
  check "$t: a wrong secret fails validation with 'Authentication failed'" grep -q 'Authentication failed' "$work/bad.log"
done
echo "packer test passed"
