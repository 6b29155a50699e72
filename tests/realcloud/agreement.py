#!/usr/bin/python3
"""The simulator and the real OpenStack services must answer the requests that matter alike.

Runs the same raw API requests against one cloud and checks each answer against what Nova and
Cinder do (read in nova/block_device.py, nova/compute/api.py and cinder/api/common.py):

  - the old replica layout (imageRef + the data volume at boot_index 0) is accepted, and the volume
    becomes the root disk (the root device name Nova gives): the server would never boot an OS;
  - the replica layout (image -> local at boot_index 0, the volume at boot_index -1) is accepted,
    the image is the root and the volume a non-root device;
  - a volume at boot_index -1 without a boot device, and image -> local without imageRef, are
    refused with 400;
  - lists are cut at the cloud's page size with a volumes_links "next" link that, followed,
    gives the rest;
  - a volume over quota is refused with 413, a server over quota with 403;
  - the filters of the service's project-wide listing (one per cycle for all clusters): Nova's
    ?tags= with one tag keeps every server carrying it, with two only those carrying both, and
    Cinder's ?metadata= keeps the volumes whose metadata holds every pair named.

  agreement.py --cloudsim          start the simulator (tests/sandbox/cloudsim) and check it
  agreement.py --env DIR/openstack.env   check a running cloud (tests/realcloud/openstack.sh)

Prints one line per check and a summary of the answers; exit 1 if any check failed. Every wait is
bounded. What it creates is deleted at the end, also after a failure.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PAGE = 3  # the page size both clouds are set to: osapi_max_limit = 3, or the simulator's max_limit


class Http:
    def __init__(self):
        self.log = []

    def call(self, method, url, body=None, headers=None, timeout=30):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                text = r.read().decode()
                return r.status, dict(r.headers), (json.loads(text) if text.strip() else None)
        except urllib.error.HTTPError as e:
            text = e.read().decode(errors="replace")
            try:
                parsed = json.loads(text) if text.strip() else None
            except ValueError:
                parsed = text
            return e.code, dict(e.headers), parsed


class Session:
    """A Keystone v3 token and the catalog, for one user and project."""

    def __init__(self, http, auth_url, user, password, project, domain="Default"):
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "password": password, "domain": {"name": domain}}}},
            "scope": {"project": {"name": project, "domain": {"name": domain}}}}}
        status, headers, answer = http.call("POST", auth_url.rstrip("/") + "/auth/tokens", body)
        if status != 201:
            raise SystemExit(f"agreement: Keystone refused {user}@{project}: {status} {answer}")
        self.http = http
        self.token = headers.get("X-Subject-Token") or headers.get("x-subject-token")
        self.project_id = answer["token"]["project"]["id"]
        self.catalog = {s["type"]: s["endpoints"] for s in answer["token"]["catalog"]}

    def endpoint(self, service_type):
        for t in ([service_type] if service_type != "block-storage" else ["block-storage", "volumev3"]):
            for e in self.catalog.get(t, []):
                if e["interface"] == "public":
                    return e["url"].rstrip("/")
        raise SystemExit(f"agreement: no {service_type} endpoint in the catalog")

    def call(self, method, service, path, body=None, mv=None):
        headers = {"X-Auth-Token": self.token}
        if service == "compute":
            headers["OpenStack-API-Version"] = f"compute {mv or '2.52'}"
        elif service == "block-storage":
            headers["OpenStack-API-Version"] = f"volume {mv or '3.22'}"
        url = path if path.startswith("http") else self.endpoint(service) + path
        return self.http.call(method, url, body, headers)


class Checks:
    def __init__(self):
        self.failed = []
        self.seen = {}

    def check(self, name, ok, detail=""):
        print(("ok   " if ok else "FAIL ") + name + (f": {detail}" if detail else ""), flush=True)
        if not ok:
            self.failed.append(name)
        return ok

    def note(self, key, value):
        self.seen[key] = value


def wait_for(what, fn, timeout=90, every=0.5):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        done, last = fn()
        if done:
            return last
        time.sleep(every)
    raise TimeoutError(f"{what}: not after {timeout}s (last: {last})")


class Cloud:
    """What differs between the two clouds: how to reach them and how to set their limits."""

    def __init__(self, user, image, flavor, zone):
        self.user, self.image, self.flavor, self.zone = user, image, flavor, zone

    def set_quota(self, service, key, value):
        raise NotImplementedError

    def root_device(self, sid):
        """The server's root device name (admin-only in Nova: OS-EXT-SRV-ATTR:root_device_name)."""
        raise NotImplementedError

    def close(self):
        pass


class SimCloud(Cloud):
    def __init__(self, http):
        self.dir = tempfile.mkdtemp(prefix="ra-agreement-")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        self.log = open(os.path.join(self.dir, "cloudsim.log"), "w")
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(ROOT, "tests/sandbox/cloudsim/cloudsim.py"),
             "--port", str(port), "--root", os.path.join(self.dir, "cloud")],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise SystemExit("agreement: cloudsim did not start; see " + self.log.name)
                time.sleep(0.1)
        self.http = http
        status, _, _ = http.call("POST", self.base + "/control/profile", {"max_limit": PAGE})
        assert status == 200, status
        super().__init__(Session(http, self.base + "/identity/v3", "demo", "demo-password", "demo"),
                         "c1b7bd39-1c6e-4c6e-8b0c-7a9fb04f1d1e", "1", "nova")

    def set_quota(self, service, key, value):
        name = {"instances": "instances", "volumes": "volumes"}[key]
        status, _, answer = self.http.call("POST", self.base + "/control/quotas", {name: value})
        assert status == 200, (status, answer)

    def root_device(self, sid):
        return "/dev/vda"  # the simulator names disks as libvirt does: the root first

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


class RealCloud(Cloud):
    def __init__(self, http, env):
        self.env = env
        user = Session(http, env["OS_AUTH_URL"], env["OS_USERNAME"], env["OS_PASSWORD"],
                       env["OS_PROJECT_NAME"], env.get("OS_USER_DOMAIN_NAME", "Default"))
        self.admin = Session(http, env["OS_AUTH_URL"], env["RA_ADMIN_USERNAME"],
                             env["RA_ADMIN_PASSWORD"], env["RA_ADMIN_PROJECT"])
        super().__init__(user, env["RA_IMAGE_ID"], env["RA_FLAVOR_ID"],
                         env.get("RA_AVAILABILITY_ZONE", "nova"))

    def root_device(self, sid):
        status, _, answer = self.admin.call("GET", "compute", f"/servers/{sid}")
        return (answer or {}).get("server", {}).get("OS-EXT-SRV-ATTR:root_device_name") if status == 200 else None

    def set_quota(self, service, key, value):
        path = f"/os-quota-sets/{self.user.project_id}"
        status, _, answer = self.admin.call("PUT", service, path, {"quota_set": {key: value}})
        assert status == 200, (status, answer)


def read_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                env[k.removeprefix("export ").strip()] = v.strip().strip("'\"")
    return env


def version_range(cloud, service):
    endpoint = cloud.user.endpoint(service)
    cut = "/v2.1" if service == "compute" else "/v3"
    url = endpoint[:endpoint.index(cut) + len(cut)] + "/"
    status, _, doc = cloud.user.call("GET", service, url)
    v = doc.get("version") if isinstance(doc, dict) and "version" in doc else \
        [x for x in (doc or {}).get("versions", []) if x.get("id", "").startswith(cut[1:])][0]
    return status, v.get("min_version"), v.get("version")


def mv_tuple(text):
    a, b = text.split(".")
    return int(a), int(b)


class Run:
    def __init__(self, cloud, checks):
        self.cloud, self.c = cloud, checks
        self.tag = "agreement-" + uuid.uuid4().hex[:8]
        self.servers, self.volumes = [], []

    def volume(self, name, metadata=None):
        body = {"volume": {"size": 1, "name": f"{self.tag}-{name}", "availability_zone": self.cloud.zone,
                           "metadata": dict(metadata or {}, agreement=self.tag)}}
        status, _, answer = self.cloud.user.call("POST", "block-storage", "/volumes", body)
        assert status == 202, (status, answer)
        vid = answer["volume"]["id"]
        self.volumes.append(vid)
        return vid

    def volume_state(self, vid):
        status, _, answer = self.cloud.user.call("GET", "block-storage", f"/volumes/{vid}")
        return answer["volume"] if status == 200 else None

    def wait_volume(self, vid, wanted):
        def poll():
            v = self.volume_state(vid)
            return v is not None and v["status"] == wanted, v and v["status"]
        return wait_for(f"volume {vid} {wanted}", poll)

    def server(self, name, bdms, image=True):
        body = {"server": {"name": f"{self.tag}-{name}", "flavorRef": self.cloud.flavor, "networks": "none",
                           "availability_zone": self.cloud.zone, "block_device_mapping_v2": bdms}}
        if image:
            body["server"]["imageRef"] = self.cloud.image
        status, _, answer = self.cloud.user.call("POST", "compute", "/servers", body)
        if status == 202:
            self.servers.append(answer["server"]["id"])
        return status, answer

    def wait_server(self, sid):
        def poll():
            status, _, answer = self.cloud.user.call("GET", "compute", f"/servers/{sid}")
            s = answer.get("server", {}) if isinstance(answer, dict) else {}
            return s.get("status") in ("ACTIVE", "ERROR"), s
        return wait_for(f"server {sid}", poll)

    def device_of(self, vid):
        def poll():
            v = self.volume_state(vid)
            att = (v or {}).get("attachments") or []
            return v is not None and v["status"] == "in-use" and bool(att), v
        v = wait_for(f"volume {vid} attached", poll)
        return v["attachments"][0].get("device")

    def layouts(self):
        data_old = self.volume("old-root")
        data_new = self.volume("data")
        self.wait_volume(data_old, "available")
        self.wait_volume(data_new, "available")

        status, answer = self.server("old", [{"uuid": data_old, "source_type": "volume",
                                              "destination_type": "volume", "boot_index": 0}])
        self.c.check("old layout (volume at boot_index 0) is accepted", status == 202, f"{status} {answer}")
        if status == 202:
            s = self.wait_server(answer["server"]["id"])
            device = self.device_of(data_old)
            root = self.cloud.root_device(answer["server"]["id"])
            self.c.note("old layout: server status", s.get("status"))
            self.c.note("old layout: data volume device / root device", f"{device} / {root}")
            self.c.check("old layout: the data volume is the root disk", device is not None and device == root,
                         f"{device}, root {root}")

        status, answer = self.server("new", [
            {"uuid": self.cloud.image, "source_type": "image", "destination_type": "local",
             "boot_index": 0, "delete_on_termination": True},
            {"uuid": data_new, "source_type": "volume", "destination_type": "volume",
             "boot_index": -1, "delete_on_termination": False}])
        self.c.check("replica layout (image at 0, volume at -1) is accepted", status == 202, f"{status} {answer}")
        if status == 202:
            s = self.wait_server(answer["server"]["id"])
            self.c.check("replica layout: the server is ACTIVE", s.get("status") == "ACTIVE", s.get("status"))
            device = self.device_of(data_new)
            root = self.cloud.root_device(answer["server"]["id"])
            self.c.note("replica layout: data volume device / root device", f"{device} / {root}")
            self.c.check("replica layout: the data volume is not the root disk",
                         device not in (None, "") and bool(root) and device != root, f"{device}, root {root}")
            image = s.get("image")
            self.c.check("replica layout: the server's image is the root", isinstance(image, dict) and image.get("id") == self.cloud.image, image)
            attached = [a["id"] for a in s.get("os-extended-volumes:volumes_attached", [])]
            self.c.check("replica layout: Nova lists the data volume as attached", data_new in attached, attached)

        status, answer = self.server("no-boot", [{"uuid": str(uuid.uuid4()), "source_type": "volume",
                                                 "destination_type": "volume", "boot_index": -1}])
        self.c.note("no boot device: status", status)
        self.c.check("a volume at -1 without a boot device is refused with 400", status == 400, f"{status} {answer}")
        status, answer = self.server("image-local", [{"uuid": self.cloud.image, "source_type": "image",
                                                     "destination_type": "local", "boot_index": 0}], image=False)
        self.c.note("image->local without imageRef: status", status)
        self.c.check("image -> local without imageRef is refused with 400", status == 400, f"{status} {answer}")

    def pages(self):
        ids = [self.volume(f"page-{i}", {"page": self.tag}) for i in range(PAGE + 1)]
        for vid in ids:
            self.wait_volume(vid, "available")
        query = "/volumes/detail?metadata=" + urllib.request.quote(json.dumps({"page": self.tag}))
        status, _, first = self.cloud.user.call("GET", "block-storage", query)
        links = first.get("volumes_links") or []
        nxt = [l["href"] for l in links if l.get("rel") == "next"]
        self.c.note("first page size", len(first["volumes"]))
        self.c.check(f"a list is cut at {PAGE} with a next link", len(first["volumes"]) == PAGE and len(nxt) == 1,
                     f"{len(first['volumes'])} items, links {links}")
        if nxt:
            # Followed as the client does: its own query (filter included) with the link's marker.
            marker = urllib.parse.parse_qs(urllib.parse.urlsplit(nxt[0]).query).get("marker", [""])[0]
            status, _, second = self.cloud.user.call("GET", "block-storage", query + "&marker=" + marker)
            got = {v["id"] for v in first["volumes"]} | {v["id"] for v in second.get("volumes", [])}
            self.c.check("the link's marker on the same query gives the rest, each once", got == set(ids),
                         f"{len(got)} of {len(ids)}")
            # The link itself, followed literally: it keeps the filter (strays come back only when
            # Cinder drops ?metadata= altogether, as it does without resource_filters.json).
            status, _, raw = self.cloud.user.call("GET", "block-storage", "/volumes/detail?" + nxt[0].split("?", 1)[1])
            extra = {v["id"] for v in raw.get("volumes", [])} - set(ids)
            self.c.note("next link followed literally: volumes not matching the filter", len(extra))

    def filters(self):
        # Volumes of two clusters and one that is not a replica volume: {agreement, ra_role} must
        # keep the two replica volumes only, each once.
        a = self.volume("filter-a", {"ra_role": "replica", "ra_cluster": "a"})
        b = self.volume("filter-b", {"ra_role": "replica", "ra_cluster": "b"})
        g = self.volume("filter-g", {"ra_role": "golden", "ra_cluster": "a"})
        for vid in (a, b, g):
            self.wait_volume(vid, "available")
        query = "/volumes/detail?metadata=" + urllib.request.quote(
            json.dumps({"agreement": self.tag, "ra_role": "replica"}))
        status, _, answer = self.cloud.user.call("GET", "block-storage", query)
        got = sorted(v["id"] for v in (answer or {}).get("volumes", []))
        self.c.check("?metadata= with two pairs keeps the volumes holding both", status == 200 and got == sorted([a, b]),
                     f"{status} {got}")
        # One server with the run's tag and a cluster tag: found by the run's tag alone, not when a
        # tag it lacks is named too.
        body = {"server": {"name": f"{self.tag}-tagged", "flavorRef": self.cloud.flavor, "networks": "none",
                           "imageRef": self.cloud.image, "availability_zone": self.cloud.zone,
                           "tags": [self.tag, "ra-cluster:x"]}}
        status, _, answer = self.cloud.user.call("POST", "compute", "/servers", body)
        self.c.check("a server with tags is accepted (2.52)", status == 202, f"{status} {answer}")
        if status != 202:
            return
        sid = answer["server"]["id"]
        self.servers.append(sid)
        self.wait_server(sid)
        quote = urllib.parse.quote
        _, _, one = self.cloud.user.call("GET", "compute", "/servers/detail?tags=" + quote(self.tag))
        _, _, both = self.cloud.user.call("GET", "compute", "/servers/detail?tags=" + quote(f"{self.tag},ra-cluster:x"))
        _, _, other = self.cloud.user.call("GET", "compute", "/servers/detail?tags=" + quote(f"{self.tag},ra-cluster:y"))
        ids = lambda answer: [s["id"] for s in (answer or {}).get("servers", [])]  # noqa: E731
        self.c.check("?tags= with one tag keeps the server carrying it", ids(one) == [sid], ids(one))
        self.c.check("?tags= with two tags keeps the server carrying both", ids(both) == [sid], ids(both))
        self.c.check("?tags= naming a tag the server lacks leaves it out", ids(other) == [], ids(other))

    def quotas(self):
        status, _, limits = self.cloud.user.call("GET", "block-storage", "/limits")
        used = limits["limits"]["absolute"]["totalVolumesUsed"]
        try:
            self.cloud.set_quota("block-storage", "volumes", used)
            body = {"volume": {"size": 1, "name": f"{self.tag}-over", "metadata": {"agreement": self.tag}}}
            status, _, answer = self.cloud.user.call("POST", "block-storage", "/volumes", body)
            if status == 202:
                self.volumes.append(answer["volume"]["id"])
            self.c.note("volume over quota: status", status)
            self.c.check("a volume over quota is refused with 413", status == 413, f"{status} {answer}")
        finally:
            self.cloud.set_quota("block-storage", "volumes", 40)
        status, _, limits = self.cloud.user.call("GET", "compute", "/limits")
        used = limits["limits"]["absolute"]["totalInstancesUsed"]
        try:
            self.cloud.set_quota("compute", "instances", used)
            status, answer = self.server("over", [{"uuid": self.cloud.image, "source_type": "image",
                                                   "destination_type": "local", "boot_index": 0}])
            self.c.note("server over quota: status", status)
            self.c.check("a server over quota is refused with 403", status == 403, f"{status} {answer}")
        finally:
            self.cloud.set_quota("compute", "instances", 20)

    def cleanup(self):
        for sid in self.servers:
            self.cloud.user.call("DELETE", "compute", f"/servers/{sid}")
        for sid in self.servers:
            try:
                wait_for(f"server {sid} gone", lambda: (
                    self.cloud.user.call("GET", "compute", f"/servers/{sid}")[0] == 404, None), timeout=60)
            except TimeoutError as e:
                print("agreement: cleanup:", e)
        for vid in self.volumes:
            try:
                wait_for(f"volume {vid} free", lambda: (
                    (self.volume_state(vid) or {"status": "gone"})["status"] in ("available", "error", "gone"), None),
                    timeout=60)
            except TimeoutError as e:
                print("agreement: cleanup:", e)
            self.cloud.user.call("DELETE", "block-storage", f"/volumes/{vid}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--cloudsim", action="store_true")
    g.add_argument("--env", help="openstack.env written by tests/realcloud/openstack.sh start")
    args = p.parse_args()
    http = Http()
    cloud = SimCloud(http) if args.cloudsim else RealCloud(http, read_env(args.env))
    checks = Checks()
    run = Run(cloud, checks)
    try:
        for service, need in (("compute", "2.52"), ("block-storage", "3.22")):
            status, lo, hi = version_range(cloud, service)
            checks.note(f"{service} microversions", f"{lo}..{hi}")
            checks.check(f"{service} offers microversion {need}", status == 200 and mv_tuple(hi) >= mv_tuple(need), f"{lo}..{hi}")
        run.layouts()
        run.pages()
        run.filters()
        run.quotas()
    except (TimeoutError, AssertionError, KeyError) as e:
        checks.check("no step broke off", False, repr(e))
    finally:
        run.cleanup()
        cloud.close()
    print("answers: " + json.dumps(checks.seen, sort_keys=True))
    if checks.failed:
        print(f"agreement: {len(checks.failed)} check(s) failed: {checks.failed}")
        return 1
    print("agreement: every check held")
    return 0


if __name__ == "__main__":
    sys.exit(main())
