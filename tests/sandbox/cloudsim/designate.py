"""Designate v2: zones and A recordsets (PENDING, then ACTIVE).

A mixin of the Simulator (app.py): `self.cloud` is the model, `self.base()` the endpoint.
"""
import ipaddress
import re
import uuid

from .common import designate_fault
from .model import iso, new_id, now


class DesignateApi:
    def designate_routes(self):
        """(method, path pattern, service, fault-injection op, handler)."""
        return [
            ("GET", r"/dns/?", "dns", None, self.dns_versions),
            ("GET", r"/dns/v2/zones", "dns", "designate.list_zones", self.list_dns_zones),
            ("POST", r"/dns/v2/zones/(?P<zone>[^/]+)/recordsets", "dns", "designate.create_recordset", self.create_recordset),
            ("GET", r"/dns/v2/zones/(?P<zone>[^/]+)/recordsets", "dns", "designate.list_recordsets", self.list_recordsets),
            ("GET", r"/dns/v2/zones/(?P<zone>[^/]+)/recordsets/(?P<id>[^/]+)", "dns", "designate.get_recordset", self.get_recordset),
            ("PUT", r"/dns/v2/zones/(?P<zone>[^/]+)/recordsets/(?P<id>[^/]+)", "dns", "designate.update_recordset", self.update_recordset),
            ("DELETE", r"/dns/v2/zones/(?P<zone>[^/]+)/recordsets/(?P<id>[^/]+)", "dns", "designate.delete_recordset", self.delete_recordset),
        ]

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


    def add_dns_zone(self, name):
        zid = str(uuid.uuid5(uuid.NAMESPACE_DNS, "zone." + name))
        self.cloud.zones_dns[zid] = {"id": zid, "name": name, "serial": 1700000000, "created": now()}
