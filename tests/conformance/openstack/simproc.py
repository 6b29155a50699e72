"""Starts the cloud simulator for a conformance check and always stops it."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
CLOUDSIM = os.path.join(REPO, "tests", "sandbox", "cloudsim", "cloudsim.py")


_used_ports = set()


def free_port():
    # Never the same port twice in one process: HTTP clients keep pooled connections to the
    # previous simulator, which a new one on the same port would see cut.
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _used_ports:
            _used_ports.add(port)
            return port


class Sim:
    def __init__(self, *extra, capture=False):
        self.extra = list(extra)
        self.capture = capture

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="ra-cloudsim-")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.capture_path = os.path.join(self.dir, "requests.jsonl") if self.capture else None
        argv = ["/usr/bin/python3", CLOUDSIM, "--port", str(self.port), "--root",
                os.path.join(self.dir, "cloud")] + self.extra
        if self.capture_path:
            argv += ["--capture", self.capture_path]
        self.log = open(os.path.join(self.dir, "cloudsim.log"), "w")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("cloudsim exited at start:\n" + open(self.log.name).read())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("cloudsim did not listen in 20s")
        self.base = f"http://127.0.0.1:{self.port}"
        self.auth_url = self.base + "/identity/v3"
        return self

    def control(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read()
            return json.loads(text) if text else None

    def __exit__(self, *exc):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()
        if exc[0] is not None:
            print("---- cloudsim log ----")
            print(open(self.log.name).read()[-6000:])
        shutil.rmtree(self.dir, ignore_errors=True)
        return False


def wait_for(fn, what, timeout=30, interval=0.1):
    deadline = time.time() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)
