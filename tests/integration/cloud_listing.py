#!/usr/bin/python3
"""The cloud is listed once per project and cycle, not once per cluster.

The service runs with N clusters (default 3) on one cloud entry, against the cloud simulator with
its request capture on; the load balancer, the metrics source and the primaries are closed
loopback ports (their reads fail quickly, which changes nothing in what the cloud is asked), and
min_replicas 0 with the metrics missing holds every cluster at zero, so nothing is built.
Each cluster has a golden snapshot of its own.

Checked:
  - each cluster's status shows its own newest snapshot (the shared listing is split right);
  - a snapshot made for one cluster while the service runs is seen by that cluster within a few
    cycles (no cycle reuses an older listing);
  - over every cycle, the replica and snapshot listings (GET .../detail with ?tags= or
    ?metadata=) number exactly 3 per cycle: one servers list, one volumes list, one snapshots
    list, whatever N is; other list calls (the donor's lookup by name) happen in the first cycle
    only, at most once per cluster;
  - the service wrote nothing to the cloud (no POST, PUT or DELETE).

With --report it prints the figures (list calls per cycle) instead of only passing or failing;
--per-cluster-limit checks a limit of lists per cycle per cluster instead (for measuring the
per-cluster behaviour of an older binary: 3 per cluster).

Usage: cloud_listing.py --binary build/bin/replica-autoscaler [--clusters N] [--cycles K]
Exits 0 when every check holds, 1 otherwise. Everything runs on 127.0.0.1 and is removed after.
"""
import argparse
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
SANDBOX = os.path.join(os.path.dirname(HERE), "sandbox")
sys.path.insert(0, SANDBOX)
from sandbox_util import free_port, http, tail, wait_until  # noqa: E402

DONOR = "orders-donor"
LIST_PATH = re.compile(r"/(servers|volumes|snapshots)(/detail)?$")

CONFIG = """\
clouds:
  sim:
    auth:
      auth_url: {cloud}/identity/v3
      username: demo
      project_name: demo
      password: {{file: {dir}/cloud-password}}
    region: RegionOne
    availability_zones: [az1]
    rate_limit: {{requests_per_second: 100, burst: 100}}
    timeouts: {{connect: 2s, request: 10s}}
load_balancers:
  lb:
    url: http://127.0.0.1:9
    username: admin
    password: {{file: {dir}/lb-password}}
metrics:
  url: http://127.0.0.1:9
  timeout: 1s
clusters:
{clusters}
api:
  listen: 127.0.0.1:{port}
  tokens:
    - {{name: ops, role: admin, token: {{file: {dir}/admin.token}}}}
    - {{name: viewer, role: read-only, token: {{file: {dir}/read.token}}}}
loop:
  interval: 1s
journal:
  path: {dir}/events.jsonl
logging:
  level: info
  path: {dir}/service.log
"""

CLUSTER = """\
  - name: {name}
    cloud: sim
    min_replicas: 0
    max_replicas: 3
    primary: {{static: {{host: 127.0.0.1, port: 9}}}}
    donor: {{server: {donor}, volume: {volume}}}
    replica: {{flavor: m1.small, image: replica-image, networks: [private], zones: [az1]}}
    postgres: {{user: postgres, connect_timeout: 1s}}
    load_balancer: {{name: lb, backend: pg_{name}}}
    policies:
      - name: sessions
        target_tracking: {{query: "sum(x)", target: 40}}
    missing_data: {{action: hold, max_age: 1m}}
    snapshots: {{interval: 1h, keep: 2}}
"""


class Failed(AssertionError):
    pass


def check(condition, message):
    print(("ok   " if condition else "FAIL ") + message, flush=True)
    if not condition:
        raise Failed(message)


class Cinder:
    """Cinder's API as the simulator's user."""

    def __init__(self, cloud, password):
        auth = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "demo", "password": password, "domain": {"name": "Default"}}}},
            "scope": {"project": {"name": "demo", "domain": {"name": "Default"}}}}}
        req = urllib.request.Request(cloud + "/identity/v3/auth/tokens", json.dumps(auth).encode(),
                                     {"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            self.token = r.headers["X-Subject-Token"]
            catalog = json.loads(r.read())["token"]["catalog"]
        self.url = next(e["url"] for s in catalog if s["type"] in ("block-storage", "volumev3")
                        for e in s["endpoints"] if e["interface"] == "public")

    def call(self, method, path, body=None):
        req = urllib.request.Request(self.url + path,
                                     json.dumps(body).encode() if body is not None else None,
                                     {"Content-Type": "application/json", "X-Auth-Token": self.token,
                                      "OpenStack-API-Version": "volume 3.22"}, method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def golden(self, cluster, volume_id, name):
        """A golden snapshot of `cluster` as the service makes them, once available."""
        snap = self.call("POST", "/snapshots", {"snapshot": {
            "volume_id": volume_id, "name": name, "force": True,
            "metadata": {"ra_managed_by": "replica-autoscaler", "ra_cluster": cluster,
                         "ra_role": "golden"}}})["snapshot"]
        wait_until(f"snapshot {name} available",
                   lambda: self.call("GET", f"/snapshots/{snap['id']}")["snapshot"]["status"] == "available",
                   60)
        return snap["id"]


def read_lines(path):
    if not os.path.exists(path):
        return []
    with open(path, errors="replace") as f:
        return f.read().splitlines()


def cycles_of(log_path, cluster):
    """Completed cycles of `cluster`: its "cycle" log lines."""
    n = 0
    for line in read_lines(log_path):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("msg") == "cycle" and entry.get("cluster") == cluster:
            n += 1
    return n


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--binary", required=True)
    p.add_argument("--clusters", type=int, default=3)
    p.add_argument("--cycles", type=int, default=5, help="cycles to run at least (default 5)")
    p.add_argument("--report", action="store_true", help="print the figures as one JSON line")
    p.add_argument("--per-cluster-limit", action="store_true",
                   help="check at most 3 listings per cluster and cycle instead of 3 per cycle")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args()
    if args.clusters < 1 or args.clusters > 200:
        p.error("--clusters must be 1..200")
    if args.cycles < 2 or args.cycles > 100:
        p.error("--cycles must be 2..100")

    root = tempfile.mkdtemp(prefix="ra-listing-")
    procs = []
    try:
        return run(args, root, procs)
    except Failed:
        return 1
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def run(args, root, procs):
    password = secrets.token_hex(12)
    for name, value in (("cloud-password", password), ("lb-password", "x"),
                        ("read.token", secrets.token_hex(16)),
                        ("admin.token", secrets.token_hex(16))):
        with open(os.path.join(root, name), "w") as f:
            f.write(value + "\n")
    os.makedirs(os.path.join(root, "donor"))  # the donor's "data directory": empty will do
    capture = os.path.join(root, "cloud-requests.jsonl")
    volume_id = str(uuid.uuid4())
    port = free_port()
    cloud = f"http://127.0.0.1:{port}"
    cloud_log = os.path.join(root, "cloud.log")
    procs.append(subprocess.Popen(
        ["/usr/bin/python3", os.path.join(SANDBOX, "cloudsim", "cloudsim.py"), "--port", str(port),
         "--root", os.path.join(root, "cloud"), "--profile", "fast", "--zones", "az1",
         "--password", password, "--donor-dir", os.path.join(root, "donor"),
         "--donor-address", "127.0.0.1", "--donor-name", DONOR, "--donor-volume-id", volume_id,
         "--capture", capture],
        stdout=open(cloud_log, "w"), stderr=subprocess.STDOUT, start_new_session=True))
    wait_until("cloud simulator", lambda: http("GET", cloud + "/control/state", timeout=2)[0] == 200,
               30, proc=procs[-1], log=cloud_log)

    names = [f"c{i + 1}" for i in range(args.clusters)]
    # Room for a snapshot per cluster and one more (the simulator's default quota is 20), and the
    # space they take (a snapshot of the donor counts its size).
    status, answer = http("POST", cloud + "/control/quotas",
                          {"snapshots": args.clusters + 5, "gigabytes": max(2000, 20 * (args.clusters + 5))})
    check(status == 200, f"the simulator's quotas raised ({status} {answer})")
    cinder = Cinder(cloud, password)
    own = {name: cinder.golden(name, volume_id, f"{name}-golden-1") for name in names}

    api_port = free_port()
    config = os.path.join(root, "config.yaml")
    with open(config, "w") as f:
        f.write(CONFIG.format(cloud=cloud, dir=root, port=api_port, clusters="".join(
            CLUSTER.format(name=n, donor=DONOR, volume=volume_id) for n in names)))
    # Only what the service asks from now on.
    open(capture, "w").close()
    service_log = os.path.join(root, "service.log")
    procs.append(subprocess.Popen([args.binary, "serve", "--config", config],
                                  stdout=open(os.path.join(root, "stderr.log"), "w"),
                                  stderr=subprocess.STDOUT))
    service = procs[-1]
    with open(os.path.join(root, "read.token")) as f:
        token = f.read().strip()

    def newest(cluster):
        status, body = http("GET", f"http://127.0.0.1:{api_port}/v1/clusters/{cluster}",
                            token=token, timeout=5)
        if status != 200 or not isinstance(body, dict):
            return None
        return (body.get("newest_snapshot") or {}).get("id")

    try:
        wait_until("every cluster's first cycle", lambda: all(newest(n) for n in names), 60,
                   proc=service, log=service_log)
        for n in names:
            check(newest(n) == own[n], f"{n} shows its own snapshot ({newest(n)} == {own[n]})")

        # A snapshot for the last cluster while the service runs: seen within a few cycles.
        later = cinder.golden(names[-1], volume_id, f"{names[-1]}-golden-2")
        deadline = time.time() + 20
        while time.time() < deadline and newest(names[-1]) != later:
            time.sleep(0.2)
        check(newest(names[-1]) == later, f"{names[-1]} sees the snapshot made while it runs")
        if len(names) > 1:
            check(newest(names[0]) == own[names[0]], f"{names[0]} still shows only its own")

        deadline = time.time() + 30 + 3 * args.cycles
        while time.time() < deadline and cycles_of(service_log, names[0]) < args.cycles:
            time.sleep(0.2)
    except Exception:
        print(tail(service_log, 20))
        raise
    # A stop ends the loop after the cycle in progress: every cycle counted is complete.
    service.send_signal(signal.SIGTERM)
    service.wait(timeout=30)
    cycles = cycles_of(service_log, names[0])
    check(cycles >= args.cycles, f"{cycles} cycles ran (wanted {args.cycles})")
    check(all(cycles_of(service_log, n) == cycles for n in names), "every cluster ran every cycle")

    made_here = f"{names[-1]}-golden-2"  # the test's own write, not the service's
    listings = other_lists = writes = 0
    for line in read_lines(capture):
        r = json.loads(line)
        if r["service"] not in ("compute", "block-storage", "volume"):
            continue
        if r["method"] != "GET":
            body = r.get("body")
            mine = isinstance(body, dict) and (body.get("snapshot") or {}).get("name") == made_here
            writes += 0 if mine else 1
        elif LIST_PATH.search(r["path"]):
            if "tags" in r["query"] or "metadata" in r["query"]:
                listings += 1
            else:
                other_lists += 1
    figures = {"clusters": len(names), "cycles": cycles, "listings": listings,
               "listings_per_cycle": round(listings / cycles, 2),
               "other_lists": other_lists, "writes": writes}
    if args.report:
        print(json.dumps(figures), flush=True)
    check(writes == 0, f"the service wrote nothing to the cloud ({writes} writes)")
    check(other_lists <= len(names), f"{other_lists} other list calls (the donor's lookup, first cycle)")
    if args.per_cluster_limit:
        check(listings <= 3 * len(names) * cycles,
              f"{listings} listings in {cycles} cycles: at most 3 per cluster and cycle")
    else:
        check(listings == 3 * cycles,
              f"{listings} listings in {cycles} cycles of {len(names)} clusters: 3 per cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
