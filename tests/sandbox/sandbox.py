#!/usr/bin/python3
"""The whole sandbox on loopback: what the demo, the end-to-end tests and the benchmarks run.

  sandbox.py up     --root DIR [--profile fast|realistic] [--octet N] [--binary PATH] [--no-service]
                    [--no-heartbeat] [--set KEY=VALUE ...] [--zones az1,az2]
                    [--zone-latency ZONE=MS[,ZONE=MS]] [--patroni | --plain [--archive]] [--balancers N]
  sandbox.py down   --root DIR
  sandbox.py status --root DIR [--json]

`up` starts, each on its own loopback address or free port, and returns once all of them answer:
  - PostgreSQL 15, in one of two modes:
    - Patroni (`up`'s default, --patroni; Sandbox(..., patroni=True)): a Patroni 3.0 cluster
      `orders` on one etcd 3.4 (v3 API): pg1 leading (127.0.N.1:5432, pgbench data), pg2 the
      failover candidate (127.0.N.250:5432) and the donor orders-donor (127.0.N.2:5432, tags
      nofailover and noloadbalance), each member's REST API on its address port 8008; the
      service finds the primary through them (primary: patroni: members). The heartbeat, lag_bytes
      and sql_primary follow whoever leads; switchover(), kill_member(), restart_member(),
      pause_receiver() and the rest are for failover tests. Settings and why:
      tests/sandbox/patroni_cluster.py. It takes about 8 s more to come up than the plain mode.
    - plain (--plain; the Sandbox class's default, which the end-to-end tests use): a primary
      with pgbench data (127.0.N.1:5432, `pgbench -i -s 5`) and a donor standby streaming from
      it (127.0.N.2:5432), both through tests/sandbox/pgctl.py; the service's primary is static.
    In both, 127.0.N.1, .2 and .250 are reserved: the cloud never boots a replica there, even
    while a killed member has freed its address.
  - the cloud simulator (tests/sandbox/cloudsim), zones az1 and az2 (--zones), which knows the
    donor as the server `orders-donor` with its data volume; the replicas it boots are real
    standbys on 127.0.N.x:5432 (x = 3, 4, ...). --zone-latency az2=40 gives a zone a round-trip
    latency to the primary: its replicas stream through a delaying relay the simulator runs
    (tests/sandbox/cloudsim/network.py)
  - HAProxy 2.6 driven by the Data Plane API double (tests/sandbox/dataplane): frontend pg_read
    (pgbench connects there) -> backend pg_replicas, empty at first: the donor stays out of it,
    so the replicas that serve are the service's own; a stats frontend with HAProxy's Prometheus
    exporter on /metrics. --balancers N (Sandbox(..., balancers=N)) starts N of them, each with
    its own double and frontend, all listed in the service's configuration; the policies read the
    first one's exporter; Sandbox.stop_balancer(i)/start_balancer(i) stop and restart the others
  - VictoriaMetrics scraping HAProxy's exporter and the service's /metrics every 2 s
  - replica-autoscaler serve, with tests/sandbox/demo/config.yaml.in rendered into
    DIR/service/config.yaml (API tokens in DIR/service/secrets/)
With --plain --archive (Sandbox(..., archive=True)) the primary archives its WAL with pgBackRest
(asynchronous archive-push, lz4) into a posix repository under DIR/pgbackrest (configuration,
lock, log and spool paths there too, owned by the user PostgreSQL runs as), and replicas restore
from it: the cloud simulator hands the first-boot script DIR/firstboot.env (RA_PGBACKREST_STANZA,
RA_PGBACKREST_CONFIG) at every boot; Sandbox.set_replica_catch_up("stream"|"archive") rewrites
it. Sandbox(..., keep_pg=True) reuses a pg/primary and pg/donor left in DIR (bench/datasize.py).
Everything it started is recorded in DIR/state.json; `down` stops it all (process groups: the
Patroni members all at once, then etcd; then any PostgreSQL left below DIR, the simulated VMs'
too), each wait bounded. The Sandbox class does the same for Python code (a context manager) and
has the helpers the tests use: the service's API, the simulator's control API, HAProxy's stats,
pgbench through HAProxy, replay lag against the primary of now.
Debian's python3 only.
"""
import argparse
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import pgctl  # noqa: E402
import patroni_cluster  # noqa: E402
# Re-exported: the tests use sandbox.http, sandbox.address_free, sandbox.SandboxError, ...
from sandbox_util import (SandboxError, address_free, free_port, group_alive, http, pid_alive,  # noqa: E402,F401
                          stop_group, stop_groups, tail, tcp_open, wait_until)

CLUSTER = "orders"
BACKEND = "pg_replicas"
DONOR_NAME = "orders-donor"
PG_PORT = 5432


def parse_pgbench(output, returncode):
    """What a pgbench run did: transactions processed, failed (pgbench 15 counts failed
    transactions) and whether any client aborted (a connection that could not be made)."""
    def num(pattern):
        m = re.search(pattern, output)
        return int(m.group(1)) if m else 0
    processed = num(r"number of transactions actually processed: (\d+)")
    failed = num(r"number of failed transactions: (\d+)")
    aborted = len(re.findall(r"client \d+ aborted", output))
    tps = re.search(r"tps = ([\d.]+)", output)
    return {"processed": processed, "failed": failed, "aborted_clients": aborted,
            "returncode": returncode, "tps": float(tps.group(1)) if tps else 0.0,
            "ok": returncode == 0 and failed == 0 and aborted == 0}


class Sandbox:
    """The sandbox as a context manager: `with Sandbox(root) as sb: ...` starts it all and
    stops it all on exit, even after an exception."""

    def __init__(self, root, profile="fast", octet=None, binary=None, start_service=True,
                 settings=None, scale=5, log=None, heartbeat=True, zones=("az1", "az2"),
                 zone_latency=None, patroni=False, balancers=1, archive=False, keep_pg=False):
        self.root = os.path.abspath(root)
        self.profile = profile
        self.octet = octet if octet is not None else 200 + os.getpid() % 40
        self.binary = os.path.abspath(binary or os.path.join(REPO, "build", "bin", "replica-autoscaler"))
        self.start_service_on_up = start_service
        self.scale = scale
        self.heartbeat = heartbeat
        self.zones = list(zones)
        self.zone_latency = dict(zone_latency or {})  # zone -> round-trip milliseconds to the primary
        # The primary and the donor as a Patroni cluster on etcd (patroni_cluster.py) instead of a
        # plain primary and standby.
        self.patroni = patroni
        # HAProxies in front of the replicas, each with its own Data Plane API double; the
        # service's configuration lists them all (one: the usual single mapping).
        self.balancers = max(1, int(balancers))
        self.patroni_cluster = patroni_cluster.PatroniCluster(self) if patroni else None
        # The primary archives its WAL with pgBackRest into a posix repository under the root
        # (plain mode only); replicas restore from it once set_replica_catch_up("archive").
        self.archive = archive
        # Plain mode: reuse pg/primary and pg/donor if a previous run left them (stopped), instead
        # of building them again (bench/datasize.py: a primary of many gigabytes is built once).
        self.keep_pg = keep_pg
        if (archive or keep_pg) and patroni:
            raise SandboxError("archive and keep_pg are for the plain primary (patroni=False)")
        self.log = log or (lambda message: print(message, flush=True))
        # What config.yaml.in leaves open; tests change the windows and timeouts.
        self.settings = {"MIN_REPLICAS": 1, "MAX_REPLICAS": 4, "TARGET": 6, "SESSIONS_WINDOW": "6s",
                         "SCALE_DOWN_WINDOW": "20s", "SCALE_DOWN_STEP": 2, "LOOP_INTERVAL": "2s", "DRAIN_TIMEOUT": "1m",
                         "SERVER_BUILD_TIMEOUT": "3m", "PLACEMENT": "{}", "MAX_LAG_TIME": "30s",
                         "LAGGING_TIMEOUT": "5m", "SNAPSHOT_INTERVAL": "1h", "POSTGRES_START_TIMEOUT": "2m",
                         "CATCH_UP_TIMEOUT": "5m",
                         "RATE_LIMIT": "{requests_per_second: 100, burst: 100}"}
        self.settings.update(settings or {})
        self.state = {}
        self.service_proc = None

    # ------------------------------------------------------------------ layout
    def path(self, *parts):
        return os.path.join(self.root, *parts)

    @property
    def primary_host(self):
        """The first primary's address: the plain primary, or pg1 in the Patroni mode, which
        leads at first but not necessarily now (see current_primary_host)."""
        return f"127.0.{self.octet}.1"

    @property
    def donor_host(self):
        return f"127.0.{self.octet}.2"

    @property
    def reserved_hosts(self):
        """Addresses the cloud never gives to a server: the primary's, the donor's and the
        failover candidate's (127.0.N.250, used in the Patroni mode, kept free in both)."""
        return [self.primary_host, self.donor_host, f"127.0.{self.octet}.250"]

    def _save(self):
        tmp = self.path("state.json.tmp")
        with open(tmp, "w") as f:
            json.dump(self.state, f, indent=2)
        os.replace(tmp, self.path("state.json"))

    @classmethod
    def attach(cls, root):
        """A Sandbox for one that `up` left running (reads DIR/state.json)."""
        with open(os.path.join(root, "state.json")) as f:
            state = json.load(f)
        sb = cls(root, profile=state["profile"], octet=state["octet"], binary=state["binary"],
                 zones=state.get("zones", ("az1", "az2")), zone_latency=state.get("zone_latency"),
                 patroni=state.get("patroni", False), balancers=state.get("balancers", 1),
                 archive=state.get("archive", False), keep_pg=state.get("keep_pg", False))
        sb.state = state
        return sb

    # ------------------------------------------------------------------ up / down
    def __enter__(self):
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc):
        self.down()
        return False

    def up(self):
        if os.path.exists(self.path("state.json")):
            old = Sandbox.attach(self.root)
            self.log(f"sandbox: stopping what a previous run left in {self.root}")
            old.down()
        kept = self.keep_pg and self._pg_reusable()
        for d in ("pg", "cloud", "haproxy", "metrics", "service", "etcd", "patroni", "pgbackrest"):
            if kept and d in ("pg", "pgbackrest"):
                continue
            shutil.rmtree(self.path(d), ignore_errors=True)
        for i in range(1, 8):
            shutil.rmtree(self.path(f"haproxy{i}"), ignore_errors=True)
        os.makedirs(self.root, exist_ok=True)
        os.chmod(self.root, 0o755)  # PostgreSQL (user ra-test) lives below it
        self.state = {"profile": self.profile, "octet": self.octet, "binary": self.binary,
                      "root": self.root, "groups": {}, "pg_dirs": [], "zones": self.zones,
                      "zone_latency": self.zone_latency, "patroni": self.patroni,
                      "balancers": self.balancers, "extra_balancers": [], "archive": self.archive,
                      "keep_pg": self.keep_pg}
        self._save()
        t0 = time.monotonic()
        if self.patroni:
            self.patroni_cluster.start()
        else:
            self._start_postgres(reuse=kept)
        if self.archive:
            self._start_archive()
        if self.heartbeat:
            self._start_heartbeat()
        self._start_cloud()
        self._start_haproxy()
        for i in range(1, self.balancers):
            self._start_extra_haproxy(i)
        self._start_metrics()
        self._write_service_config()
        if self.start_service_on_up:
            self.start_service()
        self.log(f"sandbox: up in {time.monotonic() - t0:.1f} s ({self.root})")

    def down(self):
        """Stops everything `up` started. Idempotent; every wait bounded."""
        groups = dict(self.state.get("groups", {}))
        patroni_cluster.resume_paused(self.state)
        # The service first (it would otherwise act on a world going away), then the rest; the
        # simulator shuts its VMs down on SIGTERM; the Patroni members (which stop their
        # PostgreSQL) all at once and before etcd.
        order = ["service", "heartbeat", "metrics", "dataplane"]
        order += [f"dataplane{i}" for i in range(1, 8)] + ["cloud"]
        steps = [[name] for name in order if name in groups]
        steps += patroni_cluster.stop_order(groups)
        done = {name for step in steps for name in step}
        steps += [[name] for name in groups if name not in done]
        for step in steps:
            stop_groups([groups[name] for name in step if name in groups],
                        grace=15 if step[0] in ("cloud",) or step[0].startswith("patroni-") else 10)
        # Whatever PostgreSQL is still running below the root (a VM of a simulator that was
        # killed, the donor, the primary) is stopped too.
        for pid_file in find_postmasters(self.root):
            data_dir = os.path.dirname(pid_file)
            subprocess.run(pgctl.as_user([f"{pgctl.PG_BIN}/pg_ctl", "-D", data_dir, "-m",
                                          "immediate", "-w", "-t", "20", "stop"]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        self.state["groups"] = {}
        self.service_proc = None
        if os.path.isdir(self.root):
            self._save()

    # ------------------------------------------------------------------ components
    def _spawn(self, name, argv, log_name, env=None, unprivileged=False):
        """Starts `argv` in a process group of its own recorded as `name` in state.json, its
        output appended to `log_name`. `unprivileged`: as pgctl.run_user() (when we are root),
        switched by Popen itself, with no runuser in between: runuser answers a SIGTERM by
        waiting 2 s before it kills its child, whatever the child does."""
        log = self.path(log_name)
        env = dict(os.environ, **(env or {}))
        ids = {}
        user = pgctl.run_user() if unprivileged else None
        if user:
            pw = pwd.getpwnam(user)
            ids = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
            env.update(HOME=pw.pw_dir, USER=user, LOGNAME=user)
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, cwd=self.root, env=env, **ids)
        self.state["groups"][name] = proc.pid
        self._save()
        return proc, log

    def _pgctl(self, *args):
        r = subprocess.run(["/usr/bin/python3", os.path.join(HERE, "pgctl.py")] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
        if r.returncode != 0:
            raise SandboxError(f"pgctl {args[0]} failed:\n{r.stdout}")

    def _pg_reusable(self):
        return all(os.path.exists(self.path("pg", d, "PG_VERSION")) for d in ("primary", "donor"))

    def _start_postgres(self, reuse=False):
        primary, donor = self.path("pg", "primary"), self.path("pg", "donor")
        for host in (self.primary_host, self.donor_host):
            if not address_free(host, PG_PORT):
                raise SandboxError(f"{host}:{PG_PORT} is taken (another sandbox with octet "
                                   f"{self.octet}?); choose another --octet")
        self.state["pg_dirs"] = [primary, donor]
        self._save()
        if reuse:
            self.log(f"sandbox: reusing the primary and donor in {self.path('pg')}")
            for d in (primary, donor):
                if not os.path.exists(os.path.join(d, "postmaster.pid")):
                    self._pgctl("start", "--dir", d)
            return
        self.log(f"sandbox: PostgreSQL primary on {self.primary_host}:{PG_PORT} "
                 f"(pgbench -i -s {self.scale})")
        self._pgctl("init-primary", "--dir", primary, "--host", self.primary_host,
                    "--port", str(PG_PORT), "--scale", str(self.scale))
        self.log(f"sandbox: donor standby on {self.donor_host}:{PG_PORT}")
        self._pgctl("init-standby", "--dir", donor, "--host", self.donor_host, "--port",
                    str(PG_PORT), "--primary-host", self.primary_host, "--primary-port",
                    str(PG_PORT), "--application-name", DONOR_NAME)

    # ------------------------------------------------------------------ WAL archive (archive=True)
    STANZA = CLUSTER

    def pgbackrest_config(self):
        return self.path("pgbackrest", "pgbackrest.conf")

    def pgbackrest(self, *args, timeout=600):
        """pgbackrest with the sandbox's configuration, as the user PostgreSQL runs as; its output,
        or raises SandboxError."""
        argv = pgctl.as_user(["pgbackrest", f"--config={self.pgbackrest_config()}",
                              f"--stanza={self.STANZA}"] + list(args))
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=timeout)
        if r.returncode != 0:
            raise SandboxError(f"pgbackrest {' '.join(args)} failed ({r.returncode}):\n{r.stdout}")
        return r.stdout

    def _start_archive(self):
        """The primary archives with pgBackRest (archive-push, asynchronous) into a posix
        repository under DIR/pgbackrest; config, lock, log and spool paths are there too, owned
        by the user PostgreSQL runs as. Replicas restore only after set_replica_catch_up("archive")."""
        d = self.path("pgbackrest")
        for sub in ("repo", "log", "lock", "spool"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        primary = self.path("pg", "primary")
        with open(self.pgbackrest_config(), "w") as f:
            f.write(PGBACKREST_CONF.format(dir=d, primary=primary, sock=pgctl.socket_dir(primary),
                                           port=PG_PORT, stanza=self.STANZA))
        pgctl.own(d)
        auto = os.path.join(primary, "postgresql.auto.conf")
        with open(auto) as f:
            conf = f.read()
        if not re.search(r"^archive_command = '.*pgbackrest", conf, re.M):
            command = (f"pgbackrest --config={self.pgbackrest_config()} --stanza={self.STANZA} "
                       "archive-push %p")
            with open(auto, "a") as f:
                f.write(f"# sandbox: archive\narchive_mode = on\narchive_command = '{command}'\n")
            self.log("sandbox: restarting the primary with archive_mode = on (pgBackRest)")
            self._pgctl("stop", "--dir", primary)
            self._pgctl("start", "--dir", primary)
        self.pgbackrest("stanza-create", timeout=120)
        self.pgbackrest("check", timeout=120)  # a WAL switch, pushed and found in the repository
        self.set_replica_catch_up("stream")
        self.log(f"sandbox: the primary archives to {d}/repo (pgBackRest stanza {self.STANZA})")

    def set_replica_catch_up(self, mode):
        """How replicas booted from now on catch up: "stream" (everything from the primary) or
        "archive" (the WAL since the snapshot from the pgBackRest archive, the tail streamed):
        the first-boot settings file the cloud simulator reads at each boot."""
        if mode not in ("stream", "archive"):
            raise SandboxError(f"catch-up mode must be stream or archive, not {mode!r}")
        if mode == "archive" and not self.archive:
            raise SandboxError("this sandbox does not archive (Sandbox(..., archive=True))")
        lines = ["# written by sandbox.py set_replica_catch_up"]
        if mode == "archive":
            lines += [f"RA_PGBACKREST_STANZA={self.STANZA}", f"RA_PGBACKREST_CONFIG={self.pgbackrest_config()}"]
        tmp = self.path("firstboot.env.tmp")
        with open(tmp, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, self.path("firstboot.env"))

    def _start_heartbeat(self):
        # A primary that never writes is not what replicas are for: real ones commit all the
        # time, and most installations keep a heartbeat table besides. One small commit a second
        # keeps the replicas' last replayed commit recent, as in production.
        sql = ("CREATE TABLE IF NOT EXISTS sandbox_heartbeat (id int PRIMARY KEY, at timestamptz); "
               "INSERT INTO sandbox_heartbeat VALUES (1, now()) "
               "ON CONFLICT (id) DO UPDATE SET at = excluded.at")
        # Bounded like every load loop here: at most 6 hours (a --keep sandbox), and it stops by
        # itself once the primary has been gone for 10 s (a sandbox whose owner was killed); with
        # Patroni it writes to whoever leads (libpq picks the read-write host) and waits out a
        # failover, so only 2 minutes without any primary stop it.
        most_failures = 120 if self.patroni else 10
        script = (f"n=0; f=0; while [ $n -lt 21600 ] && [ $f -lt {most_failures} ]; do n=$((n+1)); "
                  f"if psql -X -q -d '{self.primary_conninfo()}' "
                  f"-c \"{sql}\" >/dev/null 2>&1; then f=0; else f=$((f+1)); fi; sleep 1; done")
        self._spawn("heartbeat", ["/bin/sh", "-c", script], "heartbeat.log")

    def _start_cloud(self):
        port = free_port()
        password = secrets.token_hex(12)
        os.makedirs(self.path("service", "secrets"), mode=0o700, exist_ok=True)
        write_secret(self.path("service", "secrets", "cloud-password"), password)
        volume_id = str(uuid.uuid5(uuid.NAMESPACE_DNS, f"volume.{DONOR_NAME}.{self.octet}"))
        argv = ["/usr/bin/python3", os.path.join(HERE, "cloudsim", "cloudsim.py"),
                "--port", str(port), "--root", self.path("cloud"), "--profile", self.profile,
                "--zones", ",".join(self.zones), "--password", password,
                "--zone-latency", ",".join(f"{z}={ms:g}" for z, ms in self.zone_latency.items()),
                "--address-base", f"127.0.{self.octet}", "--reserve", ",".join(self.reserved_hosts),
                "--donor-dir", self.path("pg", "donor"), "--donor-address", self.donor_host,
                "--donor-name", DONOR_NAME, "--donor-volume-id", volume_id,
                "--capture", self.path("cloud-requests.jsonl"),
                "--firstboot-env", self.path("firstboot.env")]
        proc, log = self._spawn("cloud", argv, "cloud.log")
        url = f"http://127.0.0.1:{port}"
        wait_until("cloud simulator", lambda: http("GET", url + "/control/state", timeout=2)[0] == 200,
                   30, proc=proc, log=log)
        self.state.update(cloud_url=url, donor_volume_id=volume_id)
        self._save()
        latency = "".join(f", {z} {ms:g} ms from the primary" for z, ms in self.zone_latency.items())
        self.log(f"sandbox: cloud simulator on {url} (profile {self.profile}{latency})")

    def _start_haproxy(self):
        d = self.path("haproxy")
        os.makedirs(d, exist_ok=True)
        fe, stats, api = free_port(), free_port(), free_port()
        with open(os.path.join(d, "haproxy.cfg"), "w") as f:
            f.write(HAPROXY_CFG.format(dir=d, frontend=fe, stats=stats, backend=BACKEND))
        write_secret(self.path("service", "secrets", "dataplane-password"), secrets.token_hex(12))
        argv = ["/usr/bin/python3", os.path.join(HERE, "dataplane", "dataplane_double.py"),
                "--dir", d, "--listen", f"127.0.0.1:{api}", "--api", "v3", "--user", "admin",
                "--password-file", self.path("service", "secrets", "dataplane-password"),
                "--reload-delay-ms", "50"]
        proc, log = self._spawn("dataplane", argv, "dataplane.log")
        wait_until("Data Plane API double", lambda: tcp_open("127.0.0.1", api), 30, proc=proc, log=log)
        wait_until("HAProxy frontend", lambda: tcp_open("127.0.0.1", fe), 30, proc=proc, log=log)
        wait_until("HAProxy exporter",
                   lambda: http("GET", f"http://127.0.0.1:{stats}/metrics", timeout=2)[0] == 200,
                   30, proc=proc, log=log)
        self.state.update(frontend_port=fe, stats_port=stats, dataplane_url=f"http://127.0.0.1:{api}",
                          admin_socket=os.path.join(d, "admin.sock"))
        self._save()
        self.log(f"sandbox: HAProxy frontend 127.0.0.1:{fe} -> backend {BACKEND}, exporter "
                 f"http://127.0.0.1:{stats}/metrics, Data Plane API double http://127.0.0.1:{api}")

    def _extra_argv(self, b):
        return ["/usr/bin/python3", os.path.join(HERE, "dataplane", "dataplane_double.py"),
                "--dir", b["dir"], "--listen", f"127.0.0.1:{b['api_port']}", "--api", "v3", "--user", "admin",
                "--password-file", self.path("service", "secrets", "dataplane-password"),
                "--reload-delay-ms", "50"]

    def _spawn_extra(self, b):
        proc, log = self._spawn(b["group"], self._extra_argv(b), f"dataplane{b['index']}.log")
        wait_until(f"Data Plane API double {b['index']}", lambda: tcp_open("127.0.0.1", b["api_port"]), 30,
                   proc=proc, log=log)
        wait_until(f"HAProxy {b['index']} frontend", lambda: tcp_open("127.0.0.1", b["frontend_port"]), 30,
                   proc=proc, log=log)

    def _start_extra_haproxy(self, i):
        """Balancer `i` (1, 2, ...) besides the first: HAProxy and its Data Plane double in
        haproxy{i}/, the same backend and password. Its configuration persists in its folder, so
        start_balancer(i) brings it back with the servers it had."""
        d = self.path(f"haproxy{i}")
        os.makedirs(d, exist_ok=True)
        b = {"index": i, "name": f"haproxy{i + 1}", "group": f"dataplane{i}", "dir": d,
             "frontend_port": free_port(), "stats_port": free_port(), "api_port": free_port(),
             "admin_socket": os.path.join(d, "admin.sock")}
        b["dataplane_url"] = f"http://127.0.0.1:{b['api_port']}"
        with open(os.path.join(d, "haproxy.cfg"), "w") as f:
            f.write(HAPROXY_CFG.format(dir=d, frontend=b["frontend_port"], stats=b["stats_port"],
                                       backend=BACKEND))
        self._spawn_extra(b)
        self.state["extra_balancers"].append(b)
        self._save()
        self.log(f"sandbox: HAProxy {i + 1} frontend 127.0.0.1:{b['frontend_port']}, Data Plane API "
                 f"double {b['dataplane_url']}")

    def balancer(self, i):
        """Where balancer `i` (0: the first) listens: frontend_port, admin_socket, ..."""
        if i == 0:
            return {"index": 0, "name": "haproxy", "group": "dataplane",
                    "frontend_port": self.state["frontend_port"], "admin_socket": self.state["admin_socket"],
                    "dataplane_url": self.state["dataplane_url"]}
        return self.state["extra_balancers"][i - 1]

    def stop_balancer(self, i):
        """Stops balancer `i` (1, 2, ...; not the first, whose exporter the policies read): its
        Data Plane double and its HAProxy, as a crashed or unreachable balancer."""
        if i < 1:
            raise SandboxError("stop_balancer: only the extra balancers (1, 2, ...) may be stopped")
        b = self.balancer(i)
        pgid = self.state["groups"].pop(b["group"], None)
        if pgid:
            stop_groups([pgid], grace=10)
        # HAProxy may have left its own process group: stop what still holds its frontend.
        def closed():
            try:
                return not tcp_open("127.0.0.1", b["frontend_port"])
            except OSError:  # refused: nothing listens any more
                return True
        wait_until(f"HAProxy {i} stopped", closed, 20)
        self._save()
        self.log(f"sandbox: balancer {b['name']} stopped")

    def start_balancer(self, i):
        """Starts balancer `i` again, with the configuration it persisted."""
        b = self.balancer(i)
        self._spawn_extra(b)
        self._save()
        self.log(f"sandbox: balancer {b['name']} started again")

    def _start_metrics(self):
        d = self.path("metrics")
        os.makedirs(d, exist_ok=True)
        port = free_port()
        api_port = free_port()
        self.state["api_port"] = api_port
        with open(os.path.join(d, "scrape.yml"), "w") as f:
            f.write(SCRAPE_CFG.format(stats=self.state["stats_port"], api=api_port))
        argv = ["/usr/bin/victoria-metrics", f"-httpListenAddr=127.0.0.1:{port}",
                f"-storageDataPath={d}/data", "-retentionPeriod=1d",
                f"-promscrape.config={d}/scrape.yml",
                # Queries see samples as soon as they are scraped (the default hides 30 s).
                "-search.latencyOffset=1s", "-loggerLevel=WARN"]
        proc, log = self._spawn("metrics", argv, "victoria-metrics.log")
        url = f"http://127.0.0.1:{port}"
        wait_until("VictoriaMetrics", lambda: http("GET", url + "/health", timeout=2)[0] == 200,
                   30, proc=proc, log=log)
        self.state["metrics_url"] = url
        self._save()
        self.log(f"sandbox: VictoriaMetrics on {url}, scraping HAProxy and the service every 2 s")

    def _write_service_config(self):
        sec = self.path("service", "secrets")
        write_secret(os.path.join(sec, "admin.token"), secrets.token_hex(24))
        write_secret(os.path.join(sec, "read-only.token"), secrets.token_hex(24))
        if self.patroni:
            # The service asks each member's REST API which one is the primary (GET /primary).
            members = ", ".join(m.rest_url for m in self.patroni_cluster.members)
            primary = f"{{patroni: {{members: [{members}]}}}}"
        else:
            primary = f"{{static: {{host: {self.primary_host}, port: {PG_PORT}}}}}"
        values = dict(self.settings, CLOUD_URL=self.state["cloud_url"], SECRETS=sec,
                      DATAPLANE_URL=self.state["dataplane_url"], METRICS_URL=self.state["metrics_url"],
                      PRIMARY=primary, DONOR_VOLUME_ID=self.state["donor_volume_id"],
                      API_PORT=self.state["api_port"], ROOT=self.root, ZONES=", ".join(self.zones))
        with open(os.path.join(HERE, "demo", "config.yaml.in")) as f:
            text = f.read()
        for key, value in values.items():
            text = text.replace(f"@{key}@", str(value))
        left = re.findall(r"@[A-Z_]+@", text)
        if left:
            raise SandboxError(f"config.yaml.in: no value for {', '.join(sorted(set(left)))}")
        if self.balancers > 1:
            text = self._list_balancers(text)
        config = self.path("service", "config.yaml")
        with open(config, "w") as f:
            f.write(text)
        self.state.update(config=config, api_url=f"http://127.0.0.1:{self.state['api_port']}",
                          admin_token_file=os.path.join(sec, "admin.token"),
                          read_only_token_file=os.path.join(sec, "read-only.token"))
        self._save()

    def _list_balancers(self, text):
        """config.yaml.in names one balancer; with --balancers N it lists them all."""
        entry = re.search(r"(?m)^  haproxy:\n(?:    .*\n)+", text)
        if not entry:
            raise SandboxError("config.yaml.in: no load_balancers entry 'haproxy'")
        extra = "".join(entry.group(0).replace("  haproxy:", f"  {b['name']}:", 1)
                        .replace(self.state["dataplane_url"], b["dataplane_url"])
                        for b in self.state["extra_balancers"])
        text = text[:entry.end()] + extra + text[entry.end():]
        cluster_lb = re.search(r"(?m)^    load_balancer:\n((?:      .*\n)+)", text)
        if not cluster_lb:
            raise SandboxError("config.yaml.in: no cluster load_balancer mapping")
        lines = cluster_lb.group(1).splitlines()

        def item(name):
            body = [line[6:].replace("name: haproxy", f"name: {name}", 1) for line in lines]
            return "      - " + body[0] + "\n" + "".join("        " + line + "\n" for line in body[1:])
        items = "    load_balancer:\n" + item("haproxy")
        items += "".join(item(b["name"]) for b in self.state["extra_balancers"])
        return text[:cluster_lb.start()] + items + text[cluster_lb.end():]

    # ------------------------------------------------------------------ the service
    def start_service(self, wait=True):
        """Starts `replica-autoscaler serve`; with `wait`, returns once /readyz answers 200."""
        if not os.access(self.binary, os.X_OK):
            raise SandboxError(f"{self.binary} is not built (cmake --build build)")
        argv = [self.binary, "serve", "--config", self.state["config"]]
        self.service_proc, log = self._spawn("service", argv, "service.log")
        self.log(f"sandbox: replica-autoscaler serve on {self.state['api_url']} (log {log})")
        wait_until("replica-autoscaler", lambda: tcp_open("127.0.0.1", self.state["api_port"]),
                   30, proc=self.service_proc, log=log)
        if wait:
            wait_until("replica-autoscaler /readyz",
                       lambda: http("GET", self.state["api_url"] + "/readyz", timeout=2)[0] == 200,
                       60, proc=self.service_proc, log=log)
        return self.service_proc

    def kill_service(self, sig=signal.SIGKILL):
        """Kills the service (SIGKILL by default, as a crash would) and waits for it to go."""
        pgid = self.state["groups"].pop("service", None)
        self._save()
        if pgid is not None:
            stop_group(pgid, grace=10, first=sig)
        if self.service_proc is not None:
            try:
                self.service_proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            self.service_proc = None

    def service_alive(self):
        pgid = self.state.get("groups", {}).get("service")
        return pgid is not None and pid_alive(pgid)

    def service_log_tail(self, lines=40):
        return tail(self.path("service.log"), lines)

    # ------------------------------------------------------------------ helpers for callers
    def token(self, role="admin"):
        name = "admin_token_file" if role == "admin" else "read_only_token_file"
        with open(self.state[name]) as f:
            return f.read().strip()

    def api(self, method, path, body=None, role="admin", token=None, timeout=10):
        return http(method, self.state["api_url"] + path, body,
                    token=token if token is not None else self.token(role), timeout=timeout)

    def cluster_status(self):
        status, body = self.api("GET", f"/v1/clusters/{CLUSTER}", role="read-only")
        if status != 200:
            raise SandboxError(f"GET /v1/clusters/{CLUSTER}: {status} {body}")
        return body

    def events(self, limit=1000):
        status, body = self.api("GET", f"/v1/events?cluster={CLUSTER}&limit={limit}", role="read-only")
        if status != 200:
            raise SandboxError(f"GET /v1/events: {status} {body}")
        return body.get("events", body) if isinstance(body, dict) else body

    def cloud(self, method, path, body=None):
        status, out = http(method, self.state["cloud_url"] + path, body)
        if status >= 300:
            raise SandboxError(f"cloud simulator {method} {path}: {status} {out}")
        return out

    def cloud_state(self):
        return self.cloud("GET", "/control/state")

    def haproxy(self, command, balancer=0):
        """One command on HAProxy's admin socket (of balancer `balancer`); its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(self.balancer(balancer)["admin_socket"])
            s.sendall(command.encode() + b"\n")
            chunks = []
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
        return b"".join(chunks).decode(errors="replace")

    def backend_servers(self, balancer=0):
        """{server name: {"addr", "status", "scur", "stot", "admin"}} of pg_replicas, from
        `show stat` and `show servers state` (of balancer `balancer`)."""
        out = {}
        lines = self.haproxy("show stat", balancer).splitlines()
        if not lines or not lines[0].startswith("# "):
            return out
        header = lines[0][2:].split(",")
        for line in lines[1:]:
            row = dict(zip(header, line.split(",")))
            if row.get("pxname") != BACKEND or row.get("svname") in ("BACKEND", "FRONTEND", None):
                continue
            out[row["svname"]] = {"status": row.get("status", ""), "scur": int(row.get("scur") or 0),
                                  "stot": int(row.get("stot") or 0)}
        state_lines = self.haproxy(f"show servers state {BACKEND}", balancer).splitlines()
        for line in state_lines:
            f = line.split()
            # be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state ...
            if len(f) > 6 and f[1] == BACKEND and f[3] in out:
                out[f[3]].update(addr=f[4], admin=int(f[6]))
        return out

    def pgbench(self, clients=16, seconds=10, extra=(), host="127.0.0.1", port=None, select_only=True,
                new_connection=True, timeout_margin=60):
        """pgbench through HAProxy's frontend (by default): -n, -S (select only), -C (a new
        connection per transaction). Bounded: killed `timeout_margin` s after its -T."""
        argv = ["pgbench", "-n", "-c", str(clients), "-j", str(min(clients, 2)), "-T", str(int(seconds)),
                "-h", host, "-p", str(port or self.state["frontend_port"]), "-U", "postgres"]
        if select_only:
            argv.append("-S")
        if new_connection:
            argv.append("-C")
        argv += list(extra) + ["postgres"]
        try:
            r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               timeout=seconds + timeout_margin, env=dict(os.environ, PGCONNECT_TIMEOUT="5"))
            return dict(parse_pgbench(r.stdout, r.returncode), output=r.stdout)
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            return dict(parse_pgbench(out, -1), output=out + "\n(timed out)")

    def start_pgbench(self, clients=16, seconds=10, select_only=True, host="127.0.0.1", port=None,
                      log_name=None):
        """pgbench in the background (a Popen whose stdout is a file); see finish_pgbench."""
        argv = ["pgbench", "-n", "-c", str(clients), "-j", str(min(clients, 2)), "-T", str(int(seconds)),
                "-h", host, "-p", str(port or self.state["frontend_port"]), "-U", "postgres"]
        argv += ["-S", "-C"] if select_only else []
        argv.append("postgres")
        log = self.path(log_name or f"pgbench-{time.time_ns()}.log")
        out = open(log, "w")
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=dict(os.environ, PGCONNECT_TIMEOUT="5"))
        out.close()
        proc.log_path = log
        proc.deadline = time.monotonic() + seconds + 60
        return proc

    @staticmethod
    def finish_pgbench(proc):
        try:
            proc.wait(timeout=max(1, proc.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with open(proc.log_path, errors="replace") as f:
            out = f.read()
        return dict(parse_pgbench(out, proc.returncode), output=out)

    def sql(self, host, query, port=PG_PORT, timeout=10):
        """One value from psql (as text), or raises SandboxError."""
        r = subprocess.run(["psql", "-X", "-At", "-h", host, "-p", str(port), "-U", "postgres", "-d",
                            "postgres", "-c", query], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=timeout, env=dict(os.environ, PGCONNECT_TIMEOUT="3"))
        if r.returncode != 0:
            raise SandboxError(f"psql {host}: {r.stderr.strip()}")
        return r.stdout.strip()

    def sql_conninfo(self, conninfo, query, timeout=10):
        """One value from psql (as text) through a libpq connection string, or raises SandboxError."""
        r = subprocess.run(["psql", "-X", "-At", "-d", conninfo, "-c", query], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=timeout)
        if r.returncode != 0:
            raise SandboxError(f"psql '{conninfo}': {r.stderr.strip()}")
        return r.stdout.strip()

    def primary_conninfo(self):
        """A libpq connection string (database postgres, user postgres) that reaches the primary
        of now: the plain primary, or with Patroni whichever member leads (libpq tries the members
        that can lead and keeps the read-write one)."""
        if self.patroni:
            return self.patroni_cluster.conninfo()
        return f"host={self.primary_host} port={PG_PORT} user=postgres dbname=postgres connect_timeout=3"

    def sql_primary(self, query, timeout=10):
        """One value from psql on the primary of now (see primary_conninfo)."""
        return self.sql_conninfo(self.primary_conninfo(), query, timeout=timeout)

    def current_primary_host(self):
        """The address of the primary of now: primary_host, or the Patroni leader's."""
        return self.leader()["host"] if self.patroni else self.primary_host

    def lag_bytes(self, replica_host):
        """The current primary's LSN minus the replica's replay LSN, in bytes."""
        primary_lsn = self.sql_primary("SELECT pg_current_wal_lsn()")
        return int(self.sql(replica_host, f"SELECT pg_wal_lsn_diff('{primary_lsn}', "
                                          "pg_last_wal_replay_lsn())::bigint"))

    # ------------------------------------------------------------------ Patroni (patroni=True)
    def _cluster(self):
        if not self.patroni:
            raise SandboxError("this sandbox has no Patroni cluster (Sandbox(..., patroni=True), up --patroni)")
        return self.patroni_cluster

    def patroni_members(self):
        """[{name, host, role, state, timeline, lag}] from Patroni's GET /cluster."""
        return self._cluster().members_status()

    def leader(self):
        """{"name", "host"} of the Patroni member that leads and runs now (SandboxError if none)."""
        return self._cluster().leader()

    def wait_leader(self, timeout=60, name=None, not_name=None):
        """Waits (bounded) for a running leader that takes writes, `name` or other than `not_name`."""
        return self._cluster().wait_leader(timeout, name=name, not_name=not_name)

    def switchover(self, candidate, timeout=60):
        """Planned switchover to `candidate` (POST /switchover on the leader's REST API); returns
        {"name", "host", "seconds"} once `candidate` leads and takes writes."""
        return self._cluster().switchover(candidate, timeout=timeout)

    def kill_member(self, name):
        """kill -9 of a member's Patroni and its PostgreSQL; returns once both are gone."""
        return self._cluster().kill_member(name)

    def restart_member(self, name, timeout=120):
        """Starts a killed member's Patroni again; returns once it runs and, unless it leads,
        streams from the leader (pg_rewind when it has to)."""
        return self._cluster().restart_member(name, timeout=timeout)

    def pause_receiver(self, member):
        """SIGSTOP of the member's walreceiver (it falls behind the leader); its pid."""
        return self._cluster().pause_receiver(member)

    def resume_receiver(self, member):
        """SIGCONT of the walreceiver pause_receiver stopped."""
        return self._cluster().resume_receiver(member)

    def status_text(self):
        lines = [f"root {self.root} (profile {self.state.get('profile')}, octet {self.state.get('octet')})"]
        for name, pgid in sorted(self.state.get("groups", {}).items()):
            lines.append(f"  {name:20} pid {pgid:<8} {'running' if pid_alive(pgid) else 'STOPPED'}")
        for d in self.state.get("pg_dirs", []):
            lines.append(f"  {'postgres':20} {os.path.basename(d):12} "
                         f"{'running' if os.path.exists(os.path.join(d, 'postmaster.pid')) else 'STOPPED'}")
        if self.patroni:
            try:
                for m in self.patroni_members():
                    lines.append(f"  {'patroni':20} {m['name']:12} {str(m['host']):15} {str(m['role']):8} "
                                 f"{str(m['state']):9} timeline {m['timeline']}"
                                 + (f", lag {m['lag']}" if m["role"] != "leader" else ""))
            except SandboxError as e:
                lines.append(f"  {'patroni':20} {e}")
        for key in ("api_url", "cloud_url", "dataplane_url", "metrics_url", "etcd_url", "frontend_port", "stats_port",
                    "config", "admin_token_file", "read_only_token_file"):
            if key in self.state:
                lines.append(f"  {key:20} {self.state[key]}")
        return "\n".join(lines)


HAPROXY_CFG = """\
global
    stats socket {dir}/admin.sock mode 600 level admin
    server-state-file {dir}/server-state
    maxconn 2000

defaults
    mode tcp
    timeout connect 3s
    timeout client 10m
    timeout server 10m
    load-server-state-from-file global

frontend stats
    mode http
    bind 127.0.0.1:{stats}
    http-request use-service prometheus-exporter if {{ path /metrics }}
    stats enable
    stats uri /stats

frontend pg_read
    bind 127.0.0.1:{frontend}
    default_backend {backend}

backend {backend}
    balance leastconn
    option pgsql-check user postgres
    default-server inter 1s fall 2 rise 1
"""

# pgBackRest for the sandbox's archive (archive=True). Compression lz4: gzip's default would make
# the two cores of a laptop the bottleneck. archive-push is asynchronous (the primary's
# archive_command returns once the segment is queued in the spool); archive-get is synchronous, so
# replicas on this one machine share no spool queue.
PGBACKREST_CONF = """\
[global]
repo1-path={dir}/repo
repo1-retention-full=1
log-path={dir}/log
lock-path={dir}/lock
spool-path={dir}/spool
log-level-console=warn
log-level-file=info
compress-type=lz4
compress-level=1
start-fast=y

[global:archive-push]
archive-async=y
process-max=2

[{stanza}]
pg1-path={primary}
pg1-socket-path={sock}
pg1-port={port}
pg1-user=postgres
"""

SCRAPE_CFG = """\
global:
  scrape_interval: 2s
  scrape_timeout: 2s
scrape_configs:
  - job_name: haproxy
    static_configs:
      - targets: ["127.0.0.1:{stats}"]
  - job_name: replica-autoscaler
    static_configs:
      - targets: ["127.0.0.1:{api}"]
"""


def write_secret(path, value):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")



def find_postmasters(root):
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        if "postmaster.pid" in filenames and os.path.exists(os.path.join(dirpath, "PG_VERSION")):
            found.append(os.path.join(dirpath, "postmaster.pid"))
            dirnames[:] = []
    return found


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start everything and leave it running")
    up.add_argument("--root", required=True)
    up.add_argument("--profile", choices=["fast", "realistic"], default="fast")
    up.add_argument("--octet", type=int, default=210, help="PostgreSQL and replicas on 127.0.N.x (2-254)")
    up.add_argument("--binary", help="replica-autoscaler (default build/bin/replica-autoscaler)")
    up.add_argument("--no-service", action="store_true", help="everything but the service")
    up.add_argument("--no-heartbeat", action="store_true", help="no commit a second on the primary")
    up.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a config.yaml.in value, e.g. SCALE_DOWN_WINDOW=1m")
    up.add_argument("--zones", default="az1,az2", help="the cloud's availability zones")
    up.add_argument("--zone-latency", default="", metavar="ZONE=MS[,ZONE=MS]",
                    help="round-trip latency from a zone's replicas to the primary, e.g. az2=40")
    up.add_argument("--balancers", type=int, default=1, help="HAProxies, each with its Data Plane double")
    up.add_argument("--archive", action="store_true",
                    help="(with --plain) the primary archives with pgBackRest into DIR/pgbackrest; "
                         "replicas restore from it (docs/data-size.md)")
    mode = up.add_mutually_exclusive_group()
    mode.add_argument("--patroni", dest="patroni", action="store_true", default=True,
                      help="the primary and the donor as a Patroni cluster on etcd (patroni_cluster.py); "
                           "the default")
    mode.add_argument("--plain", dest="patroni", action="store_false",
                      help="a plain primary and donor standby (pgctl.py) instead")
    for name in ("down", "status"):
        s = sub.add_parser(name)
        s.add_argument("--root", required=True)
        if name == "status":
            s.add_argument("--json", action="store_true")
    args = p.parse_args()

    if args.cmd == "up":
        if not 2 <= args.octet <= 254:
            p.error("--octet must be between 2 and 254")
        settings = {}
        for item in args.set:
            key, sep, value = item.partition("=")
            if not sep or not re.fullmatch(r"[A-Z_]+", key):
                p.error(f"--set expects KEY=VALUE with an upper-case key, not '{item}'")
            settings[key] = value
        if args.archive and args.patroni:
            p.error("--archive needs --plain (the Patroni members do not archive here)")
        zones = [z for z in args.zones.split(",") if z]
        zone_latency = {}
        for item in (i for i in args.zone_latency.split(",") if i):
            zone, sep, ms = item.partition("=")
            if not sep or zone not in zones or not re.fullmatch(r"\d+(\.\d+)?", ms):
                p.error(f"--zone-latency expects ZONE=MILLISECONDS with a zone of --zones ({args.zones}), "
                        f"not '{item}'")
            zone_latency[zone] = float(ms)
        sb = Sandbox(args.root, profile=args.profile, octet=args.octet, binary=args.binary,
                     start_service=not args.no_service, settings=settings, heartbeat=not args.no_heartbeat,
                     zones=zones, zone_latency=zone_latency, patroni=args.patroni,
                     balancers=args.balancers, archive=args.archive)
        try:
            sb.up()
            if args.archive:
                sb.set_replica_catch_up("archive")
        except (SandboxError, subprocess.TimeoutExpired, OSError) as e:
            print(f"sandbox: {e}", file=sys.stderr)
            sb.down()
            return 1
        print(sb.status_text())
        return 0
    if not os.path.exists(os.path.join(args.root, "state.json")):
        print(f"sandbox: nothing recorded in {args.root} (no state.json)", file=sys.stderr)
        return 0 if args.cmd == "down" else 1
    sb = Sandbox.attach(args.root)
    if args.cmd == "down":
        sb.down()
        print(f"sandbox: stopped everything in {args.root}")
        return 0
    if args.json:
        print(json.dumps(sb.state, indent=2))
    else:
        print(sb.status_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
