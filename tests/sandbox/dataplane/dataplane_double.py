#!/usr/bin/python3
"""A double of the HAProxy Data Plane API (/v2 or /v3 subset) over a real HAProxy.

The Data Plane API is not packaged for Debian, so tests talk to this instead. It starts HAProxy in
master-worker mode (`haproxy -W -S <dir>/master.sock -f <dir>/haproxy.cfg`) and implements the
endpoints the replica-autoscaler uses on top of it:

  configuration  rewrite haproxy.cfg (validated with `haproxy -c`), then reload through the master
                 socket, after saving `show servers state` into the server-state-file
  runtime        `set server BE/SRV state ready|drain|maint` and `show servers state` on the admin
                 socket named by the configuration's `stats socket` line
  stats          `show stat`

and reproduces the API's behaviour: Basic auth and 401, the configuration version (kept as the
`# _version=N` first line of haproxy.cfg), `version`/`transaction_id` exclusivity (400), 409
"version mismatch" with the real message, 406 for an outdated transaction, 429 at 20 open
transactions, 202 + Reload-ID and the reloads endpoint, error bodies {"code":N,"message":"..."}.

Fault knobs (POST /_control with a JSON object; GET /_control shows them and counters):
  bump_version_before_writes  N   the next N versioned writes or commits find that another writer
                                  committed a change just before them (a real one: haproxy.cfg is
                                  rewritten with a new version)
  reload_delay_ms             MS  time between a change and its reload (the API's reload-delay)
  fail_reloads                N   the next N reloads really fail (HAProxy is given a broken
                                  configuration); the last good configuration is then restored
  stuck_sessions        {srv: N}  add N sessions that never drain to a server's `scur`

Usage:
  dataplane_double.py --dir DIR --listen 127.0.0.1:PORT --api v2|v3 --user U --password-file F
                      [--capture FILE] [--reload-delay-ms MS] [--simulate-haproxy]
--simulate-haproxy runs no HAProxy: SimulatedHAProxy keeps the runtime state and answers the admin
commands in HAProxy's formats, reloads are instant and every health check passes (the scale
benchmark's thousands of servers; see the class).
DIR must hold haproxy.cfg, with `stats socket <path> level admin` and `server-state-file <path>` in
its global section; HAProxy is stopped when the double exits (SIGTERM or SIGINT).

Stdlib only. Nothing here shares code with the C++ client.
"""
import argparse
import base64
import datetime
import hmac
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from urllib.parse import unquote

if __package__ in (None, ""):  # run as a script: the import root is tests/sandbox
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
import httpbase  # noqa: E402

MAX_OPEN_TRANSACTIONS = 20
API_VERSION_STRING = {"v2": "v2.9.0 double", "v3": "v3.3.0 double"}


class ApiError(httpbase.HttpError):
    """The API's error answer: {"code": N, "message": "..."}."""

    def __init__(self, code, message, headers=None):
        super().__init__(code, {"code": code, "message": message}, headers)
        self.code = code
        self.message = message


# ---------------------------------------------------------------------------------------------
# haproxy.cfg as text: sections, server lines of backends, the version line.

SECTION_RE = re.compile(r"^(global|defaults|frontend|backend|listen|peers|resolvers|userlist|"
                        r"program|http-errors|ring|mailers|cache)\b(.*)$")
SERVER_RE = re.compile(r"^\s+server\s+(\S+)\s+(\S+)(.*)$")
VERSION_RE = re.compile(r"^# _version\s*=\s*(\d+)\s*$")


def parse_ms(text):
    m = re.fullmatch(r"(\d+)(us|ms|s|m|h|d)?", text)
    if not m:
        return None
    n = int(m.group(1))
    return {None: n, "us": n // 1000, "ms": n, "s": n * 1000, "m": n * 60000, "h": n * 3600000,
            "d": n * 86400000}[m.group(2)]


class Config:
    """haproxy.cfg as a list of lines, without the version line."""

    def __init__(self, text):
        self.lines = []
        self.version = 1
        for i, line in enumerate(text.splitlines()):
            m = VERSION_RE.match(line)
            if i == 0 and m:
                self.version = int(m.group(1))
                continue
            self.lines.append(line)

    def copy(self):
        c = Config("")
        c.lines = list(self.lines)
        c.version = self.version
        return c

    def render(self, version=None):
        v = self.version if version is None else version
        return f"# _version={v}\n" + "\n".join(self.lines) + "\n"

    def global_value(self, keyword):
        in_global = False
        for line in self.lines:
            m = SECTION_RE.match(line)
            if m:
                in_global = m.group(1) == "global"
                continue
            words = line.split()
            if in_global and words[:len(keyword)] == keyword and len(words) > len(keyword):
                return words[len(keyword)]
        return None

    def _backend_range(self, backend):
        start = None
        for i, line in enumerate(self.lines):
            m = SECTION_RE.match(line)
            if not m:
                continue
            if start is not None:
                return start, i
            if m.group(1) in ("backend", "listen") and m.group(2).split()[:1] == [backend]:
                start = i
        if start is None:
            raise ApiError(400, f"missing parent: backend {backend} does not exist")
        return start, len(self.lines)

    def servers(self, backend):
        start, end = self._backend_range(backend)
        out = []
        for line in self.lines[start + 1:end]:
            m = SERVER_RE.match(line)
            if m:
                out.append(server_from_line(m))
        return out

    def add_server(self, backend, srv):
        start, end = self._backend_range(backend)
        insert = start + 1
        for i in range(start + 1, end):
            m = SERVER_RE.match(self.lines[i])
            if m and m.group(1) == srv["name"]:
                raise ApiError(409, f"object already exists: server {srv['name']} already exists "
                                    f"in backend {backend}")
            if self.lines[i].strip() and not self.lines[i].lstrip().startswith("#"):
                insert = i + 1
        self.lines.insert(insert, server_to_line(srv))

    def delete_server(self, backend, name):
        start, end = self._backend_range(backend)
        for i in range(start + 1, end):
            m = SERVER_RE.match(self.lines[i])
            if m and m.group(1) == name:
                del self.lines[i]
                return
        raise ApiError(404, f"missing object: server {name} does not exist in backend {backend}")


def server_from_line(m):
    name, addr, rest = m.group(1), m.group(2), m.group(3).split()
    srv = {"name": name}
    host, _, port = addr.rpartition(":")
    if host and port.isdigit():
        srv["address"], srv["port"] = host, int(port)
    else:
        srv["address"] = addr
    i = 0
    while i < len(rest):
        word = rest[i]
        if word == "check":
            srv["check"] = "enabled"
        elif word == "no-check":
            srv["check"] = "disabled"
        elif word == "disabled":
            srv["maintenance"] = "enabled"
        elif word == "enabled":
            srv["maintenance"] = "disabled"
        elif word in ("inter", "rise", "fall", "weight") and i + 1 < len(rest):
            value = parse_ms(rest[i + 1]) if word == "inter" else (
                int(rest[i + 1]) if rest[i + 1].isdigit() else None)
            if value is not None:
                srv[word] = value
            i += 1
        i += 1
    return srv


def server_to_line(srv):
    addr = srv["address"] + (f":{srv['port']}" if srv.get("port") else "")
    words = ["server", srv["name"], addr]
    if srv.get("check") == "enabled":
        words.append("check")
    if srv.get("maintenance") == "enabled":
        words.append("disabled")
    for key in ("inter", "rise", "fall", "weight"):
        if srv.get(key) is not None:
            words += [key, f"{srv[key]}ms" if key == "inter" else str(srv[key])]
    return "    " + " ".join(words)


SERVER_KEYS = {"name", "address", "port", "check", "maintenance", "inter", "rise", "fall", "weight",
               "id"}


def validate_server_body(body):
    if not isinstance(body, dict):
        raise ApiError(400, "body: expected a JSON object")
    unknown = sorted(set(body) - SERVER_KEYS)
    if unknown:
        raise ApiError(400, f"body: unsupported server fields in this double: {unknown}")
    for key in ("name", "address"):
        if not isinstance(body.get(key), str) or not re.fullmatch(r"[^\s]+", body[key]):
            raise ApiError(422, f"{key} in body is required")
    for key in ("port", "inter", "rise", "fall", "weight", "id"):
        if key in body and body[key] is not None and not isinstance(body[key], int):
            raise ApiError(422, f"{key} in body must be of type integer")
    if body.get("port") is not None and not 1 <= body["port"] <= 65535:
        raise ApiError(422, "port in body should be between 1 and 65535")
    for key in ("check", "maintenance"):
        if key in body and body[key] not in ("enabled", "disabled"):
            raise ApiError(422, f"{key} in body should be one of [enabled disabled]")
    return {k: v for k, v in body.items() if k != "id" and v is not None}


# ---------------------------------------------------------------------------------------------
# HAProxy: the process, its admin socket and its master socket.

def socket_command(path, command, timeout=5.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall((command + "\n").encode())
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks).decode(errors="replace")
    finally:
        s.close()


class HAProxy:
    def __init__(self, workdir, cfg_path, admin_socket, state_file):
        self.workdir = workdir
        self.cfg_path = cfg_path
        self.master_socket = os.path.join(workdir, "master.sock")
        self.admin_socket = admin_socket
        self.state_file = state_file
        self.proc = None

    def start(self):
        log = open(os.path.join(self.workdir, "haproxy.log"), "ab")
        self.proc = subprocess.Popen(
            ["haproxy", "-W", "-S", self.master_socket, "-f", self.cfg_path],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.workdir)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"haproxy exited with {self.proc.returncode}; see "
                                   f"{self.workdir}/haproxy.log")
            try:
                socket_command(self.admin_socket, "show info", timeout=1)
                socket_command(self.master_socket, "show proc", timeout=1)
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("haproxy's sockets did not open within 15 s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def admin(self, command):
        return socket_command(self.admin_socket, command)

    def check_config(self, text):
        with tempfile.NamedTemporaryFile("w", dir=self.workdir, suffix=".cfg", delete=False) as f:
            f.write(text)
            path = f.name
        try:
            r = subprocess.run(["haproxy", "-c", "-q", "-f", path], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=30)
            return r.returncode == 0, r.stdout.strip()
        finally:
            os.unlink(path)

    def reload_counters(self):
        """(reloads, failed) from the master's `show proc`."""
        out = socket_command(self.master_socket, "show proc")
        for line in out.splitlines():
            m = re.match(r"^\d+\s+master\s+(\d+)\s+\[failed:\s*(\d+)\]", line)
            if m:
                return int(m.group(1)), int(m.group(2))
        raise RuntimeError(f"unexpected `show proc` output: {out!r}")

    def reload(self):
        """Saves server states, reloads through the master socket; (ok, message)."""
        with open(self.state_file + ".tmp", "w") as f:
            f.write(self.admin("show servers state"))
        os.replace(self.state_file + ".tmp", self.state_file)
        before, failed_before = self.reload_counters()
        socket_command(self.master_socket, "reload")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                reloads, failed = self.reload_counters()
            except (OSError, RuntimeError):
                reloads, failed = before, failed_before  # the master is re-executing itself
            if reloads > before:
                if failed > failed_before:
                    return False, "haproxy reported a failed reload (see haproxy.log)"
                # The new worker serves the admin socket once it is up.
                try:
                    self.admin("show info")
                    return True, "reloaded"
                except OSError:
                    pass
            time.sleep(0.02)
        return False, "haproxy did not finish reloading within 20 s"


class SimulatedHAProxy:
    """--simulate-haproxy: no HAProxy process, for the scale benchmark (thousands of servers,
    whose every admission would otherwise cost `haproxy -c` and two real reloads). The same
    interface as HAProxy above, answering the admin commands the double sends in HAProxy's own
    formats from state kept here:

      - a reload re-reads haproxy.cfg's backends and servers at once and never fails (except
        when the fail_reloads knob asks); a server already loaded keeps its runtime admin and
        health state (as the server-state-file keeps them), a new one starts in maint when its
        line says `disabled`, else ready;
      - check_config accepts anything (no `haproxy -c`): the double's own checks still apply;
      - every health check passes at once: a server that is not in maint is UP with check
        status L4OK, unless `set server ... health down` said otherwise. Nothing is connected to.
    """

    def __init__(self, workdir, cfg_path, admin_socket, state_file):
        self.workdir = workdir
        self.cfg_path = cfg_path
        self.admin_socket = admin_socket
        self.proc = None
        self.lock = threading.Lock()
        self.backends = {}  # name -> [server dict as server_from_line reads it], config order
        self.runtime = {}  # (backend, server) -> {"admin": ready|drain|maint, "oper": up|down|stopping}

    def start(self):
        self._load()

    def stop(self):
        pass

    def _load(self):
        with open(self.cfg_path) as f:
            config = Config(f.read())
        backends, current = {}, None
        for line in config.lines:
            m = SECTION_RE.match(line)
            if m:
                current = m.group(2).split()[0] if m.group(1) in ("backend", "listen") and m.group(2).split() else None
                if current:
                    backends[current] = []
                continue
            m = SERVER_RE.match(line)
            if m and current:
                backends[current].append(server_from_line(m))
        with self.lock:
            runtime = {}
            for backend, servers in backends.items():
                for srv in servers:
                    key = (backend, srv["name"])
                    runtime[key] = self.runtime.get(key) or {
                        "admin": "maint" if srv.get("maintenance") == "enabled" else "ready", "oper": "up"}
            self.backends, self.runtime = backends, runtime

    def check_config(self, text):
        return True, ""

    def reload(self):
        try:
            with open(self.cfg_path) as f:
                if "this-keyword-breaks-the-reload" in f.read():  # the fail_reloads knob
                    return False, "simulated reload failed (fail_reloads)"
            self._load()
        except OSError as e:
            return False, f"simulated reload: {e}"
        return True, "reloaded"

    def _servers_state(self, only):
        # `show servers state`, format 1: the 25 columns HAProxy 2.6 prints.
        out = ["1", "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight "
               "srv_iweight srv_time_since_last_change srv_check_status srv_check_result "
               "srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id "
               "srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr "
               "srv_agent_port"]
        for be_id, (backend, servers) in enumerate(self.backends.items(), start=1):
            if only and backend != only:
                continue
            for srv_id, srv in enumerate(servers, start=1):
                rt = self.runtime[(backend, srv["name"])]
                admin = {"ready": "0", "drain": "8", "maint": "1"}[rt["admin"]]
                oper = "0" if rt["admin"] == "maint" or rt["oper"] == "down" else (
                    "3" if rt["oper"] == "stopping" else "2")
                out.append(" ".join(str(x) for x in (
                    be_id, backend, srv_id, srv["name"], srv.get("address", "-"), oper, admin, 1, 1, 0,
                    6, 3, 4, 6, 0, 0, 0, "-", srv.get("port", 0), "-", 0, 0, "-", "-", 0)))
        return "\n".join(out) + "\n"

    def _stat(self):
        out = ["# pxname,svname,scur,stot,status,check_status,weight,act,bck,mode"]
        for backend, servers in self.backends.items():
            for srv in servers:
                rt = self.runtime[(backend, srv["name"])]
                if rt["admin"] == "maint":
                    status, check = "MAINT", ""
                elif rt["oper"] == "down":
                    status, check = "DOWN", "L4CON"
                else:
                    status = "DRAIN" if rt["admin"] == "drain" else "UP"
                    check = "L4OK" if srv.get("check") == "enabled" else ""
                out.append(f"{backend},{srv['name']},0,0,{status},{check},1,1,0,tcp")
            out.append(f"{backend},BACKEND,0,0,UP,,{len(servers)},{len(servers)},0,tcp")
        return "\n".join(out) + "\n"

    def admin(self, command):
        words = command.split()
        with self.lock:
            if words[:3] == ["show", "servers", "state"]:
                only = words[3] if len(words) > 3 else None
                if only and only not in self.backends:
                    return "Can't find backend.\n"
                return self._servers_state(only)
            if words[:2] == ["show", "stat"]:
                return self._stat()
            if words[:2] == ["show", "info"]:
                return "Name: HAProxy (simulated by dataplane_double.py)\n"
            if words[:2] == ["set", "server"] and len(words) == 5 and "/" in words[2]:
                backend, _, name = words[2].partition("/")
                rt = self.runtime.get((backend, name))
                if rt is None:
                    return "No such server.\n"
                if words[3] == "state" and words[4] in ("ready", "drain", "maint"):
                    rt["admin"] = words[4]
                    return "\n"
                if words[3] == "health" and words[4] in ("up", "down", "stopping"):
                    rt["oper"] = words[4]
                    return "\n"
            return f"Unknown command (simulated HAProxy): {command}\n"


# ---------------------------------------------------------------------------------------------
# The API's state: configuration, transactions, reloads, knobs.

class Reloads:
    """The reload agent: changes are batched for reload_delay_ms, one ID per batch."""

    def __init__(self, state):
        self.state = state
        self.index = 0
        self.records = {}  # id -> dict
        self.pending = None
        self.cond = threading.Condition()
        threading.Thread(target=self._run, daemon=True).start()

    def request(self):
        with self.cond:
            if self.pending is None:
                self.index += 1
                rid = f"{datetime.date.today().isoformat()}-{self.index}"
                self.records[rid] = {"id": rid, "status": "in_progress"}
                self.pending = (rid, time.monotonic())
                self.cond.notify_all()
            return self.pending[0]

    def _run(self):
        while True:
            with self.cond:
                while self.pending is None:
                    self.cond.wait()
                rid, since = self.pending
            delay = self.state.knobs["reload_delay_ms"] / 1000.0
            time.sleep(max(0.0, since + delay - time.monotonic()))
            with self.cond:
                self.pending = None
            ok, message = self.state.do_reload()
            with self.cond:
                self.records[rid].update(status="succeeded" if ok else "failed",
                                         response=message,
                                         reload_timestamp=int(time.time()))


class State:
    def __init__(self, args):
        self.lock = threading.RLock()
        self.api = args.api
        self.cfg_path = os.path.join(args.dir, "haproxy.cfg")
        with open(self.cfg_path) as f:
            self.config = Config(f.read())
        admin = self.config.global_value(["stats", "socket"])
        state_file = self.config.global_value(["server-state-file"])
        if not admin or not state_file:
            sys.exit("dataplane_double: haproxy.cfg needs `stats socket PATH level admin` and "
                     "`server-state-file PATH` in its global section")
        self.lkg = self.config.copy()  # last configuration HAProxy accepted
        self._write(self.config)
        kind = SimulatedHAProxy if args.simulate_haproxy else HAProxy
        self.haproxy = kind(args.dir, self.cfg_path, admin, state_file)
        self.transactions = {}  # id -> {"id", "_version", "status", "config"}
        self.knobs = {"bump_version_before_writes": 0, "reload_delay_ms": args.reload_delay_ms,
                      "fail_reloads": 0, "stuck_sessions": {}}
        self.counters = {"reloads_succeeded": 0, "reloads_failed": 0, "concurrent_commits": 0}
        self.reloads = Reloads(self)

    def _write(self, config):
        tmp = self.cfg_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(config.render())
        os.replace(tmp, self.cfg_path)

    def do_reload(self):
        with self.lock:
            fail = self.knobs["fail_reloads"] > 0
            if fail:
                self.knobs["fail_reloads"] -= 1
                # A real failure: HAProxy is asked to load a configuration it rejects.
                with open(self.cfg_path, "a") as f:
                    f.write("this-keyword-breaks-the-reload\n")
            ok, message = self.haproxy.reload()
            if ok:
                self.lkg = self.config.copy()
                self.counters["reloads_succeeded"] += 1
            else:
                # As the Data Plane API does: go back to the last configuration that loaded.
                self.counters["reloads_failed"] += 1
                restored = self.lkg.copy()
                restored.version = self.config.version + 1
                self.config = restored
                self._write(self.config)
                message = f"Reload failed: {message}"
            return ok, message

    def concurrent_writer(self):
        """Another client commits a change (a comment line) if the knob says so."""
        if self.knobs["bump_version_before_writes"] > 0:
            self.knobs["bump_version_before_writes"] -= 1
            self.counters["concurrent_commits"] += 1
            self.config.lines.append(f"# touched by another writer at {time.time():.3f}")
            self.config.version += 1
            self._write(self.config)

    def open_count(self):
        return sum(1 for t in self.transactions.values() if t["status"] == "in_progress")

    def target(self, params):
        """The configuration a write or read applies to: (config, transaction or None)."""
        tid = params.get("transaction_id")
        version = params.get("version")
        if tid and version is not None:
            raise ApiError(400, "both version and transaction specified, specify only one")
        if tid:
            t = self.transactions.get(tid)
            if t is None:
                raise ApiError(400, f"transaction does not exist: transaction {tid} does not exist")
            if t["status"] != "in_progress":
                raise ApiError(400, f"transaction {tid} is {t['status']}")
            return t["config"], t
        return self.config, None

    def write(self, params, change):
        """Applies change(config) under a version or in a transaction; returns a reload ID or None."""
        with self.lock:
            tid = params.get("transaction_id")
            version = params.get("version")
            if not tid and version is None:
                raise ApiError(400, "version or transaction not specified: version or transaction "
                                    "not specified, specify only one")
            config, t = self.target(params)
            if t is not None:
                change(config)
                return None
            self.concurrent_writer()
            if version != self.config.version:
                raise ApiError(409, f"version mismatch: version in configuration file is "
                                    f"{self.config.version}, given version is {version}")
            candidate = self.config.copy()
            change(candidate)
            return self._commit(candidate, params)

    def _commit(self, candidate, params):
        candidate.version = self.config.version + 1
        ok, output = self.haproxy.check_config(candidate.render())
        if not ok:
            raise ApiError(400, f"validation error: {output}")
        self.config = candidate
        self._write(candidate)
        if params.get("force_reload"):
            ok, message = self.do_reload()
            if not ok:
                raise ApiError(400, message)
            return None
        return self.reloads.request()

    def start_transaction(self, version):
        with self.lock:
            if self.open_count() >= MAX_OPEN_TRANSACTIONS:
                raise ApiError(429, "cannot start a new transaction, reached the maximum amount of "
                                    f"{MAX_OPEN_TRANSACTIONS} active transactions available")
            if version != self.config.version:
                raise ApiError(409, f"version mismatch: version in configuration file is "
                                    f"{self.config.version}, given version is {version}")
            tid = str(uuid.uuid4())
            t = {"id": tid, "_version": version, "status": "in_progress",
                 "config": self.config.copy()}
            self.transactions[tid] = t
            return t

    def commit_transaction(self, tid, params):
        with self.lock:
            t = self.transactions.get(tid)
            if t is None:
                raise ApiError(404, f"transaction does not exist: transaction {tid} does not exist")
            if t["status"] == "outdated":
                raise ApiError(406, f"transaction {tid} is outdated and cannot be committed")
            if t["status"] == "failed":
                raise ApiError(406, f"transaction {tid} is failed and cannot be committed")
            self.concurrent_writer()
            if t["_version"] != self.config.version:
                t["status"] = "outdated"
                raise ApiError(409, f"version mismatch: version mismatch, transaction version: "
                                    f"{t['_version']}, configured version: {self.config.version}")
            try:
                rid = self._commit(t["config"].copy(), params)
            except ApiError:
                t["status"] = "failed"
                raise
            t["status"] = "success"
            del self.transactions[tid]
            for other in self.transactions.values():
                if other["status"] == "in_progress" and other["_version"] <= t["_version"]:
                    other["status"] = "outdated"
            return t, rid

    def delete_transaction(self, tid):
        with self.lock:
            if self.transactions.pop(tid, None) is None:
                raise ApiError(404, f"transaction does not exist: transaction {tid} does not exist")


def transaction_view(t):
    return {"_version": t["_version"], "id": t["id"], "status": t["status"]}


# ---------------------------------------------------------------------------------------------
# Runtime and stats views.

def admin_state_of(flags_text):
    # HAProxy prints srv_admin_state in decimal, but the Data Plane API (client-native's
    # GetServerAdminState) parses it as hexadecimal. Reproduced on purpose: a server drained while
    # it carries `disabled` in haproxy.cfg (flags 12 = CMAINT|FDRAIN) reads as "maint" there too.
    flags = int(flags_text, 16) if re.fullmatch(r"[0-9a-fA-F]+", flags_text) else 0
    if flags & 0x23:
        return "maint"
    if flags & 0x18:
        return "drain"
    return "ready"


def runtime_servers(state, backend):
    out = state.haproxy.admin(f"show servers state {backend}")
    if "Can't find backend" in out:
        raise ApiError(404, f"backend {backend} not found")
    servers = []
    for line in out.splitlines():
        if not line.strip() or line.startswith("#") or line.strip() == "1":
            continue
        f = line.split(" ")
        if len(f) < 25:
            continue
        rs = {"name": f[3], "address": f[4], "id": f[2],
              "admin_state": admin_state_of(f[6]),
              "operational_state": {"0": "down", "1": "up", "2": "up", "3": "stopping"}.get(f[5],
                                                                                          "down")}
        if f[18].isdigit() and 1 <= int(f[18]) <= 65535:
            rs["port"] = int(f[18])
        servers.append(rs)
    return servers


STAT_STRING_FIELDS = {"status", "check_status", "agent_status", "last_chk", "last_agt", "addr",
                      "cookie", "mode", "algo", "hanafail", "tracked", "check_desc", "agent_desc"}
STAT_INT_FIELDS = {
    "act", "bck", "bin", "bout", "check_code", "check_duration", "check_fall", "check_health",
    "check_rise", "chkdown", "chkfail", "cli_abrt", "comp_byp", "comp_in", "comp_out", "comp_rsp",
    "conn_rate", "conn_rate_max", "conn_tot", "ctime", "dcon", "downtime", "dreq", "dresp", "dses",
    "econ", "ereq", "eresp", "hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx",
    "hrsp_other", "iid", "intercepted", "lastchg", "lastsess", "lbtot", "pid", "qcur", "qlimit",
    "qmax", "qtime", "rate", "rate_lim", "rate_max", "req_rate", "req_rate_max", "req_tot",
    "rtime", "scur", "sid", "slim", "smax", "srv_abrt", "stot", "throttle", "ttime", "weight",
    "wredis", "wretr", "agent_code", "agent_duration", "agent_fall", "agent_health", "agent_rise"}
STAT_MODES = {"tcp", "http", "health", "unknown"}


def native_stats(state, type_filter, name, parent):
    csv = state.haproxy.admin("show stat")
    lines = [l for l in csv.splitlines() if l.strip()]
    if not lines or not lines[0].startswith("# "):
        raise ApiError(500, "unexpected `show stat` output")
    header = lines[0][2:].split(",")
    stats = []
    stuck = state.knobs["stuck_sessions"]
    for line in lines[1:]:
        row = dict(zip(header, line.split(",")))
        sv, px = row.get("svname", ""), row.get("pxname", "")
        kind = {"FRONTEND": "frontend", "BACKEND": "backend"}.get(sv, "server")
        entry = {"type": kind, "name": px if kind != "server" else sv}
        if kind == "server":
            entry["backend_name"] = px
        if type_filter and kind != type_filter:
            continue
        if name and entry["name"] != name:
            continue
        if parent and entry.get("backend_name") != parent:
            continue
        values = {}
        for key, value in row.items():
            if value == "":
                continue
            if key in STAT_STRING_FIELDS:
                if key == "mode" and value not in STAT_MODES:
                    continue
                values[key] = value
            elif key in STAT_INT_FIELDS and re.fullmatch(r"-?\d+", value):
                values[key] = int(value)
        if kind == "server" and sv in stuck:
            values["scur"] = values.get("scur", 0) + int(stuck[sv])
        entry["stats"] = values
        stats.append(entry)
    collection = {"runtimeAPI": state.haproxy.admin_socket, "stats": stats}
    # /v2 answers one collection per HAProxy process (a list); /v3 answers one object.
    return [collection] if state.api == "v2" else collection


# ---------------------------------------------------------------------------------------------
# HTTP.

def bool_param(params, name):
    v = params.get(name)
    if v is None:
        return False
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    raise ApiError(400, f"{name} in query must be of type boolean: \"{v}\"")


def int_param(params, name):
    v = params.get(name)
    if v is None:
        return None
    if not re.fullmatch(r"-?\d+", v):
        raise ApiError(400, f"{name} in query must be of type int64: \"{v}\"")
    return int(v)


class DataPlaneDouble(httpbase.App):
    """The API over `state`: Basic auth on every path, routes by method and path (the API's
    version prefix included), error bodies {"code": N, "message": "..."}."""

    methods = ("GET", "POST", "PUT", "DELETE")
    server_version = "dataplaneapi-double"

    def __init__(self, state, user, password, capture_path):
        self.state = state
        self.user = user
        self.password = password
        self.capture_lock = threading.Lock()
        self.capture_file = open(capture_path, "a") if capture_path else None
        self.router = httpbase.Router()
        v = "/" + state.api
        add = self.router.add
        add("*", r"/_control", lambda req: self.control(req.method, req.body_text))
        add("GET", rf"{v}/info", self.info)
        add("GET", rf"{v}/services/haproxy/configuration/version", self.config_version)
        if state.api == "v2":
            # Configuration servers: v2 names the backend in the query, v3 in the path.
            add("*", rf"{v}/services/haproxy/configuration/servers(?:/(?P<name>[^/]+))?",
                self.config_servers_v2)
            add("*", rf"{v}/services/haproxy/runtime/servers(?:/(?P<name>[^/]+))?",
                self.runtime_servers_v2)
        else:
            add("*", rf"{v}/services/haproxy/configuration/backends/(?P<backend>[^/]+)/servers"
                r"(?:/(?P<name>[^/]+))?", self.config_servers_v3)
            add("*", rf"{v}/services/haproxy/runtime/backends/(?P<backend>[^/]+)/servers"
                r"(?:/(?P<name>[^/]+))?", self.runtime_servers_v3)
        add("GET", rf"{v}/services/haproxy/stats/native", self.stats)
        add("GET", rf"{v}/services/haproxy/transactions", self.list_transactions)
        add("POST", rf"{v}/services/haproxy/transactions", self.start_transaction)
        add("GET", rf"{v}/services/haproxy/transactions/(?P<tid>[^/]+)", self.get_transaction)
        add("DELETE", rf"{v}/services/haproxy/transactions/(?P<tid>[^/]+)", self.delete_transaction)
        add("PUT", rf"{v}/services/haproxy/transactions/(?P<tid>[^/]+)", self.commit_transaction)
        add("GET", rf"{v}/services/haproxy/reloads", self.list_reloads)
        add("GET", rf"{v}/services/haproxy/reloads/(?P<rid>[^/]+)", self.get_reload)

    # ------------------------------------------------------------------ plumbing
    def make_request(self, handler, method):
        req = httpbase.Request(handler, method)
        req.req_path = unquote(req.path)
        req.req_query = req.args()
        req.body_text = req.raw.decode(errors="replace")
        return req

    def encode(self, payload):
        return b"" if payload is None else (json.dumps(payload) + "\n").encode()

    def internal_error(self, req, exc):
        if isinstance(exc, (OSError, RuntimeError)):
            return 500, {"code": 500, "message": f"runtime API: {exc}"}, {}
        raise exc

    def answered(self, req, status, headers, payload):
        if self.capture_file is None:
            return
        record = {"api": self.state.api, "method": req.method, "path": req.req_path,
                  "query": req.req_query, "request_body": req.body_text,
                  "user_agent": req.headers.get("User-Agent", ""),
                  "status": status, "response_headers": headers, "response_body": payload}
        with self.capture_lock:
            self.capture_file.write(json.dumps(record) + "\n")
            self.capture_file.flush()

    def auth_ok(self, req):
        header = req.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return (hmac.compare_digest(user, self.user) and
                hmac.compare_digest(password, self.password))

    def handle(self, req):
        if not self.auth_ok(req):
            raise ApiError(401, "invalid username/password", {"WWW-Authenticate": 'Basic realm="API"'})
        path = req.req_path
        route, _ = self.router.match(req.method, path)
        if route is None:  # 404 either way, as the API answers
            if not path.startswith("/" + self.state.api + "/") or req.method == "GET":
                raise ApiError(404, f"path {path} was not found")
            raise ApiError(404, f"method {req.method} is not allowed on {path}")
        params = route[1].fullmatch(path).groupdict()
        return route[2](req, **params)

    @staticmethod
    def body_json(req):
        try:
            return json.loads(req.body_text)
        except ValueError as e:
            raise ApiError(400, f"parsing request body failed: {e}")

    # ------------------------------------------------------------------ endpoints
    def info(self, req):
        return 200, {"api": {"version": API_VERSION_STRING[self.state.api],
                             "build_date": "2024-01-01T00:00:00.000Z"},
                     "system": {"hostname": socket.gethostname(),
                                "time": int(time.time() * 1000)}}, {}

    def config_version(self, req):
        state = self.state
        with state.lock:
            config, _ = state.target({"transaction_id": req.req_query.get("transaction_id")})
            return 200, config.version, {}

    def config_servers_v2(self, req, name):
        query = req.req_query
        backend = query.get("backend") or (query.get("parent_name")
                                           if query.get("parent_type") == "backend" else None)
        if not backend:
            raise ApiError(400, "unspecified parent: parent name and type are required")
        return self.config_servers(req.method, backend, name, query, lambda: self.body_json(req))

    def config_servers_v3(self, req, backend, name):
        return self.config_servers(req.method, backend, name, req.req_query,
                                   lambda: self.body_json(req))

    def runtime_servers_v2(self, req, name):
        backend = req.req_query.get("backend")
        if not backend:
            raise ApiError(422, "backend in query is required")
        return self.runtime_servers(req.method, backend, name, lambda: self.body_json(req))

    def runtime_servers_v3(self, req, backend, name):
        return self.runtime_servers(req.method, backend, name, lambda: self.body_json(req))

    def stats(self, req):
        query = req.req_query
        t = query.get("type")
        if t is not None and t not in ("frontend", "backend", "server"):
            raise ApiError(422, f"type in query should be one of [frontend backend server]")
        return 200, native_stats(self.state, t, query.get("name"), query.get("parent")), {}

    def list_transactions(self, req):
        state = self.state
        status = req.req_query.get("status")
        with state.lock:
            ts = [transaction_view(t) for t in state.transactions.values()
                  if status is None or t["status"] == status]
        return 200, ts, {}

    def start_transaction(self, req):
        version = int_param(req.req_query, "version")
        if version is None:
            raise ApiError(422, "version in query is required")
        t = self.state.start_transaction(version)
        return 201, transaction_view(t), {"Configuration-Version": str(version)}

    def get_transaction(self, req, tid):
        state = self.state
        with state.lock:
            t = state.transactions.get(tid)
            if t is None:
                raise ApiError(404, f"transaction does not exist: transaction {tid} does not exist")
            return 200, transaction_view(t), {}

    def delete_transaction(self, req, tid):
        self.state.delete_transaction(tid)
        return 204, None, {}

    def commit_transaction(self, req, tid):
        force = bool_param(req.req_query, "force_reload")
        t, rid = self.state.commit_transaction(tid, {"force_reload": force})
        view = transaction_view(t)
        if rid is None:
            return 200, view, {}
        return 202, view, {"Reload-ID": rid}

    def list_reloads(self, req):
        reloads = self.state.reloads
        with reloads.cond:
            return 200, list(reloads.records.values()), {}

    def get_reload(self, req, rid):
        reloads = self.state.reloads
        with reloads.cond:
            r = reloads.records.get(rid)
            if r is None:
                raise ApiError(404, f"missing object: reload {rid} does not exist")
            return 200, dict(r), {}

    def config_servers(self, method, backend, name, query, body_json):
        state = self.state
        params = {"transaction_id": query.get("transaction_id"),
                  "version": int_param(query, "version"),
                  "force_reload": bool_param(query, "force_reload")}
        if method == "GET":
            with state.lock:
                config, _ = state.target({"transaction_id": params["transaction_id"]})
                try:
                    servers = config.servers(backend)
                except ApiError:
                    servers = []
                headers = {"Configuration-Version": str(config.version)}
                if name is None:
                    data = servers
                else:
                    found = [s for s in servers if s["name"] == name]
                    if not found:
                        raise ApiError(404, f"missing object: server {name} does not exist in "
                                            f"backend {backend}", headers)
                    data = found[0]
                return 200, ({"_version": config.version, "data": data}
                             if state.api == "v2" else data), headers
        if method == "POST" and name is None:
            srv = validate_server_body(body_json())
            rid = state.write(params, lambda c: c.add_server(backend, srv))
            return self._written(201, srv, rid, params)
        if method == "DELETE" and name is not None:
            rid = state.write(params, lambda c: c.delete_server(backend, name))
            return self._written(204, None, rid, params)
        if method == "PUT" and name is not None:
            srv = validate_server_body(body_json())
            if srv["name"] != name:
                raise ApiError(400, "name in body does not match the path")

            def replace(c):
                c.delete_server(backend, name)
                c.add_server(backend, srv)
            rid = state.write(params, replace)
            return self._written(200, srv, rid, params)
        raise ApiError(405, f"method {method} is not allowed here")

    @staticmethod
    def _written(code, body, rid, params):
        if rid is None:  # in a transaction, or force_reload: applied without a reload ID
            return (202 if params.get("transaction_id") else code), body, {}
        return 202, body, {"Reload-ID": rid}

    def runtime_servers(self, method, backend, name, body_json):
        state = self.state
        if method == "GET":
            servers = runtime_servers(state, backend)
            if name is None:
                return 200, servers, {}
            for s in servers:
                if s["name"] == name:
                    return 200, s, {}
            raise ApiError(404, f"server {backend}/{name} not found")
        if method == "PUT" and name is not None:
            body = body_json()
            if not isinstance(body, dict):
                raise ApiError(400, "body: expected a JSON object")
            admin = body.get("admin_state")
            if admin is not None and admin not in ("ready", "drain", "maint"):
                raise ApiError(422, "admin_state in body should be one of [ready maint drain]")
            oper = body.get("operational_state")
            if oper is not None and oper not in ("up", "down", "stopping"):
                raise ApiError(422, "operational_state in body should be one of [up down stopping]")
            current = [s for s in runtime_servers(state, backend) if s["name"] == name]
            if not current:
                raise ApiError(404, f"server {backend}/{name} not found")
            if admin is not None and admin != current[0]["admin_state"]:
                out = state.haproxy.admin(f"set server {backend}/{name} state {admin}").strip()
                if out:
                    raise ApiError(400, out)
            if oper is not None and oper != current[0]["operational_state"]:
                out = state.haproxy.admin(f"set server {backend}/{name} health {oper}").strip()
                if out:
                    raise ApiError(400, out)
            return 200, [s for s in runtime_servers(state, backend) if s["name"] == name][0], {}
        raise ApiError(405, f"method {method} is not allowed here")

    def control(self, method, body_text):
        state = self.state
        with state.lock:
            if method == "POST":
                try:
                    changes = json.loads(body_text or "{}")
                except ValueError as e:
                    raise ApiError(400, f"control: {e}")
                if not isinstance(changes, dict):
                    raise ApiError(400, "control: expected a JSON object")
                for key, value in changes.items():
                    if key not in state.knobs:
                        raise ApiError(400, f"control: unknown knob {key}")
                    if key == "stuck_sessions":
                        if not isinstance(value, dict):
                            raise ApiError(400, "control: stuck_sessions is an object")
                    elif not isinstance(value, int) or value < 0:
                        raise ApiError(400, f"control: {key} is a non-negative integer")
                    state.knobs[key] = value
            elif method != "GET":
                raise ApiError(405, "control: GET or POST")
            return 200, {"knobs": state.knobs, "counters": state.counters,
                         "version": state.config.version,
                         "open_transactions": state.open_count()}, {}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", required=True)
    p.add_argument("--listen", required=True, help="127.0.0.1:PORT")
    p.add_argument("--api", choices=["v2", "v3"], default="v3")
    p.add_argument("--user", default="admin")
    p.add_argument("--password-file", required=True)
    p.add_argument("--capture", help="append every request and response here (JSON lines)")
    p.add_argument("--reload-delay-ms", type=int, default=100)
    p.add_argument("--simulate-haproxy", action="store_true",
                   help="no HAProxy process: its state is simulated here (SimulatedHAProxy)")
    args = p.parse_args()
    host, _, port = args.listen.rpartition(":")
    if not host.startswith("127."):
        sys.exit("dataplane_double: listen on loopback only")
    with open(args.password_file) as f:
        password = f.read().strip()

    state = State(args)
    state.haproxy.start()
    try:
        server = httpbase.make_server(DataPlaneDouble(state, args.user, password, args.capture),
                                      host, int(port))
        print(f"dataplane_double: {args.api} on http://{args.listen}, "
              + (f"haproxy pid {state.haproxy.proc.pid}" if state.haproxy.proc else "simulated HAProxy"),
              flush=True)
        httpbase.serve_until_signalled(server, poll_interval=0.1)
    finally:
        state.haproxy.stop()


if __name__ == "__main__":
    main()
