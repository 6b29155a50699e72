"""The network between the simulated VMs and the PostgreSQL primary: per-zone latency.

Every VM and the primary live on loopback, so the kernel gives them all the same sub-millisecond
path, and `tc netem` on `lo` cannot tell zones apart (a standby's walreceiver connects from
127.0.0.1, whatever address the VM listens on; see README.md). So the simulator is the network:
for each availability zone with a latency (`zone_latency_ms`, e.g. {"az2": 40}), it runs a TCP
relay on loopback in front of the primary that delays each direction by half the latency, and a
server booted in that zone is given the relay as its primary (its config drive's user_data says
primary_host/primary_port = the relay). Every member of primary_hosts (the hosts that may become
the primary) gets its own relay the same way, so a replica in the zone follows a switchover at
the zone's latency too. A round trip through the relay takes the zone's latency more than a
direct one. Zones without a latency reach the primary directly.

The latency of a zone can change while its relay runs (POST /control/profile
{"zone_latency_ms": {...}}); new bytes get the new delay. A relay outlives the servers that use
it and stops with the simulator.
"""
import collections
import json
import re
import socket
import threading
import time


class LatencyRelay:
    """Accepts on (listen_host, an ephemeral port) and forwards each connection to `target`,
    holding every chunk `one_way()` seconds (read at the time the chunk arrives) in each
    direction. Chunks keep their order; throughput is not limited, only delayed."""

    def __init__(self, target, one_way, listen_host="127.0.0.1"):
        self.target = target
        self.one_way = one_way
        self.listener = socket.create_server((listen_host, 0))
        self.address = self.listener.getsockname()[:2]
        self.stopped = threading.Event()
        self.sockets = set()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, name=f"relay-{self.address[1]}", daemon=True).start()

    def close(self):
        self.stopped.set()
        try:
            self.listener.close()
        except OSError:
            pass
        with self.lock:
            for s in list(self.sockets):
                _close(s)

    def _accept(self):
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                _close(client)  # the primary is down: so is the path to it
                continue
            with self.lock:
                self.sockets.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                _Direction(self, src, dst)


class _Direction:
    """One direction of one relayed connection: a reader stamps chunks, a writer sends each at
    its stamp plus the one-way delay."""

    def __init__(self, relay, src, dst):
        self.relay, self.src, self.dst = relay, src, dst
        self.queue = collections.deque()
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._write, daemon=True).start()

    def _read(self):
        while True:
            try:
                data = self.src.recv(65536)
            except OSError:
                data = b""
            with self.cond:
                self.queue.append((time.monotonic() + self.relay.one_way(), data))
                self.cond.notify()
            if not data:
                return

    def _write(self):
        while True:
            with self.cond:
                while not self.queue:
                    self.cond.wait()
                due, data = self.queue.popleft()
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if not data:  # the other side closed its sending half: pass the FIN on, later
                try:
                    self.dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                self._release()
                return
            try:
                self.dst.sendall(data)
            except OSError:
                _close(self.src)
                _close(self.dst)
                self._release()
                return

    def _release(self):
        with self.relay.lock:
            self.relay.sockets.discard(self.src)
            # Both halves done (the peer direction already released dst): close for good.
            if self.dst not in self.relay.sockets:
                _close(self.src)
                _close(self.dst)


def _port(value):
    """A port as the first-boot script takes it (a number or digits, 1..65535), or None."""
    if isinstance(value, bool) or not isinstance(value, (int, str)) \
            or not re.fullmatch(r"[0-9]{1,5}", str(value)):
        return None
    return int(value) if 1 <= int(value) <= 65535 else None


def _host(value):
    """Whether the first-boot script takes `value` as a host (its rule: no comma, space, quote)."""
    return isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9.:_-]+", value) is not None


def _close(s):
    try:
        s.close()
    except OSError:
        pass


class Network:
    """The zones' latency to the primary and the relays that make it."""

    def __init__(self, zones, zone_latency_ms=None):
        self.zones = list(zones)
        self.lock = threading.Lock()
        self.zone_latency_ms = {}
        self.relays = {}  # (zone, host, port) -> LatencyRelay
        self.set_latencies(zone_latency_ms or {})

    def set_latencies(self, latencies):
        """Validates all, then applies: {zone: milliseconds >= 0}. Raises ValueError."""
        clean = {}
        for zone, ms in latencies.items():
            if zone not in self.zones:
                raise ValueError(f"zone_latency_ms: unknown zone '{zone}' (zones: {', '.join(self.zones)})")
            if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not 0 <= ms <= 10000:
                raise ValueError(f"zone_latency_ms.{zone}: a number of milliseconds in [0, 10000]")
            clean[zone] = float(ms)
        with self.lock:
            self.zone_latency_ms.update(clean)
            return dict(self.zone_latency_ms)

    def latencies(self):
        with self.lock:
            return dict(self.zone_latency_ms)

    def primary_for(self, zone, host, port):
        """The address a VM in `zone` reaches the primary (host, port) at: a relay when the zone
        has a latency, the primary itself otherwise."""
        with self.lock:
            if not self.zone_latency_ms.get(zone):
                return host, port
            key = (zone, host, int(port))
            relay = self.relays.get(key)
            if relay is None:
                relay = LatencyRelay((host, int(port)),
                                     lambda: self.zone_latency_ms.get(zone, 0.0) / 2000.0)
                self.relays[key] = relay
            return relay.address

    def route_user_data(self, zone, user_data):
        """user_data as the VM in `zone` sees it on its config drive: primary_host/primary_port,
        and every {"host", "port"} of primary_hosts (the members that may be the primary), each
        pointing at the zone's relay to that host:port when the zone has a latency. Anything
        that is not the service's JSON object with a primary passes unchanged, and so does an
        entry of primary_hosts the first-boot script would refuse (it says why)."""
        if user_data is None or not self.latencies().get(zone):
            return user_data
        try:
            doc = json.loads(user_data)
        except (ValueError, UnicodeDecodeError):
            return user_data
        if not isinstance(doc, dict):
            return user_data
        routed = False
        if _host(doc.get("primary_host")):
            port = _port(doc.get("primary_port", 5432))
            if port is not None:
                doc["primary_host"], doc["primary_port"] = self.primary_for(zone, doc["primary_host"], port)
                routed = True
        members = doc.get("primary_hosts")
        if isinstance(members, list):
            for member in members:
                if not isinstance(member, dict) or not _host(member.get("host")):
                    continue
                port = _port(member.get("port", 5432))
                if port is not None:
                    member["host"], member["port"] = self.primary_for(zone, member["host"], port)
                    routed = True
        return json.dumps(doc).encode() if routed else user_data

    def relay_view(self):
        with self.lock:
            return [{"zone": z, "primary": f"{h}:{p}", "relay": "%s:%d" % r.address,
                     "latency_ms": self.zone_latency_ms.get(z, 0.0)}
                    for (z, h, p), r in self.relays.items()]

    def close(self):
        with self.lock:
            relays, self.relays = list(self.relays.values()), {}
        for r in relays:
            r.close()
