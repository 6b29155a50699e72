"""The simulator's own control API (no auth): state, captured requests, faults, profiles, quotas.

A mixin of the Simulator (app.py): `self.cloud` is the model, `self.base()` the endpoint.
"""
import datetime

from . import model
from .common import ApiError
from .model import iso


class ControlApi:
    def control_routes(self):
        """(method, path pattern, service, fault-injection op, handler)."""
        return [
            ("GET", r"/control/state", "control", None, self.control_state),
            ("GET", r"/control/requests", "control", None, self.control_requests),
            ("GET", r"/control/request-counts", "control", None, self.control_request_counts),
            ("POST", r"/control/donors", "control", None, self.control_donors),
            ("POST", r"/control/faults", "control", None, self.control_add_fault),
            ("DELETE", r"/control/faults", "control", None, self.control_clear_faults),
            ("POST", r"/control/servers", "control", None, self.control_servers),
            ("POST", r"/control/foreign-servers", "control", None, self.control_foreign_server),
            ("POST", r"/control/servers/(?P<id>[^/]+)/ownership", "control", None, self.control_ownership),
            ("POST", r"/control/volumes", "control", None, self.control_volumes),
            ("POST", r"/control/expire-tokens", "control", None, self.control_expire),
            ("POST", r"/control/profile", "control", None, self.control_profile),
            ("POST", r"/control/quotas", "control", None, self.control_quotas),
        ]

    def control_state(self, req):
        c = self.cloud

        def clean(d):
            return {k: (iso(v, micro=True) if isinstance(v, datetime.datetime) else v)
                    for k, v in d.items() if k not in ("user_data",)}
        with c.lock:
            return 200, {
                "profile": c.profile_name, "latency": c.latency, "sbercloud": c.sbercloud, "region": c.region,
                "project": c.project, "auth_url": f"{self.base()}/identity/v3",
                "user": {k: v for k, v in c.user.items() if k != "password"},
                "networks": c.networks, "flavors": list(c.flavors), "zones": c.zones, "quotas": c.quotas,
                "usage": c.usage(), "dns_zones": {k: z["name"] for k, z in c.zones_dns.items()},
                "servers": [dict(clean(s), bdms=s["bdms"], fault=s["fault"]) for s in c.servers.values()],
                "volumes": [dict(clean(v), attachments=[clean(a) for a in v["attachments"]]) for v in c.volumes.values()],
                "snapshots": [clean(s) for s in c.snapshots.values()],
                "faults": [f.__dict__ for f in c.faults],
                "zone_latency_ms": self.network.latencies(), "relays": self.network.relay_view(),
                "reserved_addresses": sorted(c.reserved_addresses),
                "captured_requests": len(c.requests)}, {}

    def control_requests(self, req):
        service = req.q("service")
        with self.capture_lock:
            out = [r for r in self.cloud.requests if service is None or r["service"] == service]
        return 200, {"requests": out}, {}

    def control_request_counts(self, req):
        with self.capture_lock:
            return 200, {"total": self.cloud.request_total,
                         "by_op": dict(self.cloud.request_counts)}, {}

    def control_donors(self, req):
        # {"donors": [{"name", "address", "volume_id", "size"?}]}: donor servers with their data
        # volumes, metadata only (no-PostgreSQL mode: there is no directory to give them).
        if not self.cloud.no_postgres:
            raise ApiError(400, {"error": "donors are added this way only with --no-postgres "
                                          "(otherwise --donor-dir names the donor's PostgreSQL)"})
        b = req.json() or {}
        donors = b.get("donors")
        if not isinstance(donors, list) or not donors:
            raise ApiError(400, {"error": "donors is a non-empty list of {name, address, volume_id}"})
        for i, d in enumerate(donors):
            if not isinstance(d, dict) or not all(isinstance(d.get(k), str) and d.get(k)
                                                  for k in ("name", "address", "volume_id")):
                raise ApiError(400, {"error": f"donors[{i}]: name, address and volume_id are "
                                              f"required strings"})
            if not isinstance(d.get("size", 10), int) or d.get("size", 10) < 1:
                raise ApiError(400, {"error": f"donors[{i}]: size is a positive integer (GB)"})
        with self.cloud.lock:
            taken = {s["name"] for s in self.cloud.servers.values()}
            for i, d in enumerate(donors):
                if d["name"] in taken or d["volume_id"] in self.cloud.volumes:
                    raise ApiError(409, {"error": f"donors[{i}]: {d['name']} or its volume exists"})
            for d in donors:
                self.add_donor(d["name"], None, d["address"], d["volume_id"], d.get("size", 10))
        return 201, {"added": len(donors)}, {}

    def control_add_fault(self, req):
        b = req.json()
        f = model.Fault(b.get("op", "*"), b.get("status", 500), b.get("rate", 1.0), b.get("count"),
                        b.get("retry_after"), b.get("message"))
        with self.cloud.lock:
            self.cloud.faults.append(f)
        return 201, {"fault": f.__dict__}, {}

    def control_clear_faults(self, req):
        with self.cloud.lock:
            self.cloud.faults.clear()
            self.cloud.server_behaviour.clear()
            self.cloud.volume_behaviour.clear()
        return 204, None, {}

    def control_servers(self, req):
        b = req.json()
        if b.get("outcome") not in ("error", "stuck"):
            raise ApiError(400, {"error": "outcome must be 'error' or 'stuck'"})
        with self.cloud.lock:
            self.cloud.server_behaviour.append(b)
        return 201, b, {}

    def control_foreign_server(self, req):
        # {"name", "address", "tags": [...], "metadata": {...}}: a server the service did not make.
        b = req.json() or {}
        if not isinstance(b.get("name"), str) or not isinstance(b.get("address"), str):
            raise ApiError(400, {"error": "name and address are required"})
        sid = self.add_foreign_server(b["name"], b["address"], b.get("tags") or [], b.get("metadata") or {})
        return 201, {"id": sid}, {}

    def control_ownership(self, req, id):
        # {"tags": [...], "metadata": {...}}: replaces an existing server's tags and metadata (as
        # an operator could through Nova's API), e.g. to dress the donor up as one of ours.
        b = req.json() or {}
        with self.cloud.lock:
            s = self.cloud.servers.get(id)
            if s is None:
                raise ApiError(404, {"error": f"no server {id}"})
            s["tags"] = list(b.get("tags") or [])
            s["metadata"] = dict(b.get("metadata") or {})
        return 200, {"id": id, "tags": s["tags"], "metadata": s["metadata"]}, {}

    def control_volumes(self, req):
        b = req.json()
        if b.get("outcome") not in ("error", "slow"):
            raise ApiError(400, {"error": "outcome must be 'error' or 'slow'"})
        with self.cloud.lock:
            self.cloud.volume_behaviour.append(b)
        return 201, b, {}

    def control_expire(self, req):
        self.cloud.expire_tokens()
        return 204, None, {}

    def control_profile(self, req):
        b = req.json()
        with self.cloud.lock:
            if "profile" in b:
                if b["profile"] not in model.PROFILES:
                    raise ApiError(400, {"error": f"profiles: {sorted(model.PROFILES)}"})
                self.cloud.profile_name = b["profile"]
                self.cloud.latency = dict(model.PROFILES[b["profile"]])
            for k, v in (b.get("latency") or {}).items():
                if k not in self.cloud.latency:
                    raise ApiError(400, {"error": f"unknown latency '{k}'"})
                self.cloud.latency[k] = float(v)
            if "max_limit" in b:
                if not isinstance(b["max_limit"], int) or b["max_limit"] < 1:
                    raise ApiError(400, {"error": "max_limit is a positive integer"})
                self.cloud.max_limit = b["max_limit"]
            if "ignore_filters" in b:
                if not isinstance(b["ignore_filters"], bool):
                    raise ApiError(400, {"error": "ignore_filters is true or false"})
                self.cloud.ignore_filters = b["ignore_filters"]
            zone_latency = b.get("zone_latency_ms") or {}
            if not isinstance(zone_latency, dict):
                raise ApiError(400, {"error": "zone_latency_ms is an object {zone: milliseconds}"})
            try:
                self.network.set_latencies(zone_latency)
            except ValueError as e:
                raise ApiError(400, {"error": str(e)})
            return 200, {"latency": self.cloud.latency, "zone_latency_ms": self.network.latencies(),
                         "max_limit": self.cloud.max_limit, "ignore_filters": self.cloud.ignore_filters}, {}

    def control_quotas(self, req):
        b = req.json()
        with self.cloud.lock:
            for k, v in b.items():
                if k not in self.cloud.quotas:
                    raise ApiError(400, {"error": f"unknown quota '{k}'"})
                self.cloud.quotas[k] = int(v)
            return 200, {"quotas": self.cloud.quotas}, {}
