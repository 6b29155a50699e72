"""Neutron v2.0, only what generic clients look up: networks, security groups, zones.

A mixin of the Simulator (app.py): `self.cloud` is the model, `self.base()` the endpoint.
"""
import uuid

from .common import ApiError


class NeutronApi:
    def neutron_routes(self):
        """(method, path pattern, service, fault-injection op, handler)."""
        return [
            ("GET", r"/network/?", "network", None, self.network_versions),
            ("GET", r"/network/v2\.0/networks", "network", "neutron.list_networks", self.list_networks),
            ("GET", r"/network/v2\.0/networks/(?P<id>[^/]+)", "network", "neutron.get_network", self.get_network),
            ("GET", r"/network/v2\.0/security-groups", "network", "neutron.list_security_groups", self.list_security_groups),
            ("GET", r"/network/v2\.0/availability_zones", "network", "neutron.zones", self.list_network_zones),
            ("GET", r"/network/v2\.0/extensions", "network", "neutron.extensions", self.list_network_extensions),
        ]

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
