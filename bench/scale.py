#!/usr/bin/python3
"""The scale of one instance: many clusters of many replicas in one service, one cloud project.

Each run starts, in a temporary directory:
  - the cloud simulator in its no-PostgreSQL mode (tests/sandbox/cloudsim, --no-postgres, profile
    "fast"): servers, volumes and snapshots are metadata only; one donor server and data volume
    per cluster are added through POST /control/donors; quotas are lifted;
  - one Data Plane API double (tests/sandbox/dataplane/dataplane_double.py) with
    --simulate-haproxy, whose haproxy.cfg has one backend per cluster: no HAProxy process runs
    (2,000 admissions through a real one, each with `haproxy -c` and two reloads, took hours
    here); the double keeps the servers' runtime state itself, reloads at once, and passes every
    health check (nothing listens at the simulated servers' addresses);
  - replica-autoscaler serve with --clusters clusters (no metrics policy: min_replicas 0, the
    replica count set by hand through the API) and test_only.probe_double (SimulatedReplicaProbe,
    the service's probe test double: every ACTIVE server reads as a caught-up standby);

then scales every cluster to --replicas with PUT /v1/clusters/{name}/override, waits (bounded by
--settle-timeout) until every cluster has that many serving, and measures, in a steady state:

  - cycle CPU: the service's utime+stime (/proc/<pid>/stat, all threads) over --window seconds
    divided by the cycles run (replica_autoscaler_reconcile_duration_seconds_count on /metrics);
    one cycle covers every cluster, so this is the CPU of one cycle of all of them;
  - cloud list calls per cycle per project: GET list requests the simulator counted in the window
    (nova.list_servers, cinder.list_volumes, cinder.list_snapshots: /servers[/detail],
    /volumes[/detail], /snapshots[/detail], every page) divided by the cycles; the one project;
  - RSS: VmRSS after the window and after the latency phase, and VmHWM (the peak) at the end;
  - GET /v1/clusters latency with the admin token while the loop runs: --requests sequential
    requests on one keep-alive connection (p50, p99), then the same number split over
    --concurrency connections at once.

and prints each figure next to its target, per run and as medians over --runs. Everything it
starts is stopped and the directory removed on exit, also after an error or SIGINT/SIGTERM; every
wait has a timeout. Not part of CI (bench/README.md). Standard library only.

  bench/run.sh scale [--clusters 100] [--replicas 20] [--runs 3] [--window 30]
"""
import argparse
import http.client as httpclient
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, ".."))
SANDBOX = os.path.join(REPO, "tests", "sandbox")
sys.path.insert(0, SANDBOX)
sys.path.insert(0, HERE)
from measure import hist_median, histogram, percentile, proc_cpu, proc_memory, thread_cpu  # noqa: E402
from sandbox_util import SandboxError, free_port, http, stop_groups, tcp_open, wait_until  # noqa: E402

LIST_OPS = ("nova.list_servers", "cinder.list_volumes", "cinder.list_snapshots")
TARGETS = {"list_calls": 3.0, "cpu_ms": 50.0, "rss_mb": 64.0, "p99_ms": 10.0}
ADDRESS_BASE = "127.0.10"  # replicas: 127.0.10.1 upwards; donors 127.0.2.N, primaries 127.0.3.N

HAPROXY_GLOBAL = """\
global
    stats socket {dir}/admin.sock mode 600 level admin
    server-state-file {dir}/server-state
    maxconn 4000

defaults
    mode tcp
    timeout connect 3s
    timeout client 10m
    timeout server 10m
    load-server-state-from-file global
"""

CLUSTER = """\
  - name: {name}
    cloud: sim
    min_replicas: 0
    max_replicas: {max}
    primary: {{static: {{host: {primary}, port: 5432}}}}
    donor: {{server: {name}-donor, volume: {volume}}}
    replica: {{flavor: m1.small, image: replica-image, networks: [private]}}
    postgres: {{user: postgres, connect_timeout: 2s}}
    load_balancer: {{name: haproxy, backend: {backend}}}
    behavior:
      scale_up: {{stabilization_window: 0s, limits: [{{replicas: {max}, period: 10s}}]}}
    snapshots: {{interval: 1h, keep: 2}}
"""

SERVICE = """\
# Rendered by bench/scale.py: {clusters} clusters in one cloud project, the probe test double.
clouds:
  sim:
    auth:
      auth_url: {cloud_url}/identity/v3
      username: demo
      project_name: demo
      password: {{file: {secrets}/cloud-password}}
    region: RegionOne
    rate_limit: {{requests_per_second: 10000, burst: 10000}}
    timeouts: {{connect: 2s, request: 30s}}
load_balancers:
  haproxy:
    url: {dataplane_url}
    api_version: v3
    username: admin
    password: {{file: {secrets}/dataplane-password}}
    reload_timeout: 60s
clusters:
{cluster_entries}api:
  listen: 127.0.0.1:{api_port}
  tokens:
    - {{name: bench-admin, role: admin, token: {{file: {secrets}/admin.token}}}}
loop:
  interval: 1s
journal:
  path: {root}/events.jsonl
  max_size: 16MiB
  keep: 2
logging:
  level: warn
test_only:
  probe_double: true
"""


def log(msg):
    print(time.strftime("%H:%M:%S ") + msg, file=sys.stderr, flush=True)


def write_secret(path, value):
    with open(path, "w") as f:
        f.write(value)
    os.chmod(path, 0o600)


class Run:
    """One run's processes and directory; close() stops them and removes it."""

    def __init__(self, binary, clusters, replicas, keep_logs):
        self.binary, self.clusters, self.replicas, self.keep_logs = binary, clusters, replicas, keep_logs
        self.root = tempfile.mkdtemp(prefix="ra-scale-")
        os.chmod(self.root, 0o755)
        self.secrets = os.path.join(self.root, "secrets")
        os.makedirs(self.secrets, mode=0o700)
        self.groups = []
        self.names = [f"c{i:03d}" for i in range(clusters)]

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def spawn(self, argv, log_name):
        with open(self.path(log_name), "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, cwd=self.root)
        self.groups.append(proc.pid)
        return proc

    def close(self):
        stop_groups(list(reversed(self.groups)), grace=15)
        self.groups = []
        if self.keep_logs:
            os.makedirs(self.keep_logs, exist_ok=True)
            for name in ("cloud.log", "dataplane.log", "service.log", "config.yaml"):
                if os.path.exists(self.path(name)):
                    shutil.copy(self.path(name), os.path.join(self.keep_logs, name))
        shutil.rmtree(self.root, ignore_errors=True)

    # ------------------------------------------------------------------ the components
    def start_cloud(self):
        port = free_port()
        password = secrets.token_hex(12)
        write_secret(os.path.join(self.secrets, "cloud-password"), password)
        argv = ["/usr/bin/python3", os.path.join(SANDBOX, "cloudsim", "cloudsim.py"), "--port", str(port),
                "--root", self.path("cloud"), "--profile", "fast", "--zones", "nova", "--password", password,
                "--address-base", ADDRESS_BASE, "--no-postgres"]
        proc = self.spawn(argv, "cloud.log")
        self.cloud_url = f"http://127.0.0.1:{port}"
        wait_until("cloud simulator", lambda: http("GET", self.cloud_url + "/control/request-counts",
                                                   timeout=2)[0] == 200, 30, proc=proc, log=self.path("cloud.log"))
        big = 10 * (self.clusters * (self.replicas + 2) + 10)
        code, out = http("POST", self.cloud_url + "/control/quotas",
                         {"instances": big, "cores": 4 * big, "ram": 8192 * big, "volumes": 2 * big,
                          "gigabytes": 100 * big, "snapshots": big})
        if code != 200:
            raise SandboxError(f"cloud quotas: {code} {out}")
        self.volumes = {n: str(uuid.uuid5(uuid.NAMESPACE_DNS, f"volume.{n}-donor")) for n in self.names}
        donors = [{"name": f"{n}-donor", "address": f"127.0.2.{i + 1}", "volume_id": self.volumes[n]}
                  for i, n in enumerate(self.names)]
        code, out = http("POST", self.cloud_url + "/control/donors", {"donors": donors}, timeout=30)
        if code != 201:
            raise SandboxError(f"cloud donors: {code} {out}")

    def start_dataplane(self):
        d = self.path("haproxy")
        os.makedirs(d)
        with open(os.path.join(d, "haproxy.cfg"), "w") as f:
            f.write(HAPROXY_GLOBAL.format(dir=d))
            for n in self.names:
                f.write(f"\nbackend be_{n}\n    balance leastconn\n")
        write_secret(os.path.join(self.secrets, "dataplane-password"), secrets.token_hex(12))
        port = free_port()
        argv = ["/usr/bin/python3", os.path.join(SANDBOX, "dataplane", "dataplane_double.py"), "--dir", d,
                "--listen", f"127.0.0.1:{port}", "--api", "v3", "--user", "admin",
                "--password-file", os.path.join(self.secrets, "dataplane-password"), "--reload-delay-ms", "0",
                "--simulate-haproxy"]
        proc = self.spawn(argv, "dataplane.log")
        self.dataplane_url = f"http://127.0.0.1:{port}"
        wait_until("Data Plane API double", lambda: tcp_open("127.0.0.1", port), 30, proc=proc,
                   log=self.path("dataplane.log"))

    def start_service(self):
        self.token = secrets.token_hex(24)
        write_secret(os.path.join(self.secrets, "admin.token"), self.token)
        self.api_port = free_port()
        entries = "".join(CLUSTER.format(name=n, max=self.replicas, primary=f"127.0.3.{i + 1}",
                                         volume=self.volumes[n], backend=f"be_{n}")
                          for i, n in enumerate(self.names))
        with open(self.path("config.yaml"), "w") as f:
            f.write(SERVICE.format(clusters=self.clusters, cloud_url=self.cloud_url, secrets=self.secrets,
                                   dataplane_url=self.dataplane_url, cluster_entries=entries,
                                   api_port=self.api_port, root=self.root))
        self.service = self.spawn([self.binary, "serve", "--config", self.path("config.yaml")], "service.log")
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        wait_until("replica-autoscaler /readyz", lambda: http("GET", self.api_url + "/readyz", timeout=5)[0] == 200,
                   120, proc=self.service, log=self.path("service.log"))

    # ------------------------------------------------------------------ the service's view
    def api(self, method, path, body=None, timeout=30):
        return http(method, self.api_url + path, body, token=self.token, timeout=timeout)

    def serving(self):
        """{cluster: serving count} from GET /v1/clusters."""
        code, out = self.api("GET", "/v1/clusters")
        if code != 200:
            raise SandboxError(f"GET /v1/clusters: {code} {out}")
        return {c["name"]: c["serving"] or 0 for c in out["clusters"]}

    def cloud_counts(self):
        code, out = http("GET", self.cloud_url + "/control/request-counts")
        if code != 200:
            raise SandboxError(f"cloud request counts: {code} {out}")
        return out


def cycle_end(api_url, timeout):
    """Waits for the next cycle to end (the histogram's count to move); returns (count, buckets)
    read right after. Windows that start and stop at cycle ends hold whole cycles only: with
    cycles of seconds, a window cut anywhere would be off by up to one cycle either side."""
    deadline = time.monotonic() + timeout
    n0, _ = histogram(api_url)
    while time.monotonic() < deadline:
        time.sleep(0.05)
        n, buckets = histogram(api_url)
        if n > n0:
            return n, buckets
    raise SandboxError(f"no cycle ended within {timeout:.0f} s")


def latencies(api_url, token, n, concurrency, deadline):
    """Seconds per GET /v1/clusters, n requests over `concurrency` keep-alive connections (each
    sends n / concurrency in sequence). Raises on a status other than 200."""
    host, port = api_url.split("//", 1)[1].split(":")
    out, errors = [], []
    lock = threading.Lock()

    def worker(count):
        conn = httpclient.HTTPConnection(host, int(port), timeout=30)
        mine = []
        try:
            for _ in range(count):
                if time.monotonic() > deadline:
                    raise SandboxError("latency phase: out of time")
                t0 = time.perf_counter()
                conn.request("GET", "/v1/clusters", headers={"Authorization": "Bearer " + token})
                r = conn.getresponse()
                body = r.read()
                mine.append(time.perf_counter() - t0)
                if r.status != 200:
                    raise SandboxError(f"GET /v1/clusters: {r.status} {body[:200]!r}")
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = httpclient.HTTPConnection(host, int(port), timeout=30)
        except Exception as e:  # noqa: BLE001 - reported by the caller
            errors.append(e)
        finally:
            conn.close()
            with lock:
                out.extend(mine)

    per = [n // concurrency + (1 if i < n % concurrency else 0) for i in range(concurrency)]
    threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in per]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(1.0, deadline - time.monotonic()))
    if errors:
        raise SandboxError(f"latency phase: {errors[0]}")
    if any(t.is_alive() for t in threads):
        raise SandboxError("latency phase: a client did not finish in time")
    return out


def one_run(args, index):
    run = Run(args.binary, args.clusters, args.replicas, args.keep_logs and os.path.join(args.keep_logs, f"run{index}"))
    try:
        run.start_cloud()
        run.start_dataplane()
        run.start_service()
        pid = run.service.pid
        log(f"run {index}: service pid {pid}, {args.clusters} clusters; override to {args.replicas} replicas each")
        t_scale = time.monotonic()
        for n in run.names:
            code, out = run.api("PUT", f"/v1/clusters/{n}/override",
                                {"replicas": args.replicas, "reason": "scale bench"})
            if code != 200:
                raise SandboxError(f"PUT /v1/clusters/{n}/override: {code} {out}")
        want = args.clusters * args.replicas
        last = [0, time.monotonic()]

        def all_serving():
            s = run.serving()
            total = sum(min(v, args.replicas) for v in s.values())
            if time.monotonic() - last[1] > 15:
                log(f"run {index}: {total}/{want} serving after {time.monotonic() - t_scale:.0f} s")
                last[1] = time.monotonic()
            last[0] = total
            return all(s.get(n, 0) == args.replicas for n in run.names)

        wait_until(f"{want} replicas serving", all_serving, args.settle_timeout, interval=2,
                   proc=run.service, log=run.path("service.log"))
        settle_s = time.monotonic() - t_scale
        log(f"run {index}: all {want} serving after {settle_s:.0f} s; steady-state window {args.window:.0f} s")
        time.sleep(5)  # the last admissions' follow-up cycles

        # From the end of one cycle to the end of the first cycle after --window seconds.
        n0, b0 = cycle_end(run.api_url, 120)
        c0, threads0 = proc_cpu(pid), thread_cpu(pid)
        counts0 = run.cloud_counts()
        time.sleep(args.window)
        n1, b1 = cycle_end(run.api_url, 120)
        c1, threads1 = proc_cpu(pid), thread_cpu(pid)
        counts1 = run.cloud_counts()
        rss_window, _ = proc_memory(pid)
        cycles = n1 - n0
        if cycles <= 0:
            raise SandboxError(f"no cycle ran in the {args.window:.0f} s window")
        by0, by1 = counts0["by_op"], counts1["by_op"]
        lists = sum(by1.get(op, 0) - by0.get(op, 0) for op in LIST_OPS)
        writes = sum(v - by0.get(op, 0) for op, v in by1.items()
                     if op.split(".", 1)[1].startswith(("create", "delete", "set_")))
        all_requests = counts1["total"] - counts0["total"]

        # Where the CPU went, per thread alive at both ends (the loop's thread is the busiest in a
        # steady state; threads that came and went in the window count only in the total).
        per_thread = sorted((threads1[t] - threads0[t] for t in threads1 if t in threads0), reverse=True)
        busiest = 1000 * per_thread[0] / cycles if per_thread else None
        log(f"run {index}: window: {cycles:.0f} cycles, CPU {1000 * (c1 - c0) / cycles:.1f} ms/cycle, "
            f"list calls {lists / cycles:.1f}/cycle, RSS {rss_window / 2**20:.1f} MB; "
            f"{args.requests} GET /v1/clusters next")
        deadline = time.monotonic() + args.latency_timeout
        seq = latencies(run.api_url, run.token, args.requests, 1, deadline)
        conc = latencies(run.api_url, run.token, args.requests, args.concurrency, deadline) if args.concurrency > 1 else []
        rss_end, hwm = proc_memory(pid)
        still = run.serving()
        steady = all(still.get(n, 0) == args.replicas for n in run.names)
        return {
            "settle_s": settle_s, "cycles": cycles, "window_s": args.window,
            "cpu_ms": 1000 * (c1 - c0) / cycles,
            "busiest_thread_ms": busiest, "threads": len(threads1),
            "cycle_wall_ms": (lambda m: None if m is None else 1000 * m)(hist_median(b0, b1)),
            "list_calls": lists / cycles, "requests_per_cycle": all_requests / cycles,
            "by_op": {op: (by1.get(op, 0) - by0.get(op, 0)) / cycles for op in LIST_OPS},
            "cloud_writes": writes,
            "rss_mb": rss_window / 2**20, "rss_end_mb": rss_end / 2**20, "hwm_mb": hwm / 2**20,
            "p50_ms": 1000 * percentile(seq, 50), "p99_ms": 1000 * percentile(seq, 99),
            "conc_p50_ms": 1000 * percentile(conc, 50) if conc else None,
            "conc_p99_ms": 1000 * percentile(conc, 99) if conc else None,
            "steady": steady,
        }
    finally:
        run.close()


def verdict(value, target):
    return "ok" if value <= target else "MISSED"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", default=os.path.join(os.environ.get("BUILD_DIR", os.path.join(REPO, "build")),
                                                    "bin", "replica-autoscaler"))
    p.add_argument("--clusters", type=int, default=100, help="clusters in the one service (default 100, 1..250)")
    p.add_argument("--replicas", type=int, default=20, help="serving replicas per cluster (default 20, 1..50)")
    p.add_argument("--runs", type=int, default=3, help="runs (default 3), each from a fresh start")
    p.add_argument("--window", type=float, default=30, help="steady-state window, s (default 30, 5..600)")
    p.add_argument("--requests", type=int, default=300, help="GET /v1/clusters requests (default 300)")
    p.add_argument("--concurrency", type=int, default=4,
                   help="connections of the concurrent latency variant (default 4; 1: skip it)")
    p.add_argument("--settle-timeout", type=float, default=900,
                   help="longest wait for every replica to serve, s (default 900)")
    p.add_argument("--latency-timeout", type=float, default=300, help="longest latency phase, s (default 300)")
    p.add_argument("--keep-logs", help="copy each run's logs and config here before its directory goes")
    p.add_argument("--json", help="also write the per-run figures here (JSON)")
    args = p.parse_args()
    if not 1 <= args.clusters <= 250 or not 1 <= args.replicas <= 50:
        p.error("--clusters 1..250, --replicas 1..50")
    if args.runs < 1 or not 5 <= args.window <= 600 or not 1 <= args.requests <= 100000:
        p.error("--runs >= 1, --window 5..600, --requests 1..100000")
    if not 1 <= args.concurrency <= 64 or not 10 <= args.settle_timeout <= 3600:
        p.error("--concurrency 1..64, --settle-timeout 10..3600")
    if not os.access(args.binary, os.X_OK):
        p.error(f"{args.binary} is not an executable (scripts/setup.sh, or set BUILD_DIR)")
    args.binary = os.path.abspath(args.binary)

    # SIGTERM (and SIGINT, which Python already turns into KeyboardInterrupt) unwind through the
    # runs' finally blocks, which stop everything and remove the directories.
    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)

    results = []
    try:
        for i in range(1, args.runs + 1):
            r = one_run(args, i)
            results.append(r)
            log(f"run {i}: {r['cycles']:.0f} cycles: CPU {r['cpu_ms']:.1f} ms/cycle, cycle wall median "
                f"{r['cycle_wall_ms'] or float('nan'):.0f} ms, list calls {r['list_calls']:.1f}/cycle "
                f"({r['requests_per_cycle']:.1f} cloud requests/cycle, {r['cloud_writes']} writes), RSS "
                f"{r['rss_mb']:.1f} MB (peak {r['hwm_mb']:.1f}), GET /v1/clusters p50 {r['p50_ms']:.2f} ms "
                f"p99 {r['p99_ms']:.2f} ms; steady {r['steady']}")
    except KeyboardInterrupt:
        log("interrupted: everything started was stopped and removed")
        return 130
    except SandboxError as e:
        log(f"failed: {e}")
        return 1
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "runs": results}, f, indent=2)

    def med(key):
        vals = [r[key] for r in results if r[key] is not None]
        return statistics.median(vals) if vals else float("nan")

    print(f"\nscale of one instance: {args.clusters} clusters x {args.replicas} replicas, one cloud project, "
          f"loop interval 1 s, {args.window:.0f} s window, medians of {len(results)} run(s)")
    print(f"  {'figure':44s} {'median':>10s}  {'target':>8s}  per run")
    rows = [
        ("cloud list calls per cycle per project", "list_calls", "<= 3", TARGETS["list_calls"], "{:.1f}"),
        ("cycle CPU, all clusters (ms)", "cpu_ms", "<= 50", TARGETS["cpu_ms"], "{:.1f}"),
        ("RSS after the window (MB)", "rss_mb", "<= 64", TARGETS["rss_mb"], "{:.1f}"),
        ("peak RSS, VmHWM (MB)", "hwm_mb", "<= 64", TARGETS["rss_mb"], "{:.1f}"),
        ("GET /v1/clusters p99, sequential (ms)", "p99_ms", "< 10", TARGETS["p99_ms"], "{:.2f}"),
    ]
    for label, key, target_text, target, fmt in rows:
        m = med(key)
        print(f"  {label:44s} {fmt.format(m):>10s}  {target_text:>8s}  "
              + ", ".join(fmt.format(r[key]) for r in results) + f"   {verdict(m, target)}")
    extra = [("GET /v1/clusters p50, sequential (ms)", "p50_ms", "{:.2f}"),
             (f"GET /v1/clusters p50, {args.concurrency} connections (ms)", "conc_p50_ms", "{:.2f}"),
             (f"GET /v1/clusters p99, {args.concurrency} connections (ms)", "conc_p99_ms", "{:.2f}"),
             ("busiest thread's CPU per cycle (ms)", "busiest_thread_ms", "{:.1f}"),
             ("cycle wall time, median (ms)", "cycle_wall_ms", "{:.0f}"),
             ("all cloud requests per cycle", "requests_per_cycle", "{:.1f}"),
             ("time to all serving (s)", "settle_s", "{:.0f}")]
    for label, key, fmt in extra:
        if all(r[key] is None for r in results):
            continue
        print(f"  {label:44s} {fmt.format(med(key)):>10s}  {'':>8s}  "
              + ", ".join("-" if r[key] is None else fmt.format(r[key]) for r in results))
    for op in LIST_OPS:
        print(f"    {op:42s} {statistics.median(r['by_op'][op] for r in results):>10.1f} per cycle")
    if any(r["cloud_writes"] or not r["steady"] for r in results):
        print("  note: some window was not a steady state (cloud writes in it, or a cluster left "
              f"{args.replicas} serving)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
