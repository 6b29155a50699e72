#!/usr/bin/python3
"""The sandbox in its Patroni mode (Sandbox(patroni=True), sandbox.py up --patroni) does what the
failover tests will lean on, with the real service:

  - etcd and three Patroni members come up: pg1 leads, pg2 and orders-donor stream from it;
    the cloud simulator has the members' addresses reserved;
  - the service finds the primary through the members' REST API (its status' `primary`), and
    the first replica it builds from a snapshot of the Patroni-managed donor serves;
  - switchover('pg2'): pg2 leads and takes writes, the heartbeat follows it, and so does the
    service's `primary`;
  - kill -9 of the leader's Patroni and PostgreSQL: pg1 takes over; restart_member brings the
    old leader back as a replica (rewound);
  - pause_receiver makes a member lag, resume_receiver lets it catch up;
  - `down` leaves no process of the sandbox behind (nothing whose command line or working
    directory is below its root: Patroni, etcd, PostgreSQL and its children, the VMs).
Prints how long the switchover, the failover and the rejoin took.

  /usr/bin/python3 tests/integration/sandbox_patroni.py --binary build/bin/replica-autoscaler
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_common import CheckFailed, check, eventually, log, run, settled  # noqa: E402

PG_PORT = 5432


def sandbox_processes(root):
    """[(pid, user id, command line)] of running processes (zombies aside) whose command line or
    working directory is below `root`."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    continue
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            try:
                cwd = os.readlink(f"/proc/{name}/cwd")
            except OSError:
                cwd = ""
            uid = os.stat(f"/proc/{name}").st_uid
        except (OSError, IndexError):
            continue
        if root in cmdline or cwd == root or cwd.startswith(root + "/"):
            found.append((int(name), uid, cmdline or f"(cwd {cwd})"))
    return found


def heartbeat_age(sb):
    return float(sb.sql_primary("SELECT extract(epoch FROM now() - at) FROM sandbox_heartbeat"))


def body(sb, args):
    timings = {}
    pg1, pg2 = sb.primary_host, f"127.0.{sb.octet}.250"

    members = {m["name"]: m for m in sb.patroni_members()}
    check(sorted(members) == ["orders-donor", "pg1", "pg2"], f"three Patroni members: {sorted(members)}")
    check(sb.leader() == {"name": "pg1", "host": pg1}, f"pg1 leads at {pg1}")
    check(all(members[n]["role"] == "replica" for n in ("pg2", "orders-donor")), "pg2 and the donor are replicas")
    streaming = sb.sql_primary("SELECT string_agg(application_name, ',' ORDER BY application_name) "
                               "FROM pg_stat_replication WHERE state = 'streaming'")
    check(streaming == "orders-donor,pg2", f"pg2 and orders-donor stream from pg1 ({streaming})")
    reserved = set(sb.cloud_state().get("reserved_addresses", []))
    check(set(sb.reserved_hosts) <= reserved, f"the cloud keeps {', '.join(sb.reserved_hosts)} for the members")
    with open(sb.state["config"]) as f:
        config = f.read()
    check("patroni: {members: [http://%s:8008, http://%s:8008, http://%s:8008]}" % (pg1, pg2, sb.donor_host)
          in config, "the service's config names the three members' REST API")

    log("waiting for the service to see the primary and build its first replica")
    eventually("the service's primary is pg1", lambda: sb.cluster_status().get("primary") == f"{pg1}:{PG_PORT}", 60)
    check(True, f"the service found the primary through Patroni: {pg1}:{PG_PORT}")
    status = eventually("a replica serving", lambda: (lambda st: st if settled(st, 1) else None)(sb.cluster_status()),
                        180, interval=1)
    replica = status["replicas"][0]
    check(replica["phase"] == "serving", f"replica {replica['name']} at {replica.get('address')} serves "
                                         f"(built from a snapshot of the Patroni-managed donor)")
    check(eventually("the heartbeat on pg1", lambda: heartbeat_age(sb) < 5, 30), "the heartbeat writes to pg1")

    log("switchover to pg2")
    new = sb.switchover("pg2")
    timings["switchover"] = new["seconds"]
    check(new["name"] == "pg2" and sb.sql_primary("SELECT inet_server_addr()") == pg2,
          f"pg2 leads and takes writes, {new['seconds']:.1f} s after the request")
    eventually("the heartbeat on pg2", lambda: sb.sql(pg2, "SELECT extract(epoch FROM now() - at) < 3 "
                                                           "FROM sandbox_heartbeat") == "t", 30)
    check(True, "the heartbeat follows the leader to pg2")
    eventually("the service's primary is pg2", lambda: sb.cluster_status().get("primary") == f"{pg2}:{PG_PORT}", 60)
    check(True, "the service's primary follows to pg2")
    eventually("pg1 a replica again", lambda: {m["name"]: m for m in sb.patroni_members()}["pg1"]["state"] == "running"
               and "pg1" in sb.sql(pg2, "SELECT string_agg(application_name, ',') FROM pg_stat_replication"), 60)
    check(True, "pg1 streams from pg2")

    log("pause_receiver: the donor falls behind, then catches up")
    sb.pause_receiver("orders-donor")
    sb.sql_primary("CREATE TABLE wal_burst AS SELECT g, md5(g::text) AS t FROM generate_series(1, 100000) g")
    lag = sb.lag_bytes(sb.donor_host)
    check(lag > 1024 * 1024, f"with its walreceiver stopped the donor lags {lag} bytes")
    sb.resume_receiver("orders-donor")
    eventually("the donor catching up", lambda: sb.lag_bytes(sb.donor_host) < 64 * 1024, 90)
    check(True, "resumed, the donor caught up")

    log("kill -9 of the leader (pg2): Patroni and PostgreSQL")
    t0 = time.monotonic()
    sb.kill_member("pg2")
    new = sb.wait_leader(60, not_name="pg2")
    timings["failover"] = round(time.monotonic() - t0, 2)
    check(new["name"] == "pg1", f"pg1 took over {timings['failover']:.1f} s after the kill command")
    eventually("the service's primary back on pg1",
               lambda: sb.cluster_status().get("primary") == f"{pg1}:{PG_PORT}", 60)
    check(True, "the service's primary follows to pg1")
    t0 = time.monotonic()
    sb.restart_member("pg2")
    timings["rejoin"] = round(time.monotonic() - t0, 2)
    check({m["name"]: m for m in sb.patroni_members()}["pg2"]["role"] == "replica",
          f"pg2 rejoined as a replica in {timings['rejoin']:.1f} s")
    check(eventually("the heartbeat on pg1 again", lambda: heartbeat_age(sb) < 5, 30), "the heartbeat is on pg1 again")
    log("after the failover: " + ", ".join(f"{r['name']} {r['phase']} lag {r.get('lag_bytes')}"
                                         for r in sb.cluster_status().get("replicas", [])))

    log("down")
    sb.down()
    try:
        eventually("nothing of the sandbox left running", lambda: not sandbox_processes(sb.root), 20)
    except CheckFailed:
        raise CheckFailed("down left: " + "; ".join(f"{pid} uid {uid} {cmd}"
                                                    for pid, uid, cmd in sandbox_processes(sb.root))) from None
    check(True, "down left no process below the sandbox's root")
    log("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))


if __name__ == "__main__":
    sys.exit(run("sandbox_patroni", body, budget=480, scale=1, patroni=True))
