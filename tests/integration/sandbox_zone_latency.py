#!/usr/bin/python3
"""The sandbox's per-zone latency to the primary is real: with `--zone-latency az2=40`, a server
the cloud simulator boots in az2 streams WAL from the primary through the zone's relay, and a
round trip through that relay takes 40 ms more than a direct one.

First, without a sandbox: the simulator's routing of user_data gives primary_host and each entry
of primary_hosts (every host that may become the primary) its own relay in a zone with a
latency, and leaves zones without one, and entries the first-boot script would refuse, alone.

Steps: a sandbox without the service (PostgreSQL, the simulator with zones az1/az2 and az2 at
LATENCY_MS, HAProxy, VictoriaMetrics); through the OpenStack API, a snapshot of the donor's
volume, a volume from it in az2 and a server booting it with the primary in user_data (what the
service does), primary_hosts listing the donor (a standby) before the primary; then the replica's
walreceiver must be connected to the primary's relay the simulator reports (not the donor's:
the first-boot script asks for a read-write host), and the median of 10 `SELECT 1` round trips
over libpq (psycopg2) through the relay minus the median direct to the primary must be within
+-40% of LATENCY_MS.

  /usr/bin/python3 tests/integration/sandbox_zone_latency.py [--keep]
Registered with ctest (label integration); needs no service binary. Bounded by SIGALRM.
"""
import argparse
import base64
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_common import CheckFailed, check, eventually, free_octet, log  # noqa: E402
from sandbox import PG_PORT, Sandbox  # noqa: E402
from cloudsim.network import Network  # noqa: E402
IMAGE = "c1b7bd39-1c6e-4c6e-8b0c-7a9fb04f1d1e"  # the simulator's replica-image

import psycopg2  # noqa: E402  (Debian's python3-psycopg2: libpq)

ZONE, LATENCY_MS = "az2", 40.0
BUDGET = 240


def request(method, url, body=None, headers=None):
    """(status, response headers, parsed JSON body or None)."""
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                 headers=dict({"Content-Type": "application/json"}, **(headers or {})),
                                 method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, hdrs, raw = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, hdrs, raw = e.code, e.headers, e.read()
    return status, hdrs, (json.loads(raw) if raw else None)


def openstack(sb):
    """call(method, path, body) against the simulator with a project-scoped Keystone token;
    "{project}" in a path is the project id."""
    state = sb.cloud_state()
    with open(sb.path("service", "secrets", "cloud-password")) as f:
        password = f.read().strip()
    status, headers, _ = request("POST", state["auth_url"] + "/auth/tokens", {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": state["user"]["name"], "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"id": state["project"]["id"]}}}})
    check(status == 201, "a project-scoped token from the simulator's Keystone")
    token = headers["X-Subject-Token"]

    def call(method, path, body=None):
        url = sb.state["cloud_url"] + path.replace("{project}", state["project"]["id"])
        status, _, out = request(method, url, body, {"X-Auth-Token": token})
        if status >= 300:
            raise CheckFailed(f"{method} {path}: {status} {out}")
        return out
    return call


def round_trips(host, port, n=10):
    """Milliseconds of n `SELECT 1` on one connection (after one warm-up)."""
    conn = psycopg2.connect(host=host, port=port, user="postgres", dbname="postgres", connect_timeout=5)
    try:
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute("SELECT 1")
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            cur.execute("SELECT 1")
            cur.fetchone()
            out.append((time.perf_counter() - t0) * 1000.0)
        return out
    finally:
        conn.close()


def routing():
    """route_user_data with primary_hosts, in process (no sandbox)."""
    net = Network(["az1", "az2"], {ZONE: LATENCY_MS})
    try:
        doc = {"primary_host": "127.0.0.1", "primary_port": 5432, "replication_user": "replicator",
               "primary_hosts": [{"host": "127.0.0.1", "port": 5432}, {"host": "127.0.0.2", "port": 5433},
                                 {"host": "a,b", "port": 5432}, {"host": "127.0.0.3", "port": 0}]}
        raw = json.dumps(doc).encode()
        check(net.route_user_data("az1", raw) is raw, "az1 has no latency: its user_data is unchanged")
        routed = json.loads(net.route_user_data(ZONE, raw))
        log(f"routed for {ZONE}: {routed}")
        relays = {r["primary"]: r["relay"] for r in net.relay_view()}
        check(sorted(relays) == ["127.0.0.1:5432", "127.0.0.2:5433"],
              f"one relay per host:port that may be the primary: {sorted(relays)}")
        first, second, bad_host, bad_port = routed["primary_hosts"]
        check("%s:%d" % (routed["primary_host"], routed["primary_port"]) == relays["127.0.0.1:5432"]
              and "%s:%d" % (first["host"], first["port"]) == relays["127.0.0.1:5432"],
              "primary_host and its entry in primary_hosts share the primary's relay")
        check("%s:%d" % (second["host"], second["port"]) == relays["127.0.0.2:5433"],
              "the second member goes through its own relay")
        check(bad_host == doc["primary_hosts"][2] and bad_port == doc["primary_hosts"][3],
              "entries the first-boot script refuses pass unchanged (it says why)")
        check(routed["replication_user"] == "replicator", "the other facts are kept")
    finally:
        net.close()
    log("sandbox_zone_latency: route_user_data routes every member of primary_hosts")


def body(sb):
    call = openstack(sb)
    snap = call("POST", "/volume/v3/{project}/snapshots", {"snapshot": {
        "volume_id": sb.state["donor_volume_id"], "name": "zl-golden", "force": True}})["snapshot"]
    eventually("snapshot available", lambda: call(
        "GET", f"/volume/v3/{{project}}/snapshots/{snap['id']}")["snapshot"]["status"] == "available", 60)
    vol = call("POST", "/volume/v3/{project}/volumes", {"volume": {
        "snapshot_id": snap["id"], "name": "zl-replica-data", "availability_zone": ZONE}})["volume"]
    eventually("volume available", lambda: call(
        "GET", f"/volume/v3/{{project}}/volumes/{vol['id']}")["volume"]["status"] == "available", 60)
    # Every host that may be the primary, a standby first: the replica must skip it.
    user_data = {"cluster": "orders", "primary_host": sb.primary_host, "primary_port": PG_PORT,
                 "primary_hosts": [{"host": sb.donor_host, "port": PG_PORT},
                                   {"host": sb.primary_host, "port": PG_PORT}],
                 "replication_user": "replicator", "application_name": "zl-replica"}
    server = call("POST", "/compute/v2.1/servers", {"server": {
        "name": "zl-replica", "flavorRef": "pg.replica", "availability_zone": ZONE, "imageRef": IMAGE,
        # A replica as the service boots it: the image as the root, the clone beside it.
        "block_device_mapping_v2": [
            {"boot_index": 0, "uuid": IMAGE, "source_type": "image", "destination_type": "local",
             "delete_on_termination": True},
            {"boot_index": -1, "uuid": vol["id"], "source_type": "volume",
             "destination_type": "volume", "delete_on_termination": True}],
        "user_data": base64.b64encode(json.dumps(user_data).encode()).decode()}})["server"]

    def booted():
        s = [x for x in sb.cloud_state()["servers"] if x["id"] == server["id"]]
        return s and s[0].get("boot_ok") and s[0]
    s = eventually("server booted (first boot ok)", booted, 90)
    replica = s["address"]
    relays = {r["primary"]: r["relay"] for r in sb.cloud_state()["relays"] if r["zone"] == ZONE}
    check(sorted(relays) == sorted([f"{sb.primary_host}:{PG_PORT}", f"{sb.donor_host}:{PG_PORT}"]),
          f"the simulator runs one relay for {ZONE} to each host that may be the primary: {relays}")
    primary_relay = relays[f"{sb.primary_host}:{PG_PORT}"]
    relay_host, relay_port = primary_relay.rsplit(":", 1)
    sender = eventually("the replica streams", lambda: sb.sql(
        replica, "SELECT sender_host || ':' || sender_port FROM pg_stat_wal_receiver "
                 "WHERE status = 'streaming'"), 60)
    check(sender == primary_relay,
          f"the replica's walreceiver reaches the primary (not the standby listed first) through "
          f"the primary's relay ({sender}; relays {relays})")
    lsn = sb.sql(sb.primary_host, "SELECT pg_current_wal_lsn()")
    eventually("the replica replays WAL written after it started", lambda: sb.sql(
        replica, f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'") == "t", 30)

    direct = round_trips(sb.primary_host, PG_PORT)
    relayed = round_trips(relay_host, int(relay_port))
    added = statistics.median(relayed) - statistics.median(direct)
    log(f"SELECT 1 medians: direct {statistics.median(direct):.2f} ms, through the {ZONE} relay "
        f"{statistics.median(relayed):.2f} ms: +{added:.2f} ms (configured {LATENCY_MS:g} ms)")
    check(abs(added - LATENCY_MS) <= 0.4 * LATENCY_MS,
          f"the relay adds {added:.1f} ms, within 40% of {LATENCY_MS:g} ms")
    others = [r for r in sb.cloud_state()["relays"] if r["zone"] != ZONE]
    check(not others, "zones without a latency have no relay")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keep", action="store_true", help="keep the sandbox folder")
    args = p.parse_args()

    def on_alarm(signum, frame):
        raise CheckFailed(f"over its budget of {BUDGET} s")
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(BUDGET)
    root = tempfile.mkdtemp(prefix="ra-zone-latency-")
    os.chmod(root, 0o755)
    sb = Sandbox(root, octet=free_octet(os.getpid()), start_service=False, log=log,
                 zone_latency={ZONE: LATENCY_MS})
    ok = False
    t0 = time.monotonic()
    try:
        routing()
        with sb:
            body(sb)
        ok = True
    except Exception as e:  # noqa: BLE001
        print(f"\nsandbox_zone_latency: FAILED: {e}", flush=True)
        if not isinstance(e, CheckFailed):
            traceback.print_exc()
    finally:
        signal.alarm(0)
        if sb.state.get("groups"):
            sb.down()
        if ok and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        elif not ok:
            print(f"sandbox_zone_latency: the sandbox's files are in {root}", flush=True)
    log(f"sandbox_zone_latency: {'passed' if ok else 'FAILED'} in {time.monotonic() - t0:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
