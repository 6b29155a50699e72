#!/usr/bin/python3
"""A real vmagent (Debian's victoria-metrics package), with the scrape configuration the Ansible
role vmagent renders, discovers the cloud simulator's servers through openstack_sd_configs
(application credential), keeps only the replicas, labels them from server metadata, scrapes
their exporters and writes the samples into VictoriaMetrics.

    tests/deploy/vmagent_sd_test.py

The servers are created through the simulator's Nova API as replica-autoscaler creates them (tags
and metadata); stand-in exporters listen on each replica's loopback address, so the scrape is
real. Everything is on 127.0.0.0/8, started here and stopped at the end.
"""
import base64
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLOUDSIM = os.path.join(SRC, "tests", "sandbox", "cloudsim", "cloudsim.py")
ROLE = os.path.join(SRC, "ansible", "roles", "vmagent")
APP_CRED_ID, APP_CRED_SECRET = "ra-vmagent", "vmagent-test-secret"

failures = []


def check(what, ok, detail=""):
    print(("ok: " if ok else "FAIL: ") + what + ("" if ok or not detail else f" — {detail}"), flush=True)
    if not ok:
        failures.append(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url, method="GET", body=None, headers=None, timeout=10):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        raw = r.read().decode()
        return r.status, dict(r.headers), (json.loads(raw) if raw.strip().startswith(("{", "[")) else raw)


def wait_http(url, proc, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            request(url, timeout=2)
            return True
        except (OSError, urllib.error.HTTPError):
            time.sleep(0.2)
    return False


def start(argv, log_path, env=None):
    return subprocess.Popen(argv, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True, env=env)


def stop(proc):
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def render_role_config(work, auth_url):
    """Renders the role's own templates with its defaults, as the role does on a host."""
    play = os.path.join(work, "render.yml")
    with open(play, "w") as f:
        f.write(f"""---
- name: Render the vmagent role's configuration
  hosts: localhost
  connection: local
  gather_facts: false
  vars_files:
    - {ROLE}/defaults/main.yml
  tasks:
    - name: Scrape configuration
      ansible.builtin.template:
        src: {ROLE}/templates/scrape.yml.j2
        dest: {work}/scrape.yml
        mode: "0640"
    - name: Credentials
      ansible.builtin.template:
        src: {ROLE}/templates/credentials.env.j2
        dest: {work}/credentials.env
        mode: "0600"
""")
    extra = {"vmagent_openstack": {"identity_endpoint": auth_url, "region": "RegionOne",
                                   "application_credential_id": APP_CRED_ID,
                                   "application_credential_secret": APP_CRED_SECRET},
             "vmagent_scrape_interval": "2s"}
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(SRC, "ansible", "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=os.path.join(work, "ansible-tmp"))
    r = subprocess.run(["ansible-playbook", "-i", "localhost,", play, "-e", json.dumps(extra)],
                       capture_output=True, text=True, timeout=180, env=env, stdin=subprocess.DEVNULL)
    check("the vmagent role's templates render", r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:])
    return os.path.join(work, "scrape.yml"), os.path.join(work, "credentials.env")


class Exporter(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = (f'# TYPE ra_test_exporter_up gauge\nra_test_exporter_up{{port="{self.server.server_port}"}} 1\n').encode()
        self.send_response(200 if self.path == "/metrics" else 404)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    for tool in ("vmagent", "victoria-metrics", "ansible-playbook"):
        if not shutil.which(tool):
            print(f"FAIL: {tool} not found (scripts/setup.sh installs it)")
            return 1
    work = tempfile.mkdtemp(prefix="ra-vmagent-sd-")
    os.chmod(work, 0o755)
    procs, exporters = [], []
    try:
        sim_port = free_port()
        os.makedirs(os.path.join(work, "cloud"))
        sim = start([sys.executable, CLOUDSIM, "--port", str(sim_port), "--root", os.path.join(work, "cloud"),
                     "--app-cred-id", APP_CRED_ID, "--app-cred-secret", APP_CRED_SECRET,
                     "--zones", "az1,az2", "--address-base", "127.0.113"], os.path.join(work, "cloudsim.log"))
        procs.append(sim)
        base = f"http://127.0.0.1:{sim_port}"
        check("cloud simulator started", wait_http(base + "/identity/v3", sim, 30))
        if failures:
            return 1
        auth_url = base + "/identity/v3"
        scrape, creds = render_role_config(work, auth_url)
        if failures:
            return 1
        scrape_text = open(scrape).read()
        check("the rendered scrape configuration holds no secret", APP_CRED_SECRET not in scrape_text)

        # Servers as replica-autoscaler makes them, and one that is not a replica.
        _, headers, tok = request(auth_url + "/auth/tokens", "POST", {"auth": {"identity": {
            "methods": ["application_credential"],
            "application_credential": {"id": APP_CRED_ID, "secret": APP_CRED_SECRET}}}})
        token = headers.get("X-Subject-Token")
        compute = next(e["url"] for s in tok["token"]["catalog"] if s["type"] == "compute"
                       for e in s["endpoints"] if e["interface"] == "public")
        _, _, state = request(base + "/control/state")
        flavor = state["flavors"][0]
        net_id = next(iter(state["networks"].values()))
        image = "c1b7bd39-1c6e-4c6e-8b0c-7a9fb04f1d1e"  # the simulator's one image
        nova = {"X-Auth-Token": token, "X-OpenStack-Nova-API-Version": "2.52"}
        wanted = {}
        for name, meta, tags in (
                ("main-replica-a1", {"ra_managed_by": "replica-autoscaler", "ra_cluster": "main",
                                     "ra_replica": "main-replica-a1", "ra_role": "replica"}, ["ra-managed", "ra-cluster:main"]),
                ("main-replica-b2", {"ra_managed_by": "replica-autoscaler", "ra_cluster": "main",
                                     "ra_replica": "main-replica-b2", "ra_role": "replica"}, ["ra-managed", "ra-cluster:main"]),
                ("bastion", {"purpose": "ssh"}, [])):
            _, _, created = request(compute + "/servers", "POST", {"server": {
                "name": name, "imageRef": image, "flavorRef": flavor, "networks": [{"uuid": net_id}],
                "metadata": meta, "tags": tags, "user_data": base64.b64encode(b"{}").decode()}}, headers=nova)
            wanted[name] = created["server"]["id"]
        addresses = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(addresses) < 3:
            _, _, detail = request(compute + "/servers/detail", headers=nova)
            for s in detail["servers"]:
                addrs = [a["addr"] for v in s["addresses"].values() for a in v]
                if s["status"] == "ACTIVE" and addrs:
                    addresses[s["name"]] = addrs[0]
            time.sleep(0.3)
        check("the simulator's servers are ACTIVE with addresses", len(addresses) == 3, addresses)
        if failures:
            return 1

        # Stand-in exporters on each server's address (node :9100, postgres :9187).
        for name, addr in addresses.items():
            for port in (9100, 9187):
                srv = http.server.ThreadingHTTPServer((addr, port), Exporter)
                threading.Thread(target=srv.serve_forever, daemon=True).start()
                exporters.append(srv)

        vm_port, agent_port = free_port(), free_port()
        vm = start(["victoria-metrics", f"-httpListenAddr=127.0.0.1:{vm_port}", f"-storageDataPath={work}/vm",
                    "-search.latencyOffset=0s", "-search.disableCache"], os.path.join(work, "vm.log"))
        procs.append(vm)
        check("VictoriaMetrics started", wait_http(f"http://127.0.0.1:{vm_port}/health", vm, 30))
        env = dict(os.environ)
        for line in open(creds):
            if "=" in line and not line.startswith("#"):
                k, v = line.rstrip("\n").split("=", 1)
                env[k] = v
        dry = subprocess.run(["vmagent", f"-promscrape.config={scrape}", "-promscrape.config.dryRun", "-loggerLevel=ERROR"],
                             capture_output=True, text=True, env=env, timeout=60)
        check("vmagent accepts the role's configuration (dry run)", dry.returncode == 0, dry.stdout + dry.stderr)
        agent = start(["vmagent", f"-promscrape.config={scrape}", f"-httpListenAddr=127.0.0.1:{agent_port}",
                       f"-remoteWrite.url=http://127.0.0.1:{vm_port}/api/v1/write", f"-remoteWrite.tmpDataPath={work}/vmagent",
                       "-remoteWrite.flushInterval=1s", "-promscrape.openstackSDCheckInterval=2s"],
                      os.path.join(work, "vmagent.log"), env=env)
        procs.append(agent)
        check("vmagent started", wait_http(f"http://127.0.0.1:{agent_port}/health", agent, 30))
        if failures:
            return 1

        # Targets: each replica once per exporter job, up, with labels from metadata.
        jobs = ("pg-replica-node", "pg-replica-postgres")
        targets = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            _, _, body = request(f"http://127.0.0.1:{agent_port}/api/v1/targets")
            targets = [t for t in body["data"]["activeTargets"] if t["labels"].get("job") in jobs]
            if len([t for t in targets if t.get("health") == "up"]) >= 4:
                break
            time.sleep(1)
        got = sorted((t["labels"]["job"], t["labels"].get("instance"), t.get("health")) for t in targets)
        want = sorted((j, n, "up") for j in jobs for n in ("main-replica-a1", "main-replica-b2"))
        check("vmagent discovers exactly the two replicas per exporter job, and scrapes them", got == want, got)
        for t in targets:
            lab = t["labels"]
            name = lab.get("instance")
            check(f"{lab.get('job')} {name}: labels from metadata (ra_cluster, role, replica, server_id)",
                  lab.get("ra_cluster") == "main" and lab.get("role") == "replica" and lab.get("replica") == name
                  and lab.get("server_id") == wanted.get(name), lab)
            port = "9100" if lab.get("job") == "pg-replica-node" else "9187"
            check(f"{lab.get('job')} {name}: scraped at the server's address",
                  t.get("scrapeUrl") == f"http://{addresses[name]}:{port}/metrics", t.get("scrapeUrl"))
        check("the non-replica server is not scraped", all(t["labels"].get("instance") != "bastion" for t in targets))

        # The samples reach VictoriaMetrics with those labels.
        series = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            q = urllib.parse.urlencode({"query": 'ra_test_exporter_up{ra_cluster="main", role="replica"}'})
            _, _, res = request(f"http://127.0.0.1:{vm_port}/api/v1/query?{q}")
            series = res["data"]["result"]
            if len(series) >= 4:
                break
            time.sleep(1)
        check("VictoriaMetrics holds the replicas' samples with their labels", len(series) == 4,
              [s["metric"] for s in series])
    finally:
        for srv in exporters:
            srv.shutdown()
            srv.server_close()
        for p in reversed(procs):
            stop(p)
        if failures:
            for log in ("cloudsim.log", "vmagent.log"):
                path = os.path.join(work, log)
                if os.path.exists(path):
                    print(f"--- {log} (tail)")
                    print(open(path, errors="replace").read()[-3000:])
        shutil.rmtree(work, ignore_errors=True)
    print(f"{len(failures)} failed" if failures else "vmagent discovery test passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
