#!/bin/bash
# First boot of a PostgreSQL read replica built by replica-autoscaler.
#
# The server's data volume is a clone of a snapshot of another replica (the donor), so it holds
# the donor's postmaster.pid, application_name and primary_conninfo, and, when the donor is a
# Patroni member, the postgresql.conf Patroni wrote for it. Before PostgreSQL starts, this
# script makes it this replica's own:
#   1. reads the instance's facts as a VM does: the config drive (label config-2) with
#      openstack/latest/meta_data.json (uuid, name), user_data (JSON written by the service:
#      primary_hosts, primary_host, primary_port, replication_user, ...) and network_data.json
#      (its address)
#   2. waits for the data directory (PG_VERSION), repoints hba_file/ident_file that name the
#      donor's data directory, and drops the copied postmaster.pid
#   3. writes to postgresql.auto.conf: primary_conninfo listing every host that may be the
#      primary (target_session_attrs=read-write, a unique application_name), its slot or none,
#      recovery_target_timeline 'latest', no recovery target, delay or archive commands of the
#      donor's, and optionally the listen address, port and socket directory
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
#   RA_RESTORE_COMMAND  this replica's restore_command [--restore-command]; default "" (none:
#                     the donor's names its archive tool and credentials; see step 3)
#   RA_PGBACKREST_STANZA  catch up from a pgBackRest WAL archive [--pgbackrest-stanza]: the
#                     restore_command becomes `pgbackrest --config=C --stanza=S --pg1-path=DATA_DIR
#                     archive-get %f "%p"`
#                     (WAL since the snapshot from the archive, only the tail streamed from the
#                     primary); default "" (stream everything). Exclusive with RA_RESTORE_COMMAND.
#   RA_PGBACKREST_CONFIG  its configuration [--pgbackrest-config]; default
#                     /etc/pgbackrest/pgbackrest.conf (the role writes it; the repository's
#                     credentials, if any, live there, in the image, never in user_data)
#   RA_PGBACKREST_BIN [--pgbackrest-bin]; default: pgbackrest on PATH
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
RESTORE_COMMAND=${RA_RESTORE_COMMAND:-}
PGBACKREST_STANZA=${RA_PGBACKREST_STANZA:-}
PGBACKREST_CONFIG=${RA_PGBACKREST_CONFIG:-/etc/pgbackrest/pgbackrest.conf}
PGBACKREST_BIN=${RA_PGBACKREST_BIN:-pgbackrest}
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
    --restore-command) RESTORE_COMMAND=$2; shift 2 ;;
    --pgbackrest-stanza) PGBACKREST_STANZA=$2; shift 2 ;;
    --pgbackrest-config) PGBACKREST_CONFIG=$2; shift 2 ;;
    --pgbackrest-bin) PGBACKREST_BIN=$2; shift 2 ;;
    --start) START=$2; shift 2 ;;
    --log) LOG=$2; shift 2 ;;
    --wait) WAIT_SECONDS=$2; shift 2 ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
done
case "$START" in none|pg_ctl) ;; *) die "--start must be none or pg_ctl, not '$START'" ;; esac
[ -z "$PORT" ] || [[ "$PORT" =~ ^[0-9]+$ ]] || die "--port must be a number, not '$PORT'"
# Catch-up from a pgBackRest archive: checked before anything is touched. A restore_command that
# cannot run (no binary, no configuration) stops recovery with FATAL on the first segment, so
# it is refused here with the reason instead.
if [ -n "$PGBACKREST_STANZA" ]; then
  [ -z "$RESTORE_COMMAND" ] || die "--restore-command and --pgbackrest-stanza are exclusive (both set)"
  [[ "$PGBACKREST_STANZA" =~ ^[A-Za-z0-9_.-]{1,64}$ ]] ||
    die "--pgbackrest-stanza must be letters, digits and . _ - (at most 64), not '$PGBACKREST_STANZA'"
  [[ "$PGBACKREST_CONFIG" =~ ^/[A-Za-z0-9_./-]+$ ]] ||
    die "--pgbackrest-config must be an absolute path of letters, digits and . _ - /, not '$PGBACKREST_CONFIG'"
  [ -r "$PGBACKREST_CONFIG" ] || die "pgBackRest configuration $PGBACKREST_CONFIG is missing or unreadable"
  bin=$(command -v "$PGBACKREST_BIN" 2>/dev/null || true)
  [ -n "$bin" ] && [ -x "$bin" ] || die "pgbackrest ('$PGBACKREST_BIN') is not installed or not executable"
  [[ "$bin" =~ ^/[A-Za-z0-9_./-]+$ ]] || die "pgbackrest's path '$bin' has unexpected characters"
  [[ "$DATA_DIR" =~ ^/[A-Za-z0-9_./-]+$ ]] ||
    die "with --pgbackrest-stanza the data directory must be an absolute path of letters, digits and . _ - /, not '$DATA_DIR'"
  # --pg1-path: archive-get resolves %p (pg_wal/RECOVERYXLOG) against it, so it is this data
  # directory whatever the configuration says.
  RESTORE_COMMAND="$bin --config=$PGBACKREST_CONFIG --stanza=$PGBACKREST_STANZA --pg1-path=$DATA_DIR archive-get %f \"%p\""
fi

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
# Where the primary is. primary_hosts lists every host that may become the primary (the Patroni
# members, current primary first); primary_host/primary_port is the current primary alone (the
# older form, kept by the service for compatibility). Each becomes part of a libpq conninfo
# (host=h1,h2 port=p1,p2), so a host is letters, digits and . : _ - only (no comma, space or
# quote) and a port a number in 1..65535.
MAX_PRIMARY_HOSTS = 16
def is_host(h):
    return isinstance(h, (str, int)) and not isinstance(h, bool) and \
        re.fullmatch(r"[A-Za-z0-9.:_-]+", str(h)) is not None
def port_number(p):
    if isinstance(p, bool) or not isinstance(p, (int, str)) or not re.fullmatch(r"[0-9]{1,5}", str(p)):
        return None
    return int(p) if 1 <= int(p) <= 65535 else None
members = []
listed = user.get("primary_hosts")
if listed is not None:
    shape = 'an array of {"host": "...", "port": N}'
    if not isinstance(listed, list):
        fail(f"user_data.primary_hosts must be {shape}")
    if len(listed) > MAX_PRIMARY_HOSTS:
        fail(f"user_data.primary_hosts has {len(listed)} entries; at most {MAX_PRIMARY_HOSTS}")
    for i, entry in enumerate(listed):
        if not isinstance(entry, dict):
            fail(f"user_data.primary_hosts[{i}] must be an object {{\"host\": ..., \"port\": ...}}")
        if not is_host(entry.get("host")):
            fail(f"user_data.primary_hosts[{i}].host is missing or not a host name/address "
                 "(letters, digits and . : _ - only)")
        member_port = port_number(entry.get("port", 5432))
        if member_port is None:
            fail(f"user_data.primary_hosts[{i}].port must be a number in 1..65535")
        if (str(entry["host"]), member_port) not in members:
            members.append((str(entry["host"]), member_port))
host = user.get("primary_host")
port = user.get("primary_port", 5432)
if host is None and members:
    host, port = members[0]  # the list alone is enough; its first entry is the current primary
if not is_host(host):
    fail("user_data.primary_host is missing or not a host name/address")
port = port_number(port)
if port is None:
    fail("user_data.primary_port must be a number in 1..65535")
host = str(host)
if not members:
    members = [(host, port)]
elif (host, port) not in members:
    print(f"replica-first-boot: warning: primary {host}:{port} is not in primary_hosts; "
          "following primary_hosts", file=sys.stderr)
slot = user.get("primary_slot_name") or ""
# PostgreSQL's rule for slot names: lower-case letters, digits and underscores, at most 63.
if not isinstance(slot, str) or (slot and not re.fullmatch(r"[a-z0-9_]{1,63}", slot)):
    fail("user_data.primary_slot_name must be lower-case letters, digits and underscores "
         "(at most 63)")
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
             ("PRIMARY_PORT", port), ("HOSTS", ",".join(h for h, _ in members)),
             ("PORTS", ",".join(str(p) for _, p in members)), ("REPL_USER", repl_user),
             ("SSLMODE", sslmode), ("ADDRESS", address), ("SLOT", slot)):
    print(f"F_{k}={shlex.quote(str(v))}")
PY
) || die "cannot read the instance's facts"
eval "$facts"
say "server $F_UUID as '$F_APP', primary $F_PRIMARY_HOST:$F_PRIMARY_PORT (hosts $F_HOSTS, ports $F_PORTS)"
[ -z "$PGBACKREST_STANZA" ] ||
  say "WAL since the snapshot from pgBackRest stanza '$PGBACKREST_STANZA' ($PGBACKREST_CONFIG), the tail streamed"

# 2. The data volume.
waited=0
until [ -f "$DATA_DIR/PG_VERSION" ]; do
  [ "$waited" -lt "$WAIT_SECONDS" ] || die "$DATA_DIR/PG_VERSION did not appear in ${WAIT_SECONDS}s"
  sleep 1
  waited=$((waited + 1))
done
# Where the donor kept its data: line 2 of its postmaster.pid (present when the snapshot was
# taken of a running server, as the service's are), or "" when unknown.
donor_dir=
[ ! -r "$DATA_DIR/postmaster.pid" ] || donor_dir=$(sed -n 2p "$DATA_DIR/postmaster.pid")

# hba_file and ident_file. Patroni (3.0: config.py write_postgresql_conf) writes both into the
# postgresql.conf it keeps in its config_dir, which defaults to the data directory, as absolute
# paths there: on the clone they name the *donor's* data directory, which on this machine is
# another server's files or nothing (PostgreSQL then refuses to start: no pg_hba.conf). They are
# fixed where they are written, in the data directory's postgresql.conf (and the
# postgresql.base.conf it includes), not in postgresql.auto.conf: that file is only read when
# PostgreSQL runs with its configuration in the data directory (pg_ctl -D, as the simulator
# does, or a Patroni-style layout), whereas an image with Debian's layout reads
# /etc/postgresql/<version>/<cluster>/postgresql.conf, whose hba_file/ident_file (the role's)
# an auto.conf value would override. A path is repointed at the clone's copy when it lies in
# the donor's data directory, or when its directory does not exist here and the clone has a
# file of that name; anything else (e.g. a file under /etc) is left alone.
python3 - "$DATA_DIR" "$donor_dir" <<'PY' || die "cannot repoint hba_file/ident_file in $DATA_DIR"
import os, re, sys
data = os.path.normpath(os.path.abspath(sys.argv[1]))
donor = os.path.normpath(sys.argv[2]) if sys.argv[2].startswith("/") else ""
setting = re.compile(r"^(\s*)(hba_file|ident_file)(\s*=\s*|\s+)'((?:[^']|'')*)'(.*)$", re.I)
def repointed(path):
    if not path.startswith("/"):
        return None  # relative: already inside this data directory
    path = os.path.normpath(path)
    if donor and donor != data and path.startswith(donor + "/"):
        return os.path.join(data, os.path.relpath(path, donor))
    mine = os.path.join(data, os.path.basename(path))
    if not os.path.isdir(os.path.dirname(path)) and os.path.isfile(mine):
        return mine
    return None
for conf in ("postgresql.conf", "postgresql.base.conf"):
    conf = os.path.join(data, conf)
    try:
        with open(conf) as f:
            lines = f.readlines()
    except OSError:
        continue
    changed = False
    for i, line in enumerate(lines):
        m = setting.match(line.rstrip("\n"))
        if not m:
            continue
        was = m.group(4).replace("''", "'")
        now = repointed(was)
        if now is None or now == was:
            continue
        print(f"replica-first-boot: {os.path.basename(conf)}: {m.group(2)} {was} -> {now}")
        lines[i] = (f"{m.group(1)}{m.group(2)} = '{now.replace(chr(39), chr(39) * 2)}'"
                    f"  # replica-first-boot: was '{m.group(4)}' (the donor's)\n")
        changed = True
    if changed:
        st = os.stat(conf)
        with open(conf + ".new", "w") as f:
            f.writelines(lines)
        os.chmod(conf + ".new", st.st_mode & 0o7777)
        if os.geteuid() == 0:
            os.chown(conf + ".new", st.st_uid, st.st_gid)
        os.replace(conf + ".new", conf)
PY

if [ -e "$DATA_DIR/postmaster.pid" ]; then
  # Copied from the donor with the snapshot: its PID means nothing here, and PostgreSQL would
  # refuse to start if that number belongs to a live process on this machine.
  say "dropping the donor's postmaster.pid"
  rm -f "$DATA_DIR/postmaster.pid" "$DATA_DIR/postmaster.opts"
fi

# 3. postgresql.auto.conf (ALTER SYSTEM's file). PostgreSQL reads it after postgresql.conf and
# its includes (conf.d), so what is written here wins over the image's settings and over a
# Patroni donor's postgresql.conf alike. What a replica must not inherit from its donor:
#   primary_conninfo: the donor's names the donor's application_name (and, from Patroni, its
#     passfile and one leader). Ours lists every host that may be the primary, in libpq's
#     multi-host form (host=h1,h2 port=p1,p2), with target_session_attrs=read-write: on each
#     (re)connection the walreceiver tries them in order and keeps the first that is read-write,
#     so after a switchover or failover it finds the new leader, and it never streams from a
#     host that is itself a standby. A single primary_host gets the same attribute.
#   primary_slot_name: a Patroni donor's postgresql.conf names the donor's own slot. Removing
#     the line from here would let that value apply, so without a slot of its own this replica
#     writes '' (no slot) explicitly.
#   recovery_target_timeline = 'latest': follow the timeline a promotion starts. It is
#     PostgreSQL's default since 12, but a donor's configuration may say 'current' or a number,
#     and a replica on the old timeline could never follow a new leader.
#   recovery_target, _lsn, _name, _time, _xid = '': a target would make this replica stop
#     replaying (pause, promote or shut down) when it is reached; Patroni writes the same ''s.
#   recovery_min_apply_delay = 0: a delayed donor (Patroni's recovery_conf) must not make every
#     clone lag by design.
#   restore_command, archive_cleanup_command: a donor's (Patroni's recovery_conf or
#     standby_cluster) call its archive tool with its credentials; on a replica without them a
#     restore_command that cannot run ("command not found") stops recovery with FATAL, and an
#     archive_cleanup_command would prune an archive others still read. A replica streams, so
#     restore_command is RA_RESTORE_COMMAND (default none) and archive_cleanup_command none.
#     With RA_PGBACKREST_STANZA it is the image's pgBackRest archive-get: PostgreSQL then takes
#     every segment the archive has (the WAL since the snapshot, from the archive, not the
#     primary), and when one is not there (archive-get exits 1) it streams the rest from
#     primary_conninfo; it tries the archive again only after the stream breaks.
# Left as the donor had them, on purpose:
#   cluster_name (Patroni: the scope): only in process titles; the walreceiver's application_name,
#     which would otherwise default to it, is set in primary_conninfo.
#   synchronous_standby_names, synchronous_commit: read by a primary, ignored in recovery.
#   recovery_end_command, recovery_target_action/_inclusive: only act at the end of recovery or
#     at a target, and a replica has neither.
#   promote_trigger_file: unset by Patroni; and PostgreSQL 16 no longer knows it (a value here
#     would stop a 16 server from starting).
#   listen_addresses, port, unix_socket_directories: the image's, unless --listen, --port or
#     --socket-dir say otherwise (below).
# Limits: the list is the members the service knew at this boot; a member added to Patroni
# later is not in it until the replica is rebuilt. A replica that replayed WAL the new leader
# never had (an asynchronous failover) cannot follow it; the service rebuilds it. A member that
# is down without refusing connections costs each reconnection the TCP connect timeout before
# the next host is tried.
auto="$DATA_DIR/postgresql.auto.conf"
touch "$auto"
drop="primary_conninfo|primary_slot_name|recovery_target_timeline|recovery_target"
drop="$drop|recovery_target_lsn|recovery_target_name|recovery_target_time|recovery_target_xid"
drop="$drop|recovery_min_apply_delay|restore_command|archive_cleanup_command"
[ -z "$LISTEN" ] || drop="$drop|listen_addresses"
[ -z "$PORT" ] || drop="$drop|port"
[ -z "$SOCKET_DIR" ] || drop="$drop|unix_socket_directories"
# Names are case-insensitive, and "name value" without "=" is allowed too.
grep -Eiv "^[[:space:]]*($drop)([[:space:]]*=|[[:space:]])" "$auto" > "$auto.new" || true
conninfo="host=$F_HOSTS port=$F_PORTS user=$F_REPL_USER application_name=$F_APP"
[ -z "$F_SSLMODE" ] || conninfo="$conninfo sslmode=$F_SSLMODE"
conninfo="$conninfo target_session_attrs=read-write"
# A configuration-file string: ' and \ doubled.
restore=${RESTORE_COMMAND//\\/\\\\}
restore=${restore//\'/\'\'}
{
  echo "# replica-first-boot: this replica's own settings (server $F_UUID)"
  echo "primary_conninfo = '$conninfo'"
  echo "primary_slot_name = '$F_SLOT'"
  echo "recovery_target_timeline = 'latest'"
  for target in recovery_target recovery_target_lsn recovery_target_name recovery_target_time \
                recovery_target_xid; do
    echo "$target = ''"
  done
  echo "recovery_min_apply_delay = 0"
  echo "restore_command = '$restore'"
  echo "archive_cleanup_command = ''"
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
