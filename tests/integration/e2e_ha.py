#!/usr/bin/python3
"""End to end: two instances of the service, one leading through an etcd lease (ha).

Both run the sandbox's configuration plus an `ha:` section (lease_ttl 3s, loop interval 1s),
each with its own API port, journal folder and instance name, and each reaches etcd through a
TCP relay of its own, so that a test can cut one instance off etcd without killing it.

1. exactly one leads; the follower answers reads and refuses writes (503, not_leader, naming
   the leader); /readyz says who leads
2. kill -9 the leader mid-provisioning (pgbench -C -S asks for 3): the other leads within
   lease_ttl + one interval, 3 serve, 3 servers and 3 volumes, no query failed
3. kill -9 the leader mid-drain (a manual count of 1, idle sessions hold the drain), under
   the same load: the other leads, the count survives (kept in etcd), 1 serves, 1 server and 1
   volume, no query failed
4. three more kills while idle: takeover times, and their median over all 5
5. the cloud simulator's request log: no server and no volume was asked for twice
6. the leader cut off etcd (its relay stopped): it stops leading within the TTL, the other leads
7. both restarted together: exactly one leads
"""
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_common import check, eventually, log, no_orphans, owned_resources, run, scenario, settled  # noqa: E402
import patroni_cluster  # noqa: E402
from sandbox_util import free_port, http, stop_group  # noqa: E402

C = "/v1/clusters/orders"
TTL = 3.0
INTERVAL = 1.0


class Relay:
    """A TCP relay on 127.0.0.1 to etcd; stop() refuses new connections and cuts the open ones."""

    def __init__(self, target_port):
        self.port = free_port()
        self.target = target_port
        self.conns = []
        self.lock = threading.Lock()
        self.listener = None

    def start(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(64)
        self.listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()
        return self

    def _accept(self, s):
        while True:
            try:
                client, _ = s.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=2)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self):
        if self.listener:
            self.listener.close()
            self.listener = None
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                    c.close()
                except OSError:
                    pass
            self.conns = []


class Instance:
    def __init__(self, sb, name, relay):
        self.sb, self.name, self.relay = sb, name, relay
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        folder = sb.path(f"service-{name}")
        os.makedirs(folder, exist_ok=True)
        with open(sb.state["config"]) as f:
            text = f.read()
        text = text.replace(f"listen: 127.0.0.1:{sb.state['api_port']}", f"listen: 127.0.0.1:{self.port}")
        text = text.replace(f"{sb.root}/service/events.jsonl", f"{folder}/events.jsonl")
        text += (f"\nha:\n  etcd:\n    endpoints: [http://127.0.0.1:{relay.port}]\n"
                 f"  lease_ttl: {int(TTL)}s\n  key_prefix: /e2e-ha\n  instance: {name}\n")
        self.config = os.path.join(folder, "config.yaml")
        with open(self.config, "w") as f:
            f.write(text)
        self.group = f"service-{name}"

    def start(self):
        argv = [self.sb.binary, "serve", "--config", self.config]
        self.proc, _ = self.sb._spawn(self.group, argv, f"{self.group}.log")

    def kill(self):
        pgid = self.sb.state["groups"].pop(self.group, None)
        self.sb._save()
        if pgid is not None:
            stop_group(pgid, grace=10, first=signal.SIGKILL)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def readyz(self):
        try:
            code, body = http("GET", self.url + "/readyz", timeout=1)
        except OSError:
            return None
        return body if code == 200 and isinstance(body, dict) else None

    def leading(self):
        r = self.readyz()
        return bool(r and r.get("leading"))

    def api(self, method, path, body=None, role="admin"):
        return http(method, self.url + path, body, token=self.sb.token(role), timeout=10)

    def status(self):
        code, body = self.api("GET", C, role="read-only")
        if code != 200:
            raise RuntimeError(f"{self.name} GET {C}: {code} {body}")
        return body


def leaders(instances):
    return [i for i in instances if i.leading()]


def the_leader(instances):
    found = leaders(instances)
    return found[0] if len(found) == 1 else None


def kill_leader(instances, what):
    """kill -9 the leader; the seconds until the other leads."""
    leader = eventually("one leader", lambda: the_leader(instances), 30, interval=0.1)
    other = [i for i in instances if i is not leader][0]
    log(f"kill -9 {leader.name} (leader) {what}")
    t0 = time.monotonic()
    leader.kill()
    eventually(f"{other.name} leads after {leader.name} was killed", other.leading, TTL + INTERVAL + 10,
               interval=0.05)
    took = time.monotonic() - t0
    log(f"takeover by {other.name} in {took:.2f} s")
    leader.start()
    eventually(f"{leader.name} back as a follower", lambda: (leader.readyz() or {}).get("leader") == other.name,
               30, interval=0.2)
    return took, other


def creates_per_name(sb):
    """POST /servers and POST /volumes per replica name, from the simulator's request log."""
    counts = {}
    for r in sb.cloud("GET", "/control/requests")["requests"]:
        if r["method"] != "POST" or not isinstance(r.get("body"), dict):
            continue
        path = r["path"].rstrip("/")
        if path.endswith("/servers") and "server" in r["body"]:
            key = ("server", r["body"]["server"].get("name"))
        elif path.endswith("/volumes") and "volume" in r["body"]:
            key = ("volume", r["body"]["volume"].get("name"))
        else:
            continue
        counts[key] = counts.get(key, 0) + 1
    return counts


def body(sb, args):
    etcd_url = patroni_cluster.PatroniCluster._start_etcd(types.SimpleNamespace(sb=sb))
    etcd_port = int(etcd_url.rsplit(":", 1)[1])
    a = Instance(sb, "a", Relay(etcd_port).start())
    b = Instance(sb, "b", Relay(etcd_port).start())
    both = [a, b]
    sb.kill_service()  # the sandbox's own single instance
    for i in both:
        i.start()

    # --- 1. one leader, one follower
    leader = eventually("exactly one leader", lambda: the_leader(both), 30, interval=0.2)
    follower = b if leader is a else a
    ready = eventually("the follower names the leader", lambda: (
        follower.readyz() if (follower.readyz() or {}).get("leader") == leader.name else None), 30)
    check(ready.get("leading") is False and ready.get("instance") == follower.name,
          f"the follower's /readyz: {ready}")
    code, out = follower.api("PUT", C + "/override", {"replicas": 2, "reason": "e2e ha"})
    check(code == 503 and out.get("error", {}).get("code") == "not_leader" and leader.name in
          out["error"].get("message", ""), f"the follower refuses a write: {code} {out}")
    check(follower.status().get("name") == "orders", "the follower answers reads")
    eventually("one serving replica", lambda: settled(the_leader(both).status(), 1), 150)

    takeovers = []
    # --- 2. mid-provisioning, under load
    sb.cloud("POST", "/control/profile", {"latency": {"server_build": 5}})
    load = scenario.Load(sb, 16, round_seconds=5).start()
    try:
        eventually("a server of the surge in BUILD",
                   lambda: [s for s in owned_resources(sb)[0] if s["status"] == "BUILD"], 60, interval=0.2)
        took, leader = kill_leader(both, "mid-provisioning")
        takeovers.append(took)
        eventually("3 serving replicas after the takeover", lambda: settled(leader.status(), 3), 150)
        eventually("3 servers and 3 volumes in the cloud", lambda: no_orphans(sb, 3), 60)
        check(True, "no orphan after the kill mid-provisioning")
    finally:
        load.stop()
    check(load.failed == 0 and load.aborted == 0, f"no query failed across the takeover ({load.summary()})")
    sb.cloud("POST", "/control/profile", {"latency": {"server_build": 0.3}})

    # --- 3. mid-drain
    code, out = leader.api("PUT", C + "/override", {"replicas": 2, "reason": "e2e ha"})
    check(code == 200, f"PUT override 2 ({code} {out})")
    eventually("2 serving replicas", lambda: settled(leader.status(), 2), 120)
    fe = sb.state["frontend_port"]
    # Idle sessions hold the drain (the drain counts every client backend). Not pg_sleep: a
    # running query holds a snapshot, and one landing on the replica that stays would hold up its
    # replay for max_standby_streaming_delay (30 s) against the heartbeat's cleanup records, so
    # that replica would be ejected for lag, correctly, leaving no server for a moment.
    sleepers = [subprocess.Popen(["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(fe), "-U", "postgres", "-d",
                                  "postgres"], stdin=subprocess.PIPE,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(4)]
    load = scenario.Load(sb, 16, round_seconds=5).start()
    try:
        code, out = leader.api("PUT", C + "/override", {"replicas": 1, "reason": "e2e ha drain"})
        check(code == 200, f"PUT override 1 ({code} {out})")

        def draining():
            return [n for n, s in sb.backend_servers().items()
                    if s["status"].startswith("DRAIN") or (s.get("admin", 0) & 8)]
        eventually("a replica in drain", draining, 60, interval=0.2)
        took, leader = kill_leader(both, "mid-drain")
        takeovers.append(took)
        # Read from etcd by the new leader's first cycle (an interval at most after it won).
        eventually("the new leader has the manual count of 1 (from etcd)",
                   lambda: (leader.status().get("manual_override") or {}).get("replicas") == 1, 10, interval=0.2)
        check(True, "the new leader has the manual count (from etcd)")
        for p in sleepers:
            p.kill()
            p.wait()
        eventually("1 serving replica", lambda: settled(leader.status(), 1), 150)
        eventually("1 server and 1 volume in the cloud", lambda: no_orphans(sb, 1), 60)
        check(True, "no orphan after the kill mid-drain")
    finally:
        for p in sleepers:
            if p.poll() is None:
                p.kill()
                p.wait()
        load.stop()
    check(load.failed == 0 and load.aborted == 0,
          f"no query failed across the takeover mid-drain and the removal ({load.summary()})")

    # --- 4. more kills for the takeover time
    for n in range(3):
        time.sleep(2)
        took, leader = kill_leader(both, f"idle ({n + 3}/5)")
        takeovers.append(took)
    median = statistics.median(takeovers)
    log("takeover times after kill -9: " + ", ".join(f"{t:.2f} s" for t in takeovers) +
        f"; median of {len(takeovers)}: {median:.2f} s")
    check(max(takeovers) <= TTL + INTERVAL + 1.5,
          f"every takeover within lease_ttl + one interval (+1.5 s of polling): max {max(takeovers):.2f} s")

    # --- 5. nothing asked for twice
    counts = creates_per_name(sb)
    twice = {k: v for k, v in counts.items() if v > 1}
    check(counts and not twice, f"{len(counts)} creates, none sent twice ({twice})")

    # --- 6. partition the leader from etcd
    leader = eventually("one leader", lambda: the_leader(both), 30, interval=0.1)
    other = [i for i in both if i is not leader][0]
    log(f"cut {leader.name} off etcd")
    t0 = time.monotonic()
    leader.relay.stop()
    eventually(f"{leader.name} stops leading", lambda: (leader.readyz() or {}).get("leading") is False,
               TTL + 1, interval=0.05)
    stopped = time.monotonic() - t0
    eventually(f"{other.name} leads", other.leading, TTL + INTERVAL + 10, interval=0.05)
    log(f"partitioned leader stopped leading after {stopped:.2f} s; {other.name} led after "
        f"{time.monotonic() - t0:.2f} s")
    check(stopped <= TTL, f"the partitioned leader stopped within the TTL ({stopped:.2f} s)")
    leader.relay.start()
    eventually(f"{leader.name} follows again", lambda: (leader.readyz() or {}).get("leader") == other.name, 30)

    # --- 7. both restarted together
    for i in both:
        i.kill()
    for i in both:
        i.start()
    eventually("a leader after both restarted", lambda: the_leader(both), 30, interval=0.2)
    for _ in range(20):
        n = len(leaders(both))
        check(n <= 1, f"never two leaders ({n})")
        time.sleep(0.25)
    check(the_leader(both) is not None, "exactly one leads after both restarted")
    for i in both:
        i.kill()
        i.relay.stop()


if __name__ == "__main__":
    sys.exit(run("e2e_ha", body, settings={"LOOP_INTERVAL": "1s", "SCALE_DOWN_WINDOW": "5s",
                                            "DRAIN_TIMEOUT": "3m"}, budget=480))
