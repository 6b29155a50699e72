#!/usr/bin/python3
"""End to end: a surge of pgbench -C -S through HAProxy scales the cluster 1 -> 3; each new
replica gets its first session only once its replay lag is under the admission threshold; a
lull scales it back to 1 while pgbench -C -S keeps connecting, with zero failed queries; no
server or volume is left behind.

How "first session only after catch-up" is checked, independently of the service: a monitor
polls HAProxy (show stat + show servers state) every 0.2 s; the moment a replica's total session
count (stot) first goes above 0, it measures the replica's replay lag against the primary's
current LSN itself. Meanwhile a writer on the primary keeps WAL flowing, and a burst of WAL is
written between the golden snapshot and the surge, so that a replica admitted before catching up
would show it.

The SLO view is read from /metrics on the way: the time-to-serve histogram counts the first
replica once, then exactly the two replicas the surge brought to serving, with values that fit in
the test's own elapsed time; pending series appear while they come up and are gone once they
serve.
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_common import check, eventually, log, metric_value, no_orphans, run, sandbox_mod, scenario, settled  # noqa: E402

MAX_LAG = 16 * 1024 * 1024
STARTED = time.monotonic()  # before the sandbox and the service: bounds every time to serve
TTS = "replica_autoscaler_time_to_serve_seconds"
CLUSTER = {"cluster": "orders"}


def pending_replicas(sb):
    """Replicas with a replica_autoscaler_replica_pending_seconds series on /metrics now."""
    status, text = sandbox_mod.http("GET", sb.state["api_url"] + "/metrics", timeout=5)
    names = set()
    for line in str(text).splitlines() if status == 200 else []:
        if line.startswith("replica_autoscaler_replica_pending_seconds{"):
            names.add(line.split('replica="', 1)[1].split('"', 1)[0])
    return names


class FirstSessionMonitor:
    def __init__(self, sb):
        self.sb = sb
        self.first = {}  # server -> {"lag": bytes, "at": monotonic}
        self.errors = []
        self.pending_seen = set()  # replicas seen with a pending series on /metrics
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self, known):
        self.known = set(known)  # replicas already serving before the surge
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            try:
                for name, srv in self.sb.backend_servers().items():
                    if name in self.known or name in self.first or srv["stot"] == 0:
                        continue
                    self.first[name] = {"lag": self.sb.lag_bytes(srv["addr"]), "at": time.monotonic(),
                                        "stot": srv["stot"]}
                    log(f"first session on {name}: its lag then {self.first[name]['lag']} bytes")
                self.pending_seen |= pending_replicas(self.sb)
            except Exception as e:  # noqa: BLE001 - recorded, reported by the test
                self.errors.append(repr(e))
            self._stop.wait(0.2)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=10)


def body(sb, args):
    view = scenario.LiveView(sb, time.monotonic())
    log("waiting for the first replica the service builds")
    check(scenario.wait_for(view, "start", lambda st: settled(st, 1), 150, interval=1),
          "the service built its first replica and it serves")
    first_replica = view.last["replicas"][0]["name"]
    elapsed = time.monotonic() - STARTED
    count = eventually("the first replica's time to serve is observed",
                       lambda: metric_value(sb, TTS + "_count", CLUSTER), 10)
    first_sum = metric_value(sb, TTS + "_sum", CLUSTER)
    check(count == 1, f"time to serve observed once for the first replica (count {count})")
    check(0 < first_sum < elapsed, f"its value {first_sum:.1f} s is within the test's {elapsed:.0f} s so far")
    check(metric_value(sb, "replica_autoscaler_time_to_serve_budget_seconds", CLUSTER) == 600,
          "the default budget of 10 minutes is exported")
    check(metric_value(sb, "replica_autoscaler_replay_lag_alert_seconds", CLUSTER) == 1,
          "the default replay-lag alert threshold of 1 s is exported")

    # WAL the golden snapshot does not have: ~40 MiB, more than the admission threshold.
    sb.sql(sb.primary_host, "CREATE TABLE wal_burst AS SELECT g, md5(g::text) AS t "
                            "FROM generate_series(1, 400000) g", timeout=120)
    writer = sb.start_pgbench(clients=1, seconds=200, select_only=False, host=sb.primary_host, port=5432,
                              log_name="pgbench-writer.log")
    monitor = FirstSessionMonitor(sb).start([first_replica])
    try:
        log("surge: pgbench -C -S -c 16 through HAProxy")
        surge_began = time.monotonic()
        surge = scenario.Load(sb, 16).start()
        reached = scenario.wait_for(view, "surge", lambda st: settled(st, 3), 180, surge, interval=1)
        surge.stop()
        check(reached, "the surge scaled the cluster to 3 serving replicas")
        since_surge = time.monotonic() - surge_began
        # Observed in the cycle that first sees them serving; the status may show it first.
        count = eventually("both new replicas' times to serve are observed",
                           lambda: (lambda c: c if c >= 3 else 0)(metric_value(sb, TTS + "_count", CLUSTER)), 10)
        added = metric_value(sb, TTS + "_sum", CLUSTER) - first_sum
        check(count == 3, f"time to serve observed exactly once per replica the surge brought to serving "
                          f"(count {count}: 1 + 2)")
        check(0 < added < 2 * since_surge,
              f"their values ({added:.1f} s together) are within 2 x the {since_surge:.0f} s since the surge began")
        check(not pending_replicas(sb), "no pending series once every replica serves")
        check(surge.failed == 0 and surge.aborted == 0,
              f"no query failed during the surge ({surge.summary()})")

        log("lull: pgbench -C -S -c 2 through HAProxy during the whole scale-down")
        lull = scenario.Load(sb, 2, round_seconds=5).start()
        reached = scenario.wait_for(view, "lull", lambda st: settled(st, 1), 180, lull, interval=1)
        lull.stop()
        check(reached, "the lull scaled the cluster back to 1 replica")
    finally:
        monitor.stop()
        writer.kill()
        writer.wait()

    new = [n for n in view.replicas if n != first_replica]
    check(len(new) >= 2, f"the surge built new replicas ({', '.join(new)})")
    for name in new:
        if name not in monitor.first:
            continue
        lag = monitor.first[name]["lag"]
        check(lag <= MAX_LAG, f"{name} had {lag} bytes of lag (<= {MAX_LAG}) when its first session came")
    check(len([n for n in new if n in monitor.first]) >= 2,
          f"HAProxy gave sessions to the new replicas ({sorted(monitor.first)})")
    check(not monitor.errors, f"the monitor could read HAProxy and the lag every time ({monitor.errors[:3]})")
    check(monitor.pending_seen & set(new),
          f"the new replicas had pending series while they came up ({sorted(monitor.pending_seen)})")
    check(metric_value(sb, TTS + "_count", CLUSTER) == 3,
          "the scale-down observed nothing more (the survivor is not observed again)")
    check(lull.processed > 0, f"pgbench ran through the scale-down ({lull.summary()})")
    check(lull.failed == 0 and lull.aborted == 0, f"zero failed queries during the scale-down ({lull.summary()})")
    eventually("exactly one replica's server and volume left in the cloud", lambda: no_orphans(sb, 1), 60)
    check(True, "no orphan server or volume after the scale-down")
    backend = sb.backend_servers()
    check(len(backend) == 1, f"HAProxy's backend holds one server ({sorted(backend)})")


if __name__ == "__main__":
    sys.exit(run("e2e_scale", body, settings={"LOOP_INTERVAL": "1s", "SCALE_DOWN_WINDOW": "10s",
                                               "SESSIONS_WINDOW": "4s"}, budget=420))
