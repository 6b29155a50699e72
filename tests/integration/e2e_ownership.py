#!/usr/bin/python3
"""End to end: ownership never rests on a filter the cloud may ignore.

The simulator is put in a fault mode where Nova's ?tags= and Cinder's ?metadata= filters are
ignored, so every server and volume of the project is listed. Beside the service's replicas the
project then holds:
  - a stranger: a server booted through Nova's API with our two tags but not our metadata;
  - the primary's VM: a server at the primary's address, tagged and labelled exactly like one of
    our replicas;
  - the donor, re-tagged and re-labelled exactly like one of our replicas (ra_replica named like
    the replicas the service makes).
A manual count of 2, then 1 (min_replicas): the service scales up and back down, deleting only
its own replica; the stranger, the primary's VM and the donor are still there, untouched, and
none of them was ever put into HAProxy.
"""
import json
import os
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_common import check, eventually, log, run, sandbox_mod, settled  # noqa: E402

C = "/v1/clusters/orders"
OUR_TAGS = ["replica-autoscaler", "ra-cluster:orders"]


def ours(name):
    return {"ra_managed_by": "replica-autoscaler", "ra_cluster": "orders", "ra_replica": name,
            "ra_role": "replica"}


def nova(sb, method, path, body=None):
    """Nova's API as the sandbox's user (the simulator's Keystone gives the token)."""
    base = sb.state["cloud_url"]
    with open(sb.path("service", "secrets", "cloud-password")) as f:
        password = f.read().strip()
    auth = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "demo", "password": password, "domain": {"name": "Default"}}}},
        "scope": {"project": {"name": "demo", "domain": {"name": "Default"}}}}}
    req = urllib.request.Request(base + "/identity/v3/auth/tokens", json.dumps(auth).encode(),
                                 {"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        token = r.headers["X-Subject-Token"]
    req = urllib.request.Request(base + "/compute/v2.1" + path,
                                 json.dumps(body).encode() if body is not None else None,
                                 {"Content-Type": "application/json", "X-Auth-Token": token,
                                  "OpenStack-API-Version": "compute 2.52"}, method=method)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def servers_by_id(sb):
    return {s["id"]: s for s in sb.cloud_state()["servers"] if s["status"] != "DELETED"}


def backend_members(sb):
    out = sb.haproxy("show servers state pg_replicas")
    return out


def body(sb, args):
    eventually("one serving replica", lambda: settled(sb.cluster_status(), 1), 150)
    first = sb.cluster_status()["replicas"][0]["name"]
    log(f"the service's own replica: {first}")

    sb.cloud("POST", "/control/profile", {"ignore_filters": True})
    stranger = nova(sb, "POST", "/servers", {"server": {
        "name": "orders-stranger", "flavorRef": "1", "networks": "none", "tags": OUR_TAGS,
        "imageRef": "c1b7bd39-1c6e-4c6e-8b0c-7a9fb04f1d1e", "metadata": {"owner": "someone else"}}})["server"]["id"]
    primary_vm = sb.cloud("POST", "/control/foreign-servers", {
        "name": "orders-replica-0fab1e", "address": sb.primary_host, "tags": OUR_TAGS,
        "metadata": ours("orders-replica-0fab1e")})["id"]
    donor = [s for s in servers_by_id(sb).values() if s["name"] == sandbox_mod.DONOR_NAME][0]["id"]
    sb.cloud("POST", f"/control/servers/{donor}/ownership",
             {"tags": OUR_TAGS, "metadata": ours("orders-replica-d0d0d0")})
    protected = {stranger: "the stranger", primary_vm: "the primary's VM", donor: "the donor"}
    log("the stranger, the primary's VM and the re-labelled donor are in the project; filters ignored")

    code, out = sb.api("PUT", C + "/override", {"replicas": 2, "reason": "e2e ownership"})
    check(code == 200, f"PUT override 2: 200 ({code} {out})")
    eventually("2 serving replicas", lambda: settled(sb.cluster_status(), 2), 150)
    names = sorted(r["name"] for r in sb.cluster_status()["replicas"])
    check("orders-replica-0fab1e" not in names and "orders-replica-d0d0d0" not in names,
          f"status lists only the service's replicas ({names})")

    code, out = sb.api("PUT", C + "/override", {"replicas": 1, "reason": "e2e ownership"})
    check(code == 200, f"PUT override 1: 200 ({code} {out})")
    eventually("1 serving replica", lambda: settled(sb.cluster_status(), 1), 150)
    eventually("the second replica's server deleted",
               lambda: sum(1 for s in servers_by_id(sb).values() if s["name"].startswith("orders-replica-")
                           and s["id"] not in protected) == 1, 90)

    alive = servers_by_id(sb)
    for sid, what in protected.items():
        check(sid in alive and alive[sid]["status"] == "ACTIVE", f"{what} is still there and ACTIVE")
    members = backend_members(sb)
    for name in ("orders-replica-0fab1e", "orders-replica-d0d0d0", "orders-stranger"):
        check(name not in members, f"{name} was never put into HAProxy")
    requests = sb.cloud("GET", "/control/requests?service=compute")
    deletes = [r["path"] for r in (requests if isinstance(requests, list) else requests.get("requests", []))
               if r["method"] == "DELETE"]
    check(not any(sid in p for p in deletes for sid in protected),
          f"no DELETE was ever sent for them ({len(deletes)} server deletes in all)")
    code, _ = sb.api("DELETE", C + "/override")
    sb.cloud("POST", "/control/profile", {"ignore_filters": False})


if __name__ == "__main__":
    sys.exit(run("e2e_ownership", body))
