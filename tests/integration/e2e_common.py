"""What the end-to-end tests (tests/integration/e2e_*.py) share: arguments, a sandbox of their
own in a temporary folder on a free loopback octet, bounded waits, checks that say what failed,
and the service's log tail when one does.

Each test is a script run by ctest (label integration) as
  /usr/bin/python3 tests/integration/e2e_NAME.py --binary build/bin/replica-autoscaler
and exits 0 when every check held. --keep leaves the sandbox's folder (not its processes) for a
post-mortem.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "sandbox"))
sys.path.insert(0, os.path.join(REPO, "tests", "sandbox", "demo"))
import sandbox as sandbox_mod  # noqa: E402,F401  (re-exported for the tests)
import scenario  # noqa: E402,F401
from sandbox import Sandbox, address_free  # noqa: E402


class CheckFailed(AssertionError):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)
    print(f"  ok: {message}", flush=True)


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def eventually(what, predicate, timeout, interval=0.5):
    """Polls until predicate() returns a true value (returned); raises CheckFailed on timeout."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - e.g. the API restarting
            last_error = e
        time.sleep(interval)
    raise CheckFailed(f"{what}: not within {timeout:.0f} s" + (f" (last error: {last_error})" if last_error else ""))


def free_octet(start):
    """A 127.0.N.x range whose .1, .2 and .250 are free on ports 5432 (PostgreSQL) and 8008 (the
    REST API of a Patroni member, in the Patroni mode)."""
    for i in range(50):
        octet = 200 + (start + i) % 50
        if all(address_free(f"127.0.{octet}.{last}", port) for last in (1, 2, 250) for port in (5432, 8008)):
            return octet
    raise RuntimeError("no free loopback octet in 127.0.200-249")


def settled(status, n):
    return status.get("serving") == n and len(status.get("replicas", [])) == n


def owned_resources(sb):
    """Servers (not DELETED) and volumes of the simulated cloud other than the donor's."""
    state = sb.cloud_state()
    servers = [s for s in state["servers"] if s["name"] != sandbox_mod.DONOR_NAME and s["status"] != "DELETED"]
    volumes = [v for v in state["volumes"] if v["id"] != sb.state["donor_volume_id"]]
    return servers, volumes


def no_orphans(sb, expected):
    """True when exactly `expected` servers and as many volumes exist, and each server's volume
    is one of them (a replica that the service knows is built from exactly one of each)."""
    servers, volumes = owned_resources(sb)
    if len(servers) != expected or len(volumes) != expected:
        return False
    volume_ids = {v["id"] for v in volumes}
    return all(any(b["uuid"] in volume_ids for b in s["bdms"]) for s in servers)


def metric_value(sb, name, labels=None):
    """Sum of a metric's samples on the service's /metrics whose labels include `labels`."""
    status, text = sandbox_mod.http("GET", sb.state["api_url"] + "/metrics", timeout=5)
    if status != 200:
        raise CheckFailed(f"/metrics answered {status}")
    total = 0.0
    for line in str(text).splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in (labels or {}).items()):
            total += float(value)
    return total


def cli(sb, *args, role="admin", timeout=180):
    """The service's client command against the sandbox's API: (exit status, stdout + stderr)."""
    token_file = sb.state["admin_token_file"] if role == "admin" else sb.state["read_only_token_file"]
    argv = [sb.binary] + list(args) + ["--api", sb.state["api_url"], "--token-file", token_file]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    return r.returncode, r.stdout


def diagnose(sb):
    print("---- the service's log (last lines) ----\n" + sb.service_log_tail(60), flush=True)
    try:
        print("---- the last events ----")
        for e in sb.events(limit=30)[-30:]:
            print(json.dumps(e))
        print("---- cloud ----")
        servers, volumes = owned_resources(sb)
        for s in servers:
            print(f"server {s['name']} {s['status']} {s.get('availability_zone')}")
        for v in volumes:
            print(f"volume {v['name']} {v['status']}")
        print("---- HAProxy ----")
        print(json.dumps(sb.backend_servers()))
    except Exception as e:  # noqa: BLE001 - the service may be down
        print(f"(more diagnostics unavailable: {e})")


def run(name, body, settings=None, budget=300, scale=1, **sandbox_args):
    """Parses the arguments, starts a sandbox, runs body(sb, args), stops everything; the exit
    status. `budget` bounds the whole test (SIGALRM), below ctest's TIMEOUT. `sandbox_args` go to
    Sandbox (zones, zone_latency)."""
    p = argparse.ArgumentParser()
    p.add_argument("--binary", default=os.path.join(REPO, "build", "bin", "replica-autoscaler"))
    p.add_argument("--keep", action="store_true", help="keep the sandbox folder")
    args = p.parse_args()
    if not os.access(args.binary, os.X_OK):
        print(f"{name}: {args.binary} is not built", file=sys.stderr)
        return 1

    def on_alarm(signum, frame):
        raise CheckFailed(f"{name}: over its budget of {budget} s")
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(budget)
    root = tempfile.mkdtemp(prefix=f"ra-{name}-")
    os.chmod(root, 0o755)
    sb = Sandbox(root, octet=free_octet(os.getpid()), binary=args.binary, settings=settings, scale=scale,
                 log=log, **sandbox_args)
    ok = False
    t0 = time.monotonic()
    try:
        with sb:
            try:
                body(sb, args)
            except BaseException:
                diagnose(sb)  # while everything still runs
                raise
        ok = True
    except Exception as e:  # noqa: BLE001
        print(f"\n{name}: FAILED: {e}", flush=True)
        if not isinstance(e, CheckFailed):
            traceback.print_exc()
    finally:
        signal.alarm(0)
        if not sb.state.get("groups") == {}:
            sb.down()
        if ok and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        elif not ok:
            print(f"{name}: the sandbox's files are in {root}", flush=True)
    log(f"{name}: {'passed' if ok else 'FAILED'} in {time.monotonic() - t0:.0f} s")
    return 0 if ok else 1
