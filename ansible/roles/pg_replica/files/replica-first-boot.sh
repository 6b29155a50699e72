#!/bin/bash
# First boot of a PostgreSQL read replica built by replica-autoscaler.
#
# The server's data volume is a clone of a snapshot of another replica (the donor), so it holds
# the donor's postmaster.pid, application_name and primary_conninfo. Before PostgreSQL starts,
# this script makes it this replica's own:
#   1. reads the instance's facts as a VM does: the config drive (label config-2) with
#      openstack/latest/meta_data.json (uuid, name), user_data (JSON written by the service:
#      primary_host, primary_port, replication_user, ...) and network_data.json (its address)
#   2. waits for the data directory (PG_VERSION) and drops the copied postmaster.pid
#   3. writes to postgresql.auto.conf: a unique application_name inside primary_conninfo
#      pointing at the primary it is told, no inherited replication slot, and optionally the
#      listen address, port and socket directory
#   4. makes sure standby.signal exists, and starts PostgreSQL (pg_ctl) unless systemd does it
#
# Installed by the Ansible role pg_replica as /usr/local/sbin/replica-first-boot and run by
# replica-first-boot.service with /etc/default/replica-first-boot; the cloud simulator runs
# the same file for every simulated server. Settings (environment, or the option in brackets):
#   RA_CONFIG_DRIVE   mounted config drive [--config-drive]; default: mount LABEL=config-2
#   RA_DATA_DIR       data directory [--data-dir]; default /var/lib/postgresql/15/main
#   RA_PG_USER        user PostgreSQL runs as [--pg-user]; default postgres
#   RA_PG_BIN         [--pg-bin]; default /usr/lib/postgresql/15/bin
#   RA_LISTEN         "" (keep the image's), "network" (network_data.json's address) or an
#                     address [--listen]
#   RA_PORT           [--port]; default: keep
#   RA_SOCKET_DIR     [--socket-dir]; default: keep
#   RA_START          "none" (systemd starts PostgreSQL after this unit) or "pg_ctl" [--start]
#   RA_LOG            PostgreSQL's log with --start pg_ctl [--log]
#   RA_WAIT_SECONDS   how long to wait for the data directory [--wait]; default 300
# Secrets never come through user_data: the replication password, if any, is in the
# postgres user's ~/.pgpass, placed by the image.
set -euo pipefail

CONFIG_DRIVE=${RA_CONFIG_DRIVE:-}
DATA_DIR=${RA_DATA_DIR:-/var/lib/postgresql/15/main}
PG_USER=${RA_PG_USER:-postgres}
PG_BIN=${RA_PG_BIN:-/usr/lib/postgresql/15/bin}
LISTEN=${RA_LISTEN:-}
PORT=${RA_PORT:-}
SOCKET_DIR=${RA_SOCKET_DIR:-}
START=${RA_START:-none}
LOG=${RA_LOG:-}
WAIT_SECONDS=${RA_WAIT_SECONDS:-300}

say() { echo "replica-first-boot: $*"; }
die() { echo "replica-first-boot: error: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --config-drive) CONFIG_DRIVE=$2; shift 2 ;;
    --data-dir) DATA_DIR=$2; shift 2 ;;
    --pg-user) PG_USER=$2; shift 2 ;;
    --pg-bin) PG_BIN=$2; shift 2 ;;
    --listen) LISTEN=$2; shift 2 ;;
    --port) PORT=$2; shift 2 ;;
    --socket-dir) SOCKET_DIR=$2; shift 2 ;;
    --start) START=$2; shift 2 ;;
    --log) LOG=$2; shift 2 ;;
    --wait) WAIT_SECONDS=$2; shift 2 ;;
    -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
done
case "$START" in none|pg_ctl) ;; *) die "--start must be none or pg_ctl, not '$START'" ;; esac
[ -z "$PORT" ] || [[ "$PORT" =~ ^[0-9]+$ ]] || die "--port must be a number, not '$PORT'"

# 1. The config drive.
if [ -z "$CONFIG_DRIVE" ]; then
  device=$(blkid -t LABEL=config-2 -o device 2>/dev/null | head -n1 || true)
  [ -n "$device" ] || die "no config drive (no device labelled config-2) and RA_CONFIG_DRIVE unset"
  CONFIG_DRIVE=/run/replica-first-boot/config-drive
  mkdir -p "$CONFIG_DRIVE"
  mountpoint -q "$CONFIG_DRIVE" || mount -o ro "$device" "$CONFIG_DRIVE"
fi
latest="$CONFIG_DRIVE/openstack/latest"
[ -r "$latest/meta_data.json" ] || die "$latest/meta_data.json is missing"
[ -r "$latest/user_data" ] || die "$latest/user_data is missing: the service passes the primary there"

# JSON is read with Python, which every cloud image has for cloud-init.
facts=$(python3 - "$latest" <<'PY'
import json, re, shlex, sys
latest = sys.argv[1]
def fail(msg):
    print(f"replica-first-boot: error: {msg}", file=sys.stderr)
    sys.exit(1)
meta = json.load(open(f"{latest}/meta_data.json"))
try:
    user = json.loads(open(f"{latest}/user_data", "rb").read().decode())
except ValueError as e:
    fail(f"user_data is not JSON: {e}")
if not isinstance(user, dict):
    fail("user_data must be a JSON object")
if isinstance(user.get("replica"), dict):  # {"replica": {...}} as well as the flat form
    user = user["replica"]
try:
    net = json.load(open(f"{latest}/network_data.json"))
except (OSError, ValueError):
    net = {}
address = ""
for n in net.get("networks", []):
    if n.get("type") in ("ipv4", "ipv4_dhcp") and n.get("ip_address"):
        address = n["ip_address"]
        break
host = user.get("primary_host")
if not host or not re.fullmatch(r"[A-Za-z0-9.:_-]+", str(host)):
    fail("user_data.primary_host is missing or not a host name/address")
port = user.get("primary_port", 5432)
if not str(port).isdigit():
    fail("user_data.primary_port must be a number")
name = user.get("application_name") or meta.get("name") or meta.get("uuid")
if not name:
    fail("neither user_data.application_name nor meta_data name/uuid is set")
# application_name: printable ASCII, at most 63 bytes; keep it readable and unique (server name).
app = re.sub(r"[^A-Za-z0-9_.-]", "_", str(name))[:63]
repl_user = user.get("replication_user", "replicator")
if not re.fullmatch(r"[A-Za-z0-9_.-]+", str(repl_user)):
    fail("user_data.replication_user has unexpected characters")
sslmode = user.get("sslmode", "")
if sslmode and sslmode not in ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"):
    fail("user_data.sslmode is not a libpq sslmode")
for k, v in (("UUID", meta.get("uuid", "")), ("APP", app), ("PRIMARY_HOST", host),
             ("PRIMARY_PORT", port), ("REPL_USER", repl_user), ("SSLMODE", sslmode),
             ("ADDRESS", address), ("SLOT", user.get("primary_slot_name", ""))):
    print(f"F_{k}={shlex.quote(str(v))}")
PY
) || die "cannot read the instance's facts"
eval "$facts"
say "server $F_UUID as '$F_APP', primary $F_PRIMARY_HOST:$F_PRIMARY_PORT"

# 2. The data volume.
waited=0
until [ -f "$DATA_DIR/PG_VERSION" ]; do
  [ "$waited" -lt "$WAIT_SECONDS" ] || die "$DATA_DIR/PG_VERSION did not appear in ${WAIT_SECONDS}s"
  sleep 1
  waited=$((waited + 1))
done
if [ -e "$DATA_DIR/postmaster.pid" ]; then
  # Copied from the donor with the snapshot: its PID means nothing here, and PostgreSQL would
  # refuse to start if that number belongs to a live process on this machine.
  say "dropping the donor's postmaster.pid"
  rm -f "$DATA_DIR/postmaster.pid" "$DATA_DIR/postmaster.opts"
fi

# 3. postgresql.auto.conf (ALTER SYSTEM's file; it overrides postgresql.conf and conf.d).
auto="$DATA_DIR/postgresql.auto.conf"
touch "$auto"
drop="primary_conninfo|primary_slot_name"
[ -z "$LISTEN" ] || drop="$drop|listen_addresses"
[ -z "$PORT" ] || drop="$drop|port"
[ -z "$SOCKET_DIR" ] || drop="$drop|unix_socket_directories"
grep -Ev "^[[:space:]]*($drop)[[:space:]]*=" "$auto" > "$auto.new" || true
conninfo="host=$F_PRIMARY_HOST port=$F_PRIMARY_PORT user=$F_REPL_USER application_name=$F_APP"
[ -z "$F_SSLMODE" ] || conninfo="$conninfo sslmode=$F_SSLMODE"
{
  echo "# replica-first-boot: this replica's own settings (server $F_UUID)"
  echo "primary_conninfo = '$conninfo'"
  [ -z "$F_SLOT" ] || echo "primary_slot_name = '$F_SLOT'"
  if [ "$LISTEN" = network ]; then
    [ -n "$F_ADDRESS" ] || die "network_data.json has no IPv4 address to listen on"
    echo "listen_addresses = '$F_ADDRESS'"
  elif [ -n "$LISTEN" ]; then
    echo "listen_addresses = '$LISTEN'"
  fi
  [ -z "$PORT" ] || echo "port = $PORT"
  [ -z "$SOCKET_DIR" ] || echo "unix_socket_directories = '$SOCKET_DIR'"
} >> "$auto.new"
mv "$auto.new" "$auto"

# 4. Standby, then start.
rm -f "$DATA_DIR/recovery.signal"
touch "$DATA_DIR/standby.signal"
if [ "$(id -u)" -eq 0 ]; then
  chown "$PG_USER": "$auto" "$DATA_DIR/standby.signal"
  chown "$PG_USER": "$DATA_DIR"
fi
chmod 0700 "$DATA_DIR"

if [ "$START" = pg_ctl ]; then
  as_pg=()
  [ "$(id -u)" -ne 0 ] || as_pg=(runuser -u "$PG_USER" --)
  logopt=()
  if [ -n "$LOG" ]; then
    touch "$LOG"
    [ "$(id -u)" -ne 0 ] || chown "$PG_USER": "$LOG"
    logopt=(-l "$LOG")
  fi
  say "starting PostgreSQL"
  "${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$DATA_DIR" "${logopt[@]}" -w -t 120 start
fi
say "done"
