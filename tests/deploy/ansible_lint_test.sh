#!/usr/bin/env bash
# The Ansible content (ansible/) with Debian's ansible-core 2.14 and ansible-lint 6.13:
# `ansible-lint` with the production profile (ansible/.ansible-lint) and
# `ansible-playbook --syntax-check` of every playbook.
#
#   tests/deploy/ansible_lint_test.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_cmd ansible-lint ansible-playbook

work=$(mktemp -d "${TMPDIR:-/tmp}/ra-ansible-lint.XXXXXX")
trap 'rm -rf "$work"' EXIT
export ANSIBLE_CONFIG=$ra_src/ansible/ansible.cfg ANSIBLE_NOCOLOR=1 ANSIBLE_LOCAL_TEMP=$work/tmp
# ansible-lint keeps a cache in the project; point it (and HOME-based caches) at the work dir.
export HOME=$work XDG_CACHE_HOME=$work/cache

cd "$ra_src/ansible"
check "ansible-lint passes with the production profile" \
  bash -c "timeout 300 ansible-lint --nocolor --profile production -q </dev/null"
printf '[replica_autoscaler]\nsvc\n[haproxy]\nlb\n[vmagent]\nmon\n' >"$work/inventory.ini"
for play in playbooks/*.yml; do
  check "ansible-playbook --syntax-check $play" \
    bash -c "timeout 120 ansible-playbook -i '$work/inventory.ini' --syntax-check '$play' >/dev/null </dev/null"
done
# Every role is used by a playbook.
for role in roles/*/; do
  role=$(basename "$role")
  check "role $role is used by a playbook" grep -rqE "role: $role\$" playbooks
done
echo "ansible lint test passed"
