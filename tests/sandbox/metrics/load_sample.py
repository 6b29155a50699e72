#!/usr/bin/python3
"""Loads a realistic two-hour sample of a PostgreSQL read cluster's load into a running
VictoriaMetrics, ending in a surge, for the `replica-autoscaler plan` demo.

    tests/sandbox/metrics/load_sample.py --url http://127.0.0.1:8428
    tests/sandbox/metrics/load_sample.py --dry-run > sample.prom     # just print the samples

The series are described in README.md beside this script. The data is deterministic for a given
--seed and --end, so a demo shows the same figures every time. Python standard library only.
"""

import argparse
import base64
import json
import math
import os
import random
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

BACKEND = "pg_replicas"


def smoothstep(x):
    x = min(1.0, max(0.0, x))
    return x * x * (3 - 2 * x)


def generate(cluster, replicas, end, hours, step, surge_minutes, surge_factor, seed):
    """Returns a list of (name, labels, value, timestamp_ms) tuples, oldest first."""
    rng = random.Random(seed)
    start = end - int(hours * 3600)
    start -= start % step
    surge_start = end - surge_minutes * 60
    servers = [f"{cluster}-replica-{i + 1}" for i in range(replicas)]
    backend = {"cluster": cluster, "backend": BACKEND}
    samples = []
    connections_total = 1_250_000.0
    t = start
    while t <= end:
        ms = t * 1000
        # A slow drift over the window plus noise: about 28 sessions per replica at rest.
        base = replicas * (28 + 5 * math.sin(2 * math.pi * (t - start) / 7200)) + rng.gauss(0, 3)
        factor = 1 + (surge_factor - 1) * smoothstep((t - surge_start) / (surge_minutes * 60 * 0.6))
        total = max(0, round(base * factor))

        # Split the backend's sessions over its servers, roughly evenly, summing exactly to total.
        weights = [1 + rng.uniform(-0.15, 0.15) for _ in servers]
        shares = [int(total * w / sum(weights)) for w in weights]
        shares[0] += total - sum(shares)

        samples.append(("haproxy_backend_current_sessions", backend, total, ms))
        samples.append(("haproxy_backend_active_servers", backend, replicas, ms))
        # About two new connections per second per open session (short read transactions).
        connections_total += total * 2 * step * rng.uniform(0.9, 1.1)
        samples.append(("haproxy_backend_connections_total", backend, round(connections_total), ms))
        for server, sessions in zip(servers, shares):
            samples.append(("haproxy_server_current_sessions", dict(backend, server=server),
                            sessions, ms))
            instance = {"cluster": cluster, "instance": f"{server}:9187", "server": server,
                        "datname": cluster}
            active = round(sessions * rng.uniform(0.3, 0.45) * (1 + 0.4 * (factor - 1) / surge_factor))
            active = min(active, sessions)
            # Every replica also holds a few idle connections of its own (monitoring, pgbouncer).
            samples.append(("pg_stat_activity_count", dict(instance, state="active"), active, ms))
            samples.append(("pg_stat_activity_count", dict(instance, state="idle"),
                            sessions - active + 3, ms))
            lag = abs(rng.gauss(0.05, 0.03)) * factor ** 2
            samples.append(("pg_replication_lag_seconds",
                            {k: v for k, v in instance.items() if k != "datname"},
                            round(lag, 3), ms))
        t += step
    return samples


def label_text(labels):
    def escape(v):
        return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in sorted(labels.items())) + "}"


def to_prometheus_text(samples):
    return "".join(f"{name}{label_text(labels)} {value} {ms}\n"
                   for name, labels, value, ms in samples)


def request(url, data=None, content_type=None, auth=None, timeout=10):
    req = urllib.request.Request(url, data=data)
    if content_type:
        req.add_header("Content-Type", content_type)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, resp.read()


def query(base, promql, at, auth):
    form = urllib.parse.urlencode({"query": promql, "time": f"{at:.3f}"}).encode()
    _, body = request(base + "/api/v1/query", form, "application/x-www-form-urlencoded", auth)
    answer = json.loads(body)
    result = answer.get("data", {}).get("result", [])
    return float(result[0]["value"][1]) if result else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8428",
                        help="VictoriaMetrics base URL, with a path prefix if any "
                             "(default %(default)s)")
    parser.add_argument("--cluster", default="orders", help="cluster label (default %(default)s)")
    parser.add_argument("--replicas", type=int, default=2,
                        help="replicas serving now (default %(default)s)")
    parser.add_argument("--hours", type=float, default=2, help="history length (default 2)")
    parser.add_argument("--step", type=int, default=30, help="seconds between samples (default 30)")
    parser.add_argument("--surge-minutes", type=int, default=20,
                        help="the surge starts this long before the end (default 20)")
    parser.add_argument("--surge-factor", type=float, default=3.5,
                        help="load at the end relative to the quiet level (default 3.5)")
    parser.add_argument("--end", type=int, default=None,
                        help="unix seconds of the last sample (default: a minute ago, whole step)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the samples (Prometheus text, ms timestamps) and load nothing")
    args = parser.parse_args()

    if args.replicas < 1 or args.step < 1 or args.hours <= 0 or args.surge_minutes < 1:
        parser.error("--replicas, --step, --surge-minutes must be >= 1 and --hours > 0")
    # VictoriaMetrics hides the newest 30 s (-search.latencyOffset) from queries: end a minute
    # back so that "now" in the demo sees the last sample.
    end = args.end if args.end is not None else int(time.time()) - 60
    end -= end % args.step
    samples = generate(args.cluster, args.replicas, end, args.hours, args.step,
                       args.surge_minutes, args.surge_factor, args.seed)
    text = to_prometheus_text(samples)
    if args.dry_run:
        sys.stdout.write(text)
        return 0

    base = args.url.rstrip("/")
    # VM_AUTH=user:password when VictoriaMetrics runs with -httpAuth.*; never on the command line.
    auth = os.environ.get("VM_AUTH") or None
    try:
        request(base + "/api/v1/import/prometheus", text.encode(), "text/plain", auth, timeout=60)
        request(base + "/internal/force_flush", auth=auth)
    except (urllib.error.URLError, OSError) as e:
        print(f"load_sample: cannot load into {base}: {e}", file=sys.stderr)
        return 1

    # Freshly imported data becomes searchable within moments: wait for it, boundedly.
    selector = f'{{cluster="{args.cluster}",backend="{BACKEND}"}}'
    sessions = None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            sessions = query(base, f"sum(haproxy_backend_current_sessions{selector})", end, auth)
        except (urllib.error.URLError, OSError, ValueError, KeyError) as e:
            print(f"load_sample: query failed: {e}", file=sys.stderr)
        if sessions is not None:
            break
        time.sleep(0.2)
    if sessions is None:
        print(f"load_sample: loaded data is not queryable at {base} after 15 s", file=sys.stderr)
        return 1
    quiet = query(base, f"sum(haproxy_backend_current_sessions{selector})",
                  end - args.surge_minutes * 60 - 600, auth)
    print(f"loaded {len(samples)} samples for cluster {args.cluster} "
          f"({args.hours:g} h, every {args.step} s, last at {end})")
    print(f"backend sessions: {quiet:.0f} before the surge, {sessions:.0f} now "
          f"({sessions / args.replicas:.1f} per replica over {args.replicas} replicas)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
