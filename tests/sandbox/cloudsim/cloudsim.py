#!/usr/bin/python3
"""A cloud on loopback for tests and demos: the subset of Keystone v3, Nova v2.1, Cinder v3 and
Designate v2 that replica-autoscaler uses, with real status codes, bodies, headers and error
formats, status transitions that take time, quotas, a SberCloud profile and fault injection.
Servers are real PostgreSQL standbys (see vm.py).

  cloudsim.py --port 8774 --root /tmp/cloud [--profile fast|realistic] [--sbercloud]
              [--donor-dir D --donor-address 127.0.1.1 [--donor-name N --donor-volume-id U]]
              [--capture requests.jsonl] [--zones az1,az2]

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
    POST /control/quotas    {"instances": 2, "volumes": 3, ...}
Uses only Python's standard library. Shares no code with the C++ client.
"""
import argparse
import ast
import base64
import binascii
import datetime
import hashlib
import ipaddress
import json
import os
import re
import signal
import sys
import threading
import traceback
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model  # noqa: E402
import vm  # noqa: E402
from model import iso, new_id, now  # noqa: E402

NOVA_MIN, NOVA_MAX = (2, 1), (2, 60)
CINDER_MIN, CINDER_MAX = (3, 0), (3, 60)


class ApiError(Exception):
    def __init__(self, status, body, headers=None):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


FAULT_KEYS = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
              405: "badMethod", 409: "conflictingRequest", 413: "overLimit", 415: "badMediaType",
              429: "overLimit", 501: "notImplemented", 503: "serviceUnavailable"}


def os_fault(status, message):
    """Nova's and Cinder's error body."""
    return ApiError(status, {FAULT_KEYS.get(status, "computeFault"):
                             {"message": message, "code": status}})


def designate_fault(status, type_, message):
    return ApiError(status, {"code": status, "type": type_, "message": message,
                             "request_id": "req-" + new_id()})


def keystone_fault(status, title, message):
    return ApiError(status, {"error": {"code": status, "title": title, "message": message}})


def parse_version(text):
    m = re.fullmatch(r"(\d+)\.(\d+)", text.strip())
    return (int(m.group(1)), int(m.group(2))) if m else None


def vstr(v):
    return f"{v[0]}.{v[1]}"


class Request:
    def __init__(self, handler, method, path, query, body_bytes):
        self.handler = handler
        self.method = method
        self.path = path
        self.query = query
        self.raw = body_bytes
        self.headers = handler.headers
        self.mv = None
        self.token = None
        self._json = None

    def json(self, fault=os_fault):
        if self._json is None:
            try:
                self._json = json.loads(self.raw.decode() if self.raw else "")
            except (ValueError, UnicodeDecodeError):
                raise fault(400, "Malformed request body")
        return self._json

    def q(self, name, default=None):
        values = self.query.get(name)
        return values[-1] if values else default


class Simulator:
    def __init__(self, cloud, host, port, capture_path=None):
        self.cloud = cloud
        self.host = host
        self.port = port
        self.capture_path = capture_path
        self.capture_lock = threading.Lock()
        self.routes = []
        self._routes()

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
    def _routes(self):
        P = r"(?:/[0-9a-f]{32})?"  # optional project id in Huawei-style compute URLs
        V = r"/[0-9a-f]{32}"
        add = self.routes.append
        # Keystone
        add(("GET", r"/identity/?", "identity", None, self.identity_versions))
        add(("GET", r"/identity/v3/?", "identity", None, self.identity_version))
        add(("POST", r"/identity/v3/auth/tokens", "identity", "keystone.token", self.issue_token))
        add(("GET", r"/identity/v3/auth/tokens", "identity", "keystone.validate", self.validate_token))
        add(("GET", r"/identity/v3/auth/catalog", "identity", "keystone.catalog", self.get_catalog))
        # Nova
        add(("GET", r"/compute/?", "compute", None, self.compute_versions))
        add(("GET", rf"/compute/v2\.1{P}/?", "compute", None, self.compute_version))
        add(("POST", rf"/compute/v2\.1{P}/servers", "compute", "nova.create_server", self.create_server))
        add(("GET", rf"/compute/v2\.1{P}/servers/detail", "compute", "nova.list_servers", self.list_servers_detail))
        add(("GET", rf"/compute/v2\.1{P}/servers", "compute", "nova.list_servers", self.list_servers))
        add(("GET", rf"/compute/v2\.1{P}/servers/(?P<id>[^/]+)", "compute", "nova.get_server", self.get_server))
        add(("DELETE", rf"/compute/v2\.1{P}/servers/(?P<id>[^/]+)", "compute", "nova.delete_server", self.delete_server))
        add(("GET", rf"/compute/v2\.1{P}/os-availability-zone", "compute", "nova.zones", self.list_zones))
        add(("GET", rf"/compute/v2\.1{P}/os-availability-zone/detail", "compute", "nova.zones", self.list_zones_detail))
        add(("GET", rf"/compute/v2\.1{P}/limits", "compute", "nova.limits", self.compute_limits))
        add(("GET", rf"/compute/v2\.1{P}/flavors(?:/detail)?", "compute", "nova.flavors", self.list_flavors))
        add(("GET", rf"/compute/v2\.1{P}/flavors/(?P<id>[^/]+)", "compute", "nova.flavors", self.get_flavor))
        # Cinder
        add(("GET", r"/volume/?", "volume", None, self.volume_versions))
        add(("GET", r"/volume/v3/?", "volume", None, self.volume_versions))
        add(("POST", rf"/volume/v3{V}/volumes", "volume", "cinder.create_volume", self.create_volume))
        add(("GET", rf"/volume/v3{V}/volumes(?P<detail>/detail)?", "volume", "cinder.list_volumes", self.list_volumes))
        add(("GET", rf"/volume/v3{V}/volumes/(?P<id>[^/]+)", "volume", "cinder.get_volume", self.get_volume))
        add(("DELETE", rf"/volume/v3{V}/volumes/(?P<id>[^/]+)", "volume", "cinder.delete_volume", self.delete_volume))
        add(("POST", rf"/volume/v3{V}/snapshots", "volume", "cinder.create_snapshot", self.create_snapshot))
        add(("GET", rf"/volume/v3{V}/snapshots(?P<detail>/detail)?", "volume", "cinder.list_snapshots", self.list_snapshots))
        add(("GET", rf"/volume/v3{V}/snapshots/(?P<id>[^/]+)", "volume", "cinder.get_snapshot", self.get_snapshot))
        add(("DELETE", rf"/volume/v3{V}/snapshots/(?P<id>[^/]+)", "volume", "cinder.delete_snapshot", self.delete_snapshot))
        add(("GET", rf"/volume/v3{V}/limits", "volume", "cinder.limits", self.volume_limits))
        add(("GET", rf"/volume/v3{V}/os-availability-zone", "volume", "cinder.zones", self.list_volume_zones))
        # Neutron, only what generic clients look up (networks, security groups by name or id)
        add(("GET", r"/network/?", "network", None, self.network_versions))
        add(("GET", r"/network/v2\.0/networks", "network", "neutron.list_networks", self.list_networks))
        add(("GET", r"/network/v2\.0/networks/(?P<id>[^/]+)", "network", "neutron.get_network", self.get_network))
        add(("GET", r"/network/v2\.0/security-groups", "network", "neutron.list_security_groups", self.list_security_groups))
        add(("GET", r"/network/v2\.0/availability_zones", "network", "neutron.zones", self.list_network_zones))
        add(("GET", r"/network/v2\.0/extensions", "network", "neutron.extensions", self.list_network_extensions))
        # Glance, only what generic clients look up (image names for server lists)
        add(("GET", r"/image/?", "image", None, self.image_versions))
        add(("GET", r"/image/v2/images", "image", "glance.list_images", self.list_images))
        add(("GET", r"/image/v2/images/(?P<id>[^/]+)", "image", "glance.get_image", self.get_image))
        # Designate
        add(("GET", r"/dns/?", "dns", None, self.dns_versions))
        add(("GET", r"/dns/v2/zones", "dns", "designate.list_zones", self.list_dns_zones))
        add(("POST", r"/dns/v2/zones/(?P<zone>[^/]+)/recordsets", "dns", "designate.create_recordset", self.create_recordset))
        add(("GET", r"/dns/v2/zones/(?P<zone>[^/]+)/recordsets", "dns", "designate.list_recordsets", self.list_recordsets))
        add(("GET", r"/dns/v2/zones/(?P<zone>[^/]+)/recordsets/(?P<id>[^/]+)", "dns", "designate.get_recordset", self.get_recordset))
        add(("PUT", r"/dns/v2/zones/(?P<zone>[^/]+)/recordsets/(?P<id>[^/]+)", "dns", "designate.update_recordset", self.update_recordset))
        add(("DELETE", r"/dns/v2/zones/(?P<zone>[^/]+)/recordsets/(?P<id>[^/]+)", "dns", "designate.delete_recordset", self.delete_recordset))
        # Control
        add(("GET", r"/control/state", "control", None, self.control_state))
        add(("GET", r"/control/requests", "control", None, self.control_requests))
        add(("POST", r"/control/faults", "control", None, self.control_add_fault))
        add(("DELETE", r"/control/faults", "control", None, self.control_clear_faults))
        add(("POST", r"/control/servers", "control", None, self.control_servers))
        add(("POST", r"/control/volumes", "control", None, self.control_volumes))
        add(("POST", r"/control/expire-tokens", "control", None, self.control_expire))
        add(("POST", r"/control/profile", "control", None, self.control_profile))
        add(("POST", r"/control/quotas", "control", None, self.control_quotas))
        self.routes = [(m, re.compile(p), s, o, f) for (m, p, s, o, f) in self.routes]

    def handle(self, handler, method):
        parsed = urllib.parse.urlsplit(handler.path)
        path = parsed.path
        query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length > 0 else b""
        req = Request(handler, method, path, query, body)
        request_id = "req-" + new_id()
        service = None
        extra = {}
        try:
            matched = [r for r in self.routes if r[1].fullmatch(path)]
            if not matched:
                raise os_fault(404, "The resource could not be found.")
            route = next((r for r in matched if r[0] == method), None)
            if route is None:
                raise os_fault(405, "The method is not allowed for the requested URL.")
            _, regex, service, op, fn = route
            params = regex.fullmatch(path).groupdict()
            if service != "control":
                self.capture(req, service)
            if service in ("compute", "volume"):
                req.mv = self.microversion(req, service)
                extra.update(self.version_headers(service, req.mv))
            if service in ("compute", "volume", "dns", "image", "network") and op is not None:
                self.authenticate(req)
            if op is not None:
                self.inject_fault(op, service)
            status, payload, headers = fn(req, **params)
            headers = dict(headers or {})
        except ApiError as e:
            status, payload, headers = e.status, e.body, e.headers
        except Exception:  # a bug here must look like a cloud's 500, not a hang
            traceback.print_exc()
            status, payload, headers = 500, {"computeFault": {
                "message": "Unexpected API Error. Please report this at http://bugs.launchpad.net/nova/ and attach the Nova API log if possible.",
                "code": 500}}, {}
        headers.update(extra)
        headers.setdefault("X-OpenStack-Request-Id", request_id)
        if service == "compute":
            headers.setdefault("X-Compute-Request-Id", request_id)
        self.respond(handler, status, payload, headers)

    def respond(self, handler, status, payload, headers):
        if payload is None:
            data = b""
        elif isinstance(payload, (bytes, bytearray)):
            data = bytes(payload)
        else:
            data = json.dumps(payload).encode()
        handler.send_response(status)
        if data or status not in (202, 204):
            headers.setdefault("Content-Type", "application/json")
        for k, v in headers.items():
            handler.send_header(k, v)
        handler.send_header("Content-Length", str(len(data)) if status != 204 else "0")
        if handler.close_connection:
            # The client asked for Connection: close (tempest does). Say so, as real API servers
            # do: without it, http.client keeps the socket for reuse, and a request sent on it
            # while this side closes it fails with "closed connection without response".
            handler.send_header("Connection", "close")
        handler.end_headers()
        if data and status != 204 and handler.command != "HEAD":
            handler.wfile.write(data)

    # ------------------------------------------------------------------ cross-cutting
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

    # ------------------------------------------------------------------ Keystone
    def identity_version_doc(self):
        return {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
                "links": [{"rel": "self", "href": f"{self.base()}/identity/v3/"}],
                "media-types": [{"base": "application/json",
                                 "type": "application/vnd.openstack.identity-v3+json"}]}

    def identity_versions(self, req):
        return 300, {"versions": {"values": [self.identity_version_doc()]}}, {}

    def identity_version(self, req):
        return 200, {"version": self.identity_version_doc()}, {}

    def token_body(self, method, scoped, expires, issued):
        c = self.cloud
        user = {"id": c.user["id"], "name": c.user["name"], "domain": c.user["domain"],
                "password_expires_at": None}
        token = {"methods": [method], "user": user, "audit_ids": [uuid.uuid4().hex[:22]],
                 "expires_at": iso(expires, micro=True), "issued_at": iso(issued, micro=True)}
        if scoped:
            token.update({"project": {"id": c.project["id"], "name": c.project["name"],
                                      "domain": c.project["domain"]},
                          "is_domain": False,
                          "roles": [{"id": uuid.uuid5(uuid.NAMESPACE_DNS, "member").hex, "name": "member"},
                                    {"id": uuid.uuid5(uuid.NAMESPACE_DNS, "reader").hex, "name": "reader"}],
                          "catalog": self.catalog()})
        if method == "application_credential":
            token["application_credential"] = {"id": c.app_cred["id"], "name": c.app_cred["name"],
                                               "restricted": True}
        return {"token": token}

    def issue_token(self, req):
        unauthorized = keystone_fault(401, "Unauthorized", "The request you have made requires authentication.")
        body = req.json(fault=lambda s, m: keystone_fault(400, "Bad Request", m))
        try:
            identity = body["auth"]["identity"]
            methods = identity["methods"]
        except (KeyError, TypeError):
            raise keystone_fault(400, "Bad Request", "Invalid input for field 'identity': 'methods' is a required property")
        c = self.cloud
        if methods == ["password"]:
            user = (identity.get("password") or {}).get("user") or {}
            if "id" in user:
                known = user["id"] == c.user["id"]
            else:
                domain = user.get("domain") or {}
                if not domain:
                    raise keystone_fault(400, "Bad Request", "Expecting to find domain in user. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error.")
                known = (user.get("name") == c.user["name"] and
                         (domain.get("name") == c.user["domain"]["name"] or domain.get("id") == c.user["domain"]["id"]))
            if not known or user.get("password") != c.user["password"]:
                raise unauthorized
            scope = body["auth"].get("scope")
            scoped = False
            if scope:
                project = scope.get("project")
                if project is not None:
                    if "id" in project:
                        ok = project["id"] == c.project["id"]
                    else:
                        pd = project.get("domain") or {}
                        ok = (project.get("name") == c.project["name"] and
                              (pd.get("name") == c.project["domain"]["name"] or pd.get("id") == c.project["domain"]["id"]))
                    if not ok:
                        raise unauthorized
                    scoped = True
                elif "domain" in scope or "system" in scope:
                    scoped = False  # domain tokens carry no project catalog here
                else:
                    raise keystone_fault(400, "Bad Request", "Invalid scope")
            method = "password"
        elif methods == ["application_credential"]:
            cred = identity.get("application_credential") or {}
            by_id = cred.get("id") == c.app_cred["id"]
            by_name = (cred.get("name") == c.app_cred["name"] and
                       ((cred.get("user") or {}).get("name") == c.user["name"] or
                        (cred.get("user") or {}).get("id") == c.user["id"]))
            if not (by_id or by_name) or cred.get("secret") != c.app_cred["secret"]:
                raise unauthorized
            if body["auth"].get("scope"):
                raise keystone_fault(401, "Unauthorized", "Application credentials cannot request a scope.")
            scoped = True
            method = "application_credential"
        else:
            raise keystone_fault(401, "Unauthorized", f"Unsupported authentication method: {methods}")
        value, expires = c.issue_token(scoped, method)
        return 201, self.token_body(method, scoped, expires, now()), {"X-Subject-Token": value}

    def validate_token(self, req):
        self.authenticate(req)
        subject = req.headers.get("X-Subject-Token")
        info = self.cloud.check_token(subject) if subject else None
        if info is None:
            raise keystone_fault(404, "Not Found", f"Could not find token: {str(subject)[:8]}...")
        return 200, self.token_body(info["method"], info["scoped"], info["expires"], now()), {"X-Subject-Token": subject}

    def get_catalog(self, req):
        self.authenticate(req)
        return 200, {"catalog": self.catalog(), "links": {"self": f"{self.base()}/identity/v3/auth/catalog"}}, {}

    # ------------------------------------------------------------------ Nova
    def compute_version_doc(self):
        return {"id": "v2.1", "status": "CURRENT", "version": vstr(NOVA_MAX), "min_version": vstr(NOVA_MIN),
                "updated": "2013-07-23T11:33:21Z",
                "links": [{"rel": "self", "href": f"{self.base()}/compute/v2.1/"},
                          {"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"}],
                "media-types": [{"base": "application/json",
                                 "type": "application/vnd.openstack.compute+json;version=2.1"}]}

    def compute_versions(self, req):
        return 200, {"versions": [self.compute_version_doc()]}, {}

    def compute_version(self, req):
        return 200, {"version": self.compute_version_doc()}, {}

    def link(self, kind, id_):
        base = self.compute_url()
        return [{"rel": "self", "href": f"{base}/{kind}/{id_}"},
                {"rel": "bookmark", "href": f"{base.replace('/v2.1', '')}/{kind}/{id_}"}]

    def server_view(self, s, mv):
        c = self.cloud
        flavor = c.flavors[s["flavor_id"]]
        if mv >= (2, 47):
            flavor_view = {"vcpus": flavor["vcpus"], "ram": flavor["ram"], "disk": flavor["disk"],
                           "ephemeral": 0, "swap": 0, "original_name": flavor["name"], "extra_specs": {}}
        else:
            flavor_view = {"id": flavor["id"], "links": self.link("flavors", flavor["id"])[1:]}
        addresses = {}
        if s["address"]:
            addresses[s["network_name"]] = [{"version": 4, "addr": s["address"], "OS-EXT-IPS:type": "fixed",
                                             "OS-EXT-IPS-MAC:mac_addr": s["mac"]}]
        v = {
            "id": s["id"], "name": s["name"], "status": s["status"], "tenant_id": s["tenant_id"],
            "user_id": s["user_id"], "metadata": dict(s["metadata"]),
            "hostId": hashlib.sha224((s["tenant_id"] + "sim-host-1").encode()).hexdigest() if s["status"] != "BUILD" else "",
            "image": {"id": s["image_id"], "links": self.link("images", s["image_id"])[1:]} if s["image_id"] else "",
            "flavor": flavor_view, "created": iso(s["created"]), "updated": iso(s["updated"]),
            "addresses": addresses, "accessIPv4": "", "accessIPv6": "",
            "links": self.link("servers", s["id"]), "OS-DCF:diskConfig": "MANUAL",
            "OS-EXT-AZ:availability_zone": s["availability_zone"] if s["status"] != "BUILD" else "",
            "config_drive": "True", "key_name": s["key_name"],
            "OS-SRV-USG:launched_at": iso(s["launched_at"], micro=True, zulu=False),
            "OS-SRV-USG:terminated_at": None,
            "OS-EXT-STS:task_state": s["task_state"], "OS-EXT-STS:vm_state": s["vm_state"],
            "OS-EXT-STS:power_state": s["power_state"],
            "os-extended-volumes:volumes_attached": [
                {"id": b["uuid"], "delete_on_termination": b["delete_on_termination"]} if mv >= (2, 3)
                else {"id": b["uuid"]} for b in s["bdms"]],
        }
        if s["status"] != "ERROR":
            v["security_groups"] = [{"name": g} for g in s["security_groups"]]
        if s["status"] in ("BUILD", "ACTIVE"):
            v["progress"] = 100 if s["status"] == "ACTIVE" else 0
        if s["status"] == "ERROR" and s["fault"]:
            v["fault"] = dict(s["fault"])
        if mv >= (2, 9):
            v["locked"] = False
        if mv >= (2, 19):
            v["description"] = s["description"]
        if mv >= (2, 26):
            v["tags"] = list(s["tags"])
        return v

    def find_server(self, id_):
        with self.cloud.lock:
            s = self.cloud.servers.get(id_)
            if s is None or s["status"] == "DELETED":
                raise os_fault(404, f"Instance {id_} could not be found.")
            return s

    def bad(self, message):
        return os_fault(400, message)

    def create_server(self, req):
        c = self.cloud
        body = req.json()
        server = body.get("server") if isinstance(body, dict) else None
        if not isinstance(server, dict):
            raise self.bad("Invalid input for field/attribute server. Value: None. 'server' is a required property")
        allowed = {"name", "imageRef", "flavorRef", "adminPass", "metadata", "networks", "OS-DCF:diskConfig",
                   "accessIPv4", "accessIPv6", "personality", "availability_zone", "block_device_mapping",
                   "block_device_mapping_v2", "config_drive", "key_name", "min_count", "max_count",
                   "return_reservation_id", "security_groups", "user_data", "description"}
        if req.mv >= (2, 32):
            pass
        if req.mv >= (2, 52):
            allowed.add("tags")
        extra = sorted(set(server) - allowed)
        if extra:
            raise self.bad("Invalid input for field/attribute server. Value: %s. Additional properties are not allowed (%s %s unexpected)"
                           % (json.dumps(server)[:100], ", ".join(repr(e) for e in extra), "was" if len(extra) == 1 else "were"))
        name = server.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise self.bad("Invalid input for field/attribute name. Value: %r. %r does not match '^(?! )[\\x20-\\x7e]*[^ ]$'" % (name, name))
        flavor_id = str(server.get("flavorRef", ""))
        if flavor_id not in c.flavors:
            raise self.bad(f"Flavor {flavor_id} could not be found.")
        image_id = server.get("imageRef") or ""
        if image_id and image_id not in c.images:
            raise self.bad(f"Image {image_id} could not be found.")
        bdms = server.get("block_device_mapping_v2") or []
        if not isinstance(bdms, list):
            raise self.bad("Invalid input for field/attribute block_device_mapping_v2.")
        boot = [b for b in bdms if isinstance(b, dict) and str(b.get("boot_index")) == "0"]
        if not image_id and not boot:
            raise self.bad("Block Device Mapping is Invalid: Boot sequence for the instance and image/block device mapping combination is not valid.")
        volume_ids = []
        for b in bdms:
            if b.get("source_type") != "volume" or b.get("destination_type", "volume") != "volume":
                raise self.bad("Block Device Mapping is Invalid: this cloud accepts only volume-to-volume mappings.")
            vid = b.get("uuid")
            with c.lock:
                vol = c.volumes.get(vid)
                if vol is None:
                    raise self.bad(f"Block Device Mapping is Invalid: failed to get volume {vid}.")
                if vol["status"] != "available":
                    raise self.bad(f"Block Device Mapping is Invalid: Volume {vid} status must be 'available', but it is {vol['status']}.")
                if vol["availability_zone"] not in (server.get("availability_zone") or vol["availability_zone"],):
                    raise self.bad(f"Block Device Mapping is Invalid: Volume {vid} is in availability zone {vol['availability_zone']}, not {server.get('availability_zone')}.")
            volume_ids.append((vid, bool(b.get("delete_on_termination", False))))
        networks = server.get("networks")
        if req.mv >= (2, 37) and networks is None:
            raise self.bad("Invalid input for field/attribute server. Value: %s. 'networks' is a required property" % json.dumps(server)[:100])
        if networks in ("auto", None):
            net_name = next(iter(c.networks))
        elif networks == "none":
            net_name = None
        elif isinstance(networks, list) and networks:
            net_name = None
            for n in networks:
                uuid_ = n.get("uuid") if isinstance(n, dict) else None
                found = [k for k, v in c.networks.items() if v == uuid_]
                if not found:
                    raise self.bad(f"Network {uuid_} could not be found.")
                net_name = net_name or found[0]
        else:
            raise self.bad("Invalid input for field/attribute networks.")
        by_id = {str(uuid.uuid5(uuid.NAMESPACE_DNS, "sg." + g)): g for g in c.security_groups}
        groups = []
        for g in server.get("security_groups") or [{"name": "default"}]:
            ref = g.get("name") if isinstance(g, dict) else None
            # Nova resolves a group given by name or by id and shows names.
            group = ref if ref in c.security_groups else by_id.get(ref)
            if group is None:
                raise self.bad(f"Security group {ref} not found for project {c.project['id']}.")
            groups.append(group)
        key = server.get("key_name")
        if key is not None and key not in c.keypairs:
            raise self.bad("Invalid key_name provided.")
        zone = server.get("availability_zone") or c.zones[0]
        if zone not in c.zones:
            raise self.bad("The requested availability zone is not available")
        tags = server.get("tags") or []
        if len(tags) > 50 or any((not isinstance(t, str)) or not t or len(t) > 60 or "," in t or "/" in t for t in tags):
            raise self.bad("Invalid input for field/attribute tags. Tags must be 1-60 characters without ',' or '/', at most 50.")
        metadata = server.get("metadata") or {}
        if not isinstance(metadata, dict) or any(not isinstance(v, str) or len(k) > 255 or len(v) > 255 for k, v in metadata.items()):
            raise self.bad("Invalid input for field/attribute metadata.")
        user_data = server.get("user_data")
        decoded = None
        if user_data is not None:
            try:
                decoded = base64.b64decode(user_data, validate=True)
            except (binascii.Error, ValueError, TypeError):
                raise self.bad(f"Invalid input for field/attribute user_data. Value: {str(user_data)[:40]}. '{str(user_data)[:40]}' is not a 'base64'")
            if len(user_data) > 65535:
                raise self.bad("User data too large. User data must be no larger than 65535 bytes once base64 encoded.")
        flavor = c.flavors[flavor_id]
        with c.lock:
            used = c.usage()
            for res, need in (("instances", 1), ("cores", flavor["vcpus"]), ("ram", flavor["ram"])):
                limit = c.quotas[res]
                if limit >= 0 and used[res] + need > limit:
                    raise os_fault(403, f"Quota exceeded for {res}: Requested {need}, but already used {used[res]} of {limit} {res}")
            sid = new_id()
            t = now()
            s = {"id": sid, "name": name, "status": "BUILD", "task_state": "scheduling", "vm_state": "building",
                 "power_state": 0, "tenant_id": c.project["id"], "user_id": c.user["id"], "metadata": metadata,
                 "image_id": image_id, "flavor_id": flavor_id, "created": t, "updated": t, "launched_at": None,
                 "address": None, "network_name": net_name, "network_id": c.networks.get(net_name, ""),
                 "mac": model.mac_for(sid), "availability_zone": zone, "key_name": key, "tags": tags,
                 "security_groups": groups, "description": server.get("description"),
                 "bdms": [{"uuid": v, "delete_on_termination": d} for v, d in volume_ids],
                 "fault": None, "user_data": decoded, "dir": os.path.join(c.root, "servers", sid)}
            c.servers[sid] = s
            for vid, _ in volume_ids:
                c.volumes[vid]["status"] = "attaching"
                c.volumes[vid]["updated"] = t
        c.later(c.latency["attach"], self.attach_volumes, sid)
        c.later(c.latency["server_build"], self.finish_build, sid)
        admin_pass = base64.b32encode(os.urandom(10)).decode()[:12]
        return 202, {"server": {"id": sid, "links": self.link("servers", sid), "OS-DCF:diskConfig": "MANUAL",
                                "security_groups": [{"name": g} for g in groups], "adminPass": admin_pass}}, \
            {"Location": f"{self.compute_url()}/servers/{sid}"}

    def attach_volumes(self, sid):
        c = self.cloud
        with c.lock:
            s = c.servers.get(sid)
            if s is None:
                return
            for b in s["bdms"]:
                v = c.volumes.get(b["uuid"])
                if v is not None and v["status"] == "attaching":
                    v["status"] = "in-use"
                    v["attachments"] = [{"server_id": sid, "attachment_id": new_id(), "attached_at": now(),
                                         "device": "/dev/vda" if not s["image_id"] else "/dev/vdb"}]
                    v["updated"] = now()

    def finish_build(self, sid):
        c = self.cloud
        with c.lock:
            s = c.servers.get(sid)
            if s is None or s["status"] != "BUILD" or s["task_state"] == "deleting":
                return
            rule = c.behaviour(c.server_behaviour, s["name"])
            if rule and rule.get("outcome") == "stuck":
                s["task_state"] = "spawning"
                return
            if rule and rule.get("outcome") == "error":
                s.update(status="ERROR", vm_state="error", task_state=None, updated=now(),
                         fault={"code": 500, "created": iso(now()),
                                "message": rule.get("fault") or "No valid host was found. There are not enough hosts available."})
                for b in s["bdms"]:
                    v = c.volumes.get(b["uuid"])
                    if v is not None:
                        v["status"] = "available"
                        v["attachments"] = []
                return
        address = c.allocate_address(vm.address_is_free) if s["network_name"] else None
        with c.lock:
            s.update(status="ACTIVE", vm_state="active", task_state=None, power_state=1,
                     launched_at=now(), updated=now(), address=address)
        threading.Thread(target=self.boot_vm, args=(sid,), daemon=True).start()

    def boot_vm(self, sid):
        c = self.cloud
        with c.lock:
            s = c.servers.get(sid)
            if s is None or not s["bdms"]:
                return
            vol = c.volumes.get(s["bdms"][0]["uuid"])
            data_dir = vol["dir"] if vol else None
        if not data_dir or not os.path.exists(os.path.join(data_dir, "PG_VERSION")):
            return  # a volume without PostgreSQL: the VM boots, nothing to start
        os.makedirs(s["dir"], exist_ok=True)
        os.chmod(s["dir"], 0o755)
        drive = os.path.join(s["dir"], "config-drive")
        vm.write_config_drive(drive, s, s["user_data"], s["address"], s["network_name"])
        ok, out = vm.boot(s["dir"], drive, data_dir)
        with c.lock:
            s["boot_ok"] = ok
        print(f"cloudsim: server {sid} ({s['name']}) first boot {'ok' if ok else 'FAILED'}:\n{out}", flush=True)

    def list_servers_filtered(self, req):
        c = self.cloud
        for bad in ("metadata",):
            pass  # Nova ignores ?metadata= for non-admin users (it is not a filter they may use)
        tags = [t for t in (req.q("tags") or "").split(",") if t]
        tags_any = [t for t in (req.q("tags-any") or "").split(",") if t]
        not_tags = [t for t in (req.q("not-tags") or "").split(",") if t]
        name = req.q("name")
        status = req.q("status")
        with c.lock:
            servers = sorted((s for s in c.servers.values() if s["status"] != "DELETED"),
                             key=lambda s: (s["created"], s["id"]), reverse=True)
        out = []
        for s in servers:
            if tags and not all(t in s["tags"] for t in tags):
                continue
            if tags_any and not any(t in s["tags"] for t in tags_any):
                continue
            if not_tags and all(t in s["tags"] for t in not_tags):
                continue
            if name and not re.search(name, s["name"]):
                continue
            if status and s["status"] != status.upper():
                continue
            out.append(s)
        marker = req.q("marker")
        if marker:
            ids = [s["id"] for s in out]
            if marker not in ids:
                raise self.bad(f"marker [{marker}] not found")
            out = out[ids.index(marker) + 1:]
        limit = req.q("limit")
        links = None
        if limit is not None:
            try:
                limit = int(limit)
                if limit < 0:
                    raise ValueError
            except ValueError:
                raise self.bad("limit param must be an integer")
            limit = min(limit, 1000)
            if len(out) > limit:
                out = out[:limit]
                q = dict((k, v[-1]) for k, v in req.query.items())
                q["marker"] = out[-1]["id"] if out else ""
                links = [{"rel": "next", "href": f"{self.compute_url()}{req.path.split('/v2.1', 1)[1].split('/servers', 1)[0]}/servers{'/detail' if req.path.endswith('/detail') else ''}?{urllib.parse.urlencode(q)}"}]
        return out, links

    def list_servers_detail(self, req):
        servers, links = self.list_servers_filtered(req)
        body = {"servers": [self.server_view(s, req.mv) for s in servers]}
        if links:
            body["servers_links"] = links
        return 200, body, {}

    def list_servers(self, req):
        servers, links = self.list_servers_filtered(req)
        body = {"servers": [{"id": s["id"], "name": s["name"], "links": self.link("servers", s["id"])} for s in servers]}
        if links:
            body["servers_links"] = links
        return 200, body, {}

    def get_server(self, req, id):
        s = self.find_server(id)
        with self.cloud.lock:
            return 200, {"server": self.server_view(s, req.mv)}, {}

    def delete_server(self, req, id):
        c = self.cloud
        s = self.find_server(id)
        with c.lock:
            s["task_state"] = "deleting"
            s["updated"] = now()
        c.later(c.latency["server_delete"], self.finish_delete_server, id)
        return 204, None, {}

    def finish_delete_server(self, sid):
        c = self.cloud
        with c.lock:
            s = c.servers.get(sid)
            if s is None:
                return
            vols = [c.volumes.get(b["uuid"]) for b in s["bdms"]]
        for v in vols:
            if v is not None and v.get("dir"):
                vm.shutdown(v["dir"])  # the VM powers off: its PostgreSQL stops
        with c.lock:
            for b, v in zip(s["bdms"], vols):
                if v is None:
                    continue
                if b["delete_on_termination"]:
                    v["status"] = "deleting"
                    c.later(c.latency["volume_delete"], self.finish_delete_volume, v["id"])
                else:
                    v["status"] = "available"
                    v["attachments"] = []
                v["updated"] = now()
            if s["address"]:
                c.release_address(s["address"])
            s["status"] = "DELETED"
            del c.servers[sid]

    def list_zones(self, req):
        return 200, {"availabilityZoneInfo": [{"zoneName": z, "zoneState": {"available": True}, "hosts": None}
                                              for z in self.cloud.zones]}, {}

    def list_zones_detail(self, req):
        # Host details are for admins; Nova's default policy refuses members.
        raise os_fault(403, "Policy doesn't allow os_compute_api:os-availability-zone:detail to be performed.")

    def compute_limits(self, req):
        c = self.cloud
        used = c.usage()
        q = c.quotas
        absolute = {"maxServerMeta": 128, "maxTotalInstances": q["instances"], "maxTotalCores": q["cores"],
                    "maxTotalRAMSize": q["ram"], "maxTotalKeypairs": 100, "maxServerGroups": 10,
                    "maxServerGroupMembers": 10, "totalInstancesUsed": used["instances"],
                    "totalCoresUsed": used["cores"], "totalRAMUsed": used["ram"], "totalServerGroupsUsed": 0}
        if req.mv < (2, 39):
            absolute["maxImageMeta"] = 128  # the image-metadata proxy went away in 2.39
        if req.mv < (2, 57):
            absolute.update({"maxPersonality": 5, "maxPersonalitySize": 10240})
        if req.mv < (2, 36):
            absolute.update({"maxSecurityGroups": 10, "maxSecurityGroupRules": 20, "maxTotalFloatingIps": 10,
                             "totalSecurityGroupsUsed": 0, "totalFloatingIpsUsed": 0})
        return 200, {"limits": {"rate": [], "absolute": absolute}}, {}

    def flavor_view(self, f):
        return {"id": f["id"], "name": f["name"], "ram": f["ram"], "vcpus": f["vcpus"], "disk": f["disk"],
                "OS-FLV-EXT-DATA:ephemeral": 0, "OS-FLV-DISABLED:disabled": False, "swap": "",
                "rxtx_factor": 1.0, "os-flavor-access:is_public": True, "links": self.link("flavors", f["id"])}

    def list_flavors(self, req):
        return 200, {"flavors": [self.flavor_view(f) for f in self.cloud.flavors.values()]}, {}

    def get_flavor(self, req, id):
        f = self.cloud.flavors.get(id)
        if f is None:
            raise os_fault(404, f"Flavor {id} could not be found.")
        return 200, {"flavor": self.flavor_view(f)}, {}

    # ------------------------------------------------------------------ Cinder
    def volume_versions(self, req):
        doc = {"id": "v3.0", "status": "CURRENT", "version": vstr(CINDER_MAX), "min_version": vstr(CINDER_MIN),
               "updated": "2023-08-31T00:00:00Z",
               "links": [{"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"},
                         {"rel": "self", "href": f"{self.base()}/volume/v3/"}],
               "media-types": [{"base": "application/json",
                                "type": "application/vnd.openstack.volume+json;version=3"}]}
        return 300 if req.path.rstrip("/") == "/volume" else 200, {"versions": [doc]}, {}

    def vlink(self, kind, id_):
        return [{"rel": "self", "href": f"{self.volume_url()}/{kind}/{id_}"},
                {"rel": "bookmark", "href": f"{self.volume_url().replace('/v3', '')}/{kind}/{id_}"}]

    def volume_view(self, v, mv, create=False):
        view = {"id": v["id"], "name": v["name"], "status": v["status"], "size": v["size"],
                "availability_zone": v["availability_zone"], "created_at": iso(v["created"], micro=True, zulu=False),
                "updated_at": iso(v["updated"], micro=True, zulu=False), "description": v["description"],
                "volume_type": v["volume_type"], "snapshot_id": v["snapshot_id"], "source_volid": None,
                "metadata": dict(v["metadata"]), "links": self.vlink("volumes", v["id"]),
                "user_id": self.cloud.user["id"], "bootable": "true" if v["bootable"] else "false",
                "encrypted": False, "replication_status": None, "consistencygroup_id": None,
                "multiattach": False,
                "attachments": [{"server_id": a["server_id"], "attachment_id": a["attachment_id"],
                                 "attached_at": iso(a["attached_at"], micro=True, zulu=False),
                                 "host_name": None, "volume_id": v["id"], "device": a["device"],
                                 "id": v["id"]} for a in v["attachments"]],
                "migration_status": None}
        if not create:
            # Cinder's create answer is built before the volume has its extended attributes.
            view["os-vol-tenant-attr:tenant_id"] = self.cloud.project["id"]
        if mv >= (3, 13):
            view["group_id"] = None
        if mv >= (3, 21):
            view["provider_id"] = None
        if mv >= (3, 48):
            view["service_uuid"] = "6d6e4b9f-6c2b-4f4e-9f36-0cc3a4b7c0d1"
            view["shared_targets"] = True
        return view

    def snapshot_view(self, s, mv, create=False):
        view = {"id": s["id"], "name": s["name"], "description": s["description"], "status": s["status"],
                "size": s["size"], "volume_id": s["volume_id"], "metadata": dict(s["metadata"]),
                "created_at": iso(s["created"], micro=True, zulu=False),
                "updated_at": iso(s["updated"], micro=True, zulu=False)}
        if not create:
            view["os-extended-snapshot-attributes:progress"] = "100%" if s["status"] == "available" else "0%"
            view["os-extended-snapshot-attributes:project_id"] = self.cloud.project["id"]
        # Cinder adds group_snapshot_id from 3.14 and user_id from 3.41, but tempest's snapshot
        # schemas (what clouds are certified against) forbid both below 3.65; left out so that
        # strict clients built on those schemas accept these answers.
        return view

    def parse_metadata_filter(self, text):
        if text is None:
            return None
        for parse in (json.loads, ast.literal_eval):
            try:
                value = parse(text)
                if isinstance(value, dict):
                    return {str(k): str(v) for k, v in value.items()}
            except (ValueError, SyntaxError):
                continue
        raise os_fault(400, f"Invalid filter: metadata {text!r} is not a dictionary")

    def find_volume(self, id_):
        v = self.cloud.volumes.get(id_)
        if v is None:
            raise os_fault(404, f"Volume {id_} could not be found.")
        return v

    def create_volume(self, req):
        c = self.cloud
        body = req.json()
        vol = body.get("volume") if isinstance(body, dict) else None
        if not isinstance(vol, dict):
            raise os_fault(400, "Invalid input for field/attribute volume. Value: None. 'volume' is a required property")
        snapshot_id = vol.get("snapshot_id")
        size = vol.get("size")
        if size is None and snapshot_id is None:
            raise os_fault(400, "Invalid input received: Volume size must be specified when not creating from a snapshot or a volume.")
        zone = vol.get("availability_zone") or c.zones[0]
        if zone not in c.zones:
            raise os_fault(400, f"Invalid input received: Availability zone '{zone}' is invalid.")
        metadata = vol.get("metadata") or {}
        if not isinstance(metadata, dict) or any(not isinstance(v, str) for v in metadata.values()):
            raise os_fault(400, "Invalid input for field/attribute metadata.")
        with c.lock:
            snap = None
            if snapshot_id is not None:
                snap = c.snapshots.get(snapshot_id)
                if snap is None:
                    raise os_fault(404, f"Snapshot {snapshot_id} could not be found.")
                if snap["status"] != "available":
                    raise os_fault(400, f"Invalid snapshot: Originating snapshot status must be one of 'available' values")
                if size is None:
                    size = snap["size"]
            try:
                size = int(size)
            except (TypeError, ValueError):
                raise os_fault(400, f"Invalid input for field/attribute size. Value: {size}.")
            if size < 1 or (snap and size < snap["size"]):
                raise os_fault(400, f"Invalid input received: Volume size '{size}'GB cannot be smaller than the snapshot size {snap['size'] if snap else 1}GB. They must be >= original snapshot size.")
            used = c.usage()
            if c.quotas["volumes"] >= 0 and used["volumes"] + 1 > c.quotas["volumes"]:
                raise os_fault(413, f"VolumeLimitExceeded: Maximum number of volumes allowed ({c.quotas['volumes']}) exceeded for quota 'volumes'.")
            if c.quotas["gigabytes"] >= 0 and used["gigabytes"] + size > c.quotas["gigabytes"]:
                raise os_fault(413, f"VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes quota. Requested {size}G, quota is {c.quotas['gigabytes']}G and {used['gigabytes']}G has been consumed.")
            vid = new_id()
            t = now()
            v = {"id": vid, "name": vol.get("name"), "status": "creating", "size": size, "availability_zone": zone,
                 "created": t, "updated": None, "description": vol.get("description"),
                 "volume_type": vol.get("volume_type") or "__DEFAULT__", "snapshot_id": snapshot_id,
                 "metadata": metadata, "bootable": bool(snap and snap.get("bootable")), "attachments": [],
                 "dir": os.path.join(c.root, "volumes", vid), "external": False}
            c.volumes[vid] = v
            rule = c.behaviour(c.volume_behaviour, v["name"] or "")
        delay = c.latency["volume_create"]
        if rule and rule.get("outcome") == "slow":
            delay = float(rule.get("delay", 30))
        c.later(delay, self.finish_create_volume, vid, snap["dir"] if snap else None,
                bool(rule and rule.get("outcome") == "error"))
        with c.lock:
            return 202, {"volume": self.volume_view(v, req.mv, create=True)}, {}

    def finish_create_volume(self, vid, source_dir, fail):
        c = self.cloud
        with c.lock:
            v = c.volumes.get(vid)
            if v is None or v["status"] != "creating":
                return
        status = "error" if fail else "available"
        if not fail:
            try:
                if source_dir:
                    vm.clone(source_dir, v["dir"])
                else:
                    os.makedirs(v["dir"], exist_ok=True)
            except Exception as e:
                print(f"cloudsim: volume {vid}: {e}", flush=True)
                status = "error"
        with c.lock:
            v["status"] = status
            v["updated"] = now()

    def list_volumes(self, req, detail=None):
        c = self.cloud
        wanted = self.parse_metadata_filter(req.q("metadata"))
        name = req.q("name")
        status = req.q("status")
        with c.lock:
            vols = sorted(c.volumes.values(), key=lambda v: v["created"], reverse=True)
            out = [v for v in vols
                   if (wanted is None or all(v["metadata"].get(k) == val for k, val in wanted.items()))
                   and (name is None or v["name"] == name) and (status is None or v["status"] == status)]
            if detail:
                return 200, {"volumes": [self.volume_view(v, req.mv) for v in out]}, {}
            return 200, {"volumes": [{"id": v["id"], "name": v["name"], "links": self.vlink("volumes", v["id"])}
                                     for v in out]}, {}

    def get_volume(self, req, id):
        with self.cloud.lock:
            return 200, {"volume": self.volume_view(self.find_volume(id), req.mv)}, {}

    def delete_volume(self, req, id):
        c = self.cloud
        with c.lock:
            v = self.find_volume(id)
            if v["status"] not in ("available", "error", "error_restoring", "error_extending", "error_managing") \
                    or v["attachments"] or any(s["volume_id"] == id for s in c.snapshots.values()):
                raise os_fault(400, "Invalid volume: Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots or be disassociated from snapshots after volume transfer.")
            v["status"] = "deleting"
            v["updated"] = now()
        c.later(c.latency["volume_delete"], self.finish_delete_volume, id)
        return 202, None, {}

    def finish_delete_volume(self, vid):
        c = self.cloud
        with c.lock:
            v = c.volumes.get(vid)
            if v is None:
                return
        if v.get("dir") and not v.get("external"):
            vm.remove(v["dir"])
        with c.lock:
            c.volumes.pop(vid, None)

    def create_snapshot(self, req):
        c = self.cloud
        body = req.json()
        snap = body.get("snapshot") if isinstance(body, dict) else None
        if not isinstance(snap, dict) or "volume_id" not in snap:
            raise os_fault(400, "Invalid input for field/attribute snapshot. 'volume_id' is a required property")
        force = snap.get("force", False)
        if isinstance(force, str):
            if force.lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off", "y", "n", "t", "f"):
                raise os_fault(400, f"Invalid value '{force}' for force.")
            force = force.lower() in ("true", "1", "yes", "on", "y", "t")
        with c.lock:
            vol = c.volumes.get(snap["volume_id"])
            if vol is None:
                raise os_fault(404, f"Volume {snap['volume_id']} could not be found.")
            if vol["status"] == "in-use" and not force:
                raise os_fault(400, f"Invalid volume: Volume {vol['id']} status must be available, but current status is: in-use.")
            if vol["status"] not in ("available", "in-use"):
                raise os_fault(400, f"Invalid volume: Volume {vol['id']} status must be available or in-use, but current status is: {vol['status']}.")
            used = c.usage()
            if c.quotas["snapshots"] >= 0 and used["snapshots"] + 1 > c.quotas["snapshots"]:
                raise os_fault(413, f"SnapshotLimitExceeded: Maximum number of snapshots allowed ({c.quotas['snapshots']}) exceeded")
            sid = new_id()
            s = {"id": sid, "name": snap.get("name"), "description": snap.get("description"), "status": "creating",
                 "size": vol["size"], "volume_id": vol["id"], "metadata": snap.get("metadata") or {},
                 "created": now(), "updated": None, "bootable": vol["bootable"],
                 "dir": os.path.join(c.root, "snapshots", sid)}
            c.snapshots[sid] = s
        c.later(c.latency["snapshot_create"], self.finish_snapshot, sid, vol["dir"])
        with c.lock:
            return 202, {"snapshot": self.snapshot_view(s, req.mv, create=True)}, {}

    def finish_snapshot(self, sid, source_dir):
        c = self.cloud
        status = "available"
        try:
            if source_dir and os.path.isdir(source_dir):
                vm.snapshot_copy(source_dir, os.path.join(c.root, "snapshots", sid))
            else:
                os.makedirs(os.path.join(c.root, "snapshots", sid), exist_ok=True)
        except Exception as e:
            print(f"cloudsim: snapshot {sid}: {e}", flush=True)
            status = "error"
        with c.lock:
            s = c.snapshots.get(sid)
            if s is not None and s["status"] == "creating":
                s["status"] = status
                s["updated"] = now()

    def list_snapshots(self, req, detail=None):
        c = self.cloud
        # Filtering snapshots by metadata arrived with microversion 3.22; before it Cinder
        # ignores the filter.
        wanted = self.parse_metadata_filter(req.q("metadata")) if req.mv >= (3, 22) else None
        volume_id = req.q("volume_id")
        with c.lock:
            snaps = sorted(c.snapshots.values(), key=lambda s: s["created"], reverse=True)
            out = [s for s in snaps
                   if (wanted is None or all(s["metadata"].get(k) == v for k, v in wanted.items()))
                   and (volume_id is None or s["volume_id"] == volume_id)]
            if detail:
                return 200, {"snapshots": [self.snapshot_view(s, req.mv) for s in out]}, {}
            return 200, {"snapshots": [self.snapshot_view(s, req.mv, create=True) for s in out]}, {}

    def get_snapshot(self, req, id):
        with self.cloud.lock:
            s = self.cloud.snapshots.get(id)
            if s is None:
                raise os_fault(404, f"Snapshot {id} could not be found.")
            return 200, {"snapshot": self.snapshot_view(s, req.mv)}, {}

    def delete_snapshot(self, req, id):
        c = self.cloud
        with c.lock:
            s = c.snapshots.get(id)
            if s is None:
                raise os_fault(404, f"Snapshot {id} could not be found.")
            if s["status"] not in ("available", "error", "error_deleting"):
                raise os_fault(400, f"Invalid snapshot: Volume Snapshot status must be available or error or error_deleting")
            if any(v["snapshot_id"] == id and v["status"] == "creating" for v in c.volumes.values()):
                raise os_fault(400, "Invalid snapshot: a volume is being created from it")
            s["status"] = "deleting"
            s["updated"] = now()
        c.later(c.latency["snapshot_delete"], self.finish_delete_snapshot, id)
        return 202, None, {}

    def finish_delete_snapshot(self, sid):
        vm.remove(os.path.join(self.cloud.root, "snapshots", sid))
        with self.cloud.lock:
            self.cloud.snapshots.pop(sid, None)

    def volume_limits(self, req):
        c = self.cloud
        used = c.usage()
        q = c.quotas
        return 200, {"limits": {"rate": [], "absolute": {
            "totalSnapshotsUsed": used["snapshots"], "maxTotalBackups": 10, "maxTotalVolumeGigabytes": q["gigabytes"],
            "maxTotalSnapshots": q["snapshots"], "maxTotalBackupGigabytes": 1000, "totalBackupGigabytesUsed": 0,
            "maxTotalVolumes": q["volumes"], "totalVolumesUsed": used["volumes"], "totalBackupsUsed": 0,
            "totalGigabytesUsed": used["gigabytes"]}}}, {}

    def list_volume_zones(self, req):
        return 200, {"availabilityZoneInfo": [{"zoneName": z, "zoneState": {"available": True}}
                                              for z in self.cloud.zones]}, {}

    # ------------------------------------------------------------------ Neutron
    def network_versions(self, req):
        return 200, {"versions": [{"id": "v2.0", "status": "CURRENT",
                                   "links": [{"rel": "self", "href": f"{self.base()}/network/v2.0/"}]}]}, {}

    def network_view(self, name, id_):
        return {"id": id_, "name": name, "tenant_id": self.cloud.project["id"],
                "project_id": self.cloud.project["id"], "admin_state_up": True, "status": "ACTIVE",
                "subnets": [], "shared": False, "mtu": 1450, "router:external": False,
                "availability_zones": list(self.cloud.zones), "availability_zone_hints": [],
                "port_security_enabled": True, "tags": [], "description": "", "revision_number": 1,
                "ipv4_address_scope": None, "ipv6_address_scope": None, "is_default": False,
                "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}

    def list_networks(self, req):
        name, id_ = req.q("name"), req.q("id")
        nets = [self.network_view(n, i) for n, i in self.cloud.networks.items()
                if (name is None or n == name) and (id_ is None or i == id_)]
        return 200, {"networks": nets}, {}

    def get_network(self, req, id):
        for n, i in self.cloud.networks.items():
            if i == id:
                return 200, {"network": self.network_view(n, i)}, {}
        raise ApiError(404, {"NeutronError": {"type": "NetworkNotFound",
                                              "message": f"Network {id} could not be found.", "detail": ""}})

    def list_security_groups(self, req):
        name = req.q("name")
        groups = [{"id": str(uuid.uuid5(uuid.NAMESPACE_DNS, "sg." + g)), "name": g, "description": "",
                   "tenant_id": self.cloud.project["id"], "project_id": self.cloud.project["id"],
                   "security_group_rules": [], "stateful": True, "tags": [], "revision_number": 1}
                  for g in sorted(self.cloud.security_groups) if name is None or g == name]
        return 200, {"security_groups": groups}, {}

    def list_network_zones(self, req):
        return 200, {"availability_zones": [{"name": z, "resource": "network", "state": "available"}
                                            for z in self.cloud.zones]}, {}

    def list_network_extensions(self, req):
        return 200, {"extensions": [{"alias": "availability_zone", "name": "Availability Zone",
                                     "description": "The availability zone extension.",
                                     "updated": "2015-01-01T10:00:00-00:00", "links": []}]}, {}

    # ------------------------------------------------------------------ Glance
    def image_versions(self, req):
        return 300, {"versions": [{"id": "v2.15", "status": "CURRENT",
                                   "links": [{"rel": "self", "href": f"{self.base()}/image/v2/"}]}]}, {}

    def image_view(self, id_, name):
        t = "2026-01-01T00:00:00Z"
        return {"id": id_, "name": name, "status": "active", "visibility": "public", "protected": False,
                "disk_format": "qcow2", "container_format": "bare", "min_disk": 0, "min_ram": 0,
                "size": 2147483648, "checksum": None, "os_hidden": False, "owner": self.cloud.project["id"],
                "tags": [], "created_at": t, "updated_at": t, "self": f"/v2/images/{id_}",
                "file": f"/v2/images/{id_}/file", "schema": "/v2/schemas/image"}

    def list_images(self, req):
        # Glance compares most image attributes exactly (name=, status=, visibility=); the
        # "first" link repeats the filters, as Glance's does.
        name, status = req.q("name"), req.q("status")
        images = [self.image_view(i, n) for i, n in self.cloud.images.items()
                  if (name is None or n == name) and (status is None or status == "active")]
        query = urllib.parse.urlencode([(k, v) for k, v in (("name", name), ("status", status)) if v is not None])
        return 200, {"images": images, "first": "/v2/images" + (f"?{query}" if query else ""),
                     "schema": "/v2/schemas/images"}, {}

    def get_image(self, req, id):
        if id not in self.cloud.images:
            return 404, b"<html><body><h1>404 Not Found</h1>No image found with ID %s</body></html>" % id.encode(), \
                {"Content-Type": "text/html; charset=UTF-8"}
        return 200, self.image_view(id, self.cloud.images[id]), {}

    # ------------------------------------------------------------------ Designate
    def dns_versions(self, req):
        return 200, {"versions": [{"id": "v2", "status": "CURRENT",
                                   "links": [{"href": f"{self.base()}/dns/v2", "rel": "self"}]}]}, {}

    def zone_view(self, z):
        return {"id": z["id"], "pool_id": "794ccc2c-d751-44fe-b57f-8894c9f5c842", "project_id": self.cloud.project["id"],
                "name": z["name"], "email": "hostmaster@" + z["name"].rstrip("."), "ttl": 3600, "serial": z["serial"],
                "status": "ACTIVE", "action": "NONE", "description": None, "masters": [], "type": "PRIMARY",
                "transferred_at": None, "version": 1, "created_at": iso(z["created"], micro=True, zulu=False),
                "updated_at": None, "attributes": {}, "links": {"self": f"{self.base()}/dns/v2/zones/{z['id']}"}}

    def recordset_view(self, r):
        return {"id": r["id"], "zone_id": r["zone_id"], "project_id": self.cloud.project["id"], "name": r["name"],
                "zone_name": r["zone_name"], "type": r["type"], "records": list(r["records"]), "ttl": r["ttl"],
                "status": r["status"], "action": r["action"], "version": r["version"], "description": r["description"],
                "created_at": iso(r["created"], micro=True, zulu=False),
                "updated_at": iso(r["updated"], micro=True, zulu=False),
                "links": {"self": f"{self.base()}/dns/v2/zones/{r['zone_id']}/recordsets/{r['id']}"}}

    def list_dns_zones(self, req):
        name = req.q("name")
        with self.cloud.lock:
            zones = [z for z in self.cloud.zones_dns.values() if name is None or z["name"] == name]
            return 200, {"zones": [self.zone_view(z) for z in zones],
                         "links": {"self": f"{self.base()}/dns/v2/zones"},
                         "metadata": {"total_count": len(zones)}}, {}

    def find_zone(self, zone):
        z = self.cloud.zones_dns.get(zone)
        if z is None:
            raise designate_fault(404, "zone_not_found", "Could not find Zone")
        return z

    def create_recordset(self, req, zone):
        c = self.cloud
        body = req.json(fault=lambda s, m: designate_fault(400, "invalid_object", m))
        if not isinstance(body, dict):
            raise designate_fault(400, "invalid_object", "Provided object does not match schema")
        with c.lock:
            z = self.find_zone(zone)
            name = body.get("name")
            type_ = body.get("type")
            records = body.get("records")
            ttl = body.get("ttl")
            if not isinstance(name, str) or not name.endswith("."):
                raise designate_fault(400, "invalid_object", "Provided object does not match schema: 'name' must be a fully qualified domain name ending with '.'")
            if not name.endswith("." + z["name"]) and name != z["name"]:
                raise designate_fault(400, "invalid_recordset_location", "RecordSet belongs in a child zone or is not within this zone")
            if type_ != "A":
                raise designate_fault(400, "invalid_object", "This cloud supports A recordsets only")
            if not isinstance(records, list) or not records:
                raise designate_fault(400, "invalid_object", "Provided object does not match schema: 'records' is required")
            for rec in records:
                try:
                    ipaddress.IPv4Address(rec)
                except (ipaddress.AddressValueError, ValueError):
                    raise designate_fault(400, "invalid_object", f"Provided object does not match schema: '{rec}' is not a 'ipv4'")
            if ttl is not None and (not isinstance(ttl, int) or ttl < 1 or ttl > 2147483647):
                raise designate_fault(400, "invalid_object", "Provided object does not match schema: ttl")
            if any(r["zone_id"] == zone and r["name"] == name and r["type"] == type_ for r in c.recordsets.values()):
                raise designate_fault(409, "duplicate_recordset", "Duplicate RecordSet")
            rid = new_id()
            r = {"id": rid, "zone_id": zone, "zone_name": z["name"], "name": name, "type": type_,
                 "records": records, "ttl": ttl, "status": "PENDING", "action": "CREATE", "version": 1,
                 "description": body.get("description"), "created": now(), "updated": None}
            c.recordsets[rid] = r
        c.later(c.latency["recordset"], self.settle_recordset, rid)
        with c.lock:
            return 202, self.recordset_view(r), {}

    def settle_recordset(self, rid):
        with self.cloud.lock:
            r = self.cloud.recordsets.get(rid)
            if r is None:
                return
            if r["action"] == "DELETE":
                del self.cloud.recordsets[rid]
                return
            r.update(status="ACTIVE", action="NONE", updated=now())

    def list_recordsets(self, req, zone):
        # Designate filters on name, type, status, data and ttl; name and type are exact unless
        # they hold the '*' wildcard.
        def matches(pattern, value):
            if pattern is None:
                return True
            if "*" in pattern:
                return re.fullmatch(".*".join(re.escape(p) for p in pattern.split("*")), value or "") is not None
            return pattern == value
        name, type_, status = req.q("name"), req.q("type"), req.q("status")
        with self.cloud.lock:
            self.find_zone(zone)
            rs = [r for r in self.cloud.recordsets.values() if r["zone_id"] == zone
                  and matches(name, r["name"]) and matches(type_, r["type"]) and matches(status, r["status"])]
            return 200, {"recordsets": [self.recordset_view(r) for r in rs],
                         "links": {"self": f"{self.base()}/dns/v2/zones/{zone}/recordsets"},
                         "metadata": {"total_count": len(rs)}}, {}

    def get_recordset(self, req, zone, id):
        with self.cloud.lock:
            self.find_zone(zone)
            r = self.cloud.recordsets.get(id)
            if r is None or r["zone_id"] != zone:
                raise designate_fault(404, "recordset_not_found", "Could not find RecordSet")
            return 200, self.recordset_view(r), {}

    def update_recordset(self, req, zone, id):
        c = self.cloud
        body = req.json(fault=lambda s, m: designate_fault(400, "invalid_object", m))
        if not isinstance(body, dict):
            raise designate_fault(400, "invalid_object", "Provided object does not match schema")
        extra = sorted(set(body) - {"records", "ttl", "description"})
        if extra:
            raise designate_fault(400, "invalid_object", f"Provided object does not match schema: '{extra[0]}' is a read-only or unknown attribute")
        records = body.get("records")
        ttl = body.get("ttl")
        if records is not None:
            if not isinstance(records, list) or not records:
                raise designate_fault(400, "invalid_object", "Provided object does not match schema: 'records'")
            for rec in records:
                try:
                    ipaddress.IPv4Address(rec)
                except (ipaddress.AddressValueError, ValueError):
                    raise designate_fault(400, "invalid_object", f"Provided object does not match schema: '{rec}' is not a 'ipv4'")
        if ttl is not None and (not isinstance(ttl, int) or ttl < 1 or ttl > 2147483647):
            raise designate_fault(400, "invalid_object", "Provided object does not match schema: ttl")
        with c.lock:
            self.find_zone(zone)
            r = c.recordsets.get(id)
            if r is None or r["zone_id"] != zone:
                raise designate_fault(404, "recordset_not_found", "Could not find RecordSet")
            if records is not None:
                r["records"] = records
            if "ttl" in body:
                r["ttl"] = ttl
            if "description" in body:
                r["description"] = body["description"]
            r.update(status="PENDING", action="UPDATE", updated=now(), version=r["version"] + 1)
            view = self.recordset_view(r)
        c.later(c.latency["recordset"], self.settle_recordset, id)
        return 202, view, {}

    def delete_recordset(self, req, zone, id):
        c = self.cloud
        with c.lock:
            self.find_zone(zone)
            r = c.recordsets.get(id)
            if r is None or r["zone_id"] != zone:
                raise designate_fault(404, "recordset_not_found", "Could not find RecordSet")
            r.update(status="PENDING", action="DELETE", updated=now(), version=r["version"] + 1)
            view = self.recordset_view(r)
        c.later(c.latency["recordset"], self.settle_recordset, id)
        return 202, view, {}

    # ------------------------------------------------------------------ control
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
                "captured_requests": len(c.requests)}, {}

    def control_requests(self, req):
        service = req.q("service")
        with self.capture_lock:
            out = [r for r in self.cloud.requests if service is None or r["service"] == service]
        return 200, {"requests": out}, {}

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
            return 200, {"latency": self.cloud.latency}, {}

    def control_quotas(self, req):
        b = req.json()
        with self.cloud.lock:
            for k, v in b.items():
                if k not in self.cloud.quotas:
                    raise ApiError(400, {"error": f"unknown quota '{k}'"})
                self.cloud.quotas[k] = int(v)
            return 200, {"quotas": self.cloud.quotas}, {}

    # ------------------------------------------------------------------ set-up
    def add_dns_zone(self, name):
        zid = str(uuid.uuid5(uuid.NAMESPACE_DNS, "zone." + name))
        self.cloud.zones_dns[zid] = {"id": zid, "name": name, "serial": 1700000000, "created": now()}

    def add_donor(self, name, data_dir, address, volume_id, size):
        """A server that already exists (the donor replica) whose data volume is `data_dir`."""
        c = self.cloud
        t = now()
        sid = str(uuid.uuid5(uuid.NAMESPACE_DNS, "server." + name))
        net = next(iter(c.networks))
        c.volumes[volume_id] = {"id": volume_id, "name": f"{name}-data", "status": "in-use", "size": size,
                                "availability_zone": c.zones[0], "created": t, "updated": t,
                                "description": "donor replica data", "volume_type": "__DEFAULT__",
                                "snapshot_id": None, "metadata": {"role": "donor"}, "bootable": True,
                                "attachments": [{"server_id": sid, "attachment_id": new_id(), "attached_at": t,
                                                 "device": "/dev/vda"}],
                                "dir": os.path.abspath(data_dir), "external": True}
        c.servers[sid] = {"id": sid, "name": name, "status": "ACTIVE", "task_state": None, "vm_state": "active",
                          "power_state": 1, "tenant_id": c.project["id"], "user_id": c.user["id"],
                          "metadata": {"role": "donor"}, "image_id": "", "flavor_id": "pg.replica", "created": t,
                          "updated": t, "launched_at": t, "address": address, "network_name": net,
                          "network_id": c.networks[net], "mac": model.mac_for(sid), "availability_zone": c.zones[0],
                          "key_name": None, "tags": ["donor"], "security_groups": ["default"], "description": None,
                          "bdms": [{"uuid": volume_id, "delete_on_termination": False}], "fault": None,
                          "user_data": None, "dir": os.path.join(c.root, "servers", sid)}
        c.used_addresses.add(address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    sim = None

    def log_message(self, fmt, *args):
        if os.environ.get("CLOUDSIM_ACCESS_LOG"):
            sys.stderr.write("cloudsim: %s\n" % (fmt % args))

    def do_GET(self):
        self.sim.handle(self, "GET")

    def do_HEAD(self):
        self.sim.handle(self, "HEAD")

    def do_POST(self):
        self.sim.handle(self, "POST")

    def do_PUT(self):
        self.sim.handle(self, "PUT")

    def do_PATCH(self):
        self.sim.handle(self, "PATCH")

    def do_DELETE(self):
        self.sim.handle(self, "DELETE")


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
    args = p.parse_args()

    if not re.fullmatch(r"127\.0\.\d{1,3}", args.address_base):
        p.error("--address-base must look like 127.0.X")
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
    sim = Simulator(cloud, args.host, args.port, args.capture)
    sim.add_dns_zone(args.dns_zone)
    if args.donor_dir:
        sim.add_donor(args.donor_name, args.donor_dir, args.donor_address, args.donor_volume_id, args.donor_size)
    Handler.sim = sim
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"cloudsim: listening on {sim.base()} (auth_url {sim.base()}/identity/v3, project "
          f"{cloud.project['name']} {cloud.project['id']}, profile {args.profile})", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        # Powering the cloud off stops every simulated VM (never the donor, which is not ours).
        with cloud.lock:
            dirs = [cloud.volumes[b["uuid"]]["dir"] for s in cloud.servers.values() for b in s["bdms"]
                    if b["uuid"] in cloud.volumes and not cloud.volumes[b["uuid"]].get("external")]
        for d in dirs:
            vm.shutdown(d)
        print("cloudsim: stopped", flush=True)


if __name__ == "__main__":
    main()
