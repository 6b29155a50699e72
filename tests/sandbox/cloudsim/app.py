#!/usr/bin/python3
"""A cloud on loopback for tests and demos: the subset of Keystone v3, Nova v2.1, Cinder v3 and
Designate v2 that replica-autoscaler uses, with real status codes, bodies, headers and error
formats, status transitions that take time, quotas, a SberCloud profile and fault injection.
Servers are real PostgreSQL standbys (see vm.py), or, with --no-postgres, metadata only.

  cloudsim.py --port 8774 --root /tmp/cloud [--profile fast|realistic] [--sbercloud]
              [--donor-dir D --donor-address 127.0.1.1 [--donor-name N --donor-volume-id U]]
              [--capture requests.jsonl] [--zones az1,az2] [--zone-latency az2=40,az3=5]
              [--reserve 127.0.1.1,127.0.1.250] [--no-postgres]

Endpoints (one port; the Keystone catalog points at them):
  /identity/v3   Keystone     /compute/v2.1  Nova     /volume/v3/<project>  Cinder
  /dns/v2        Designate    /control/...   the simulator's own control API (no auth):
    GET  /control/state                      everything, as JSON
    GET  /control/requests[?service=compute] captured requests (bodies as sent)
    POST /control/faults    {"op": "nova.create_server"|"cinder.*"|"*", "status": 500,
                             "rate": 1.0, "count": 3, "retry_after": 2, "message": "..."}
    DELETE /control/faults
    POST /control/servers   {"match": "name part", "outcome": "error"|"stuck", "fault": "..."}
    POST /control/volumes   {"match": "name part", "outcome": "error"|"slow", "delay": 5}
    POST /control/expire-tokens
    POST /control/profile   {"profile": "realistic"} or {"latency": {"server_build": 3}}
                            or {"zone_latency_ms": {"az2": 40}}
    POST /control/quotas    {"instances": 2, "volumes": 3, ...}
    GET  /control/request-counts             {"total": N, "by_op": {"nova.list_servers": N, ...}}:
                            API requests counted per operation since start (also with --no-postgres)
    POST /control/donors    {"donors": [{"name", "address", "volume_id", "size"}]}: donor servers
                            and their data volumes, metadata only (--no-postgres only)
No-PostgreSQL mode (--no-postgres, for the scale benchmark): servers, volumes and snapshots are
metadata only: no directory is copied, no PostgreSQL starts, a server is ACTIVE after the profile's
server_build latency and nothing listens at its address. Requests are counted, not captured (the
list of /control/requests stays empty: thousands of cycles would fill memory). Whatever probes
those servers must be a test double (the service's test_only.probe_double).
Per-zone latency to the primary (--zone-latency, zone_latency_ms): servers booted in such a zone
reach the primary through a delaying TCP relay run by the simulator (network.py).
Addresses given to --reserve (the primary's, the donor's, other Patroni members') are never given
to a new server, even while nothing listens on them: a primary killed with kill -9 frees its
port, and without the reservation the next server would be booted at its address.

Layout: app.py (this: the Simulator, which wires the services over httpbase, and main), one
module per service (keystone, nova, cinder, neutron, glance, designate, control: each a mixin
contributing its routes and handlers), common.py (error bodies, microversions, the request),
model.py (the state), network.py (zone latency relays), vm.py (the VMs: PostgreSQL on loopback).
Uses only Python's standard library. Shares no code with the C++ client.
"""
import argparse
import sys
import hashlib
import json
import os
import re
import threading
import traceback
import uuid

import httpbase
from . import model, vm
from .cinder import CinderApi
from .common import (CINDER_MAX, CINDER_MIN, NOVA_MAX, NOVA_MIN, ApiError, Request, os_fault,
                     parse_version, vstr)
from .control import ControlApi
from .designate import DesignateApi
from .glance import GlanceApi
from .keystone import KeystoneApi
from .model import iso, new_id, now
from .network import Network
from .neutron import NeutronApi
from .nova import NovaApi


class Simulator(KeystoneApi, NovaApi, CinderApi, NeutronApi, GlanceApi, DesignateApi, ControlApi,
                httpbase.App):
    """The cloud: one HTTP endpoint whose routes each service module contributes, over the model."""

    def __init__(self, cloud, host, port, capture_path=None):
        self.cloud = cloud
        self.host = host
        self.port = port
        self.capture_path = capture_path
        self.capture_lock = threading.Lock()
        self.network = Network(cloud.zones)
        self.router = httpbase.Router()
        for routes in (self.keystone_routes, self.nova_routes, self.cinder_routes, self.neutron_routes,
                       self.glance_routes, self.designate_routes, self.control_routes):
            for method, pattern, service, op, fn in routes():
                self.router.add(method, pattern, fn, service, op)

    # ------------------------------------------------------------------ URLs and catalog
    def base(self):
        return f"http://{self.host}:{self.port}"

    def compute_url(self):
        # Huawei's ECS puts the project in the compute URL; OpenStack's Nova does not.
        suffix = f"/{self.cloud.project['id']}" if self.cloud.sbercloud else ""
        return f"{self.base()}/compute/v2.1{suffix}"

    def volume_url(self):
        return f"{self.base()}/volume/v3/{self.cloud.project['id']}"

    def catalog(self):
        region = self.cloud.region

        def service(type_, name, url):
            return {"id": hashlib.md5(type_.encode()).hexdigest(), "type": type_, "name": name,
                    "endpoints": [{"id": hashlib.md5((type_ + i).encode()).hexdigest(),
                                   "interface": i, "region_id": region, "region": region,
                                   "url": url} for i in ("public", "internal", "admin")]}
        return [service("identity", "keystone", f"{self.base()}/identity/v3"),
                service("compute", "nova", self.compute_url()),
                service("volumev3", "cinderv3", self.volume_url()),
                service("block-storage", "cinder", self.volume_url()),
                service("dns", "designate", f"{self.base()}/dns"),
                service("image", "glance", f"{self.base()}/image"),
                service("network", "neutron", f"{self.base()}/network")]


    # ------------------------------------------------------------------ routing
    def make_request(self, handler, method):
        req = Request(handler, method)
        req.service, req.extra_headers = None, {}
        return req

    def access_log(self, line):
        if os.environ.get("CLOUDSIM_ACCESS_LOG"):
            sys.stderr.write("cloudsim: %s\n" % line)

    def handle(self, req):
        route, path_known = self.router.match(req.method, req.path)
        if route is None:
            if path_known:
                raise os_fault(405, "The method is not allowed for the requested URL.")
            raise os_fault(404, "The resource could not be found.")
        _, regex, fn, service, op = route
        req.service = service
        params = regex.fullmatch(req.path).groupdict()
        if service != "control":
            self.count_request(op or f"{service}.{req.method.lower()}")
            if not self.cloud.no_postgres:
                self.capture(req, service)
        if service in ("compute", "volume"):
            req.mv = self.microversion(req, service)
            req.extra_headers.update(self.version_headers(service, req.mv))
        if service in ("compute", "volume", "dns", "image", "network") and op is not None:
            self.authenticate(req)
        if op is not None:
            self.inject_fault(op, service)
        return fn(req, **params)

    def internal_error(self, req, exc):
        # A bug here must look like a cloud's 500, not a hang.
        traceback.print_exception(type(exc), exc, exc.__traceback__)
        return 500, {"computeFault": {
            "message": "Unexpected API Error. Please report this at http://bugs.launchpad.net/nova/ and attach the Nova API log if possible.",
            "code": 500}}, {}

    def complete_headers(self, req, status, headers):
        # Every answer carries a request id (and the microversion headers once negotiated).
        request_id = "req-" + new_id()
        headers.update(req.extra_headers)
        headers.setdefault("X-OpenStack-Request-Id", request_id)
        if req.service == "compute":
            headers.setdefault("X-Compute-Request-Id", request_id)

    # ------------------------------------------------------------------ cross-cutting
    def count_request(self, op):
        with self.capture_lock:
            self.cloud.request_counts[op] = self.cloud.request_counts.get(op, 0) + 1
            self.cloud.request_total += 1

    def capture(self, req, service):
        headers = {k: ("***" if k.lower() in ("x-auth-token", "x-subject-token") else v)
                   for k, v in req.headers.items()}
        body = None
        if req.raw:
            try:
                body = json.loads(req.raw.decode())
            except (ValueError, UnicodeDecodeError):
                body = req.raw.decode(errors="replace")
            if service == "identity" and isinstance(body, dict):
                body = json.loads(re.sub(r'("(?:password|secret)"\s*:\s*)"[^"]*"', r'\1"***"',
                                         json.dumps(body)))
        entry = {"time": iso(now(), micro=True), "service": service, "method": req.method,
                 "path": req.path, "query": {k: v for k, v in req.query.items()},
                 "headers": headers, "body": body}
        with self.capture_lock:
            self.cloud.requests.append(entry)
            if self.capture_path:
                with open(self.capture_path, "a") as f:
                    f.write(json.dumps(entry) + "\n")

    def microversion(self, req, service):
        name = "compute" if service == "compute" else "volume"
        lo, hi = (NOVA_MIN, NOVA_MAX) if service == "compute" else (CINDER_MIN, CINDER_MAX)
        text = None
        generic = req.headers.get("OpenStack-API-Version")
        if generic:
            for part in generic.split(","):
                words = part.strip().split()
                if len(words) == 2 and words[0].lower() == name:
                    text = words[1]
        if text is None and service == "compute":
            text = req.headers.get("X-OpenStack-Nova-API-Version")
        if text is None:
            return lo
        if text.strip().lower() == "latest":
            return hi
        v = parse_version(text)
        if v is None:
            raise os_fault(400, f"API Version String {text} is of invalid format. Must be of format MajorNum.MinorNum.")
        if not (lo <= v <= hi):
            raise os_fault(406, f"Version {text} is not supported by the API. Minimum is {vstr(lo)} and maximum is {vstr(hi)}.")
        return v

    def version_headers(self, service, mv):
        if service == "compute":
            return {"OpenStack-API-Version": f"compute {vstr(mv)}",
                    "X-OpenStack-Nova-API-Version": vstr(mv),
                    "Vary": "OpenStack-API-Version, X-OpenStack-Nova-API-Version"}
        return {"OpenStack-API-Version": f"volume {vstr(mv)}", "Vary": "OpenStack-API-Version"}

    def authenticate(self, req):
        token = req.headers.get("X-Auth-Token")
        info = self.cloud.check_token(token) if token else None
        if info is None or not info["scoped"]:
            raise ApiError(401, {"error": {"code": 401, "title": "Unauthorized",
                                           "message": "The request you have made requires authentication."}},
                           {"WWW-Authenticate": f'Keystone uri="{self.base()}/identity"'})
        req.token = info

    def inject_fault(self, op, service):
        f = self.cloud.fault_for(op)
        if f is None:
            return
        headers = {}
        if f.retry_after is not None:
            headers["Retry-After"] = str(f.retry_after)
        if f.status == 429 and self.cloud.sbercloud:
            raise ApiError(429, {"error_code": "APIG.0308", "error_msg": f.message or "The request is throttled.",
                                 "request_id": uuid.uuid4().hex}, headers)
        if service == "dns":
            raise ApiError(f.status, {"code": f.status, "type": "service_unavailable" if f.status >= 500 else "injected",
                                      "message": f.message or "injected fault", "request_id": "req-" + new_id()}, headers)
        if service == "identity":
            raise ApiError(f.status, {"error": {"code": f.status, "title": "Service Unavailable" if f.status >= 500 else "Error",
                                                "message": f.message or "injected fault"}}, headers)
        e = os_fault(f.status, f.message or ("Rate limit exceeded." if f.status in (413, 429) else
                                             "Unexpected API Error. Please report this at http://bugs.launchpad.net/nova/ and attach the Nova API log if possible."))
        e.headers.update(headers)
        raise e

    # ------------------------------------------------------------------ set-up
    def add_donor(self, name, data_dir, address, volume_id, size):
        """A server that already exists (the donor replica) whose data volume is `data_dir` (None
        in no-PostgreSQL mode: metadata only)."""
        c = self.cloud
        t = now()
        sid = str(uuid.uuid5(uuid.NAMESPACE_DNS, "server." + name))
        net = next(iter(c.networks))
        c.volumes[volume_id] = {"id": volume_id, "name": f"{name}-data", "status": "in-use", "size": size,
                                "availability_zone": c.zones[0], "created": t, "updated": t,
                                "description": "donor replica data", "volume_type": "__DEFAULT__",
                                "snapshot_id": None, "metadata": {"role": "donor"}, "bootable": False,
                                "attachments": [{"server_id": sid, "attachment_id": new_id(), "attached_at": t,
                                                 "device": "/dev/vdb"}],
                                "dir": os.path.abspath(data_dir) if data_dir else None, "external": True}
        c.servers[sid] = {"id": sid, "name": name, "status": "ACTIVE", "task_state": None, "vm_state": "active",
                          "power_state": 1, "tenant_id": c.project["id"], "user_id": c.user["id"],
                          "metadata": {"role": "donor"}, "image_id": next(iter(c.images)), "flavor_id": "pg.replica", "created": t,
                          "updated": t, "launched_at": t, "address": address, "network_name": net,
                          "network_id": c.networks[net], "mac": model.mac_for(sid), "availability_zone": c.zones[0],
                          "key_name": None, "tags": ["donor"], "security_groups": ["default"], "description": None,
                          "bdms": [{"source_type": "image", "destination_type": "local", "boot_index": 0,
                                    "uuid": next(iter(c.images)), "delete_on_termination": True, "device": "/dev/vda"},
                                   {"source_type": "volume", "destination_type": "volume", "boot_index": -1,
                                    "uuid": volume_id, "delete_on_termination": False, "device": "/dev/vdb"}],
                          "fault": None,
                          "user_data": None, "dir": os.path.join(c.root, "servers", sid)}
        c.used_addresses.add(address)

    def add_foreign_server(self, name, address, tags, metadata):
        """A server made outside the service (the primary's VM, a colleague's) at a given address,
        with whatever tags and metadata it was given. Nothing runs on it."""
        c = self.cloud
        t = now()
        sid = new_id()
        net = next(iter(c.networks))
        image = next(iter(c.images))
        with c.lock:
            c.servers[sid] = {"id": sid, "name": name, "status": "ACTIVE", "task_state": None, "vm_state": "active",
                              "power_state": 1, "tenant_id": c.project["id"], "user_id": c.user["id"],
                              "metadata": dict(metadata), "image_id": image, "flavor_id": "pg.replica",
                              "created": t, "updated": t, "launched_at": t, "address": address,
                              "network_name": net, "network_id": c.networks[net], "mac": model.mac_for(sid),
                              "availability_zone": c.zones[0], "key_name": None, "tags": list(tags),
                              "security_groups": ["default"], "description": None,
                              "bdms": [{"source_type": "image", "destination_type": "local", "boot_index": 0,
                                        "uuid": image, "delete_on_termination": True, "device": "/dev/vda"}],
                              "fault": None, "user_data": None, "dir": os.path.join(c.root, "servers", sid)}
            c.used_addresses.add(address)
        return sid


def parse_zone_latency(text):
    """'az2=40,az3=5' -> {"az2": 40.0, "az3": 5.0}; raises ValueError."""
    out = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        zone, sep, ms = part.partition("=")
        try:
            out[zone.strip()] = float(ms)
        except ValueError:
            raise ValueError(f"'{part}' is not ZONE=MILLISECONDS") from None
        if not sep or not zone.strip():
            raise ValueError(f"'{part}' is not ZONE=MILLISECONDS")
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8774)
    p.add_argument("--root", required=True, help="where volumes, snapshots and servers keep their files")
    p.add_argument("--profile", choices=sorted(model.PROFILES), default="fast")
    p.add_argument("--sbercloud", action="store_true", help="SberCloud/Huawei behaviour")
    p.add_argument("--region")
    p.add_argument("--zones", default="nova")
    p.add_argument("--username", default="demo")
    p.add_argument("--password", default="demo-password")
    p.add_argument("--project-name")
    p.add_argument("--app-cred-id", default="ac-demo")
    p.add_argument("--app-cred-secret", default="ac-demo-secret")
    p.add_argument("--token-ttl", type=int, default=3600)
    p.add_argument("--address-base", default="127.0.100", help="servers get 127.0.X.Y from X = this's third part")
    p.add_argument("--dns-zone", default="cloud.internal.")
    p.add_argument("--donor-dir")
    p.add_argument("--donor-address", default="127.0.1.1")
    p.add_argument("--donor-name", default="donor")
    p.add_argument("--donor-volume-id", default=str(uuid.uuid5(uuid.NAMESPACE_DNS, "volume.donor")))
    p.add_argument("--donor-size", type=int, default=10)
    p.add_argument("--capture", help="append every API request (JSON lines) to this file")
    p.add_argument("--zone-latency", default="", metavar="ZONE=MS[,ZONE=MS]",
                   help="round-trip latency from a zone's servers to the primary (network.py)")
    p.add_argument("--reserve", default="", metavar="ADDR[,ADDR]",
                   help="addresses never given to a server (the primary's, Patroni members')")
    p.add_argument("--firstboot-env", metavar="FILE",
                   help="KEY=VALUE lines (RA_* settings) the first-boot script gets at each boot, as "
                        "the image's /etc/default/replica-first-boot; read at every boot, so it may change")
    p.add_argument("--no-postgres", action="store_true",
                   help="servers, volumes and snapshots are metadata only: nothing is copied or started")
    args = p.parse_args()

    if args.no_postgres and args.donor_dir:
        p.error("--donor-dir needs PostgreSQL; with --no-postgres add donors through POST /control/donors")
    if not re.fullmatch(r"127\.0\.\d{1,3}", args.address_base):
        p.error("--address-base must look like 127.0.X")
    reserved = [a.strip() for a in args.reserve.split(",") if a.strip()]
    for addr in reserved:
        if not re.fullmatch(r"127\.\d{1,3}\.\d{1,3}\.\d{1,3}", addr):
            p.error(f"--reserve: '{addr}' is not a loopback IPv4 address (127.x.y.z)")
    vm.FIRSTBOOT_ENV_FILE = os.path.abspath(args.firstboot_env) if args.firstboot_env else None
    os.makedirs(args.root, exist_ok=True)
    os.chmod(args.root, 0o755)  # PostgreSQL runs as an unprivileged user below it
    for d in ("volumes", "snapshots", "servers"):
        os.makedirs(os.path.join(args.root, d), exist_ok=True)
        os.chmod(os.path.join(args.root, d), 0o755)
    cloud = model.Cloud(profile=args.profile, sbercloud=args.sbercloud, region=args.region,
                        zones=[z for z in args.zones.split(",") if z], project_name=args.project_name,
                        username=args.username, password=args.password, app_cred_id=args.app_cred_id,
                        app_cred_secret=args.app_cred_secret, token_ttl=args.token_ttl,
                        address_base=args.address_base, root=os.path.abspath(args.root))
    cloud.no_postgres = args.no_postgres
    sim = Simulator(cloud, args.host, args.port, args.capture)
    sim.add_dns_zone(args.dns_zone)
    cloud.reserve_addresses(reserved)
    if args.donor_dir:
        sim.add_donor(args.donor_name, args.donor_dir, args.donor_address, args.donor_volume_id, args.donor_size)
    try:
        sim.network.set_latencies(parse_zone_latency(args.zone_latency))
    except ValueError as e:
        p.error(f"--zone-latency: {e}")
    server = httpbase.make_server(sim, args.host, args.port)
    print(f"cloudsim: listening on {sim.base()} (auth_url {sim.base()}/identity/v3, project "
          f"{cloud.project['name']} {cloud.project['id']}, profile {args.profile}"
          f"{', no PostgreSQL: metadata only' if args.no_postgres else ''})", flush=True)
    try:
        httpbase.serve_until_signalled(server)
    finally:
        sim.network.close()
        # Powering the cloud off stops every simulated VM (never the donor, which is not ours).
        with cloud.lock:
            dirs = [cloud.volumes[b["uuid"]]["dir"] for s in cloud.servers.values() for b in s["bdms"]
                    if b["source_type"] == "volume" and b["uuid"] in cloud.volumes and not cloud.volumes[b["uuid"]].get("external")]
        for d in dirs:
            if d:
                vm.shutdown(d)
        print("cloudsim: stopped", flush=True)


if __name__ == "__main__":
    main()
