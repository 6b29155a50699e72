#!/usr/bin/python3
"""End to end: a replica whose WAL receiver is stopped by hand is ejected within its budget and
replaced, while pgbench -C -S and a reader go through HAProxy the whole time.

Two replicas serve. On one of them `ALTER SYSTEM SET primary_conninfo = ''` and a reload stop
the WAL receiver. The primary commits a heartbeat every second, so the stopped replica falls
behind slowly; on a quiet primary it would read as caught up ("replayed everything it
received"): the gate needs the receiver streaming. With max_lag_time 10 s and timeouts.lagging
20 s (LOOP_INTERVAL 2 s), the replica must be in HAProxy maint within max_lag_time and two
cycles, failed for reason `lagging` within max_lag_time + lagging and two cycles, and replaced
by a replica that serves; no query fails.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_common import check, eventually, log, metric_value, run, settled  # noqa: E402
from e2e_pg import Reader, check_no_failed_query  # noqa: E402

C = "/v1/clusters/orders"
MAX_LAG_TIME = 10
LAGGING = 20
INTERVAL = 2
HAPROXY_MAINT = 0x01  # srv_admin_state bit: forced maintenance


def body(sb, args):
    code, out = sb.api("PUT", C + "/override", {"replicas": 2, "reason": "e2e receiver stopped"})
    check(code == 200, f"PUT override 2 ({code} {out})")
    eventually("two serving replicas", lambda: settled(sb.cluster_status(), 2), 180)
    replicas = {r["name"]: r["address"] for r in sb.cluster_status()["replicas"]}
    victim = sorted(replicas)[0]
    address = replicas[victim]
    log(f"serving: {replicas}; stopping the WAL receiver of {victim} ({address})")

    load = sb.start_pgbench(clients=4, seconds=80)
    reader = Reader(sb, query="SELECT 1", period=0.1, max_seconds=200)
    reader.start()
    try:
        time.sleep(2)
        t0 = time.monotonic()
        sb.sql(address, "ALTER SYSTEM SET primary_conninfo = ''")
        sb.sql(address, "SELECT pg_reload_conf()")
        eventually("the WAL receiver is gone",
                   lambda: sb.sql(address, "SELECT count(*) FROM pg_stat_wal_receiver") == "0", 30)
        stopped = time.monotonic() - t0
        log(f"the WAL receiver of {victim} stopped {stopped:.1f} s after the reload")

        def in_maint():
            server = sb.backend_servers().get(victim)
            return server is None or (server.get("admin", 0) & HAPROXY_MAINT) != 0
        eventually(f"{victim} in maint", in_maint, MAX_LAG_TIME + 4 * INTERVAL + 20)
        ejected = time.monotonic() - t0
        log(f"{victim} ejected (HAProxy maint) {ejected:.1f} s after its receiver stopped "
            f"(max_lag_time {MAX_LAG_TIME} s, cycle {INTERVAL} s)")
        check(ejected <= stopped + MAX_LAG_TIME + 3 * INTERVAL + 3,
              f"ejected within max_lag_time and a few cycles ({ejected:.1f} s)")

        def failed_event():
            return [e for e in sb.events() if e.get("type") == "replica_failed" and e.get("replica") == victim]
        event = eventually(f"{victim} failed", failed_event, MAX_LAG_TIME + LAGGING + 60)[0]
        failed = time.monotonic() - t0
        log(f"{victim} failed {failed:.1f} s after its receiver stopped: {event.get('message')}")
        check(event.get("result") == "lagging", f"the failure's reason is lagging ({event.get('result')})")
        check("no WAL receiver running" in (event.get("message") or ""),
              f"the failure says why ({event.get('message')})")
        check(failed <= stopped + MAX_LAG_TIME + LAGGING + 4 * INTERVAL + 5,
              f"failed within max_lag_time + lagging and a few cycles ({failed:.1f} s)")
        check(metric_value(sb, "replica_autoscaler_provisioning_failures_total", {"reason": "lagging"}) == 1,
              "provisioning_failures_total{reason=lagging} counted it once")

        def replaced():
            status = sb.cluster_status()
            names = {r["name"] for r in status["replicas"]}
            return settled(status, 2) and victim not in names
        eventually("a replacement serves and the stopped one is gone", replaced, 180)
        done = time.monotonic() - t0
        log(f"replaced: two replicas serve again {done:.1f} s after the receiver stopped")
        servers = [s for s in sb.cloud_state()["servers"] if s["name"] == victim and s["status"] != "DELETED"]
        check(not servers, f"{victim}'s server was deleted")
        snapshots_after = [e for e in sb.events() if e.get("type") == "action_succeeded"
                           and e.get("action") == "take_snapshot"]
        log(f"{len(snapshots_after)} golden snapshot(s) taken during the test (the replacement needs one "
            "taken after the failure)")
    finally:
        reader.stop()
    check_no_failed_query(sb, load, reader, t0)


if __name__ == "__main__":
    sys.exit(run("e2e_receiver_stopped", body, budget=420,
                 settings={"MAX_LAG_TIME": f"{MAX_LAG_TIME}s", "LAGGING_TIMEOUT": f"{LAGGING}s",
                           "LOOP_INTERVAL": f"{INTERVAL}s", "MIN_REPLICAS": 1}))
