"""The simulated cloud's state: projects, tokens, servers, volumes, snapshots, zones, quotas,
latencies and injected faults. Pure Python data; the service modules (nova.py, cinder.py, ...) render it.

Everything here is written from the OpenStack API references, independently of the C++
client: the two must not agree on a mistake.
"""
import datetime
import hashlib
import random
import secrets
import threading
import uuid

PROFILES = {
    # Seconds each transition takes. "fast" keeps tests quick; "realistic" is what a
    # mid-sized private cloud shows (demos, benchmarks).
    "fast": {"volume_create": 0.2, "volume_delete": 0.1, "snapshot_create": 0.2,
             "snapshot_delete": 0.1, "server_build": 0.3, "server_delete": 0.2,
             "attach": 0.05, "recordset": 0.1},
    "realistic": {"volume_create": 12.0, "volume_delete": 4.0, "snapshot_create": 8.0,
                  "snapshot_delete": 3.0, "server_build": 25.0, "server_delete": 6.0,
                  "attach": 2.0, "recordset": 3.0},
}


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(ts, micro=False, zulu=True):
    """Nova writes '2026-11-21T04:43:40Z'; Cinder '2026-11-21T04:43:40.000000'; Keystone
    '2026-11-21T04:43:40.000000Z'."""
    if ts is None:
        return None
    text = ts.strftime("%Y-%m-%dT%H:%M:%S.%f" if micro else "%Y-%m-%dT%H:%M:%S")
    return text + ("Z" if zulu else "")


def new_id():
    return str(uuid.uuid4())


class Fault:
    """One injected failure rule (see the control endpoint)."""

    def __init__(self, op, status=500, rate=1.0, count=None, retry_after=None, message=None):
        self.op = op
        self.status = int(status)
        self.rate = float(rate)
        self.count = None if count is None else int(count)
        self.retry_after = retry_after
        self.message = message

    def matches(self, op):
        if self.count is not None and self.count <= 0:
            return False
        if self.op not in ("*", op) and not (self.op.endswith(".*") and op.startswith(self.op[:-1])):
            return False
        return random.random() < self.rate

    def consume(self):
        if self.count is not None:
            self.count -= 1


class Cloud:
    def __init__(self, profile="fast", sbercloud=False, region=None, zones=("nova",),
                 project_name=None, username="demo", password="demo-password",
                 app_cred_id="ac-demo", app_cred_secret="ac-demo-secret", token_ttl=3600,
                 quotas=None, address_base="127.0.100", root=None):
        self.lock = threading.RLock()
        self.profile_name = profile
        self.latency = dict(PROFILES[profile])
        self.sbercloud = sbercloud
        # Cinder's osapi_max_limit: lists are cut at this many items and carry a next link.
        self.max_limit = 1000
        # A fault mode: Nova's ?tags= and Cinder's ?metadata= filters are ignored and every
        # server or volume of the project is listed (as a proxy or an old cloud may do).
        self.ignore_filters = False
        self.region = region or ("ru-moscow-1" if sbercloud else "RegionOne")
        # SberCloud (Huawei) names the default project after the region.
        self.project = {"id": uuid.uuid5(uuid.NAMESPACE_DNS, "project." + self.region).hex,
                        "name": project_name or (self.region if sbercloud else "demo"),
                        "domain": {"id": "default", "name": "Default"}}
        self.user = {"id": uuid.uuid5(uuid.NAMESPACE_DNS, "user." + username).hex,
                     "name": username, "domain": {"id": "default", "name": "Default"},
                     "password": password}
        self.app_cred = {"id": app_cred_id, "name": "autoscaler", "secret": app_cred_secret}
        self.token_ttl = token_ttl
        self.tokens = {}  # value -> {"expires": datetime, "project": bool, "method": str}
        self.zones = list(zones)
        self.flavors = {
            "1": {"id": "1", "name": "m1.tiny", "ram": 512, "vcpus": 1, "disk": 1},
            "2": {"id": "2", "name": "m1.small", "ram": 2048, "vcpus": 1, "disk": 20},
            "3": {"id": "3", "name": "m1.medium", "ram": 4096, "vcpus": 2, "disk": 40},
            "pg.replica": {"id": "pg.replica", "name": "pg.replica", "ram": 8192, "vcpus": 4,
                           "disk": 0},
        }
        self.networks = {"private": "6d0a3f7a-2b9c-4a5e-9a57-1f2e3d4c5b6a"}
        self.security_groups = {"default", "postgres"}
        self.keypairs = {"ops"}
        self.images = {"c1b7bd39-1c6e-4c6e-8b0c-7a9fb04f1d1e": "replica-image"}
        self.quotas = {"instances": 20, "cores": 80, "ram": 327680, "volumes": 40,
                       "gigabytes": 2000, "snapshots": 20}
        if quotas:
            self.quotas.update(quotas)
        self.servers = {}
        self.volumes = {}
        self.snapshots = {}
        self.zones_dns = {}
        self.recordsets = {}
        self.faults = []
        self.server_behaviour = []  # [{"match": substring, "outcome": "error"|"stuck", "fault": str}]
        self.volume_behaviour = []  # [{"match": substring, "outcome": "error"|"slow", "delay": s}]
        self.requests = []  # captured requests
        # Requests per fault-injection op ("nova.list_servers", ...) and in all, counted even
        # where the list above is not kept (no-PostgreSQL mode keeps only these counts).
        self.request_counts = {}
        self.request_total = 0
        # No-PostgreSQL mode (--no-postgres): servers, volumes and snapshots are metadata only;
        # no directory is copied and no PostgreSQL is started.
        self.no_postgres = False
        self.address_base = address_base
        self.used_addresses = set()
        # Addresses never handed to a server (--reserve): hosts outside the cloud's control, such
        # as the members of a Patroni cluster, whose address must stay theirs while they are down.
        self.reserved_addresses = set()
        self.root = root
        self.timers = []

    # --- tokens -------------------------------------------------------------------------
    def issue_token(self, scoped, method):
        if self.sbercloud:
            # Huawei IAM tokens are PKI-style and very long (several kilobytes).
            value = "MIIZ" + secrets.token_urlsafe(6000)
        else:
            value = "gAAAAAB" + secrets.token_urlsafe(136)
        expires = now() + datetime.timedelta(seconds=self.token_ttl)
        with self.lock:
            self.tokens[value] = {"expires": expires, "scoped": scoped, "method": method}
        return value, expires

    def check_token(self, value):
        with self.lock:
            t = self.tokens.get(value)
            if t is None or t["expires"] <= now():
                return None
            return t

    def expire_tokens(self):
        with self.lock:
            self.tokens.clear()

    # --- faults -------------------------------------------------------------------------
    def fault_for(self, op):
        with self.lock:
            for f in self.faults:
                if f.matches(op):
                    f.consume()
                    return f
        return None

    def behaviour(self, rules, name):
        with self.lock:
            for rule in rules:
                if rule.get("match", "") in name:
                    if rule.get("count") is not None:
                        if rule["count"] <= 0:
                            continue
                        rule["count"] -= 1
                    return rule
        return None

    # --- scheduling ---------------------------------------------------------------------
    def later(self, seconds, fn, *args):
        t = threading.Timer(max(0.0, seconds), self._run, (fn, args))
        t.daemon = True
        with self.lock:
            self.timers = [x for x in self.timers if x.is_alive()]
            self.timers.append(t)
        t.start()

    def _run(self, fn, args):
        try:
            fn(*args)
        except Exception as e:  # a failed transition must not kill the simulator
            print(f"cloudsim: transition {fn.__name__} failed: {e!r}", flush=True)

    # --- addresses ----------------------------------------------------------------------
    def allocate_address(self, is_free):
        with self.lock:
            for third in range(int(self.address_base.split(".")[2]), 255):
                for fourth in range(1, 255):
                    addr = f"127.0.{third}.{fourth}"
                    if addr in self.used_addresses or addr in self.reserved_addresses:
                        continue
                    if not is_free(addr):
                        continue
                    self.used_addresses.add(addr)
                    return addr
        raise RuntimeError("address pool exhausted")

    def reserve_addresses(self, addrs):
        """Keeps `addrs` out of allocate_address for good, whether or not anything listens there
        now (a stopped PostgreSQL frees its port, and a free port alone is no proof the address is
        nobody's)."""
        with self.lock:
            self.reserved_addresses.update(addrs)

    def release_address(self, addr):
        with self.lock:
            self.used_addresses.discard(addr)

    # --- quota usage --------------------------------------------------------------------
    def usage(self):
        with self.lock:
            servers = [s for s in self.servers.values() if s["status"] != "DELETED"]
            cores = sum(self.flavors[s["flavor_id"]]["vcpus"] for s in servers)
            ram = sum(self.flavors[s["flavor_id"]]["ram"] for s in servers)
            vols = list(self.volumes.values())
            return {"instances": len(servers), "cores": cores, "ram": ram,
                    "volumes": len(vols), "gigabytes": sum(v["size"] for v in vols),
                    "snapshots": len(self.snapshots)}


def mac_for(server_id):
    h = hashlib.sha1(server_id.encode()).hexdigest()
    return "fa:16:3e:" + ":".join(h[i:i + 2] for i in (0, 2, 4))
