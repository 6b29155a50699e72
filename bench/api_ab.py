#!/usr/bin/python3
"""The API listener's throughput with ApacheBench (apache2-utils): bench only, not CI.

Starts `replica-autoscaler serve` standalone (tests/integration/api_service.py: one cluster whose
cloud is unreachable, so only the API works), then for each run and each endpoint
`ab -c 32 -n 20000`: /v1/clusters/orders with the admin bearer token, and /healthz. Prints the
median requests/s and p99 (ms) per endpoint over the runs.

  bench/api_ab.py [--binary build/bin/replica-autoscaler] [--runs 3] [-c 32] [-n 20000]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from api_service import ADMIN_TOKEN, Service, raise_fd_limit  # noqa: E402


def ab(url, concurrency, requests, token=None):
    argv = ["ab", "-q", "-k", "-c", str(concurrency), "-n", str(requests)]
    if token:
        argv += ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(argv + [url], capture_output=True, text=True, timeout=600).stdout
    rps = float(re.search(r"Requests per second:\s+([\d.]+)", out).group(1))
    p99 = float(re.search(r"^\s*99%\s+(\d+)", out, re.M).group(1))
    failed = int(re.search(r"Failed requests:\s+(\d+)", out).group(1))
    # ab counts an answer whose length differs from the first as failed ("Length"): a cluster's
    # status changes length as its cycles run, so only the other kinds are real failures.
    kinds = re.search(r"\(Connect: (\d+), Receive: (\d+), Length: (\d+), Exceptions: (\d+)\)", out)
    if kinds:
        failed -= int(kinds.group(3))
    non2xx = re.search(r"Non-2xx responses:\s+(\d+)", out)
    return rps, p99, failed, int(non2xx.group(1)) if non2xx else 0


def main():
    parser = argparse.ArgumentParser()
    default_build = os.environ.get("BUILD_DIR", os.path.join(HERE, "..", "build"))
    parser.add_argument("--binary", default=os.path.join(default_build, "bin", "replica-autoscaler"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("-c", type=int, default=32)
    parser.add_argument("-n", type=int, default=20000)
    args = parser.parse_args()
    raise_fd_limit(4096)
    service = Service(args.binary)
    base = f"http://127.0.0.1:{service.port}"
    endpoints = [("/v1/clusters/orders", ADMIN_TOKEN), ("/healthz", None)]
    figures = {path: [] for path, _ in endpoints}
    try:
        for run in range(args.runs):
            for path, token in endpoints:
                rps, p99, failed, non2xx = ab(base + path, args.c, args.n, token)
                figures[path].append((rps, p99))
                print(f"run {run + 1} {path}: {rps:.0f} req/s, p99 {p99:.0f} ms, "
                      f"{failed} failed (length changes not counted), {non2xx} non-2xx", flush=True)
    finally:
        service.stop()
    print(f"\nab -c {args.c} -n {args.n}, median of {args.runs} runs:")
    for path, runs in figures.items():
        print(f"  {path}: {statistics.median(r for r, _ in runs):.0f} req/s, "
              f"p99 {statistics.median(p for _, p in runs):.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
