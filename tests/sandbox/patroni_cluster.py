"""The sandbox's primary and donor as a real Patroni cluster on a real etcd (sandbox.py up --patroni).

What runs, each on loopback, each as the unprivileged user of pgctl.run_user() when we are root:
  - one etcd 3.4 (/usr/bin/etcd, the v3 API only) on two free ports of 127.0.0.1, its data in
    <root>/etcd/
  - three Patroni 3.0 members of the cluster `orders` (Patroni's scope), their DCS the `etcd3:`
    section, each with PostgreSQL 15 on its own address port 5432 and its REST API on the same
    address port 8008:
        pg1           127.0.N.1    the first leader: Patroni bootstraps it with initdb, then the
                                   sandbox loads `pgbench -i -s SCALE` into it
        pg2           127.0.N.250  the failover candidate
        orders-donor  127.0.N.2    the donor, in <root>/pg/donor as in the plain mode (the cloud
                                   simulator snapshots that directory); Patroni tags nofailover and
                                   noloadbalance, so it never leads; its Patroni name is the
                                   application_name the primary sees, as before
    pg2 and the donor are built by Patroni with pg_basebackup from the leader.
Files: <root>/patroni/NAME.yml (each member's configuration, JSON, which YAML reads), the members'
pgpass files; <root>/patroni-NAME.log (Patroni's log, and PostgreSQL's: the postmaster inherits
Patroni's stderr), <root>/etcd.log. state.json records the process groups as `etcd` and
`patroni-NAME` and the members under `patroni_members`.

The settings, and why (a test wants failovers in seconds, not in the minute production allows):
  - ttl 5, loop_wait 1, retry_timeout 2. Patroni 3.0.2's validator sets no minimum (it only asks for
    integers); the floor kept here is Patroni's own rule loop_wait + 2 * retry_timeout <= ttl, so
    that one failed etcd or PostgreSQL call retried for retry_timeout does not lose the leader key.
    etcd grants leases of at least 2 s with its default 100 ms heartbeat, so 5 is honoured as is.
    A killed leader's key expires within ttl, and a replica's next loop (1 s) takes over.
  - maximum_lag_on_failover 64 MB: the tests make a candidate lag a little on purpose and still
    want it to be promoted.
  - use_pg_rewind with wal_log_hints (Patroni forces it on) and full_page_writes on (pg_rewind
    refuses to run without it, so unlike the plain mode it is not turned off): a killed or demoted
    leader rejoins as a replica of the new one.
  - use_slots false. A member's replication slot is written by Patroni into the member's
    postgresql.conf as primary_slot_name, and a replica the service builds from a snapshot of the
    donor copies that file; the first-boot script drops primary_slot_name from
    postgresql.auto.conf only, so the clone would ask for the donor's slot (busy) and never
    stream. Without slots, wal_keep_size (512MB) keeps the WAL that members and replicas built
    from older snapshots still need, as in the plain mode.
  - the rest of the plain primary's settings (pgctl.py init_primary): replication user
    `replicator`, trust on 127.0.0.0/8, wal_keep_size, max_connections 200, fsync and
    synchronous_commit off, in bootstrap.dcs so all members share them.
  - watchdog off (no /dev/watchdog here), pg_basebackup with a fast checkpoint, initdb --no-sync.

Everything a caller does goes through PatroniCluster (Sandbox keeps one in Sandbox.patroni_cluster):
members(), leader(), switchover(), kill_member(), restart_member(), pause_receiver()/resume_receiver(),
conninfo(). Every wait is bounded; failures raise SandboxError with the log tails that explain them.
"""
import base64
import json
import os
import signal
import subprocess
import time

import pgctl
from sandbox_util import (SandboxError, address_free, free_port, http, stop_groups, tail,
                          wait_until)

SCOPE = "orders"
NAMESPACE = "/service/"  # Patroni's default: keys /service/orders/leader, ...
REST_PORT = 8008
PG_PORT = 5432
ETCD = "/usr/bin/etcd"
PATRONI = "/usr/bin/patroni"
DONOR_NAME = "orders-donor"
# name, last octet of the address, data directory below <root>/pg, may it lead
MEMBERS = (("pg1", 1, "pg1", True), ("pg2", 250, "pg2", True), (DONOR_NAME, 2, "donor", False))

TTL, LOOP_WAIT, RETRY_TIMEOUT = 5, 1, 2
MAX_LAG_ON_FAILOVER = 64 * 1024 * 1024

DCS = {
    "ttl": TTL,
    "loop_wait": LOOP_WAIT,
    "retry_timeout": RETRY_TIMEOUT,
    "maximum_lag_on_failover": MAX_LAG_ON_FAILOVER,
    "postgresql": {
        "use_pg_rewind": True,
        "use_slots": False,
        "pg_hba": ["local all all trust",
                   "host all all 127.0.0.0/8 trust",
                   "host replication all 127.0.0.0/8 trust"],
        "parameters": {
            "wal_level": "replica", "hot_standby": "on", "wal_log_hints": "on",
            "full_page_writes": "on", "max_wal_senders": 20, "max_replication_slots": 20,
            "wal_keep_size": "512MB", "max_connections": 200, "fsync": "off",
            "synchronous_commit": "off", "shared_buffers": "64MB", "checkpoint_timeout": "5min",
        },
    },
}


class Member:
    """One Patroni member: where it listens and keeps its files."""

    def __init__(self, sb, name, last_octet, dir_name, can_lead):
        self.name = name
        self.host = f"127.0.{sb.octet}.{last_octet}"
        self.data_dir = sb.path("pg", dir_name)
        self.socket_dir = pgctl.socket_dir(self.data_dir)
        self.can_lead = can_lead
        self.config = sb.path("patroni", f"{name}.yml")
        self.pgpass = sb.path("patroni", f"{name}.pgpass")
        self.log_name = f"patroni-{name}.log"
        self.group = f"patroni-{name}"

    @property
    def rest_url(self):
        return f"http://{self.host}:{REST_PORT}"


def member_hosts(octet):
    """The addresses of all members (the cloud must never give them to a server)."""
    return [f"127.0.{octet}.{last}" for _, last, _, _ in MEMBERS]


def proc_alive(pid):
    """True while `pid` runs; a zombie (an orphan nobody has reaped yet) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def postmaster_pid(data_dir):
    try:
        with open(os.path.join(data_dir, "postmaster.pid")) as f:
            pid = int(f.readline().strip())
    except (OSError, ValueError):
        return None
    return pid if proc_alive(pid) else None


def stop_order(groups):
    """The names of `groups` (state.json's) that belong to the Patroni cluster, in the order `down`
    stops them: all members at once (one by one, each would fail over to the next), then etcd
    (before the members, they would lose their DCS and wait out retry_timeout)."""
    members = [g for g in groups if g.startswith("patroni-")]
    return ([members] if members else []) + ([["etcd"]] if "etcd" in groups else [])


def resume_paused(state):
    """SIGCONT every walreceiver pause_receiver left stopped (a stopped process ignores the
    SIGTERM of a shutdown until then)."""
    for pid in state.pop("paused_receivers", {}).values():
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


class PatroniCluster:
    """The Patroni cluster of a Sandbox `sb` (its root, octet, scale, state, log and _spawn)."""

    def __init__(self, sb):
        self.sb = sb
        self.members = [Member(sb, *m) for m in MEMBERS]

    def member(self, name):
        for m in self.members:
            if m.name == name:
                return m
        raise SandboxError(f"no Patroni member '{name}' (members: {', '.join(m.name for m in self.members)})")

    def conninfo(self, user="postgres", dbname="postgres"):
        """A libpq connection string that reaches whoever leads now: every member that can lead,
        the read-write one chosen by libpq."""
        hosts = ",".join(m.host for m in self.members if m.can_lead)
        return (f"host={hosts} port={PG_PORT} user={user} dbname={dbname} "
                f"target_session_attrs=read-write connect_timeout=3")

    # ------------------------------------------------------------------ start
    def start(self):
        """etcd, then pg1 until it leads, the pgbench data, then pg2 and the donor until both
        stream from pg1 and have replayed the data. Bounded; raises SandboxError."""
        sb = self.sb
        for m in self.members:
            for port in (PG_PORT, REST_PORT):
                if not address_free(m.host, port):
                    raise SandboxError(f"{m.host}:{port} is taken (another sandbox with octet "
                                       f"{sb.octet}?); choose another --octet")
        for d in ("pg", "patroni"):
            os.makedirs(sb.path(d), exist_ok=True)
            os.chmod(sb.path(d), 0o755)
            pgctl.own(sb.path(d))  # Patroni creates and, to rebuild a member, removes data dirs
        sb.state.update(patroni=True, pg_dirs=[m.data_dir for m in self.members],
                        patroni_members=[{"name": m.name, "host": m.host, "rest_url": m.rest_url,
                                          "data_dir": m.data_dir, "config": m.config}
                                         for m in self.members])
        sb._save()
        etcd_url = self._start_etcd()
        for m in self.members:
            self._write_config(m, etcd_url)
        pg1, others = self.members[0], self.members[1:]
        sb.log(f"sandbox: Patroni member {pg1.name} on {pg1.host}:{PG_PORT} (REST {pg1.rest_url}), "
               f"bootstrapping the cluster '{SCOPE}'")
        proc = self._spawn_member(pg1)
        # The others start once pg1 holds the cluster's initialize key (so none of them bootstraps
        # a cluster of its own), and wait for it to lead; they copy it while it takes the data:
        # the copy is small, streaming does the rest.
        wait_until(f"Patroni {pg1.name} taking the initialize key", lambda: self._initialized(etcd_url),
                   60, interval=0.2, proc=proc, log=sb.path(pg1.log_name))
        for m in others:
            sb.log(f"sandbox: Patroni member {m.name} on {m.host}:{PG_PORT} (REST {m.rest_url})"
                   + (", tags nofailover, noloadbalance" if not m.can_lead else ""))
            self._spawn_member(m)
        wait_until(f"Patroni {pg1.name} leading", lambda: self._is_primary(pg1), 90,
                   interval=0.3, proc=proc, log=sb.path(pg1.log_name))
        sb.log(f"sandbox: pgbench -i -s {sb.scale} on {pg1.name}")
        r = subprocess.run(["pgbench", "-i", "-q", "-s", str(sb.scale), "-h", pg1.host, "-p", str(PG_PORT),
                            "-U", "postgres", "postgres"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=300)
        if r.returncode != 0:
            raise SandboxError(f"pgbench -i on {pg1.name} failed:\n{r.stdout}\n{tail(sb.path(pg1.log_name))}")
        lsn = sb.sql(pg1.host, "SELECT pg_current_wal_lsn()")
        names = [m.name for m in others]

        def caught_up():
            rows = sb.sql(pg1.host, "SELECT application_name FROM pg_stat_replication WHERE state = "
                                    f"'streaming' AND replay_lsn >= '{lsn}'").split()
            return all(n in rows for n in names)
        try:
            wait_until(f"Patroni {', '.join(names)} streaming from {pg1.name}", caught_up, 180, interval=0.5)
        except SandboxError as e:
            raise SandboxError(f"{e}\n" + "\n".join(f"--- {m.name} ---\n{tail(sb.path(m.log_name), 15)}"
                                                    for m in others)) from None
        sb.log(f"sandbox: Patroni cluster '{SCOPE}': {self.describe()}")

    def _start_etcd(self):
        sb = self.sb
        data = sb.path("etcd")
        os.makedirs(data, mode=0o700, exist_ok=True)
        pgctl.own(data)
        client, peer = free_port(), free_port()
        client_url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
        argv = [
            ETCD, "--name", "sandbox", "--data-dir", data,
            "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
            "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", f"sandbox={peer_url}", "--initial-cluster-state", "new",
            "--initial-cluster-token", f"sandbox-{sb.octet}",
            "--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn"]
        proc, log = sb._spawn("etcd", argv, "etcd.log", unprivileged=True)

        def healthy():
            status, body = http("GET", client_url + "/health", timeout=2)
            return status == 200 and isinstance(body, dict) and body.get("health") == "true"
        wait_until("etcd", healthy, 30, proc=proc, log=log)
        sb.state["etcd_url"] = client_url
        sb._save()
        sb.log(f"sandbox: etcd (v3 API) on {client_url}")
        return client_url

    @staticmethod
    def _initialized(etcd_url):
        """Whether a member has taken the cluster's initialize key (etcd's v3 JSON gateway)."""
        key = base64.b64encode(f"{NAMESPACE}{SCOPE}/initialize".encode()).decode()
        status, body = http("POST", etcd_url + "/v3/kv/range", {"key": key, "count_only": True}, timeout=2)
        return status == 200 and isinstance(body, dict) and int(body.get("count", 0)) > 0

    def _write_config(self, m, etcd_url):
        config = {
            "scope": SCOPE,
            "namespace": NAMESPACE,
            "name": m.name,
            "restapi": {"listen": f"{m.host}:{REST_PORT}", "connect_address": f"{m.host}:{REST_PORT}"},
            "etcd3": {"hosts": [etcd_url.split("://", 1)[1]]},
            # initdb --no-sync: the sandbox runs with fsync off anyway; syncing takes seconds here.
            "bootstrap": {"dcs": DCS, "initdb": [{"encoding": "UTF8"}, {"locale": "C"}, {"auth": "trust"},
                                                 "no-sync"]},
            "postgresql": {
                "listen": f"{m.host}:{PG_PORT}",
                "connect_address": f"{m.host}:{PG_PORT}",
                "data_dir": m.data_dir,
                "bin_dir": pgctl.PG_BIN,
                "pgpass": m.pgpass,
                "use_unix_socket": True,
                "authentication": {"superuser": {"username": "postgres"},
                                   "replication": {"username": "replicator"},
                                   "rewind": {"username": "postgres"}},
                "parameters": {"unix_socket_directories": m.socket_dir},
                "basebackup": [{"checkpoint": "fast"}],
            },
            "tags": {"nofailover": not m.can_lead, "noloadbalance": not m.can_lead},
            # No /dev/watchdog here. Patroni still checks the timing every loop, and with the
            # default safety_margin (5 s, not less than ttl) it warns each second; ttl // 2 is quiet.
            "watchdog": {"mode": "off", "safety_margin": -1},
            "log": {"level": "INFO"},
        }
        for d in (m.data_dir, m.socket_dir):
            os.makedirs(d, mode=0o700, exist_ok=True)
            pgctl.own(d)
        with open(m.config, "w") as f:
            json.dump(config, f, indent=2)  # JSON is YAML
        os.chmod(m.config, 0o644)

    def _spawn_member(self, m):
        proc, _ = self.sb._spawn(m.group, [PATRONI, m.config], m.log_name, unprivileged=True)
        return proc

    # ------------------------------------------------------------------ the cluster's view
    def _is_primary(self, m):
        return http("GET", m.rest_url + "/primary", timeout=2)[0] == 200

    def cluster(self):
        """GET /cluster from the first member whose REST API answers (Patroni's view through
        etcd: every member's role, state, timeline and lag)."""
        errors = []
        for m in self.members:
            try:
                status, body = http("GET", m.rest_url + "/cluster", timeout=3)
            except OSError as e:
                errors.append(f"{m.name}: {e}")
                continue
            if status == 200 and isinstance(body, dict):
                return body
            errors.append(f"{m.name}: HTTP {status}")
        raise SandboxError("no Patroni member answers GET /cluster: " + "; ".join(errors))

    def members_status(self):
        """[{name, host, role, state, timeline, lag}] as Patroni reports them (role leader or
        replica; state running, streaming, stopped, starting, ...; lag in bytes behind the
        leader, or "unknown"; timeline None while unknown)."""
        hosts = {m.name: m.host for m in self.members}
        return [{"name": x["name"], "host": x.get("host", hosts.get(x["name"])), "role": x.get("role"),
                 "state": x.get("state"), "timeline": x.get("timeline"), "lag": x.get("lag", 0)}
                for x in self.cluster().get("members", [])]

    def describe(self):
        try:
            return ", ".join(f"{x['name']} {x['role']} {x['state']} tl {x['timeline']}"
                             + (f" lag {x['lag']}" if x["role"] != "leader" else "")
                             for x in self.members_status())
        except SandboxError as e:
            return str(e)

    def leader(self):
        """{"name", "host"} of the member that leads and runs now; SandboxError when none does."""
        for x in self.members_status():
            if x["role"] == "leader" and x["state"] == "running":
                return {"name": x["name"], "host": x["host"]}
        raise SandboxError(f"no Patroni leader running ({self.describe()})")

    def wait_leader(self, timeout, name=None, not_name=None):
        """Waits until a leader runs whose PostgreSQL takes writes and, when given, that is
        `name` or is not `not_name`; returns it. "Takes writes" is asked of PostgreSQL itself
        (pg_is_in_recovery() false): Patroni calls a member leader, and its /primary answers 200,
        from the moment it holds the key and has asked for the promotion, before the promotion
        is done (which can be never: see pause_receiver)."""
        found = {}

        def ready():
            leader = self.leader()
            if (name and leader["name"] != name) or (not_name and leader["name"] == not_name):
                return False
            if not self._is_primary(self.member(leader["name"])):
                return False
            if self.sb.sql(leader["host"], "SELECT pg_is_in_recovery()", timeout=5) != "f":
                return False
            found.update(leader)
            return True
        what = f"Patroni leader {name}" if name else ("a new Patroni leader" if not_name else "a Patroni leader")
        try:
            wait_until(what, ready, timeout, interval=0.2)
        except SandboxError as e:
            raise SandboxError(f"{e}({self.describe()})\n{self._log_tails()}") from None
        return found

    def _log_tails(self, lines=12):
        return "\n".join(f"--- {m.log_name} ---\n{tail(self.sb.path(m.log_name), lines)}" for m in self.members)

    # ------------------------------------------------------------------ actions
    def switchover(self, candidate, timeout=60):
        """A planned switchover to `candidate` through the leader's REST API (POST /switchover, as
        `patronictl switchover --force` does); returns once `candidate` leads and takes writes:
        {"name", "host", "seconds"} (seconds from the request to then)."""
        target = self.member(candidate)
        if not target.can_lead:
            raise SandboxError(f"{candidate} has the nofailover tag: it cannot lead")
        leader = self.leader()
        if leader["name"] == candidate:
            raise SandboxError(f"{candidate} leads already")
        t0 = time.monotonic()
        status, body = http("POST", self.member(leader["name"]).rest_url + "/switchover",
                            {"leader": leader["name"], "candidate": candidate}, timeout=40)
        if status != 200:
            raise SandboxError(f"POST /switchover {leader['name']} -> {candidate}: HTTP {status} {body} "
                               f"({self.describe()})")
        new = self.wait_leader(max(5, timeout - (time.monotonic() - t0)), name=candidate)
        new["seconds"] = round(time.monotonic() - t0, 2)
        self.sb.log(f"sandbox: switchover {leader['name']} -> {candidate} in {new['seconds']:.1f} s")
        return new

    def kill_member(self, name):
        """kill -9 of a member's Patroni and of its PostgreSQL (the postmaster and its children,
        which Patroni started in a session of their own). Returns once both are gone and the
        member's address is free. The member stays down until restart_member."""
        m = self.member(name)
        sb = self.sb
        pgid = sb.state.get("groups", {}).pop(m.group, None)
        sb._save()
        if pgid is not None:
            stop_groups([pgid], grace=10, first=signal.SIGKILL)
        pm = postmaster_pid(m.data_dir)
        if pm is not None:
            try:
                pm_group = os.getpgid(pm)
                if pm_group not in (os.getpgrp(), 0, 1):
                    os.killpg(pm_group, signal.SIGKILL)
                else:
                    os.kill(pm, signal.SIGKILL)
            except ProcessLookupError:
                pass
            wait_until(f"{name}'s postmaster {pm} gone", lambda: not proc_alive(pm), 15)
        wait_until(f"{m.host}:{PG_PORT} free after killing {name}",
                   lambda: address_free(m.host, PG_PORT) and address_free(m.host, REST_PORT), 15)
        sb.state.get("paused_receivers", {}).pop(name, None)
        sb._save()
        sb.log(f"sandbox: killed {name} (Patroni and PostgreSQL, SIGKILL)")

    def restart_member(self, name, timeout=120):
        """Starts a member's Patroni again (after kill_member); returns once Patroni reports it
        running, and, unless it leads, streaming from the leader (rewound with pg_rewind first
        when it was a leader that the others left behind)."""
        m = self.member(name)
        sb = self.sb
        if m.group in sb.state.get("groups", {}):
            raise SandboxError(f"{name}'s Patroni is recorded as running; kill_member it first")
        proc = self._spawn_member(m)
        t0 = time.monotonic()

        def rejoined():
            x = next((x for x in self.members_status() if x["name"] == name), None)
            if x is None or x["state"] not in ("running", "streaming"):
                return False
            if x["role"] == "leader":
                return self._is_primary(m)
            leader = self.leader()
            rows = sb.sql(leader["host"], "SELECT application_name FROM pg_stat_replication "
                                          "WHERE state = 'streaming'").split()
            return name in rows
        wait_until(f"Patroni {name} rejoining", rejoined, timeout, interval=0.5, proc=proc,
                   log=sb.path(m.log_name))
        sb.log(f"sandbox: {name} rejoined in {time.monotonic() - t0:.1f} s ({self.describe()})")

    def pause_receiver(self, name):
        """SIGSTOP of the member's walreceiver: it receives no more WAL (it still replays what it
        has), so it falls behind while the leader writes. Returns its pid.
        Resume it before this member is to be promoted: PostgreSQL's promotion waits for the
        walreceiver to exit, and a stopped one never does. Patroni still takes the leader key and
        calls the member leader (and its /primary answers 200), but it stays read-only until
        resume_receiver; wait_leader waits for that."""
        m = self.member(name)
        text = self.sb.sql(m.host, "SELECT pid FROM pg_stat_wal_receiver")
        if not text:
            raise SandboxError(f"{name} has no walreceiver (is it a streaming replica? {self.describe()})")
        pid = int(text)
        os.kill(pid, signal.SIGSTOP)
        self.sb.state.setdefault("paused_receivers", {})[name] = pid
        self.sb._save()
        return pid

    def resume_receiver(self, name):
        """SIGCONT of the walreceiver pause_receiver stopped. Having missed the primary's
        keepalives, it may reconnect first; it catches up in either case."""
        self.member(name)
        pid = self.sb.state.get("paused_receivers", {}).pop(name, None)
        self.sb._save()
        if pid is None:
            raise SandboxError(f"{name}'s walreceiver is not paused")
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
