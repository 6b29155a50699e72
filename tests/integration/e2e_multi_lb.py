#!/usr/bin/python3
"""End to end, two load balancers in front of the replicas (sandbox --balancers 2; the second
one is stopped part of the time):
- scale-up while the second balancer is stopped: the new replica is admitted into the first,
  does not count as serving (the quorum is both), and is not in the second when that one comes
  back; it is admitted there then, and only then counts as serving;
- scale-down while the second balancer is stopped: the victim leaves the first balancer, but its
  server is not deleted while the second (which may still route to it) does not answer; once it
  is back the victim is drained and removed there too, and only then deleted;
- a bounded pgbench -C -S through the first balancer during all of that: zero failed queries.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_common import check, eventually, log, no_orphans, owned_resources, run, scenario, settled  # noqa: E402

C = "/v1/clusters/orders"


def status(sb):
    return sb.cluster_status()


def up_in(sb, balancer, name):
    srv = sb.backend_servers(balancer).get(name)
    return srv is not None and srv["status"].startswith("UP") and srv.get("admin", 0) == 0


def body(sb, args):
    log("waiting for the first replica, admitted in both balancers")
    eventually("one serving replica", lambda: settled(status(sb), 1), 150, interval=1)
    first = status(sb)["replicas"][0]["name"]
    eventually(f"{first} UP in both balancers", lambda: up_in(sb, 0, first) and up_in(sb, 1, first), 30)
    check(True, f"{first} serves through both balancers")
    member = status(sb)["replicas"][0]
    if "balancers" in member:
        names = [b.get("name") for b in member["balancers"]]
        check(names == ["haproxy", "haproxy2"], f"status shows each balancer's view ({names})")

    lull = scenario.Load(sb, 2, round_seconds=5).start()
    try:
        # ---- scale-up with the second balancer stopped
        sb.stop_balancer(1)
        code, out = sb.api("PUT", C + "/override", {"replicas": 2, "ttl": "20m", "reason": "e2e multi lb"})
        check(code == 200, f"PUT override 2: 200 ({code} {out})")
        new = eventually("a second replica UP in the first balancer",
                         lambda: next((n for n in sb.backend_servers(0) if n != first and up_in(sb, 0, n)), None),
                         180, interval=1)
        check(True, f"{new} was admitted into the balancer that answers")
        time.sleep(6)  # a few cycles of the service
        st = status(sb)
        view = next(r for r in st["replicas"] if r["name"] == new)
        check(view["phase"] != "serving",
              f"{new} does not count as serving while the second balancer is down ({view['phase']}: "
              f"{view.get('detail')})")
        check(st.get("serving") == 1, f"one replica counts as serving (got {st.get('serving')})")

        sb.start_balancer(1)
        check(new not in sb.backend_servers(1) or not up_in(sb, 1, new),
              f"{new} was not admitted into the second balancer while it was stopped")
        eventually(f"{new} admitted into the second balancer once it is back", lambda: up_in(sb, 1, new), 60)
        check(True, f"{new} is UP in the second balancer")
        eventually("two serving replicas", lambda: settled(status(sb), 2), 60)
        check(True, "both replicas count as serving")

        # ---- scale-down with the second balancer stopped
        sb.stop_balancer(1)
        code, out = sb.api("PUT", C + "/override", {"replicas": 1, "ttl": "20m", "reason": "e2e multi lb"})
        check(code == 200, f"PUT override 1: 200 ({code} {out})")
        victim = eventually("a victim out of the first balancer",
                            lambda: next((n for n in (first, new) if n not in sb.backend_servers(0)), None),
                            120, interval=1)
        check(True, f"{victim} left the balancer that answers")
        time.sleep(8)
        servers, _ = owned_resources(sb)
        check(any(s["name"] == victim for s in servers),
              f"{victim}'s server is not deleted while the second balancer does not answer")

        sb.start_balancer(1)
        check(victim in sb.backend_servers(1), f"{victim} is still in the second balancer when it returns")
        eventually(f"{victim} removed from the second balancer", lambda: victim not in sb.backend_servers(1), 120)
        check(True, f"{victim} was drained and removed from the second balancer")
        eventually("exactly one replica's server and volume left", lambda: no_orphans(sb, 1), 120)
        check(True, f"{victim}'s server and volume deleted after it left both balancers")
        eventually("one serving replica", lambda: settled(status(sb), 1), 60)
    finally:
        lull.stop()
    check(lull.processed > 0, f"pgbench ran through the first balancer ({lull.summary()})")
    check(lull.failed == 0 and lull.aborted == 0, f"zero failed queries through the first balancer ({lull.summary()})")


if __name__ == "__main__":
    sys.exit(run("e2e_multi_lb", body, settings={"LOOP_INTERVAL": "1s", "SCALE_DOWN_WINDOW": "10s",
                                                  "DRAIN_TIMEOUT": "30s"},
                 budget=480, balancers=2))
