#!/usr/bin/python3
"""Benchmarks of the service in the sandbox (not timed tests: figures to read). Run through
bench/run.sh. The cloud simulator runs its realistic latency profile, scaled by --latency-scale
(default 0.25, to keep a run short; the figures are ratios or measured against the injected
latencies, so the scale changes the seconds, not the meaning).

  (i)   overhead ratio: time to serving for +1 replica (manual count through the API, until the
        replica serves) / (the simulator's injected latencies on that path — volume_create +
        server_build — plus PostgreSQL start and catch-up as measured here: from the server being
        ACTIVE to our own probe seeing its replay lag under 16 MiB). 1.0 would be no overhead.
  (ii)  parallelism: time to serving for +4 / time for +1. 1.0: four replicas cost one's time.
  (iii) reaction: from the first raw sample over the policy's threshold in VictoriaMetrics
        (pgbench -C -S -c 16 through HAProxy; the sessions-per-replica policy wants a second
        replica above target 6 x (1 + tolerance 0.1)) to the first cloud call of the scale-up
        (the volume's POST, in the simulator's captured requests); and from the start of the load.
  (iv)  the cloud's calls during each scale-up (+1, +4), from the simulator's captured requests:
        the most in any 1 s and any 10 s, against what the configured client-side rate limit
        allows in that window (burst + rate x window), and how many were single-resource GETs
        (the polls of transitions followed between cycles) rather than lists. --rate-limit sets a
        low limit and --latency-scale 1 a slower cloud, to check that following transitions
        never makes the cloud see more than the limit.
Medians over --runs runs (default 3). Each figure is printed with its target beside it.
"""
import argparse
import datetime
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "sandbox"))
sys.path.insert(0, os.path.join(REPO, "tests", "sandbox", "demo"))
import sandbox as sandbox_mod  # noqa: E402
import scenario  # noqa: E402

C = "/v1/clusters/orders"
MAX_LAG = 16 * 1024 * 1024
THRESHOLD = 6 * 1.1


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def wait(what, predicate, timeout, interval=0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return time.monotonic()
        except Exception:  # noqa: BLE001 - e.g. a replica not answering yet
            pass
        time.sleep(interval)
    raise RuntimeError(f"{what}: not within {timeout:.0f} s")


def settled(sb, n):
    st = sb.cluster_status()
    return st.get("serving") == n and len(st.get("replicas", [])) == n


def owned(sb):
    state = sb.cloud_state()
    return [s for s in state["servers"] if s["name"] != sandbox_mod.DONOR_NAME and s["status"] != "DELETED"]


def parse_time(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class CatchUpProbe:
    """For servers that appear after start(): when each was first seen ACTIVE, and when its
    replay lag was first under 16 MiB by our own psql probe."""

    def __init__(self, sb):
        self.sb = sb
        self.active = {}
        self.caught_up = {}
        self._stop = threading.Event()
        self.known = {s["id"] for s in owned(sb)}
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                for s in owned(self.sb):
                    sid = s["id"]
                    if sid in self.known or sid in self.caught_up:
                        continue
                    if s["status"] == "ACTIVE" and sid not in self.active:
                        self.active[sid] = time.monotonic()
                    if sid in self.active and s.get("address"):
                        try:
                            if self.sb.lag_bytes(s["address"]) <= MAX_LAG:
                                self.caught_up[sid] = time.monotonic()
                        except Exception:  # noqa: BLE001 - PostgreSQL still starting
                            pass
            except Exception:  # noqa: BLE001
                pass
            self._stop.wait(0.2)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=10)

    def pg_seconds(self):
        spans = [self.caught_up[s] - self.active[s] for s in self.caught_up if s in self.active]
        return max(spans) if spans else None


def scale_to(sb, n, timeout):
    t0 = time.monotonic()
    code, out = sb.api("PUT", C + "/override", {"replicas": n, "reason": "bench"})
    if code != 200:
        raise RuntimeError(f"PUT override {n}: {code} {out}")
    t1 = wait(f"{n} serving", lambda: settled(sb, n), timeout)
    return t1 - t0


def cloud_calls(sb, since, until):
    """The simulator's captured API requests (Keystone's included) between two wall times."""
    reqs = sb.cloud("GET", "/control/requests")["requests"]
    return [r for r in reqs if since <= parse_time(r["time"]) <= until]


def busiest(times, window):
    """The most timestamps in any window of `window` seconds."""
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] < t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def call_figures(calls):
    times = [parse_time(r["time"]) for r in calls]
    polls = sum(1 for r in calls if r["method"] == "GET" and
                any(f"/{kind}/" in r["path"] and not r["path"].rstrip("/").endswith(("/detail", f"/{kind}"))
                    for kind in ("volumes", "servers", "snapshots")))
    return {"calls": len(calls), "polls": polls, "max1": busiest(times, 1.0), "max10": busiest(times, 10.0)}


def actual_cloud_seconds(sb, since):
    """For the replicas created after `since` (wall time): the cloud's real time on their path,
    volume clone (created -> available, the simulator's copy included) plus server build (created
    -> ACTIVE), from the simulator's own records; the longest of them (they run in parallel)."""
    state = sb.cloud("GET", "/control/state")
    volumes = {v["id"]: v for v in state["volumes"]}
    best = None
    for srv in state["servers"]:
        if srv["name"] == sandbox_mod.DONOR_NAME or not srv.get("launched_at"):
            continue
        if parse_time(srv["created"]) < since:
            continue
        vol = next((volumes.get(b["uuid"]) for b in srv.get("bdms", []) if b.get("uuid") in volumes), None)
        if vol is None or not vol.get("ready_at"):
            continue
        total = (parse_time(vol["ready_at"]) - parse_time(vol["created"])) + \
                (parse_time(srv["launched_at"]) - parse_time(srv["created"]))
        best = total if best is None else max(best, total)
    return best


def timed_scale(sb, n, timeout):
    """scale_to, plus the cloud's calls while it ran."""
    w0 = time.time()
    t = scale_to(sb, n, timeout)
    figures = call_figures(cloud_calls(sb, w0, time.time()))
    figures["cloud"] = actual_cloud_seconds(sb, w0)
    return t, figures


def back_to_one(sb, timeout=300):
    sb.api("DELETE", C + "/override")
    wait("back to 1 replica", lambda: settled(sb, 1), timeout, interval=0.5)
    wait("one server left", lambda: len(owned(sb)) == 1, 120, interval=0.5)


def first_crossing(sb, since, until):
    """Timestamp (s) of the first raw sample of the backend's sessions over THRESHOLD."""
    q = urllib.parse.urlencode({"match[]": 'haproxy_backend_current_sessions{proxy="pg_replicas"}',
                                "start": f"{since:.3f}", "end": f"{until:.3f}"})
    with urllib.request.urlopen(sb.state["metrics_url"] + "/api/v1/export?" + q, timeout=10) as r:
        lines = r.read().decode().splitlines()
    best = None
    for line in lines:
        if not line.strip():
            continue
        series = json.loads(line)
        for value, ts in zip(series["values"], series["timestamps"]):
            if value > THRESHOLD and ts / 1000 >= since and (best is None or ts / 1000 < best):
                best = ts / 1000
    return best


def first_volume_post(sb, since):
    reqs = sb.cloud("GET", "/control/requests?service=volume")["requests"]
    times = [parse_time(r["time"]) for r in reqs
             if r["method"] == "POST" and r["path"].rstrip("/").endswith("/volumes") and parse_time(r["time"]) >= since]
    return min(times) if times else None


def one_run(sb, latency, i, modes):
    out = {"injected": latency["volume_create"] + latency["server_build"]}
    if "t1" in modes:
        log(f"run {i}: +1 replica")
        probe = CatchUpProbe(sb)
        try:
            out["t1"], out["calls1"] = timed_scale(sb, 2, 300)
        finally:
            probe.stop()
        out["pg"] = probe.pg_seconds()
        back_to_one(sb)

    if "t4" in modes:
        log(f"run {i}: +4 replicas")
        out["t4"], out["calls4"] = timed_scale(sb, 5, 400)
        log(f"run {i}: +4 replicas serving after {out['t4']:.1f} s")
        back_to_one(sb)

    if "reaction" not in modes:
        return out
    log(f"run {i}: load until the first cloud call")
    wall_start = time.time()
    load = scenario.Load(sb, 16, round_seconds=5).start()
    try:
        wait("a volume POST after the load started", lambda: first_volume_post(sb, wall_start), 120)
        t_post = first_volume_post(sb, wall_start)
    finally:
        load.stop()
    crossing = first_crossing(sb, wall_start - 1, t_post + 1)
    out["reaction"] = (t_post - crossing) if crossing is not None else None
    out["from_load"] = t_post - wall_start
    back_to_one(sb, timeout=400)
    return out


def keep_logs(root, dest):
    os.makedirs(dest, exist_ok=True)
    kept = []
    for rel in ("service.log", os.path.join("service", "events.jsonl"), "cloud.log", "dataplane.log",
                "cloud-requests.jsonl", os.path.join("haproxy", "haproxy.log")):
        src = os.path.join(root, rel)
        if os.path.exists(src):
            shutil.copy2(src, os.path.join(dest, os.path.basename(rel)))
            kept.append(os.path.basename(rel))
    log(f"logs kept in {dest}: {', '.join(kept) or 'none found'}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--latency-scale", type=float, default=0.25)
    p.add_argument("--rate-limit", type=float, default=100.0,
                   help="the service's client-side rate limit on the cloud, requests a second (burst the "
                        "same); the sandbox's default is 100")
    p.add_argument("--binary", default=os.path.join(REPO, "build", "bin", "replica-autoscaler"))
    p.add_argument("--root")
    p.add_argument("--only", default="t1,t4,reaction",
                   help="comma-separated measurements to run: t1, t4, reaction (default all)")
    p.add_argument("--keep-logs", metavar="DIR",
                   help="copy the service's log, its journal (events.jsonl) and the simulator's and "
                        "Data Plane double's logs and captured requests into DIR at the end")
    args = p.parse_args()
    if args.runs < 1 or not 0 < args.latency_scale <= 10 or not 0.5 <= args.rate_limit <= 1000:
        p.error("--runs >= 1, 0 < --latency-scale <= 10 and 0.5 <= --rate-limit <= 1000")
    burst = max(1, int(args.rate_limit))
    modes = {m.strip() for m in args.only.split(",") if m.strip()}
    if not modes or modes - {"t1", "t4", "reaction"}:
        p.error("--only takes t1, t4 and/or reaction")
    root = args.root or tempfile.mkdtemp(prefix="ra-bench-")
    os.makedirs(root, exist_ok=True)
    os.chmod(root, 0o755)
    octet = 250 - os.getpid() % 5
    settings = {"MAX_REPLICAS": 5, "SCALE_DOWN_WINDOW": "5s", "SCALE_DOWN_STEP": 4, "LOOP_INTERVAL": "2s",
                "SESSIONS_WINDOW": "4s",
                "RATE_LIMIT": f"{{requests_per_second: {args.rate_limit:g}, burst: {burst}}}"}
    results = []
    with sandbox_mod.Sandbox(root, profile="realistic", octet=octet, binary=args.binary, settings=settings,
                             log=log) as sb:
        latency = sb.cloud("GET", "/control/state")["latency"]
        latency = {k: round(v * args.latency_scale, 3) for k, v in latency.items()}
        sb.cloud("POST", "/control/profile", {"latency": latency})
        log(f"simulator latencies (realistic x {args.latency_scale}): {latency}")
        wait("the first replica", lambda: settled(sb, 1), 300, interval=0.5)
        for i in range(1, args.runs + 1):
            results.append(one_run(sb, latency, i, modes))
            log(f"run {i}: {results[-1]}")
    if args.keep_logs:
        keep_logs(root, args.keep_logs)
    if not args.root:
        shutil.rmtree(root, ignore_errors=True)

    def med(key):
        vals = [r[key] for r in results if r.get(key) is not None]
        return statistics.median(vals) if vals else float("nan")

    ratios = [r["t1"] / (r["injected"] + r["pg"]) for r in results if r.get("pg") is not None]
    # The same against what the simulator really took (its clone copies the data directory, on a
    # shared machine): what is left is the service's own time, plus HAProxy's admission.
    actual = [r["t1"] / (r["calls1"]["cloud"] + r["pg"]) for r in results
              if r.get("pg") is not None and r.get("calls1", {}).get("cloud")]
    par = [r["t4"] / r["t1"] for r in results if "t4" in r and "t1" in r]
    interval = 2.0

    def calls_med(which, key):
        vals = [r[which][key] for r in results if which in r and r[which].get(key) is not None]
        return statistics.median(vals) if vals else None

    def calls_max(which, key):
        vals = [r[which][key] for r in results if which in r]
        return max(vals) if vals else None

    print(f"\nreplica-autoscaler benchmarks: simulator profile realistic, latencies scaled x{args.latency_scale} "
          f"(volume_create {latency['volume_create']} s, server_build {latency['server_build']} s); "
          f"loop interval {interval:g} s, scrape interval 2 s, cloud rate limit {args.rate_limit:g}/s "
          f"(burst {burst}); medians of {len(results)} runs")

    def num(value, fmt):
        return "n/a" if value is None or value != value else format(value, fmt)

    rows = [
        ("time to serving, +1 replica", num(med("t1"), ".1f") + " s", ""),
        ("  injected latencies on its path", num(med("injected"), ".1f") + " s", ""),
        ("  PostgreSQL start + catch-up (measured)", num(med("pg"), ".1f") + " s", ""),
        ("(i) overhead ratio", num(statistics.median(ratios) if ratios else None, ".2f"), "<= 1.10"),
        ("  cloud's actual time on the path (simulator's records)",
         num(calls_med("calls1", "cloud"), ".1f") + " s", ""),
        ("  overhead ratio against the actual cloud time", num(statistics.median(actual) if actual else None, ".2f"),
         "(the service's own share, HAProxy's admission included)"),
        ("time to serving, +4 replicas", num(med("t4"), ".1f") + " s", ""),
        ("(ii) parallelism t(+4)/t(+1)", num(statistics.median(par) if par else None, ".2f"), "<= 1.10"),
        ("(iii) metric over threshold -> first cloud call", num(med("reaction"), ".1f") + " s",
         f"<= {interval:g} s (one interval)"),
        ("      load start -> first cloud call", num(med("from_load"), ".1f") + " s", ""),
    ]
    for which, label in (("calls1", "+1"), ("calls4", "+4")):
        if calls_med(which, "calls") is None:
            continue
        rows += [
            (f"(iv) cloud calls during {label} (of them polls)",
             f"{calls_med(which, 'calls'):.0f} ({calls_med(which, 'polls'):.0f})", ""),
            ("     most in any 1 s (max over runs)", f"{calls_max(which, 'max1')}",
             f"<= {burst + args.rate_limit:g} (burst + rate x 1 s)"),
            ("     most in any 10 s (max over runs)", f"{calls_max(which, 'max10')}",
             f"<= {burst + 10 * args.rate_limit:g} (burst + rate x 10 s)"),
        ]
    width = max(len(r[0]) for r in rows)
    print("-" * (width + 44))
    print(f"{'figure':{width}}  {'measured':>10}  target")
    for name, value, target in rows:
        print(f"{name:{width}}  {value:>10}  {target}")
    print("-" * (width + 44))

    def fig(r, key):
        return "-" if r.get(key) is None else f"{r[key]:.1f}"

    print("per run: " + "; ".join(
        f"t1 {fig(r, 't1')} t4 {fig(r, 't4')} pg {fig(r, 'pg')} reaction {fig(r, 'reaction')}" for r in results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
