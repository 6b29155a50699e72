"""Nova v2.1: servers (build, first boot of the VM, delete), availability zones, limits, flavors.

A mixin of the Simulator (app.py): `self.cloud` is the model, `self.base()` the endpoint.
"""
import base64
import binascii
import hashlib
import json
import os
import re
import threading
import urllib.parse
import uuid

from . import model, vm
from .common import NOVA_MAX, NOVA_MIN, os_fault, vstr
from .model import iso, new_id, now


class NovaApi:
    def nova_routes(self):
        """(method, path pattern, service, fault-injection op, handler)."""
        P = r"(?:/[0-9a-f]{32})?"  # optional project id in Huawei-style compute URLs
        return [
            ("GET", r"/compute/?", "compute", None, self.compute_versions),
            ("GET", rf"/compute/v2\.1{P}/?", "compute", None, self.compute_version),
            ("POST", rf"/compute/v2\.1{P}/servers", "compute", "nova.create_server", self.create_server),
            ("GET", rf"/compute/v2\.1{P}/servers/detail", "compute", "nova.list_servers", self.list_servers_detail),
            ("GET", rf"/compute/v2\.1{P}/servers", "compute", "nova.list_servers", self.list_servers),
            ("GET", rf"/compute/v2\.1{P}/servers/(?P<id>[^/]+)", "compute", "nova.get_server", self.get_server),
            ("DELETE", rf"/compute/v2\.1{P}/servers/(?P<id>[^/]+)", "compute", "nova.delete_server", self.delete_server),
            ("PUT", rf"/compute/v2\.1{P}/servers/(?P<id>[^/]+)/tags", "compute", "nova.set_tags", self.replace_tags),
            ("PUT", rf"/compute/v2\.1{P}/servers/(?P<id>[^/]+)/metadata", "compute", "nova.set_metadata", self.replace_metadata),
            ("GET", rf"/compute/v2\.1{P}/os-availability-zone", "compute", "nova.zones", self.list_zones),
            ("GET", rf"/compute/v2\.1{P}/os-availability-zone/detail", "compute", "nova.zones", self.list_zones_detail),
            ("GET", rf"/compute/v2\.1{P}/limits", "compute", "nova.limits", self.compute_limits),
            ("GET", rf"/compute/v2\.1{P}/flavors(?:/detail)?", "compute", "nova.flavors", self.list_flavors),
            ("GET", rf"/compute/v2\.1{P}/flavors/(?P<id>[^/]+)", "compute", "nova.flavors", self.get_flavor),
        ]

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
                else {"id": b["uuid"]} for b in s["bdms"] if b["source_type"] == "volume"],
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
        bdms = self.check_bdms(server, image_id)
        volume_ids = [(b["uuid"], b["delete_on_termination"]) for b in bdms if b["source_type"] == "volume"]
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
                 "bdms": bdms,
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

    def check_bdms(self, server, image_id):
        """Nova's rules for block_device_mapping_v2 (nova/block_device.py from_api, compute/api.py
        _check_and_transform_bdm and _validate_bdm), as far as this cloud's requests go. Nova adds
        no image disk when mappings are given: the root is the mapping at boot_index 0, so a
        volume there is the root disk, whatever imageRef says."""
        c = self.cloud
        raw = server.get("block_device_mapping_v2")
        if raw is None:
            if not image_id:
                raise self.bad("Missing imageRef attribute")
            return [{"source_type": "image", "destination_type": "local", "boot_index": 0,
                     "uuid": image_id, "delete_on_termination": True}]
        if not isinstance(raw, list) or not all(isinstance(b, dict) for b in raw):
            raise self.bad("Invalid input for field/attribute block_device_mapping_v2.")
        out = []
        for b in raw:
            source, dest = b.get("source_type"), b.get("destination_type")
            if source not in ("image", "volume", "snapshot", "blank"):
                raise self.bad(f"Invalid input for field/attribute source_type. Value: {source}.")
            if source != "blank" and not b.get("uuid"):
                raise self.bad("Block Device Mapping is Invalid: Missing device UUID.")
            index = b.get("boot_index", -1)
            index = -1 if index is None else int(index)
            if source == "image" and dest == "local" and not (image_id and index == 0):
                raise self.bad("Block Device Mapping is Invalid: Mapping image to local is not supported.")
            if source not in ("image", "volume") or dest not in ("local", "volume") or (source == "volume") != (dest == "volume"):
                raise self.bad("Block Device Mapping is Invalid: this cloud accepts only image-to-local and volume-to-volume mappings.")
            if source == "image" and b["uuid"] not in c.images:
                raise self.bad(f"Image {b['uuid']} could not be found.")
            out.append({"source_type": source, "destination_type": dest, "boot_index": index,
                        "uuid": b["uuid"], "delete_on_termination": bool(b.get("delete_on_termination", False))})
        booting = sorted(b["boot_index"] for b in out if b["boot_index"] >= 0)
        if not booting or booting != list(range(len(booting))):
            raise self.bad("Block Device Mapping is Invalid: Boot sequence for the instance and image/block device mapping combination is not valid.")
        for b in out:
            if b["source_type"] != "volume":
                continue
            vid = b["uuid"]
            with c.lock:
                vol = c.volumes.get(vid)
                if vol is None:
                    raise self.bad(f"Block Device Mapping is Invalid: failed to get volume {vid}.")
                if vol["status"] != "available":
                    raise self.bad(f"Block Device Mapping is Invalid: Volume {vid} status must be 'available', but it is {vol['status']}.")
                if vol["availability_zone"] not in (server.get("availability_zone") or vol["availability_zone"],):
                    raise self.bad(f"Block Device Mapping is Invalid: Volume {vid} is in availability zone {vol['availability_zone']}, not {server.get('availability_zone')}.")
        # Device names as Nova's libvirt and fake drivers give them: the root first, then the rest.
        for n, b in enumerate(sorted(out, key=lambda b: (b["boot_index"] < 0, b["boot_index"]))):
            b["device"] = "/dev/vd" + "abcdefghijklmnopqrstuvwxyz"[n]
        return out

    def attach_volumes(self, sid):
        c = self.cloud
        with c.lock:
            s = c.servers.get(sid)
            if s is None:
                return
            for b in s["bdms"]:
                v = c.volumes.get(b["uuid"]) if b["source_type"] == "volume" else None
                if v is not None and v["status"] == "attaching":
                    v["status"] = "in-use"
                    v["attachments"] = [{"server_id": sid, "attachment_id": new_id(), "attached_at": now(),
                                         "device": b["device"]}]
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
                    v = c.volumes.get(b["uuid"]) if b["source_type"] == "volume" else None
                    if v is not None:
                        v["status"] = "available"
                        v["attachments"] = []
                return
        # Without PostgreSQL nothing ever listens at a server's address: no need to probe it.
        is_free = (lambda addr: True) if c.no_postgres else vm.address_is_free
        address = c.allocate_address(is_free) if s["network_name"] else None
        with c.lock:
            s.update(status="ACTIVE", vm_state="active", task_state=None, power_state=1,
                     launched_at=now(), updated=now(), address=address)
        if not c.no_postgres:
            threading.Thread(target=self.boot_vm, args=(sid,), daemon=True).start()

    def boot_vm(self, sid):
        c = self.cloud
        with c.lock:
            s = c.servers.get(sid)
            if s is None:
                return
            root = next(b for b in s["bdms"] if b["boot_index"] == 0)
            if root["source_type"] == "volume":
                # What Nova does with a volume at boot_index 0: it is the root disk. A PGDATA clone
                # holds no operating system, so the server is ACTIVE and nothing ever runs on it.
                s["boot_ok"] = False
                print(f"cloudsim: server {sid} ({s['name']}) boots from volume {root['uuid']}, which "
                      f"holds no operating system: nothing starts (the image must be at boot_index 0)",
                      flush=True)
                return
            data = [c.volumes.get(b["uuid"]) for b in s["bdms"]
                    if b["source_type"] == "volume" and b["boot_index"] < 0]
            data_dir = data[0]["dir"] if data and data[0] else None
        if not data_dir or not os.path.exists(os.path.join(data_dir, "PG_VERSION")):
            return  # no data volume with PostgreSQL: the VM boots, nothing to start
        os.makedirs(s["dir"], exist_ok=True)
        os.chmod(s["dir"], 0o755)
        drive = os.path.join(s["dir"], "config-drive")
        # The VM reaches the primary through its zone's network (a latency relay, if any).
        user_data = self.network.route_user_data(s["availability_zone"], s["user_data"])
        vm.write_config_drive(drive, s, user_data, s["address"], s["network_name"])
        ok, out = vm.boot(s["dir"], drive, data_dir)
        with c.lock:
            s["boot_ok"] = ok
        print(f"cloudsim: server {sid} ({s['name']}) first boot {'ok' if ok else 'FAILED'}:\n{out}", flush=True)

    def list_servers_filtered(self, req):
        c = self.cloud
        for bad in ("metadata",):
            pass  # Nova ignores ?metadata= for non-admin users (it is not a filter they may use)
        ignore = c.ignore_filters
        tags = [t for t in (req.q("tags") or "").split(",") if t and not ignore]
        tags_any = [t for t in (req.q("tags-any") or "").split(",") if t and not ignore]
        not_tags = [t for t in (req.q("not-tags") or "").split(",") if t and not ignore]
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

    def replace_tags(self, req, id):
        # PUT /servers/{id}/tags (2.26+): the server's tags become exactly these.
        if req.mv < (2, 26):
            raise os_fault(404, "The resource could not be found.")
        tags = (req.json() or {}).get("tags")
        if not isinstance(tags, list) or len(tags) > 50 or any(
                not isinstance(t, str) or not t or len(t) > 60 or "," in t or "/" in t for t in tags):
            raise self.bad("Invalid input for field/attribute tags.")
        s = self.find_server(id)
        with self.cloud.lock:
            s["tags"] = list(dict.fromkeys(tags))
            return 200, {"tags": list(s["tags"])}, {}

    def replace_metadata(self, req, id):
        # PUT /servers/{id}/metadata: the server's metadata becomes exactly this.
        metadata = (req.json() or {}).get("metadata")
        if not isinstance(metadata, dict) or any(
                not isinstance(v, str) or len(k) > 255 or len(v) > 255 for k, v in metadata.items()):
            raise self.bad("Invalid input for field/attribute metadata.")
        s = self.find_server(id)
        with self.cloud.lock:
            s["metadata"] = dict(metadata)
            return 200, {"metadata": dict(s["metadata"])}, {}

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
            bdms = [b for b in s["bdms"] if b["source_type"] == "volume"]
            vols = [c.volumes.get(b["uuid"]) for b in bdms]
        for v in vols:
            if v is not None and v.get("dir"):
                vm.shutdown(v["dir"])  # the VM powers off: its PostgreSQL stops
        with c.lock:
            for b, v in zip(bdms, vols):
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
