"""What the PostgreSQL end-to-end tests (issue #12) share: clients that run beside the service for
a test's whole length and record what they saw, each bounded in count and time and stopping by
itself.

- Reader: a new connection through HAProxy's frontend every `period` seconds (as pgbench -C
  does), one query, the answer or the error recorded with its time: how many queries failed,
  and when.
- MarkerWriter: one row a `period` into `e2e_marker` on whoever is primary now (libpq multi-host,
  target_session_attrs=read-write), each acknowledged id recorded: afterwards every replica's rows
  can be held against the primary's.
Debian's python3 and python3-psycopg2 only.
"""
import threading
import time

import psycopg2

MARKER_DDL = "CREATE TABLE IF NOT EXISTS e2e_marker (id bigint PRIMARY KEY, at timestamptz DEFAULT now())"


class Reader(threading.Thread):
    """Connects through HAProxy every `period` s and reads `query` (first column of one row)."""

    def __init__(self, sb, query="SELECT coalesce(max(id), 0) FROM e2e_marker", period=0.1,
                 max_seconds=900):
        super().__init__(daemon=True)
        self.dsn = (f"host=127.0.0.1 port={sb.state['frontend_port']} user=postgres dbname=postgres "
                    "connect_timeout=3 application_name=e2e-reader")
        self.query = query
        self.period = period
        self.deadline = time.monotonic() + max_seconds
        self.stop_event = threading.Event()
        self.results = []  # (monotonic time, ok, value or error text, server address)

    def run(self):
        while not self.stop_event.is_set() and time.monotonic() < self.deadline:
            t = time.monotonic()
            try:
                conn = psycopg2.connect(self.dsn)
                try:
                    conn.autocommit = True
                    with conn.cursor() as cur:
                        cur.execute(f"SELECT ({self.query}), inet_server_addr()::text")
                        value, addr = cur.fetchone()
                finally:
                    conn.close()
                self.results.append((t, True, value, addr))
            except Exception as e:  # noqa: BLE001 - what failed is the record
                self.results.append((t, False, str(e).strip().splitlines()[0] if str(e).strip() else repr(e), None))
            self.stop_event.wait(self.period)

    def stop(self):
        self.stop_event.set()
        self.join(timeout=10)

    def failures(self, since=None):
        return [r for r in self.results if not r[1] and (since is None or r[0] >= since)]

    def summary(self, origin=None):
        """"N queries, F failed (first at +a s, last at +b s from origin)"."""
        failed = self.failures()
        text = f"{len(self.results)} queries through HAProxy, {len(failed)} failed"
        if failed and origin is not None:
            text += f" (from +{failed[0][0] - origin:.1f} s to +{failed[-1][0] - origin:.1f} s)"
        return text


class MarkerWriter(threading.Thread):
    """Inserts ids 1, 2, ... into e2e_marker on the current primary; records what was committed."""

    def __init__(self, sb, period=0.1, max_seconds=900):
        super().__init__(daemon=True)
        self.dsn = sb.primary_conninfo() + " connect_timeout=2 application_name=e2e-writer"
        self.period = period
        self.deadline = time.monotonic() + max_seconds
        self.stop_event = threading.Event()
        self.committed = []
        self.errors = 0
        conn = psycopg2.connect(self.dsn)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(MARKER_DDL)
                cur.execute("SELECT coalesce(max(id), 0) FROM e2e_marker")
                self.next_id = cur.fetchone()[0] + 1
        finally:
            conn.close()

    def run(self):
        conn = None
        while not self.stop_event.is_set() and time.monotonic() < self.deadline:
            try:
                if conn is None:
                    conn = psycopg2.connect(self.dsn)
                    conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO e2e_marker (id) VALUES (%s)", (self.next_id,))
                self.committed.append(self.next_id)
                self.next_id += 1
            except Exception:  # noqa: BLE001 - the primary is moving; try again
                self.errors += 1
                try:
                    if conn is not None:
                        conn.close()
                except Exception:  # noqa: BLE001
                    pass
                conn = None
            self.stop_event.wait(self.period)
        if conn is not None:
            conn.close()

    def stop(self):
        self.stop_event.set()
        self.join(timeout=10)


def marker_ids(host, port=5432):
    """The set of ids in e2e_marker on one server (a replica or the primary)."""
    conn = psycopg2.connect(host=host, port=port, user="postgres", dbname="postgres", connect_timeout=3)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM e2e_marker")
            return {row[0] for row in cur.fetchall()}
    finally:
        conn.close()


def serving_replicas(sb):
    """{name: address} of the replicas the service reports serving."""
    return {r["name"]: r.get("address") for r in sb.cluster_status().get("replicas", [])
            if r.get("phase") == "serving"}


def haproxy_worker_pid(sb):
    """The current HAProxy worker's pid (`show info`): it changes on every reload."""
    for line in sb.haproxy("show info").splitlines():
        if line.startswith("Pid:"):
            return int(line.split(":", 1)[1])
    return None


def pause_walreceiver(sb, host):
    """SIGSTOP of the walreceiver of the PostgreSQL at `host` (one of the service's replicas):
    it stops taking WAL (what is already in its socket buffer it reads once resumed). Its pid."""
    import os
    import signal
    pid = int(sb.sql(host, "SELECT pid FROM pg_stat_wal_receiver"))
    os.kill(pid, signal.SIGSTOP)
    return pid


def resume_walreceiver(pid):
    import os
    import signal
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass
