#!/usr/bin/python3
"""End to end: a session open on a draining replica survives another replica's admission (an
HAProxy reload), and the draining replica's server is not deleted while that session lives.

HAProxy's `scur` is its current worker's count only: after a reload the new worker reads 0 for a
server whose session an old worker still carries. Two replicas serve; a client opens a session
through HAProxy and holds it. The replica it landed on is replaced through the API (POST
.../replicas/X/replace): it is drained while a new replica is built and admitted, which reloads
HAProxy. The test checks that the reload happened (the worker's pid changed), that the new
worker's scur for X is 0 while X's own pg_stat_activity still shows the session, that X is
neither removed nor deleted for several cycles, that the held session still answers, and that
X goes within a few cycles once the session closes. pgbench -C -S and a reader go through
HAProxy the whole time; nothing fails and no drain is forced (DRAIN_TIMEOUT 10m).
"""
import os
import sys
import time

import psycopg2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_common import check, eventually, log, metric_value, run, settled  # noqa: E402
from e2e_pg import Reader, check_no_failed_query, haproxy_worker_pid  # noqa: E402

C = "/v1/clusters/orders"
INTERVAL = 2


def server_alive(sb, name):
    return any(s["name"] == name and s["status"] != "DELETED" for s in sb.cloud_state()["servers"])


def replica_view(sb, name):
    for r in sb.cluster_status()["replicas"]:
        if r["name"] == name:
            return r
    return None


def body(sb, args):
    code, out = sb.api("PUT", C + "/override", {"replicas": 2, "reason": "e2e drain across reload"})
    check(code == 200, f"PUT override 2 ({code} {out})")
    eventually("two serving replicas", lambda: settled(sb.cluster_status(), 2), 180)
    by_address = {r["address"]: r["name"] for r in sb.cluster_status()["replicas"]}

    load = sb.start_pgbench(clients=4, seconds=70)
    reader = Reader(sb, query="SELECT 1", period=0.1, max_seconds=200)
    reader.start()
    held = psycopg2.connect(host="127.0.0.1", port=sb.state["frontend_port"], user="postgres",
                            dbname="postgres", connect_timeout=3, application_name="e2e-held-session")
    held.autocommit = True
    try:
        with held.cursor() as cur:
            cur.execute("SELECT inet_server_addr()::text")
            address = cur.fetchone()[0].split("/")[0]
        victim = by_address[address]
        log(f"the held session landed on {victim} ({address})")
        pid_before = haproxy_worker_pid(sb)

        t0 = time.monotonic()
        code, out = sb.api("POST", f"{C}/replicas/{victim}/replace")
        check(code == 202, f"POST replace {victim} ({code} {out})")

        def replacement_serves():
            status = sb.cluster_status()
            serving = [r["name"] for r in status["replicas"] if r["phase"] == "serving"]
            return len(serving) == 2 and victim not in serving
        eventually("a new replica serves beside the remaining one", replacement_serves, 180)
        admitted = time.monotonic() - t0
        pid_after = haproxy_worker_pid(sb)
        log(f"the replacement serves {admitted:.1f} s after the request; HAProxy worker {pid_before} -> {pid_after}")
        check(pid_after != pid_before, "the admission reloaded HAProxy (a new worker)")

        scur = sb.backend_servers().get(victim, {}).get("scur")
        on_replica = int(sb.sql(address, "SELECT count(*) FROM pg_stat_activity WHERE "
                                         "application_name = 'e2e-held-session'"))
        log(f"after the reload: HAProxy's scur for {victim} is {scur}, sessions on the replica itself {on_replica}")
        check(on_replica == 1, "the held session is still open on the draining replica")
        # Several cycles later: still there, still draining, the session still answers.
        time.sleep(4 * INTERVAL)
        view = replica_view(sb, victim)
        check(view is not None and view["phase"] == "draining",
              f"{victim} is still draining ({view and view['phase']}: {view and view.get('detail')})")
        check("on the replica 1" in (view.get("detail") or ""),
              f"its status counts the session on the replica ({view.get('detail')})")
        check(server_alive(sb, victim), f"{victim}'s server is not deleted while the session lives")
        check(victim in sb.backend_servers(), f"{victim} is still in HAProxy (drain), not removed")
        with held.cursor() as cur:
            cur.execute("SELECT count(*) FROM pgbench_accounts")
            check(cur.fetchone()[0] > 0, "the held session still answers queries")
    finally:
        held.close()
    t_closed = time.monotonic()
    eventually(f"{victim} removed and deleted once the session closed",
               lambda: not server_alive(sb, victim) and victim not in sb.backend_servers(), 60)
    gone = time.monotonic() - t_closed
    log(f"{victim} left HAProxy and its server was deleted {gone:.1f} s after the session closed")
    check(metric_value(sb, "replica_autoscaler_forced_drains_total") == 0, "no drain was forced")
    check_no_failed_query(sb, load, reader, t0)


if __name__ == "__main__":
    sys.exit(run("e2e_drain_reload", body, budget=420,
                 settings={"DRAIN_TIMEOUT": "10m", "LOOP_INTERVAL": f"{INTERVAL}s", "MIN_REPLICAS": 1}))
