#!/usr/bin/python3
"""End to end: placement by latency to the primary (issue #10).

The sandbox has three zones; a server in az2 reaches the primary through the simulator's delaying
relay (40 ms round trip), az1 and az3 directly. The service runs with
placement: {prefer: latency, max_latency: 20ms} and measures each zone from the primary's
pg_stat_replication.write_lag (the sandbox's heartbeat keeps WAL flowing).

  1. the first replica goes to az1 (nothing measured: fewest active, configuration order), and the
     zone latency gauge shows az1 near the primary;
  2. scaled to 3, both new replicas go to az1, the one zone known to be near, and none to the
     unmeasured az2 and az3;
  3. a new replica's server fails in az1 with "No valid host": az1 is backed off (capacity, 2 min),
     and the replacement goes elsewhere (az2: unmeasured zones, fewest active, in order);
  4. once az2 is measured over max_latency, one more replica goes to az3 (unmeasured comes before
     far) while az1 is still backed off;
  5. back to 1 replica; no server or volume is left behind.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_common import check, eventually, log, metric_value, no_orphans, run, settled  # noqa: E402

C = "/v1/clusters/orders"
GAUGE = "replica_autoscaler_zone_latency_seconds"


def zones_of(sb):
    """Replica name -> zone, for our (non-foreign) replicas the service lists."""
    return {r["name"]: r.get("zone", "") for r in sb.cluster_status().get("replicas", [])
            if not r.get("foreign")}


def latency(sb, zone):
    """The gauge's value for `zone` in seconds; None while the service has no sample."""
    value = metric_value(sb, GAUGE, {"cluster": "orders", "zone": zone})
    return value if value > 0 else None


def scale(sb, n, why):
    code, out = sb.api("PUT", C + "/override", {"replicas": n, "reason": why})
    check(code == 200, f"PUT override {n} ({code} {out})")


def body(sb, args):
    eventually("one serving replica", lambda: settled(sb.cluster_status(), 1), 150)
    first = zones_of(sb)
    check(list(first.values()) == ["az1"], f"the first replica went to az1 ({first})")
    az1 = eventually("az1's latency on the gauge", lambda: latency(sb, "az1"), 60)
    log(f"az1: {az1 * 1000:.2f} ms from the primary")
    check(az1 < 0.020, f"az1 is within max_latency ({az1 * 1000:.2f} ms)")

    # 2. near first
    scale(sb, 3, "e2e placement: near zone first")
    eventually("3 serving replicas", lambda: settled(sb.cluster_status(), 3), 150)
    zones = zones_of(sb)
    new = {name: zone for name, zone in zones.items() if name not in first}
    check(len(new) == 2 and set(new.values()) == {"az1"},
          f"both new replicas went to az1, the zone near the primary ({new})")

    # 3. the near zone fails: backed off, the replacement goes elsewhere
    before = dict(zones)
    sb.cloud("POST", "/control/servers", {"match": "orders", "outcome": "error", "count": 1,
                                          "fault": "No valid host was found. There are not enough hosts available."})
    scale(sb, 4, "e2e placement: the near zone fails")
    failed = eventually("a capacity failure in the events", lambda: [
        e for e in sb.events() if e.get("type") == "replica_failed" and e.get("result") == "capacity"], 90)
    failed_zone = (failed[0].get("details") or {}).get("zone")
    check(failed_zone == "az1", f"the failed replica was in az1 ({failed[0]})")
    eventually("4 serving replicas after the failure", lambda: settled(sb.cluster_status(), 4), 150)
    zones = zones_of(sb)
    replacement = {name: zone for name, zone in zones.items() if name not in before}
    check(len(replacement) == 1 and list(replacement.values())[0] != "az1",
          f"the replacement went to another zone while az1 is backed off ({replacement})")
    check(list(replacement.values())[0] == "az2",
          f"unmeasured zones are spread in order: az2 first ({replacement})")

    # 4. az2 is far once measured; the next replica goes to the unmeasured az3, not az2
    az2 = eventually("az2's latency on the gauge", lambda: latency(sb, "az2"), 60)
    log(f"az2: {az2 * 1000:.2f} ms from the primary (the relay adds 40 ms)")
    check(az2 > 0.020, f"az2 is over max_latency ({az2 * 1000:.2f} ms)")
    before = dict(zones)
    scale(sb, 5, "e2e placement: far zone last")
    eventually("5 serving replicas", lambda: settled(sb.cluster_status(), 5), 150)
    added = {name: zone for name, zone in zones_of(sb).items() if name not in before}
    check(list(added.values()) == ["az3"],
          f"with az1 backed off, the new replica went to the unmeasured az3, not the far az2 ({added})")

    # 5. back down, nothing left behind
    code, out = sb.api("DELETE", C + "/override")
    check(code in (200, 204), f"DELETE override ({code} {out})")
    eventually("back to 1 serving replica", lambda: settled(sb.cluster_status(), 1), 180)
    eventually("no orphan server or volume", lambda: no_orphans(sb, 1), 60)


if __name__ == "__main__":
    sys.exit(run("e2e_placement", body,
                 settings={"LOOP_INTERVAL": "1s", "SCALE_DOWN_WINDOW": "5s", "MAX_REPLICAS": 6,
                           "PLACEMENT_PREFER": "latency"},
                 budget=480, zones=("az1", "az2", "az3"), zone_latency={"az2": 40}))
