#!/usr/bin/python3
"""The demo's scenario, run by scripts/demo.sh against a sandbox that `sandbox.py up` started.

  scenario.py --root DIR [--timeout 900] [--surge-clients 16] [--lull-clients 2]

1. start: wait until the service has built its first replica and it serves (min_replicas 1)
2. surge: pgbench -n -C -S -c 16 through HAProxy, in bounded 10 s rounds, until 3 replicas serve
3. lull: light load only (2 clients, below one replica's share) until 1 replica is left; the
   replicas leaving are drained while pgbench keeps connecting, so a failed query would show
4. summary: time per phase, each replica's way through its phases, queries run and failed
A live view of the replicas and their phases is printed every 2 s. Exits 1 on a timeout or on any
failed query (with the service's log tail), 0 otherwise. The pieces (Load, LiveView, wait_for)
are reused by the end-to-end tests.
"""
import argparse
import datetime
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import sandbox as sandbox_mod  # noqa: E402


class Load:
    """pgbench through HAProxy in consecutive bounded rounds on a thread, until stop(); sums
    what every round did."""

    def __init__(self, sb, clients, round_seconds=10):
        self.sb = sb
        self.clients = clients
        self.round_seconds = round_seconds
        self.processed = 0
        self.failed = 0
        self.aborted = 0
        self.rounds = 0
        self.bad_outputs = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._proc = None

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            proc = self.sb.start_pgbench(clients=self.clients, seconds=self.round_seconds,
                                         log_name=f"pgbench-c{self.clients}-{self.rounds}.log")
            self._proc = proc
            r = self.sb.finish_pgbench(proc)
            self.rounds += 1
            self.processed += r["processed"]
            self.failed += r["failed"]
            self.aborted += r["aborted_clients"]
            if not r["ok"]:
                self.bad_outputs.append(r["output"][-1500:])

    def stop(self):
        """Lets the round in progress finish (at most round_seconds + its bound)."""
        self._stop.set()
        self._thread.join(timeout=self.round_seconds + 90)

    def summary(self):
        return f"{self.processed} transactions, {self.failed} failed, {self.aborted} clients aborted"


def short_bytes(n):
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f}{unit}"
        n /= 1024
    return f"{n:.0f}TiB"


class LiveView:
    """Prints one line per refresh: desired/serving and every replica with its phase; remembers
    when each replica was first seen, first serving and last seen."""

    def __init__(self, sb, t0, out=sys.stdout):
        self.sb = sb
        self.t0 = t0
        self.out = out
        self.replicas = {}  # name -> {"seen", "serving", "gone", "phases": [..]}
        self.last = None

    def refresh(self, phase, load=None):
        now = time.monotonic()
        try:
            st = self.sb.cluster_status()
        except Exception as e:  # noqa: BLE001 - the service may be restarting
            print(f"[{now - self.t0:5.0f}s] {phase:6} (status unavailable: {e})", file=self.out, flush=True)
            return None
        self.last = st
        names = set()
        parts = []
        for r in st.get("replicas", []):
            name = r["name"]
            names.add(name)
            rec = self.replicas.setdefault(name, {"seen": now, "serving": None, "gone": None, "phases": []})
            if not rec["phases"] or rec["phases"][-1][0] != r["phase"]:
                rec["phases"].append((r["phase"], now))
            if r["phase"] == "serving" and rec["serving"] is None:
                rec["serving"] = now
            lag = "" if r.get("lag_bytes") is None else f" lag {short_bytes(r['lag_bytes'])}"
            parts.append(f"{name.split('-')[-1]} {r['phase']}{lag} {r.get('sessions', 0)} sess")
        for name, rec in self.replicas.items():
            if name not in names and rec["gone"] is None:
                rec["gone"] = now
        line = (f"[{now - self.t0:5.0f}s] {phase:6} desired {st.get('desired')} serving "
                f"{st.get('serving')} | " + (" | ".join(parts) or "no replica"))
        if load is not None:
            line += f" | load {load.processed} tx, {load.failed} failed"
        print(line, file=self.out, flush=True)
        return st


def wait_for(view, phase, predicate, timeout, load=None, interval=2.0):
    """Refreshes the view every `interval` s until predicate(status) holds; False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = view.refresh(phase, load)
        if st is not None and predicate(st):
            return True
        time.sleep(interval)
    return False


def settled(st, n):
    """Exactly n replicas, all serving, none leaving."""
    return st.get("serving") == n and len(st.get("replicas", [])) == n


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True)
    p.add_argument("--timeout", type=float, default=900, help="the whole scenario, seconds")
    p.add_argument("--surge-clients", type=int, default=16)
    p.add_argument("--lull-clients", type=int, default=2)
    args = p.parse_args()

    sb = sandbox_mod.Sandbox.attach(args.root)
    t0 = time.monotonic()
    end = t0 + args.timeout
    view = LiveView(sb, t0)
    phases = []
    load_surge = Load(sb, args.surge_clients)
    load_lull = Load(sb, args.lull_clients)

    def fail(message):
        print(f"\ndemo: FAILED: {message}", flush=True)
        for r in (view.last or {}).get("replicas", []):
            print(f"  {r['name']}: {r['phase']} ({r.get('detail') or 'no detail'})")
        if view.last and view.last.get("plan_reason"):
            print(f"  the service's last cycle: {view.last['plan_reason']}")
        print("---- the service's log (last lines) ----")
        print(sb.service_log_tail(40))
        return 1

    def budget(share):
        return max(10.0, min(share, end - time.monotonic()))

    print("==> start: the service builds its first replica from a golden snapshot of the donor", flush=True)
    t = time.monotonic()
    if not wait_for(view, "start", lambda st: settled(st, 1), budget(300)):
        return fail("no replica serving after the start budget")
    phases.append(("start (0 -> 1 serving)", time.monotonic() - t))

    print(f"==> surge: pgbench -n -C -S -c {args.surge_clients} through HAProxy until 3 replicas serve",
          flush=True)
    t = time.monotonic()
    load_surge.start()
    ok = wait_for(view, "surge", lambda st: settled(st, 3), budget(360), load_surge)
    phases.append(("surge (1 -> 3 serving)", time.monotonic() - t))
    load_surge.stop()
    if not ok:
        return fail("3 replicas were not serving within the surge budget")

    print(f"==> lull: {args.lull_clients} clients only, until 1 replica is left", flush=True)
    t = time.monotonic()
    load_lull.start()
    ok = wait_for(view, "lull", lambda st: settled(st, 1), budget(360), load_lull)
    phases.append(("lull (3 -> 1)", time.monotonic() - t))
    load_lull.stop()
    if not ok:
        return fail("the cluster did not shrink back to 1 replica within the lull budget")

    total = time.monotonic() - t0
    print("\n==> summary")
    for name, seconds in phases:
        print(f"  {name:28} {seconds:6.1f} s")
    print(f"  {'total':28} {total:6.1f} s")
    print("\n  replica                       built in   left after   phases seen (first seen -> serving, -> gone)")
    for name, rec in sorted(view.replicas.items(), key=lambda kv: kv[1]["seen"]):
        built = f"{rec['serving'] - rec['seen']:6.1f} s" if rec["serving"] else "   never"
        left = f"{rec['gone'] - rec['seen']:6.1f} s" if rec["gone"] else "  (stays)"
        path = " > ".join(ph for ph, _ in rec["phases"])
        print(f"  {name:28} {built}  {left}   {path}")
    try:
        events = sb.events()
        by_type = {}
        for e in events:
            by_type[e.get("type", "?")] = by_type.get(e.get("type", "?"), 0) + 1
        print("\n  events in the journal: " + ", ".join(f"{k} {v}" for k, v in sorted(by_type.items())))
    except Exception as e:  # noqa: BLE001
        print(f"\n  events: unavailable ({e})")
    processed = load_surge.processed + load_lull.processed
    failed = load_surge.failed + load_lull.failed
    aborted = load_surge.aborted + load_lull.aborted
    print(f"\n  queries run     {processed}  (surge {load_surge.processed}, lull {load_lull.processed})")
    print(f"  queries failed  {failed}  (clients aborted on a connection error: {aborted})")
    if failed or aborted:
        for out in (load_surge.bad_outputs + load_lull.bad_outputs)[:2]:
            print(out)
        return fail(f"{failed} failed queries, {aborted} aborted clients")
    print(f"\ndemo: done at {datetime.datetime.now():%H:%M:%S}, zero failed queries")
    return 0


if __name__ == "__main__":
    sys.exit(main())
