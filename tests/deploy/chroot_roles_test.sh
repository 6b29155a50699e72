#!/usr/bin/env bash
# Applies the pg_replica and replica_autoscaler roles for real to a fresh Debian 12 root
# (debootstrap + Ansible's community.general.chroot connection), then checks what an operator
# would: the package installed with its dependencies, `replica-autoscaler --version` runs, the
# service user, files and their modes, units enabled and valid, the configuration validates as the
# service user, a second run changes nothing, and the package purges cleanly.
#
#   tests/deploy/chroot_roles_test.sh BUILD_DIR
#
# Root only (chroot, mounts). The bootstrapped root is cached as a tarball in
# BUILD_DIR/deploy-cache/ (or $RA_DEPLOY_CACHE) and downloaded packages in its apt/ and
# debootstrap/ folders, so a re-run only unpacks (about 1.5 minutes in all); the first run needs
# Debian's archive (3 to 7 minutes, mostly downloads).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_root
need_cmd debootstrap ansible-playbook cpack chroot zstd findmnt

build=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
# RA_DEPLOY_CACHE: keep the cache elsewhere (e.g. across fresh clones on one machine).
cache=${RA_DEPLOY_CACHE:-$build/deploy-cache}
mirror=${RA_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# What a Debian cloud image has before any role runs: Python for Ansible, systemd for units.
base_packages=python3,systemd,systemd-sysv,ca-certificates
tarball=$cache/bookworm-$(echo "$base_packages" | md5sum | cut -c1-8).tar.zst
mkdir -p "$cache/apt" "$build/deploy-work"
work=$(mktemp -d "$build/deploy-work/chroot.XXXXXX")
root=$work/root

pg_dirs=()   # data directories of PostgreSQL servers started inside the root
exporter_pid=
cleanup() {
  local rc=$?
  [ -z "$exporter_pid" ] || kill "$exporter_pid" 2>/dev/null || true
  for d in "${pg_dirs[@]}"; do
    chroot "$root" setpriv --reuid=postgres --regid=postgres --init-groups \
      /usr/lib/postgresql/15/bin/pg_ctl -D "$d" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
  done
  # Unmount everything below the root, deepest first, before deleting anything.
  if [ -d "$root" ]; then
    findmnt -rn -o TARGET | grep -F "$root" | sort -r | while read -r m; do
      umount -l "$m" 2>/dev/null || true
    done
  fi
  if findmnt -rn -o TARGET | grep -qF "$root"; then
    echo "cleanup: mounts left under $root; not deleting it" >&2
  else
    rm -rf "$work"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t0=$(date +%s)
# ---- a fresh root --------------------------------------------------------------------------
(
  flock -w 600 9 || fail "another test holds $cache/.lock"
  if [ ! -s "$tarball" ]; then
    note "debootstrap bookworm (first run; cached as $tarball)"
    stage=$(mktemp -d "$build/deploy-work/debootstrap.XXXXXX")
    mkdir -p "$cache/debootstrap"
    timeout 600 debootstrap --variant=minbase --include="$base_packages" --cache-dir="$cache/debootstrap" \
      bookworm "$stage" "$mirror" \
      >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; rm -rf "$stage"; fail "debootstrap failed"; }
    rm -rf "$stage"/var/cache/apt/archives/*.deb
    tar --zstd -C "$stage" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$stage"
  fi
) 9>"$cache/.lock"
mkdir -p "$root"
tar --zstd -C "$root" -xf "$tarball"
# mktemp made the directory 0700; as "/" inside the root it must be traversable by every user.
chmod 0755 "$root"
note "fresh root unpacked in $(( $(date +%s) - t0 ))s"

mount -t proc proc "$root/proc"
mount --bind "$cache/apt" "$root/var/cache/apt/archives"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# Package scripts must not start services in a chroot (as on an image build).
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
[ ! -e "$root/usr/bin/replica-autoscaler" ] || fail "the fresh root already has replica-autoscaler"

deb=$(build_deb "$build" "$work/pkg")
note "package: $(basename "$deb")"
check "package depends on adduser and on shared libraries (dpkg-shlibdeps)" \
  bash -c "dpkg-deb -f '$deb' Depends | grep -q adduser && dpkg-deb -f '$deb' Depends | grep -q libc6"

# ---- the roles -------------------------------------------------------------------------------
cat >"$work/inventory.ini" <<INV
[replica_image]
root ansible_connection=community.general.chroot ansible_host=$root
INV
play=$ra_src/tests/deploy/chroot-play.yml
export ANSIBLE_CONFIG=$ra_src/ansible/ansible.cfg ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0
export ANSIBLE_LOCAL_TEMP=$work/ansible-local ANSIBLE_REMOTE_TEMP=/tmp/.ansible
run_play() {  # run_play LOG: applies both roles with the test's variables
  timeout 900 ansible-playbook -i "$work/inventory.ini" "$play" \
    -e "replica_autoscaler_package_deb=$deb" \
    -e '{"replica_autoscaler_start": false, "pg_replica_start": false}' "${extra_vars[@]}" \
    </dev/null >"$1" 2>&1
}
extra_vars=()
# For working on the roles: RA_EXTRA_VARS='{"json": "vars"}' is passed to ansible-playbook.
if [ -n "${RA_EXTRA_VARS:-}" ]; then extra_vars+=(-e "$RA_EXTRA_VARS"); fi
if [ -n "${RA_FIRST_BOOT_SCRIPT:-}" ]; then extra_vars+=(-e "pg_replica_first_boot_script=$RA_FIRST_BOOT_SCRIPT"); fi

t1=$(date +%s)
if ! run_play "$work/play1.log"; then tail -60 "$work/play1.log" >&2; fail "ansible-playbook (first run)"; fi
note "roles applied in $(( $(date +%s) - t1 ))s"
grep -E '^root .*ok=' "$work/play1.log"

# ---- what an operator checks ---------------------------------------------------------------
in_root() { chroot "$root" "$@"; }
mode_of() { chroot "$root" stat -c '%a %U:%G' "$1"; }  # names as the root sees them

check "replica-autoscaler --version runs in the root" \
  bash -c "chroot '$root' /usr/bin/replica-autoscaler --version | grep -q '^replica-autoscaler [0-9]'"
in_root /usr/bin/replica-autoscaler --version
check "package is installed" bash -c "chroot '$root' dpkg-query -W -f='\${Status}' replica-autoscaler | grep -q 'install ok installed'"
check "service user exists, no login shell" bash -c "chroot '$root' getent passwd replica-autoscaler | grep -q ':/usr/sbin/nologin$'"
check "state directory 0750 for the user" test "$(mode_of /var/lib/replica-autoscaler)" = "750 replica-autoscaler:replica-autoscaler"
check "secrets directory 0700 for the user" test "$(mode_of /etc/replica-autoscaler/secrets)" = "700 replica-autoscaler:replica-autoscaler"
for s in $(/usr/bin/python3 -c 'import sys,yaml; print(" ".join(yaml.safe_load(open(sys.argv[1]))["replica_autoscaler_secrets"]))' "$ra_src/tests/deploy/vars/service.yml"); do
  check "secret file $s is 0600 for the user" test "$(mode_of "/etc/replica-autoscaler/secrets/$s")" = "600 replica-autoscaler:replica-autoscaler"
done
check "configuration 0640 root:replica-autoscaler" test "$(mode_of /etc/replica-autoscaler/config.yaml)" = "640 root:replica-autoscaler"
check "example configuration shipped" test -s "$root/etc/replica-autoscaler/config.yaml.example"
check "documentation shipped" test -s "$root/usr/share/doc/replica-autoscaler/deployment.md"
check "no secret value in the configuration" bash -c "! grep -qF 'deploy-test-secret' '$root/etc/replica-autoscaler/config.yaml'"
check "configuration validates as the service user (reads its secrets)" \
  chroot "$root" setpriv --reuid=replica-autoscaler --regid=replica-autoscaler --init-groups \
  /usr/bin/replica-autoscaler validate /etc/replica-autoscaler/config.yaml
check "replica-autoscaler.service enabled" bash -c "chroot '$root' systemctl is-enabled replica-autoscaler.service | grep -qx enabled"
check "replica-autoscaler.service passes systemd-analyze verify" \
  chroot "$root" systemd-analyze verify --man=no /lib/systemd/system/replica-autoscaler.service
exposure=$(systemd-analyze security --offline=true --root="$root" replica-autoscaler.service 2>/dev/null |
  sed -n 's/.*Overall exposure level for replica-autoscaler.service: \([0-9.]*\).*/\1/p')
check "unit hardening: exposure $exposure <= 2.0 (systemd-analyze security)" \
  /usr/bin/python3 -c "import sys; sys.exit(0 if float('$exposure') <= 2.0 else 1)"
for directive in 'User=replica-autoscaler' 'NoNewPrivileges=yes' 'ProtectSystem=strict' \
  'ReadWritePaths=/var/lib/replica-autoscaler' 'PrivateTmp=yes' \
  'ExecStart=/usr/bin/replica-autoscaler serve --config /etc/replica-autoscaler/config.yaml'; do
  check "unit has $directive" grep -qx "$directive" "$root/lib/systemd/system/replica-autoscaler.service"
done

# pg_replica
pgv=15
check "PostgreSQL $pgv installed" test -x "$root/usr/lib/postgresql/$pgv/bin/postgres"
check "node exporter installed" test -x "$root/usr/bin/prometheus-node-exporter"
check "postgres exporter installed" test -x "$root/usr/bin/prometheus-postgres-exporter"
check "first-boot script installed, executable" test -x "$root/usr/local/sbin/replica-first-boot"
fb_src=${RA_FIRST_BOOT_SCRIPT:-$ra_src/ansible/roles/pg_replica/files/$(/usr/bin/python3 -c \
  'import sys,yaml; print(yaml.safe_load(open(sys.argv[1]))["pg_replica_first_boot_script"])' \
  "$ra_src/ansible/roles/pg_replica/defaults/main.yml")}
check "first-boot script is the role's file ($(basename "$fb_src"))" cmp -s "$fb_src" "$root/usr/local/sbin/replica-first-boot"
for unit in replica-first-boot.service postgresql@$pgv-main.service prometheus-node-exporter.service \
  prometheus-postgres-exporter.service; do
  check "$unit enabled" bash -c "chroot '$root' systemctl is-enabled '$unit' | grep -qx enabled"
done
check "replica-first-boot.service passes systemd-analyze verify" \
  chroot "$root" systemd-analyze verify --man=no /etc/systemd/system/replica-first-boot.service
check "PostgreSQL requires and follows the first boot" \
  bash -c "grep -q 'replica-first-boot.service' '$root/etc/systemd/system/postgresql@$pgv-main.service.d/10-first-boot.conf' && \
           grep -qx 'Requires=replica-first-boot.service' '$root/etc/systemd/system/postgresql@$pgv-main.service.d/10-first-boot.conf' && \
           grep -qx 'Before=postgresql@$pgv-main.service postgresql.service' '$root/etc/systemd/system/replica-first-boot.service'"
check "image keeps no template data directory" bash -c "[ -d '$root/var/lib/postgresql/$pgv/main' ] && [ -z \"\$(ls -A '$root/var/lib/postgresql/$pgv/main')\" ]"
check "standby settings in conf.d" grep -qx "hot_standby = 'on'" "$root/etc/postgresql/$pgv/main/conf.d/50-replica.conf"
check "postgres exporter mapped to its database role" grep -q '^exporter *prometheus *postgres_exporter' "$root/etc/postgresql/$pgv/main/pg_ident.conf"
# PostgreSQL itself parses the configuration the role wrote (a scratch data directory stands in
# for the volume; -C prints a setting after reading every file, conf.d included).
scratch=/tmp/pgcheck
in_root install -d -o postgres -g postgres -m 0700 "$scratch"
in_root setpriv --reuid=postgres --regid=postgres --init-groups \
  /usr/lib/postgresql/$pgv/bin/initdb -D "$scratch" -A trust >/dev/null
check "PostgreSQL reads the role's settings (hot_standby_feedback=on)" bash -c \
  "chroot '$root' setpriv --reuid=postgres --regid=postgres --init-groups /usr/lib/postgresql/$pgv/bin/postgres \
     -D '$scratch' -c config_file=/etc/postgresql/$pgv/main/postgresql.conf -c data_directory='$scratch' \
     -C hot_standby_feedback | grep -qx on"

# haproxy and vmagent: their own tools accept what the roles wrote.
check "haproxy -c accepts the rendered haproxy.cfg" chroot "$root" /usr/sbin/haproxy -c -q -f /etc/haproxy/haproxy.cfg
check "replica backend: leastconn, pgsql-check, server-state-file" bash -c "grep -q '^    balance leastconn' '$root/etc/haproxy/haproxy.cfg' && \
  grep -q '^    option pgsql-check user haproxy_check' '$root/etc/haproxy/haproxy.cfg' && \
  grep -q '^    server-state-file /var/lib/haproxy/server-state' '$root/etc/haproxy/haproxy.cfg'"
check "Data Plane API password stored hashed only" bash -c "grep -q 'user replica-autoscaler password \\\$6\\\$' '$root/etc/haproxy/haproxy.cfg' && \
  ! grep -rqF 'deploy-test-secret-dataplane' '$root/etc/haproxy'"
check "haproxy.service passes systemd-analyze verify --man=no (with the state drop-in)" \
  chroot "$root" systemd-analyze verify --man=no /lib/systemd/system/haproxy.service
check "vmagent accepts the rendered scrape configuration (dry run, secret from its environment)" \
  chroot "$root" sh -c 'set -a; . /etc/vmagent/credentials.env; exec /usr/bin/vmagent -promscrape.config=/etc/vmagent/scrape.yml -promscrape.config.dryRun -loggerLevel=ERROR'
check "vmagent's secret only in credentials.env (0600)" bash -c "[ \"\$(stat -c %a '$root/etc/vmagent/credentials.env')\" = 600 ] && \
  ! grep -qF 'deploy-test-secret-vmagent' '$root/etc/vmagent/scrape.yml'"
check "vmagent.service enabled and valid" bash -c "chroot '$root' systemctl is-enabled vmagent.service | grep -qx enabled && \
  chroot '$root' systemd-analyze verify --man=no /etc/systemd/system/vmagent.service"

# ---- idempotence -----------------------------------------------------------------------------
t2=$(date +%s)
if ! run_play "$work/play2.log"; then tail -40 "$work/play2.log" >&2; fail "ansible-playbook (second run)"; fi
note "second run in $(( $(date +%s) - t2 ))s"
check "second run changes nothing" grep -Eq '^root .*changed=0 .*failed=0' "$work/play2.log"

# ---- a first boot, as on a replica built from this image --------------------------------------
# A primary inside the root stands in for the cluster's primary; pg_basebackup fills the data
# directory as the cloned volume would; the installed first-boot script runs with a config drive
# as replica-first-boot.service would; then PostgreSQL starts with the role's configuration.
t3=$(date +%s)
p1=$(free_port); p2=$(free_port); p3=$(free_port)
as_pg() { chroot "$root" setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
pgbin=/usr/lib/postgresql/$pgv/bin
in_root install -d -o postgres -g postgres -m 2775 /run/postgresql
as_pg $pgbin/initdb -D /tmp/primary -A trust -U postgres >/dev/null
pg_dirs+=(/tmp/primary)
as_pg $pgbin/pg_ctl -D /tmp/primary -l /tmp/primary.log -w -t 60 \
  -o "-c port=$p1 -c listen_addresses=127.0.0.1 -c unix_socket_directories=/tmp" start >/dev/null ||
  { cat "$root/tmp/primary.log" >&2; fail "the stand-in primary did not start"; }
as_pg psql -h /tmp -p "$p1" -U postgres -qAt -c "CREATE ROLE replicator REPLICATION LOGIN" \
  -c "CREATE ROLE postgres_exporter LOGIN IN ROLE pg_monitor" >/dev/null
as_pg $pgbin/pg_basebackup -h 127.0.0.1 -p "$p1" -U replicator -D /var/lib/postgresql/$pgv/main -X stream -c fast
in_root install -d /tmp/drive/openstack/latest
printf '{"uuid": "7d2f9c8e-0000-4000-8000-000000000001", "name": "main-replica-t1"}\n' \
  >"$root/tmp/drive/openstack/latest/meta_data.json"
printf '{"primary_host": "127.0.0.1", "primary_port": %s, "replication_user": "replicator"}\n' "$p1" \
  >"$root/tmp/drive/openstack/latest/user_data"
check "the installed first-boot script prepares the volume (config drive, primary from user_data)" \
  chroot "$root" env RA_CONFIG_DRIVE=/tmp/drive RA_PORT="$p2" RA_LISTEN=127.0.0.1 RA_WAIT_SECONDS=10 \
  /usr/local/sbin/replica-first-boot
pg_dirs+=(/var/lib/postgresql/$pgv/main)
check "PostgreSQL starts with the role's configuration (pg_ctlcluster $pgv main)" \
  chroot "$root" pg_ctlcluster $pgv main start
standby_sql() { as_pg psql -h /run/postgresql -p "$p2" -U postgres -d postgres -qAt -c "$1"; }
check "it is a hot standby" test "$(standby_sql 'SELECT pg_is_in_recovery()')" = t
check "hot_standby_feedback from conf.d/50-replica.conf" test "$(standby_sql 'SHOW hot_standby_feedback')" = on
streaming=
for _ in $(seq 1 60); do
  streaming=$(as_pg psql -h /tmp -p "$p1" -U postgres -qAt -c \
    "SELECT state FROM pg_stat_replication WHERE application_name = 'main-replica-t1'")
  [ "$streaming" = streaming ] && break
  sleep 0.5
done
check "the primary streams to it under its own application_name (main-replica-t1)" test "$streaming" = streaming
check "the exporter's OS user logs in as postgres_exporter by peer map (pg_ident.conf)" \
  chroot "$root" setpriv --reuid=prometheus --regid=prometheus --init-groups \
  psql "host=/run/postgresql port=$p2 user=postgres_exporter dbname=postgres" -qAt -c 'SELECT 1'
# The postgres exporter as its unit runs it: /etc/default's DATA_SOURCE_NAME, as user prometheus.
chroot "$root" setpriv --reuid=prometheus --regid=prometheus --init-groups sh -c \
  ". /etc/default/prometheus-postgres-exporter; export DATA_SOURCE_NAME=\"\$DATA_SOURCE_NAME port=$p2\"; \
   exec /usr/bin/prometheus-postgres-exporter --web.listen-address=127.0.0.1:$p3" >"$work/exporter.log" 2>&1 &
exporter_pid=$!
up=
for _ in $(seq 1 40); do
  up=$(curl -fsS --max-time 2 "http://127.0.0.1:$p3/metrics" 2>/dev/null | grep -E '^pg_up ' || true)
  [ -n "$up" ] && break
  sleep 0.5
done
check "the postgres exporter, configured by the role, reaches the standby (pg_up 1)" test "$up" = "pg_up 1"
kill "$exporter_pid" 2>/dev/null || true; wait "$exporter_pid" 2>/dev/null || true; exporter_pid=
# Re-applying the roles to a running replica must leave its data alone.
if ! run_play "$work/play3.log"; then tail -40 "$work/play3.log" >&2; fail "ansible-playbook (on the running replica)"; fi
check "re-applying the roles keeps a running replica's data (PG_VERSION) and standby" bash -c \
  "[ -f '$root/var/lib/postgresql/$pgv/main/PG_VERSION' ] && [ \"\$(chroot '$root' setpriv --reuid=postgres --regid=postgres --init-groups psql -h /run/postgresql -p $p2 -qAt -c 'SELECT pg_is_in_recovery()')\" = t ]"
chroot "$root" pg_ctlcluster $pgv main stop -m fast
as_pg $pgbin/pg_ctl -D /tmp/primary -m fast -w -t 60 stop >/dev/null
pg_dirs=()
note "first boot simulated in $(( $(date +%s) - t3 ))s"

# ---- removal ---------------------------------------------------------------------------------
check "package purges" chroot "$root" env DEBIAN_FRONTEND=noninteractive dpkg --purge replica-autoscaler
check "purge removed binary, unit link, state" bash -c "[ ! -e '$root/usr/bin/replica-autoscaler' ] && \
  [ ! -e '$root/etc/systemd/system/multi-user.target.wants/replica-autoscaler.service' ] && \
  [ ! -e '$root/var/lib/replica-autoscaler' ]"

note "chroot roles test passed in $(( $(date +%s) - t0 ))s"
