#!/usr/bin/python3
"""The scale benchmark's set-up, small (label integration, under a minute): the cloud simulator's
no-PostgreSQL mode, the service's probe test double (test_only.probe_double) and one Data Plane
API double with a backend per cluster, as bench/scale.py starts them, with 3 clusters x 2
replicas. Asserts that:

  - the service says at start-up, as a WARNING, that the probe double is on;
  - every cluster reaches 2 serving replicas through PUT .../override, and each backend holds
    exactly the 2 servers of its cluster (read from the Data Plane API double, not the service);
  - the simulator started no PostgreSQL and copied no directory (metadata only);
  - the simulator counted the cycles' list calls (servers, volumes, snapshots) over a window in
    which cycles ran: one of each per cycle for the one project, whatever the number of clusters
    (the shared per-project listing), so at most cycles + 1 of each (a cycle in flight at either
    end of the window).

Everything is stopped and the temporary directory removed at the end, also on failure.

  scale_smoke.py --binary build/bin/replica-autoscaler
"""
import argparse
import base64
import json
import os
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "bench"))
import scale  # noqa: E402  (bench/scale.py: the same set-up as the benchmark)
from measure import histogram  # noqa: E402
from sandbox_util import http, wait_until  # noqa: E402

CLUSTERS, REPLICAS = 3, 2
DEADLINE_S = 60


def check(cond, message):
    if not cond:
        raise AssertionError(message)


def backend_servers(run, backend):
    with open(os.path.join(run.secrets, "dataplane-password")) as f:
        password = f.read().strip()
    auth = base64.b64encode(f"admin:{password}".encode()).decode()
    req = urllib.request.Request(
        f"{run.dataplane_url}/v3/services/haproxy/configuration/backends/{backend}/servers",
        headers={"Authorization": "Basic " + auth})
    with urllib.request.urlopen(req, timeout=10) as r:
        return sorted(s["name"] for s in json.loads(r.read()))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", required=True)
    args = p.parse_args()
    started = time.monotonic()
    run = scale.Run(os.path.abspath(args.binary), CLUSTERS, REPLICAS, None)
    try:
        run.start_cloud()
        run.start_dataplane()
        run.start_service()
        with open(run.path("service.log"), errors="replace") as f:
            text = f.read()
        check("test_only.probe_double is on" in text and "SimulatedReplicaProbe" in text,
              f"no start-up warning naming the probe double in the service log:\n{text[-2000:]}")

        for n in run.names:
            code, out = run.api("PUT", f"/v1/clusters/{n}/override", {"replicas": REPLICAS, "reason": "smoke"})
            check(code == 200, f"PUT override {n}: {code} {out}")
        left = DEADLINE_S - 15 - (time.monotonic() - started)
        wait_until(f"{CLUSTERS} x {REPLICAS} serving",
                   lambda: all(v == REPLICAS for v in run.serving().values()) and len(run.serving()) == CLUSTERS,
                   max(5, left), interval=0.5, proc=run.service, log=run.path("service.log"))
        print(f"scale_smoke: {CLUSTERS} x {REPLICAS} serving after {time.monotonic() - started:.1f} s", flush=True)

        code, status = run.api("GET", "/v1/clusters")
        check(code == 200, f"GET /v1/clusters: {code}")
        for c in status["clusters"]:
            names = sorted(r["name"] for r in c["replicas"] if r["phase"] == "serving")
            in_lb = backend_servers(run, f"be_{c['name']}")
            check(names == in_lb, f"{c['name']}: serving {names}, backend holds {in_lb}")
            check(len(in_lb) == REPLICAS, f"{c['name']}: backend holds {in_lb}")

        code, state = http("GET", run.cloud_url + "/control/state")
        check(code == 200, "cloud state")
        check(all(v["dir"] is None for v in state["volumes"]), "a volume has a directory")
        check(all(s["dir"] is None for s in state["snapshots"]), "a snapshot has a directory")
        check(not os.path.exists(run.path("cloud", "volumes")) or not os.listdir(run.path("cloud", "volumes")),
              "the simulator wrote volume data")
        code, captured = http("GET", run.cloud_url + "/control/requests")
        check(code == 200 and captured["requests"] == [], "requests captured in no-PostgreSQL mode")

        c0, n0 = run.cloud_counts()["by_op"], histogram(run.api_url)[0]
        time.sleep(4)
        c1, n1 = run.cloud_counts()["by_op"], histogram(run.api_url)[0]
        cycles = n1 - n0
        check(cycles >= 1, f"no cycle in 4 s ({n0} -> {n1})")
        for op in scale.LIST_OPS:
            calls = c1.get(op, 0) - c0.get(op, 0)
            check(calls >= 1, f"{op}: not counted in {cycles:.0f} cycles ({c0} -> {c1})")
            # One per project per cycle (a cycle in flight at either end adds one).
            check(calls <= cycles + 1, f"{op}: {calls} in {cycles:.0f} cycles: more than one per cycle")
            print(f"scale_smoke: {op}: {calls} calls in {cycles:.0f} cycles", flush=True)
    finally:
        run.close()
    check(not os.path.exists(run.root), f"{run.root} left behind")
    elapsed = time.monotonic() - started
    check(elapsed < DEADLINE_S, f"took {elapsed:.0f} s (bound {DEADLINE_S} s)")
    print(f"scale_smoke: ok in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
