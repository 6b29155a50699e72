"""A standalone `replica-autoscaler serve` for the API's own tests and benchmarks
(api_hostile.py, api_tls.py, bench/api_ab.py): one cluster whose cloud, load balancer, metrics
and primary are all unreachable loopback ports, so the control loop fails its cycles quietly and
only the HTTP API matters. /healthz then answers 503 (no successful cycle), which is an answer.
"""
import os
import resource
import socket
import subprocess
import tempfile
import time

CONFIG = """\
clouds:
  nowhere:
    auth:
      auth_url: http://127.0.0.1:9/identity/v3
      username: svc
      project_name: demo
      password: {{file: {dir}/cloud-password}}
    availability_zones: [az-1]
    timeouts: {{connect: 1s, request: 2s}}
load_balancers:
  lb:
    url: http://127.0.0.1:9
    username: admin
    password: {{file: {dir}/lb-password}}
metrics:
  url: http://127.0.0.1:9
  timeout: 1s
clusters:
  - name: orders
    cloud: nowhere
    primary: {{static: {{host: 127.0.0.1, port: 9}}}}
    donor: {{server: orders-donor}}
    replica: {{flavor: m1.small, image: pg15, networks: [net], zones: [az-1]}}
    postgres: {{user: monitor, connect_timeout: 1s}}
    load_balancer: {{name: lb, backend: pg_ro}}
    min_replicas: 1
    max_replicas: 3
    policies:
      - name: sessions
        target_tracking: {{query: "sum(x)", target: 40}}
api:
  listen: 127.0.0.1:{port}
  max_connections: {max_connections}
  idle_timeout: {idle_timeout}
{tls}  tokens:
    - {{name: ops, role: admin, token: {{file: {dir}/admin.token}}}}
loop:
  interval: 5s
journal:
  path: {dir}/events.jsonl
logging:
  level: info
  path: {dir}/service.log
"""

ADMIN_TOKEN = "hostile-test-admin-token-4c1d9e"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_fd_limit(want=20000):
    """Raises this process's RLIMIT_NOFILE (children inherit it); returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Service:
    def __init__(self, binary, max_connections=1000, idle_timeout="30s", tls=None):
        self.dir = tempfile.mkdtemp(prefix="ra-api-")
        self.port = free_port()
        for name, value in (("cloud-password", "x"), ("lb-password", "y"),
                            ("admin.token", ADMIN_TOKEN)):
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(value + "\n")
        tls_text = ""
        if tls:
            tls_text = (f"  tls: {{certificate_file: {tls[0]}, key_file: {tls[1]}}}\n")
        self.config = os.path.join(self.dir, "config.yaml")
        with open(self.config, "w") as f:
            f.write(CONFIG.format(dir=self.dir, port=self.port, max_connections=max_connections,
                                  idle_timeout=idle_timeout, tls=tls_text))
        self.log = os.path.join(self.dir, "stderr.log")
        self.proc = subprocess.Popen([binary, "serve", "--config", self.config],
                                     stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the service exited ({self.proc.returncode}): {self.tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"the service did not listen on {self.port}: {self.tail()}")

    def tail(self, n=30):
        out = []
        for path in (self.log, os.path.join(self.dir, "service.log")):
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    out += f.read().splitlines()[-n:]
        return "\n".join(out)

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
