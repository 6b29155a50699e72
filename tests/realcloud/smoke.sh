#!/usr/bin/env bash
# Checks, with curl alone, that a cloud started by openstack.sh does what the autoscaler's tests
# rely on: an application credential authenticates; a server boots from an image with a Cinder
# volume attached (block_device_mapping_v2, "networks": "none"); the volume is in-use with an
# attachment to it; a forced snapshot of the in-use volume and a volume from that snapshot work;
# Cinder paginates at 3; Cinder and Nova refuse past a quota of 1 (the statuses are printed); a
# deleted server releases its volume.
#
#   tests/realcloud/smoke.sh DIR      (DIR as given to openstack.sh start)
#
# Ends with "N passed, N failed"; exits 1 if any check failed. Leaves the cloud as it found it
# (everything it creates it deletes; the second project's quotas are put back to defaults).
set -uo pipefail
dir=${1:?usage: smoke.sh DIR}
set -a
# shellcheck disable=SC1091
. "$dir/openstack.env"
set +a

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
bad() { failed=$((failed + 1)); echo "FAIL $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

# api METHOD URL [BODY]: sets $body and $code, as the identity chosen with `as`. Nova's URLs get
# microversion 2.67 (block_device_mapping_v2 with networks "none" needs at least 2.37).
body='' code=''
api() {
  local out hdr=()
  # A token at most 20 s old: the cloud may have been started with a short --token-expiration.
  if [ $((SECONDS - tok_at)) -gt 20 ]; then tok=$(token "$auth"); tok_at=$SECONDS; fi
  case $2 in "$RA_COMPUTE_URL"*) hdr=(-H 'OpenStack-API-Version: compute 2.67') ;; esac
  out=$(curl -sS -m 60 -w '\n%{http_code}' -X "$1" "$2" -H "X-Auth-Token: $tok" \
    -H 'Content-Type: application/json' -H 'Accept: application/json' "${hdr[@]}" \
    ${3:+-d "$3"})
  code=${out##*$'\n'}
  body=${out%$'\n'*}
}

token() { # token BODY -> X-Subject-Token
  curl -sS -m 30 -D - -o /dev/null -X POST "$OS_AUTH_URL/auth/tokens" \
    -H 'Content-Type: application/json' -d "$1" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-subject-token"{print $2}'
}
password_auth() { # user password project
  printf '{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"%s","domain":{"name":"Default"},"password":"%s"}}},"scope":{"project":{"name":"%s","domain":{"name":"Default"}}}}}' "$1" "$2" "$3"
}

# wait_for WHAT SECONDS URL JQ-FILTER EXPECTED
wait_for() {
  local what=$1 secs=$2 url=$3 filter=$4 want=$5 got=""
  for _ in $(seq $((secs * 2))); do
    api GET "$url"; got=$(jq -r "$filter" <<<"$body")
    [ "$got" = "$want" ] && return 0
    [ "$got" = error ] || [ "$got" = ERROR ] && break
    sleep 0.5
  done
  echo "     $what: '$got' after ${secs}s, wanted '$want'"
  return 1
}

# as ra|admin|other: whose token api uses from now on
as() {
  case $1 in
    ra) auth="{\"auth\":{\"identity\":{\"methods\":[\"application_credential\"],\"application_credential\":{\"id\":\"$RA_APP_CRED_ID\",\"secret\":\"$RA_APP_CRED_SECRET\"}}}}" ;;
    admin) auth=$(password_auth "$RA_ADMIN_USERNAME" "$RA_ADMIN_PASSWORD" "$RA_ADMIN_PROJECT") ;;
    other) auth=$(password_auth "$RA_OTHER_USERNAME" "$RA_OTHER_PASSWORD" "$RA_OTHER_PROJECT") ;;
  esac
  tok=$(token "$auth"); tok_at=$SECONDS
}

# --- an application credential authenticates -----------------------------------------------
as ra
check "application credential gives a token" test -n "$tok"
nova=$RA_COMPUTE_URL cinder=$RA_VOLUME_URL

# --- boot from image with a data volume attached --------------------------------------------
api POST "$cinder/volumes" "{\"volume\":{\"size\":1,\"name\":\"smoke-data\",\"volume_type\":\"$RA_VOLUME_TYPE\",\"availability_zone\":\"$RA_AVAILABILITY_ZONE\"}}"; vol=$(jq -r .volume.id <<<"$body")
check "volume created (HTTP $code)" test "$code" = 202
check "volume available" wait_for volume 60 "$cinder/volumes/$vol" .volume.status available
user_data=$(printf 'role=replica\n' | base64 -w0)
api POST "$nova/servers" "{\"server\":{\"name\":\"smoke-replica\",\"flavorRef\":\"$RA_FLAVOR_ID\",\"imageRef\":\"$RA_IMAGE_ID\",\"networks\":\"none\",\"availability_zone\":\"$RA_AVAILABILITY_ZONE\",\"user_data\":\"$user_data\",\"block_device_mapping_v2\":[{\"source_type\":\"image\",\"destination_type\":\"local\",\"boot_index\":0,\"uuid\":\"$RA_IMAGE_ID\",\"delete_on_termination\":true},{\"source_type\":\"volume\",\"destination_type\":\"volume\",\"boot_index\":-1,\"uuid\":\"$vol\"}]}}"; srv=$(jq -r .server.id <<<"$body")
check "server accepted (HTTP $code)" test "$code" = 202
check "server ACTIVE" wait_for server 90 "$nova/servers/$srv" .server.status ACTIVE
check "volume in-use" wait_for volume 30 "$cinder/volumes/$vol" .volume.status in-use
api GET "$cinder/volumes/$vol"
check "volume attached to the server" test "$(jq -r '.volume.attachments[0].server_id' <<<"$body")" = "$srv"
api GET "$nova/servers/$srv/os-volume_attachments"
check "server lists the attachment" test "$(jq -r '.volumeAttachments[0].volumeId' <<<"$body")" = "$vol"

# --- snapshots of the in-use volume --------------------------------------------------------
api POST "$cinder/snapshots" "{\"snapshot\":{\"volume_id\":\"$vol\",\"name\":\"smoke-noforce\"}}"
check "snapshot of an in-use volume without force refused (HTTP $code)" test "$code" = 400
api POST "$cinder/snapshots" "{\"snapshot\":{\"volume_id\":\"$vol\",\"name\":\"smoke-snap\",\"force\":true}}"; snap=$(jq -r .snapshot.id <<<"$body")
check "forced snapshot accepted (HTTP $code)" test "$code" = 202
check "snapshot available" wait_for snapshot 60 "$cinder/snapshots/$snap" .snapshot.status available
api POST "$cinder/volumes" "{\"volume\":{\"size\":1,\"name\":\"smoke-from-snap\",\"snapshot_id\":\"$snap\"}}"; vol2=$(jq -r .volume.id <<<"$body")
check "volume from snapshot accepted (HTTP $code)" test "$code" = 202
check "volume from snapshot available" wait_for volume 60 "$cinder/volumes/$vol2" .volume.status available

# --- pagination ------------------------------------------------------------------------------
extra=()
for i in 1 2; do api POST "$cinder/volumes" "{\"volume\":{\"size\":1,\"name\":\"smoke-page-$i\"}}"; extra+=("$(jq -r .volume.id <<<"$body")"); done
api GET "$cinder/volumes?limit=50"; page=$body
check "cinder caps a page at 3 (osapi_max_limit)" test "$(jq '.volumes | length' <<<"$page")" = 3
check "cinder gives a next link" test "$(jq -r '.volumes_links[0].rel' <<<"$page")" = next

# --- quotas of 1 -----------------------------------------------------------------------------
as admin
api PUT "$nova/os-quota-sets/$RA_OTHER_PROJECT_ID" '{"quota_set":{"instances":1}}'
check "admin sets nova quota (HTTP $code)" test "$code" = 200
api PUT "${cinder%/*}/$RA_ADMIN_PROJECT_ID/os-quota-sets/$RA_OTHER_PROJECT_ID" '{"quota_set":{"volumes":1}}'
check "admin sets cinder quota (HTTP $code)" test "$code" = 200
as other
ocinder=${cinder%/*}/$RA_OTHER_PROJECT_ID
api POST "$ocinder/volumes" '{"volume":{"size":1,"name":"smoke-q1"}}'; q1=$(jq -r .volume.id <<<"$body")
check "first volume within quota (HTTP $code)" test "$code" = 202
api POST "$ocinder/volumes" '{"volume":{"size":1,"name":"smoke-q2"}}'
echo "     cinder over quota: HTTP $code $body"
check "cinder refuses past quota with 413" test "$code" = 413
api POST "$nova/servers" "{\"server\":{\"name\":\"smoke-q1\",\"flavorRef\":\"$RA_FLAVOR_ID\",\"imageRef\":\"$RA_IMAGE_ID\",\"networks\":\"none\"}}"; s1=$(jq -r .server.id <<<"$body")
check "first server within quota (HTTP $code)" test "$code" = 202
wait_for server 90 "$nova/servers/$s1" .server.status ACTIVE
api POST "$nova/servers" "{\"server\":{\"name\":\"smoke-q2\",\"flavorRef\":\"$RA_FLAVOR_ID\",\"imageRef\":\"$RA_IMAGE_ID\",\"networks\":\"none\"}}"
echo "     nova over quota: HTTP $code $body"
check "nova refuses past quota with 403" test "$code" = 403

# --- clean up: servers release their volumes -------------------------------------------------
api DELETE "$nova/servers/$s1"
wait_for volume 60 "$ocinder/volumes/$q1" .volume.status available || true
api DELETE "$ocinder/volumes/$q1"
as admin
api DELETE "$nova/os-quota-sets/$RA_OTHER_PROJECT_ID"
api DELETE "${cinder%/*}/$RA_ADMIN_PROJECT_ID/os-quota-sets/$RA_OTHER_PROJECT_ID"
as ra
api DELETE "$nova/servers/$srv"
check "server delete accepted (HTTP $code)" test "$code" = 204
gone() { for _ in $(seq 120); do api GET "$1"; [ "$code" = 404 ] && return 0; sleep 0.5; done; return 1; }
check "server gone" gone "$nova/servers/$srv"
check "volume available again after the server's deletion" wait_for volume 60 "$cinder/volumes/$vol" .volume.status available
api DELETE "$cinder/volumes/$vol2"
for v in "${extra[@]}"; do
  wait_for volume 60 "$cinder/volumes/$v" .volume.status available || true
  api DELETE "$cinder/volumes/$v"
done
gone "$cinder/volumes/$vol2" || true
api DELETE "$cinder/snapshots/$snap"
check "snapshot deleted" gone "$cinder/snapshots/$snap"
api DELETE "$cinder/volumes/$vol"
check "volume deleted" gone "$cinder/volumes/$vol"

echo "smoke: $passed passed, $failed failed"
[ "$failed" = 0 ]
