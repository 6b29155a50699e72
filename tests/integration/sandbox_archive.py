#!/usr/bin/python3
"""The sandbox's WAL archive (Sandbox(..., archive=True), sandbox.py up --plain --archive): the
primary archives with pgBackRest, and a replica the cloud simulator boots with the archive
catch-up set restores the WAL since its snapshot from the archive, then streams the tail from
the primary; one booted with streaming set gets no restore_command and streams everything.

Steps: a sandbox without the service (plain primary archiving, donor, the simulator); through the
OpenStack API a snapshot of the donor's volume; then WAL written on the primary after it (updates
and four segment switches) and waited for in the archive (pg_stat_archiver); with
set_replica_catch_up("archive") a volume from the snapshot and a server booting it: its
restore_command must be pgBackRest's archive-get with its own data directory as pg1-path, its
log must show segments restored from the archive, and it must then stream from the primary and
replay WAL written after it started. With set_replica_catch_up("stream") a second one: no
restore_command, nothing restored from the archive, streaming.

  /usr/bin/python3 tests/integration/sandbox_archive.py [--keep]
Registered with ctest (label integration); needs no service binary; needs pgbackrest (Debian's
package; the test is skipped, exit 77, without it). Bounded by SIGALRM.
"""
import argparse
import base64
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_common import CheckFailed, check, eventually, free_octet, log  # noqa: E402
from sandbox import PG_PORT, Sandbox  # noqa: E402
from sandbox_zone_latency import IMAGE, openstack  # noqa: E402

BUDGET = 300


def boot_replica(sb, call, snap, name):
    vol = call("POST", "/volume/v3/{project}/volumes", {"volume": {
        "snapshot_id": snap["id"], "name": f"{name}-data", "availability_zone": "az1"}})["volume"]
    eventually(f"{name}: volume available", lambda: call(
        "GET", f"/volume/v3/{{project}}/volumes/{vol['id']}")["volume"]["status"] == "available", 60)
    user_data = {"cluster": "orders", "primary_host": sb.primary_host, "primary_port": PG_PORT,
                 "replication_user": "replicator", "application_name": name}
    server = call("POST", "/compute/v2.1/servers", {"server": {
        "name": name, "flavorRef": "pg.replica", "availability_zone": "az1", "imageRef": IMAGE,
        "block_device_mapping_v2": [
            {"boot_index": 0, "uuid": IMAGE, "source_type": "image", "destination_type": "local",
             "delete_on_termination": True},
            {"boot_index": -1, "uuid": vol["id"], "source_type": "volume",
             "destination_type": "volume", "delete_on_termination": True}],
        "user_data": base64.b64encode(json.dumps(user_data).encode()).decode()}})["server"]

    def booted():
        s = [x for x in sb.cloud_state()["servers"] if x["id"] == server["id"]]
        return s and s[0].get("boot_ok") and s[0]
    s = eventually(f"{name}: first boot ok", booted, 90)
    return s["address"], sb.path("cloud", "servers", server["id"], "postgresql.log")


def streams_and_follows(sb, replica, name):
    eventually(f"{name}: streams from the primary", lambda: sb.sql(
        replica, "SELECT status FROM pg_stat_wal_receiver") == "streaming", 60)
    sb.sql(sb.primary_host, "UPDATE pgbench_branches SET bbalance = bbalance + 1")
    lsn = sb.sql(sb.primary_host, "SELECT pg_current_wal_lsn()")
    eventually(f"{name}: replays WAL written after it started", lambda: sb.sql(
        replica, f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'") == "t", 60)


def body(sb):
    call = openstack(sb)
    snap = call("POST", "/volume/v3/{project}/snapshots", {"snapshot": {
        "volume_id": sb.state["donor_volume_id"], "name": "archive-golden", "force": True}})["snapshot"]
    eventually("snapshot available", lambda: call(
        "GET", f"/volume/v3/{{project}}/snapshots/{snap['id']}")["snapshot"]["status"] == "available", 60)
    # WAL the snapshot does not have, in whole segments the archive must hold.
    for _ in range(4):
        sb.sql(sb.primary_host, "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 20000", timeout=60)
        sb.sql(sb.primary_host, "SELECT pg_switch_wal()")
    segment = sb.sql(sb.primary_host, "SELECT pg_walfile_name(pg_current_wal_lsn())")
    previous = "%s%016X" % (segment[:8], int(segment[8:], 16) - 1)
    eventually(f"the archive holds {previous}", lambda: sb.sql(
        sb.primary_host, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") >= previous, 60)
    info = json.loads(sb.pgbackrest("info", "--output=json"))
    newest = max((a.get("max") or "" for a in info[0].get("archive", [])), default="")
    check(newest >= previous, f"pgbackrest info: the repository's newest segment {newest} >= {previous}")

    sb.set_replica_catch_up("archive")
    replica, pglog = boot_replica(sb, call, snap, "archive-replica")
    data_dir = sb.sql(replica, "SHOW data_directory")
    restore = sb.sql(replica, "SHOW restore_command")
    check("archive-get %f \"%p\"" in restore and "--stanza=orders" in restore
          and f"--pg1-path={data_dir}" in restore and f"--config={sb.pgbackrest_config()}" in restore,
          f"restore_command is pgBackRest's archive-get for its own data directory: {restore}")
    with open(pglog, errors="replace") as f:
        text = f.read()
    restored = [line for line in text.splitlines() if "restored log file" in line and "from archive" in line]
    check(len(restored) >= 3, f"it restored the WAL since the snapshot from the archive ({len(restored)} segments)")
    streams_and_follows(sb, replica, "archive-replica")

    sb.set_replica_catch_up("stream")
    replica2, pglog2 = boot_replica(sb, call, snap, "stream-replica")
    check(sb.sql(replica2, "SHOW restore_command") == "", "with streaming set: no restore_command")
    streams_and_follows(sb, replica2, "stream-replica")
    with open(pglog2, errors="replace") as f:
        check("from archive" not in f.read(), "with streaming set: nothing restored from the archive")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keep", action="store_true", help="keep the sandbox folder")
    args = p.parse_args()
    if not shutil.which("pgbackrest"):
        if os.environ.get("CI"):
            print("sandbox_archive: FAILED: pgbackrest is not installed, and CI never skips "
                  "(scripts/setup.sh installs it)")
            return 1
        print("sandbox_archive: SKIPPED: pgbackrest is not installed (apt-get install pgbackrest)")
        return 77

    def on_alarm(signum, frame):
        raise CheckFailed(f"over its budget of {BUDGET} s")
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(BUDGET)
    root = tempfile.mkdtemp(prefix="ra-archive-")
    os.chmod(root, 0o755)
    sb = Sandbox(root, octet=free_octet(os.getpid()), start_service=False, log=log, archive=True)
    ok = False
    t0 = time.monotonic()
    try:
        with sb:
            body(sb)
        ok = True
    except Exception as e:  # noqa: BLE001
        print(f"\nsandbox_archive: FAILED: {e}", flush=True)
        if not isinstance(e, CheckFailed):
            traceback.print_exc()
    finally:
        signal.alarm(0)
        if sb.state.get("groups"):
            sb.down()
        if ok and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        elif not ok:
            print(f"sandbox_archive: the sandbox's files are in {root}", flush=True)
    log(f"sandbox_archive: {'passed' if ok else 'FAILED'} in {time.monotonic() - t0:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
