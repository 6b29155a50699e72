"""Cinder v3: volumes cloned from snapshots, snapshots of in-use volumes, limits, zones.

A mixin of the Simulator (app.py): `self.cloud` is the model, `self.base()` the endpoint.
"""
import ast
import json
import os
import urllib.parse

from . import vm
from .common import CINDER_MAX, CINDER_MIN, cinder_over_limit, os_fault, vstr
from .model import iso, new_id, now


class CinderApi:
    def cinder_routes(self):
        """(method, path pattern, service, fault-injection op, handler)."""
        V = r"/[0-9a-f]{32}"
        return [
            ("GET", r"/volume/?", "volume", None, self.volume_versions),
            ("GET", r"/volume/v3/?", "volume", None, self.volume_versions),
            ("POST", rf"/volume/v3{V}/volumes", "volume", "cinder.create_volume", self.create_volume),
            ("GET", rf"/volume/v3{V}/volumes(?P<detail>/detail)?", "volume", "cinder.list_volumes", self.list_volumes),
            ("GET", rf"/volume/v3{V}/volumes/(?P<id>[^/]+)", "volume", "cinder.get_volume", self.get_volume),
            ("DELETE", rf"/volume/v3{V}/volumes/(?P<id>[^/]+)", "volume", "cinder.delete_volume", self.delete_volume),
            ("POST", rf"/volume/v3{V}/snapshots", "volume", "cinder.create_snapshot", self.create_snapshot),
            ("GET", rf"/volume/v3{V}/snapshots(?P<detail>/detail)?", "volume", "cinder.list_snapshots", self.list_snapshots),
            ("GET", rf"/volume/v3{V}/snapshots/(?P<id>[^/]+)", "volume", "cinder.get_snapshot", self.get_snapshot),
            ("DELETE", rf"/volume/v3{V}/snapshots/(?P<id>[^/]+)", "volume", "cinder.delete_snapshot", self.delete_snapshot),
            ("GET", rf"/volume/v3{V}/limits", "volume", "cinder.limits", self.volume_limits),
            ("GET", rf"/volume/v3{V}/os-availability-zone", "volume", "cinder.zones", self.list_volume_zones),
        ]

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

    def paginate(self, req, items, collection):
        """Cinder's paging (cinder/api/common.py): sorted newest first, `marker` continues after
        an id, at most min(limit, osapi_max_limit) items, and a next link (with the query's
        filters and the last id as marker) when the page is full."""
        c = self.cloud
        marker = req.q("marker")
        if marker is not None:
            ids = [i["id"] for i in items]
            if marker not in ids:
                raise os_fault(404, f"Marker {marker} could not be found.")
            items = items[ids.index(marker) + 1:]
        limit = c.max_limit
        if req.q("limit") is not None:
            try:
                limit = min(int(req.q("limit")), c.max_limit)
            except ValueError:
                raise os_fault(400, "limit param must be an integer")
            if limit < 0:
                raise os_fault(400, "limit param must be positive")
        page = items[:limit]
        links = []
        if page and len(page) == limit:
            query = {k: v for k, v in req.args().items() if k != "marker"}
            query.update(limit=str(limit), marker=page[-1]["id"])
            links = [{"rel": "next", "href": f"{self.volume_url()}{req.path.split(self.cloud.project['id'], 1)[-1]}?"
                      + urllib.parse.urlencode(query)}]
        return page, links

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
                raise cinder_over_limit(f"VolumeLimitExceeded: Maximum number of volumes allowed ({c.quotas['volumes']}) exceeded for quota 'volumes'.")
            if c.quotas["gigabytes"] >= 0 and used["gigabytes"] + size > c.quotas["gigabytes"]:
                raise cinder_over_limit(f"VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes quota. Requested {size}G, quota is {c.quotas['gigabytes']}G and {used['gigabytes']}G has been consumed.")
            vid = new_id()
            t = now()
            v = {"id": vid, "name": vol.get("name"), "status": "creating", "size": size, "availability_zone": zone,
                 "created": t, "updated": None, "description": vol.get("description"),
                 "volume_type": vol.get("volume_type") or "__DEFAULT__", "snapshot_id": snapshot_id,
                 "metadata": metadata, "bootable": bool(snap and snap.get("bootable")), "attachments": [],
                 "dir": None if c.no_postgres else os.path.join(c.root, "volumes", vid),
                 "external": False}
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
        if not fail and v["dir"]:
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
            # For benchmarks (GET /control/state only, never in the API's view): when the clone
            # really ended, copy included, whatever the injected latency said.
            v["ready_at"] = v["updated"]

    def list_volumes(self, req, detail=None):
        c = self.cloud
        wanted = None if c.ignore_filters else self.parse_metadata_filter(req.q("metadata"))
        name = req.q("name")
        status = req.q("status")
        with c.lock:
            vols = sorted(c.volumes.values(), key=lambda v: v["created"], reverse=True)
            out = [v for v in vols
                   if (wanted is None or all(v["metadata"].get(k) == val for k, val in wanted.items()))
                   and (name is None or v["name"] == name) and (status is None or v["status"] == status)]
            out, links = self.paginate(req, out, "volumes")
            body = {"volumes": [self.volume_view(v, req.mv) for v in out] if detail else
                    [{"id": v["id"], "name": v["name"], "links": self.vlink("volumes", v["id"])} for v in out]}
            if links:
                body["volumes_links"] = links
            return 200, body, {}

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
                raise cinder_over_limit(f"SnapshotLimitExceeded: Maximum number of snapshots allowed ({c.quotas['snapshots']}) exceeded")
            sid = new_id()
            s = {"id": sid, "name": snap.get("name"), "description": snap.get("description"), "status": "creating",
                 "size": vol["size"], "volume_id": vol["id"], "metadata": snap.get("metadata") or {},
                 "created": now(), "updated": None, "bootable": vol["bootable"],
                 "dir": None if c.no_postgres else os.path.join(c.root, "snapshots", sid)}
            c.snapshots[sid] = s
        c.later(c.latency["snapshot_create"], self.finish_snapshot, sid, vol["dir"])
        with c.lock:
            return 202, {"snapshot": self.snapshot_view(s, req.mv, create=True)}, {}

    def finish_snapshot(self, sid, source_dir):
        c = self.cloud
        status = "available"
        try:
            if c.no_postgres:
                pass  # metadata only
            elif source_dir and os.path.isdir(source_dir):
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
        wanted = self.parse_metadata_filter(req.q("metadata")) if req.mv >= (3, 22) and not c.ignore_filters else None
        volume_id = req.q("volume_id")
        with c.lock:
            snaps = sorted(c.snapshots.values(), key=lambda s: s["created"], reverse=True)
            out = [s for s in snaps
                   if (wanted is None or all(s["metadata"].get(k) == v for k, v in wanted.items()))
                   and (volume_id is None or s["volume_id"] == volume_id)]
            out, links = self.paginate(req, out, "snapshots")
            body = {"snapshots": [self.snapshot_view(s, req.mv, create=not detail) for s in out]}
            if links:
                body["snapshots_links"] = links
            return 200, body, {}

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
