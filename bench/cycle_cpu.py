#!/usr/bin/python3
"""The control loop's CPU time per cycle per cluster, in a steady state, in the sandbox.

Each run starts the sandbox (simulator profile "fast", loop.interval 1 s, the least the
configuration accepts) with one binary, scales the one cluster to 2 serving replicas through the
API (PUT .../override, as bench.py does), waits for it to settle, then over a fixed window
(--window, default 60 s) reads

  - the service process's CPU: utime + stime of /proc/<pid>/stat (all its threads), clock ticks
    converted to seconds, at the window's start and end;
  - the cycles run: replica_autoscaler_reconcile_duration_seconds_count on the service's /metrics,
    at the window's start and end (the same histogram's buckets give the cycle's wall-time median);

and prints CPU milliseconds per cycle per cluster (the sandbox has one cluster). The sandbox is
torn down after every run (sandbox down), whatever happens.

Caveat: the process CPU also counts the API server's and the actuator's threads and the metrics
exporter. In this steady state the actuator has nothing to do (the run checks that the cloud saw
no create/delete in the window) and the only API calls are this script's two /metrics reads and
its status polls before the window, so the figure is dominated by the cycle, but it is an upper
bound on the cycle's own CPU, not the cycle alone. (A per-thread split is not possible from
/proc: the threads are unnamed and short-lived ones are gone by the window's end; the process
total includes them.)

With several --binary, runs alternate (A, B, A, B, ...) so that drift of the machine hits both
alike; --runs is per binary. Not part of CI. Duration: about 1.5-2 min per run.

  bench/run.sh cpu --binary /tmp/bench-before --binary /tmp/bench-after --runs 3
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "sandbox"))
sys.path.insert(0, HERE)
import sandbox as sandbox_mod  # noqa: E402
from bench import C, log, owned, parse_time, settled, wait  # noqa: E402
from measure import HIST, hist_median, histogram, proc_cpu  # noqa: E402

CLUSTERS = 1  # the sandbox's one cluster, "orders"


def mutating_cloud_calls(sb, since_wall):
    reqs = sb.cloud("GET", "/control/requests")["requests"]
    return sum(1 for r in reqs if r["method"] in ("POST", "DELETE", "PUT", "PATCH")
               and parse_time(r["time"]) >= since_wall)


def one_run(binary, window, replicas):
    root = tempfile.mkdtemp(prefix="ra-cpu-")
    os.chmod(root, 0o755)
    octet = 245 - os.getpid() % 5
    settings = {"MAX_REPLICAS": max(4, replicas), "LOOP_INTERVAL": "1s"}
    try:
        with sandbox_mod.Sandbox(root, profile="fast", octet=octet, binary=binary, settings=settings,
                                 log=log) as sb:
            pid = sb.state["groups"]["service"]  # spawned directly: the group leader is the service
            wait("the first replica", lambda: settled(sb, 1), 180, interval=0.5)
            code, out = sb.api("PUT", C + "/override", {"replicas": replicas, "reason": "bench cpu"})
            if code != 200:
                raise RuntimeError(f"PUT override {replicas}: {code} {out}")
            wait(f"{replicas} serving", lambda: settled(sb, replicas), 240, interval=0.5)
            wait(f"{replicas} servers", lambda: len(owned(sb)) == replicas, 60, interval=0.5)
            time.sleep(5)  # let the last admission's follow-up cycles pass
            wall0 = time.time()
            n0, b0 = histogram(sb.state["api_url"])
            c0, t0 = proc_cpu(pid), time.monotonic()
            time.sleep(window)
            c1, t1 = proc_cpu(pid), time.monotonic()
            n1, b1 = histogram(sb.state["api_url"])
            actions = mutating_cloud_calls(sb, wall0)
            still = settled(sb, replicas)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    cycles = n1 - n0
    cpu = c1 - c0
    r = {"binary": binary, "cycles": cycles, "cpu_s": cpu, "elapsed": t1 - t0,
         "ms_per_cycle": 1000 * cpu / cycles / CLUSTERS if cycles else float("nan"),
         "wall_median_ms": (lambda m: None if m is None else 1000 * m)(hist_median(b0, b1)),
         "cloud_writes": actions, "steady": still}
    return r


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", action="append",
                   help="replica-autoscaler binary; repeat to compare (runs alternate). "
                        "Default build/bin/replica-autoscaler")
    p.add_argument("--runs", type=int, default=3, help="runs per binary (default 3)")
    p.add_argument("--window", type=float, default=60, help="measured window, s (default 60, at most 600)")
    p.add_argument("--replicas", type=int, default=2, help="serving replicas in the steady state (default 2)")
    args = p.parse_args()
    binaries = [os.path.abspath(b) for b in (args.binary or [os.path.join(REPO, "build", "bin", "replica-autoscaler")])]
    if args.runs < 1 or not 5 <= args.window <= 600 or not 1 <= args.replicas <= 5:
        p.error("--runs >= 1, 5 <= --window <= 600, 1 <= --replicas <= 5")
    for b in binaries:
        if not os.access(b, os.X_OK):
            p.error(f"{b} is not an executable")
    results = {b: [] for b in binaries}
    for i in range(1, args.runs + 1):
        for b in binaries:
            log(f"run {i}: {b}")
            r = one_run(b, args.window, args.replicas)
            results[b].append(r)
            log(f"run {i}: {b}: {r['cycles']:.0f} cycles, CPU {r['cpu_s']:.2f} s -> {r['ms_per_cycle']:.2f} ms/cycle; "
                f"cycle wall median {r['wall_median_ms'] or float('nan'):.1f} ms; cloud writes in window "
                f"{r['cloud_writes']}; still {args.replicas} serving: {r['steady']}")

    print(f"\ncycle CPU per cluster: steady state, {args.replicas} replicas serving, 1 cluster, loop interval 1 s, "
          f"{args.window:.0f} s window; process CPU (utime+stime, all threads: includes the API server's and "
          f"the actuator's, idle here) / cycles counted by {HIST}_count")
    meds = {}
    for b in binaries:
        rs = results[b]
        meds[b] = statistics.median(r["ms_per_cycle"] for r in rs)
        walls = [r["wall_median_ms"] for r in rs if r["wall_median_ms"] is not None]
        print(f"  {b}")
        print("    per run: " + "; ".join(f"{r['ms_per_cycle']:.2f} ms ({r['cycles']:.0f} cycles, "
                                          f"{r['cpu_s']:.2f} s CPU, {r['cloud_writes']} cloud writes)" for r in rs))
        print(f"    median CPU per cycle per cluster: {meds[b]:.2f} ms; cycle wall median (histogram, "
              f"interpolated): {statistics.median(walls) if walls else float('nan'):.1f} ms")
    if len(binaries) >= 2:
        base = binaries[0]
        for b in binaries[1:]:
            print(f"  ratio {os.path.basename(b)} / {os.path.basename(base)}: {meds[b] / meds[base]:.2f}")
    if any(r["cloud_writes"] or not r["steady"] for rs in results.values() for r in rs):
        print("  note: some window was not a steady state (cloud writes, or the replica count moved)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
