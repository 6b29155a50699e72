#!/usr/bin/python3
"""Conformance runs that need a simulator set up for them (ctest, label conformance):

  run.py requests --exercise BUILD/bin/openstack_exercise
      the C++ client drives every call (through clouds.yaml) against the simulator, OpenStack
      profile and SberCloud profile, with a throttled (429 + Retry-After) snapshot create, a
      503 on a list and all tokens revoked half-way; then every captured request body is
      validated against Nova's and Cinder's own schemas (validate_requests.py, one process
      per service)
  run.py sdk
      openstacksdk, configured by a clouds.yaml, authenticates, creates a volume, a snapshot and
      a server, and lists servers, volumes and snapshots; the openstack CLI lists them too
  run.py vmagent
      vmagent's OpenStack service discovery (openstack_sd_configs, role instance) finds a server
      of the simulator with its address and metadata
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from simproc import Sim, wait_for  # noqa: E402

NETWORK = "6d0a3f7a-2b9c-4a5e-9a57-1f2e3d4c5b6a"
DONOR_VOLUME = "2f1d6c1e-8a5b-4d0c-9e7f-3b2a1c0d9e8f"


def clouds_yaml(path, sim, project, region):
    with open(path, "w") as f:
        f.write(f"""clouds:
  cloudsim:
    auth:
      auth_url: {sim.auth_url}
      username: demo
      password: demo-password
      project_name: {project}
      user_domain_name: Default
      project_domain_name: Default
    region_name: {region}
    interface: public
    identity_api_version: 3
""")


def run_requests(exercise):
    failures = 0
    for profile in ([], ["--sbercloud"]):
        name = "sbercloud" if profile else "openstack"
        donor = tempfile.mkdtemp(prefix="ra-donor-")
        with Sim("--donor-dir", donor, "--donor-volume-id", DONOR_VOLUME, *profile, capture=True) as sim:
            state = sim.control("GET", "/control/state")
            config = os.path.join(sim.dir, "clouds.yaml")
            clouds_yaml(config, sim, state["project"]["name"], state["region"])
            sim.control("POST", "/control/faults", {"op": "cinder.create_snapshot", "status": 429, "count": 1,
                                                     "retry_after": 1})
            sim.control("POST", "/control/faults", {"op": "nova.list_servers", "status": 503, "count": 1})
            env = dict(os.environ, OS_CLIENT_CONFIG_FILE=config, OS_CLOUD="cloudsim")
            started = time.time()
            r = subprocess.run([exercise, "--donor-volume", DONOR_VOLUME, "--network", NETWORK,
                                "--control", sim.base], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=180)
            print(f"--- [{name}] exercise ({time.time() - started:.1f}s, exit {r.returncode})")
            print("\n".join(l for l in r.stdout.splitlines() if not l.startswith("{")))
            if r.returncode != 0:
                print(r.stdout[-4000:])
                failures += 1
                continue
            with open(sim.capture_path) as f:
                captured = f.read()
            posts = captured.count('"method": "POST", "path": "/volume/v3/%s/snapshots"' % state["project"]["id"])
            if posts != 2:
                print(f"FAIL [{name}] expected the throttled snapshot create to be sent twice, saw {posts}")
                failures += 1
            for service in ("compute", "volume"):
                v = subprocess.run(["/usr/bin/python3", os.path.join(HERE, "validate_requests.py"),
                                    "--service", service, sim.capture_path], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, timeout=120)
                print(f"--- [{name}] {service} request schemas (exit {v.returncode})")
                print("\n".join(l for l in v.stdout.splitlines() if "eventlet" not in l))
                failures += v.returncode != 0
    print(f"{2 - min(failures, 2)} passed, {min(failures, 2)} failed")
    return 1 if failures else 0


def run_sdk():
    import openstack
    with Sim() as sim:
        config = os.path.join(sim.dir, "clouds.yaml")
        clouds_yaml(config, sim, "demo", "RegionOne")
        os.environ["OS_CLIENT_CONFIG_FILE"] = config
        conn = openstack.connect(cloud="cloudsim")
        conn.authorize()
        print("ok   authenticated, project", conn.current_project_id)
        vol = conn.block_storage.create_volume(size=1, name="sdk-volume", metadata={"ra_cluster": "sdk"})
        wait_for(lambda: conn.block_storage.get_volume(vol.id).status == "available", "volume available")
        snap = conn.block_storage.create_snapshot(volume_id=vol.id, name="sdk-snapshot", force=True)
        wait_for(lambda: conn.block_storage.get_snapshot(snap.id).status == "available", "snapshot available")
        server = conn.compute.create_server(
            name="sdk-server", flavor_id="1", networks=[{"uuid": NETWORK}],
            block_device_mapping=[{"boot_index": 0, "uuid": vol.id, "source_type": "volume",
                                   "destination_type": "volume", "delete_on_termination": False}],
            tags=["replica-autoscaler"])
        wait_for(lambda: conn.compute.get_server(server.id).status == "ACTIVE", "server ACTIVE")
        servers = list(conn.compute.servers(details=True))
        volumes = list(conn.block_storage.volumes(details=True))
        snapshots = list(conn.block_storage.snapshots(details=True))
        checks = [
            ("servers listed", [s.name for s in servers] == ["sdk-server"]),
            ("server is ACTIVE with an address", servers[0].status == "ACTIVE" and bool(servers[0].addresses)),
            ("server carries its tag", "replica-autoscaler" in (servers[0].tags or [])),
            ("volumes listed", [v.name for v in volumes] == ["sdk-volume"]),
            ("volume is attached", volumes[0].status == "in-use" and volumes[0].attachments[0]["server_id"] == server.id),
            ("volume metadata", volumes[0].metadata.get("ra_cluster") == "sdk"),
            ("snapshots listed", [s.name for s in snapshots] == ["sdk-snapshot"]),
            ("snapshot of the volume", snapshots[0].volume_id == vol.id),
            ("servers by tag", [s.id for s in conn.compute.servers(tags="replica-autoscaler")] == [server.id]),
        ]
        # The openstack CLI (python3-openstackclient) on the same clouds.yaml.
        env = dict(os.environ, OS_CLOUD="cloudsim")
        cli = {}
        for args in (["token", "issue", "-f", "value", "-c", "project_id"],
                     ["server", "list", "-f", "value", "-c", "Name", "-c", "Status"],
                     ["volume", "list", "-f", "value", "-c", "Name"],
                     ["volume", "snapshot", "list", "-f", "value", "-c", "Name"],
                     ["availability", "zone", "list", "--compute", "-f", "value", "-c", "Zone Name"]):
            r = subprocess.run(["openstack"] + args, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=60)
            cli[" ".join(args[:2])] = r.stdout.strip() if r.returncode == 0 else f"exit {r.returncode}: {r.stdout}"
        checks += [
            ("openstack token issue", cli["token issue"] == conn.current_project_id),
            ("openstack server list", cli["server list"] == "sdk-server ACTIVE"),
            ("openstack volume list", cli["volume list"] == "sdk-volume"),
            ("openstack volume snapshot", cli["volume snapshot"] == "sdk-snapshot"),
            ("openstack availability zone", cli["availability zone"] == "nova"),
        ]
        conn.compute.delete_server(server.id)
        wait_for(lambda: conn.compute.find_server(server.id) is None, "server deleted")
        for what, out in cli.items():
            print(f"     openstack {what}: {out[:200]}")
        failed = [name for name, ok in checks if not ok]
        for name, ok in checks:
            print(("ok   " if ok else "FAIL ") + name)
        print(f"{len(checks) - len(failed)} passed, {len(failed)} failed")
        return 1 if failed else 0


def run_vmagent():
    """vmagent's openstack_sd_configs (Prometheus' OpenStack discovery, in Go) finds the
    simulator's servers with their addresses and metadata."""
    import json
    import shutil
    import signal
    import urllib.request
    import openstack
    from simproc import free_port
    with Sim() as sim:
        config = os.path.join(sim.dir, "clouds.yaml")
        clouds_yaml(config, sim, "demo", "RegionOne")
        os.environ["OS_CLIENT_CONFIG_FILE"] = config
        conn = openstack.connect(cloud="cloudsim")
        vol = conn.block_storage.create_volume(size=1, name="sd-volume")
        wait_for(lambda: conn.block_storage.get_volume(vol.id).status == "available", "volume")
        server = conn.compute.create_server(
            name="main-r1", flavor_id="2", networks=[{"uuid": NETWORK}], metadata={"ra_cluster": "main"},
            block_device_mapping=[{"boot_index": 0, "uuid": vol.id, "source_type": "volume",
                                   "destination_type": "volume"}])
        wait_for(lambda: conn.compute.get_server(server.id).status == "ACTIVE", "server ACTIVE")
        address = list(conn.compute.get_server(server.id).addresses.values())[0][0]["addr"]
        scrape = os.path.join(sim.dir, "scrape.yml")
        with open(scrape, "w") as f:
            f.write(f"""scrape_configs:
  - job_name: replicas
    openstack_sd_configs:
      - role: instance
        region: RegionOne
        identity_endpoint: {sim.auth_url}
        username: demo
        password: demo-password
        domain_name: Default
        project_name: demo
        port: 9187
""")
        port = free_port()
        log = open(os.path.join(sim.dir, "vmagent.log"), "w")
        agent = subprocess.Popen(["vmagent", f"-promscrape.config={scrape}", f"-httpListenAddr=127.0.0.1:{port}",
                                  "-remoteWrite.url=http://127.0.0.1:1/api/v1/write",
                                  f"-remoteWrite.tmpDataPath={sim.dir}/vmagent-queue",
                                  "-promscrape.openstackSDCheckInterval=1s"],
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            def discovered():
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/targets", timeout=2) as r:
                        targets = json.loads(r.read())["data"]["activeTargets"]
                except OSError:
                    return None
                return targets or None
            targets = wait_for(discovered, "vmagent to discover the server", timeout=40, interval=0.5)
        finally:
            os.killpg(agent.pid, signal.SIGTERM)
            agent.wait(timeout=20)
            log.close()
        labels = targets[0]["discoveredLabels"]
        checks = [
            ("one target", len(targets) == 1),
            ("address is the server's fixed IP", labels.get("__address__") == f"{address}:9187"),
            ("instance name", labels.get("__meta_openstack_instance_name") == "main-r1"),
            ("instance status", labels.get("__meta_openstack_instance_status") == "ACTIVE"),
            ("metadata as tag label", labels.get("__meta_openstack_tag_ra_cluster") == "main"),
            ("private ip", labels.get("__meta_openstack_private_ip") == address),
        ]
        for name, ok in checks:
            print(("ok   " if ok else "FAIL ") + name)
        failed = [n for n, ok in checks if not ok]
        if failed:
            print(json.dumps(labels, indent=1))
        print(f"{len(checks) - len(failed)} passed, {len(failed)} failed")
        return 1 if failed else 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("requests")
    r.add_argument("--exercise", required=True)
    sub.add_parser("sdk")
    sub.add_parser("vmagent")
    args = p.parse_args()
    if args.cmd == "requests":
        return run_requests(args.exercise)
    return run_sdk() if args.cmd == "sdk" else run_vmagent()


if __name__ == "__main__":
    sys.exit(main())
