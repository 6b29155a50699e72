#!/usr/bin/python3
"""End to end: placement by latency to the primary.

The sandbox has three zones; a server in az2 reaches the primary through the simulator's delaying
relay (40 ms round trip), az1 and az3 directly. The service runs with
placement: {prefer: latency, max_latency: 20ms, samples: 5} and measures each zone from the
primary's pg_stat_replication.write_lag (the sandbox's heartbeat, a commit a second, keeps it
current). pgbench -C -S runs through HAProxy the whole time; no query may fail.

  1. min_replicas 2: nothing is measured yet, so the two first replicas spread over az1 and az2;
     the gauge replica_autoscaler_zone_latency_seconds then shows az1 near (<= 20 ms) and az2 far;
  2. scaled to 5: every new replica goes to az1, the one zone measured near, none to the far az2
     and none to the unmeasured az3;
  3. the next two server builds fail with "No valid host" (simulator: POST /control/servers,
     count 2): scaled to 6, the first attempt in az1 fails (az1 backed off), the retry goes to
     the unmeasured az3 (before the far zone) and fails (az3 backed off), and the replica then
     goes to az2, the far zone, because no other zone can take it; an event says so (max_latency);
  4. back to min (2) replicas; no server or volume is left behind.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_common import check, eventually, log, metric_value, no_orphans, run, scenario, settled  # noqa: E402

C = "/v1/clusters/orders"
GAUGE = "replica_autoscaler_zone_latency_seconds"
MAX_LATENCY = 0.020
ZONES = ("az1", "az2", "az3")
NO_VALID_HOST = "No valid host was found. There are not enough hosts available."


def zones_of(sb):
    """Replica name -> zone, for our (non-foreign) replicas the service lists."""
    return {r["name"]: r.get("zone", "") for r in sb.cluster_status().get("replicas", [])
            if not r.get("foreign")}


def latency(sb, zone):
    """The gauge's value for `zone` in seconds; None while the service has no sample."""
    value = metric_value(sb, GAUGE, {"cluster": "orders", "zone": zone})
    return value if value > 0 else None


def gauges(sb):
    return {z: latency(sb, z) for z in ZONES}


def show(g):
    return ", ".join(f"{z} {'-' if v is None else f'{v * 1000:.2f} ms'}" for z, v in g.items())


def scale(sb, n, why):
    code, out = sb.api("PUT", C + "/override", {"replicas": n, "reason": why})
    check(code == 200, f"PUT override {n} ({code} {out})")


def body(sb, args):
    load = scenario.Load(sb, 2, round_seconds=5)
    started = False
    try:
        # 1. two replicas to measure from; the gauge: az1 near, az2 far
        eventually("two serving replicas", lambda: settled(sb.cluster_status(), 2), 150)
        load.start()
        started = True
        initial = zones_of(sb)
        check(sorted(initial.values()) == ["az1", "az2"],
              f"nothing measured yet: the two first replicas spread over az1 and az2 ({initial})")
        g = eventually("the gauge: az2 over max_latency and az1 within it", lambda: (
            lambda g: g if g["az2"] is not None and g["az2"] > MAX_LATENCY
            and g["az1"] is not None and g["az1"] <= MAX_LATENCY else None)(gauges(sb)), 60)
        log(f"gauge: {show(g)}")
        check(g["az3"] is None, f"az3, with no replica, is not measured ({show(g)})")

        # 2. near first: every new replica to a zone measured within max_latency
        scale(sb, 5, "e2e placement: near zones first")
        eventually("5 serving replicas", lambda: settled(sb.cluster_status(), 5), 150)
        zones = zones_of(sb)
        new = {n: z for n, z in zones.items() if n not in initial}
        g = gauges(sb)
        log(f"gauge: {show(g)}")
        check(len(new) == 3, f"three new replicas ({new})")
        check(all(g.get(z) is not None and g[z] <= MAX_LATENCY for z in new.values()),
              f"every new replica went to a zone measured within max_latency ({new}; {show(g)})")
        check("az2" not in new.values(), f"none went to the far az2 ({new})")

        # 3. the near zone and the unmeasured one refuse servers: the far zone, as a last resort
        before = dict(zones)
        t_fault = time.time()
        sb.cloud("POST", "/control/servers", {"match": "orders", "outcome": "error", "count": 2,
                                              "fault": NO_VALID_HOST})
        scale(sb, 6, "e2e placement: far zone last")
        failed = eventually("two capacity failures in the events", lambda: (lambda f: f if len(f) >= 2 else None)([
            e for e in sb.events() if e.get("type") == "replica_failed" and e.get("result") == "capacity"]), 120)
        failed_zones = [(e.get("details") or {}).get("zone") for e in failed]
        check(failed_zones[:2] == ["az1", "az3"],
              f"the first attempt failed in the near az1, the retry in the unmeasured az3 before the far "
              f"az2 ({failed_zones})")
        eventually("6 serving replicas", lambda: settled(sb.cluster_status(), 6), 150)
        added = {n: z for n, z in zones_of(sb).items() if n not in before}
        check(list(added.values()) == ["az2"],
              f"with az1 and az3 backed off, the new replica went to the far az2 ({added})")
        name = list(added)[0]
        why = [e for e in sb.events() if name in json.dumps(e) and "max_latency" in json.dumps(e)]
        check(why, f"an event about {name} says why: over max_latency, no nearer zone can take it")
        log(f"event: {json.dumps(why[0])}")
        log(f"gauge: {show(gauges(sb))} ({time.time() - t_fault:.0f} s from the fault to 6 serving)")
    except BaseException:
        if started:
            load.stop()
        raise

    # 4. back to min, pgbench still running; nothing left behind, no query failed
    code, out = sb.api("DELETE", C + "/override")
    check(code in (200, 204), f"DELETE override ({code} {out})")
    eventually("back to 2 serving replicas", lambda: settled(sb.cluster_status(), 2), 180)
    load.stop()
    eventually("no orphan server or volume", lambda: no_orphans(sb, 2), 60)
    check(True, "exactly two replicas' servers and volumes left in the cloud")
    check(load.processed > 0, f"pgbench -C -S ran through HAProxy ({load.summary()})")
    check(load.failed == 0 and load.aborted == 0 and not load.bad_outputs,
          f"zero failed queries during the test ({load.summary()})")


if __name__ == "__main__":
    sys.exit(run("e2e_placement", body,
                 settings={"LOOP_INTERVAL": "1s", "SCALE_DOWN_WINDOW": "5s", "MIN_REPLICAS": 2, "MAX_REPLICAS": 6,
                           "PLACEMENT": "{prefer: latency, max_latency: 20ms, samples: 5}"},
                 budget=300, zones=ZONES, zone_latency={"az2": 40}))
