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
import re
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


def lsn(text):
    """A pg_lsn's text ('16/B374D848') as an integer (bytes); None for None or ''."""
    if not text:
        return None
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def query(host, sql, port=5432, timeout=3):
    """All rows of one query on one server (psycopg2, autocommit): a list of tuples."""
    conn = psycopg2.connect(host=host, port=port, user="postgres", dbname="postgres", connect_timeout=timeout,
                            application_name="e2e-probe")
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def replication_states(host):
    """{application_name: state} of pg_stat_replication on `host` (who streams from it)."""
    return dict(query(host, "SELECT application_name, state FROM pg_stat_replication"))


def replay_lsn(host):
    """pg_last_wal_replay_lsn() of a standby, as an integer."""
    return lsn(query(host, "SELECT pg_last_wal_replay_lsn()::text")[0][0])


def current_lsn(host):
    """pg_current_wal_lsn() of a primary, as an integer."""
    return lsn(query(host, "SELECT pg_current_wal_lsn()::text")[0][0])


class PgbenchLoad(threading.Thread):
    """pgbench -C -S through HAProxy (Sandbox.start_pgbench / finish_pgbench) from start() to
    stop(), in rounds of `round_seconds`: pgbench has no retry for a connection that fails (its
    client aborts for good, and with every client aborted the run ends), so a round that ends
    early is followed at once by the next, and the load lasts the whole test. Each error line
    pgbench prints is recorded with the time it appeared (its log is followed every 0.2 s), so
    pgbench's failures can be placed in time like the Reader's. stop() lets the current round
    end (at most `round_seconds`)."""

    def __init__(self, sb, clients=4, round_seconds=10, max_seconds=900, tag="load"):
        super().__init__(daemon=True)
        self.sb = sb
        self.clients = clients
        self.round_seconds = round_seconds
        self.deadline = time.monotonic() + max_seconds
        self.tag = tag
        self.stop_event = threading.Event()
        self.rounds = []  # (start, end, result of finish_pgbench without its output)
        self.errors = []  # (monotonic time seen, line)

    def _follow(self, path, state):
        try:
            with open(path, errors="replace") as f:
                f.seek(state["offset"])
                text = f.read()
                state["offset"] = f.tell()
        except OSError:
            return
        now = time.monotonic()
        lines = (state["partial"] + text).split("\n")
        state["partial"] = lines.pop()
        for line in lines:
            if any(word in line.lower() for word in ("error", "aborted", "fatal")):
                self.errors.append((now, line.strip()))

    def run(self):
        n = 0
        while not self.stop_event.is_set() and time.monotonic() < self.deadline:
            n += 1
            t0 = time.monotonic()
            proc = self.sb.start_pgbench(clients=self.clients, seconds=self.round_seconds,
                                         log_name=f"pgbench-{self.tag}-{n}.log")
            state = {"offset": 0, "partial": ""}
            while proc.poll() is None and time.monotonic() < proc.deadline:
                self._follow(proc.log_path, state)
                time.sleep(0.2)
            result = self.sb.finish_pgbench(proc)
            self._follow(proc.log_path, state)
            result.pop("output", None)
            self.rounds.append((t0, time.monotonic(), result))
            if time.monotonic() - t0 < 1:
                self.stop_event.wait(0.5)  # every client aborted at once: not a busy loop

    def stop(self):
        self.stop_event.set()
        self.join(timeout=self.round_seconds + 70)

    def totals(self):
        return {"rounds": len(self.rounds),
                "processed": sum(r["processed"] for _, _, r in self.rounds),
                "failed": sum(r["failed"] for _, _, r in self.rounds),
                "aborted_clients": sum(r["aborted_clients"] for _, _, r in self.rounds),
                "short_rounds": sum(1 for t0, t1, _ in self.rounds if t1 - t0 < self.round_seconds - 1),
                "seconds": (self.rounds[-1][1] - self.rounds[0][0]) if self.rounds else 0.0}

    def summary(self):
        t = self.totals()
        tps = t["processed"] / t["seconds"] if t["seconds"] else 0.0
        return (f"pgbench -C -S -c {self.clients} in {t['rounds']} rounds of {self.round_seconds} s "
                f"({t['seconds']:.0f} s): {t['processed']} transactions ({tps:.0f}/s), {t['failed']} failed, "
                f"{t['aborted_clients']} clients aborted, {t['short_rounds']} rounds cut short by aborts")


def gate_passed(replica):
    """Whether the service's status says this replica passed its gate in the last cycle: serving,
    its WAL receiver streaming the primary's timeline and its lag under both limits. The detail
    of such a replica is then its session count ("3 sessions", autoscaler/derive.cc); otherwise
    it says what is wrong ("no WAL receiver running for 2s", "WAL receiver on timeline 1, ...")."""
    return replica.get("phase") == "serving" and re.fullmatch(r"\d+ sessions", replica.get("detail") or "") is not None


def check_no_failed_query(sb, load, reader, origin):
    """Stops the reader and waits for pgbench `load` (sb.start_pgbench); checks that neither saw
    a failure, with the figures in the log."""
    from e2e_common import check, log
    reader.stop()
    result = sb.finish_pgbench(load)
    log(f"pgbench -C -S: {result['processed']} transactions, {result['failed']} failed, "
        f"{result['aborted_clients']} clients aborted; reader: {reader.summary(origin)}")
    check(result["ok"], f"pgbench through HAProxy had no failure (rc {result['returncode']})")
    check(not reader.failures(), f"no query through HAProxy failed ({reader.summary(origin)})")


def check_replicas_hold_only_primary_rows(sb, primary_host, primary_name, lost=frozenset()):
    """With the writer stopped: every serving replica's e2e_marker ids are a subset of the
    primary's at once (`lost`: ids of a lost tail, counted in the message), and equal to them
    once it has replayed the primary's current LSN. The primary's ids."""
    from e2e_common import check, eventually
    primary_ids = marker_ids(primary_host)
    serving = serving_replicas(sb)
    for name, address in sorted(serving.items()):
        ids = marker_ids(address)
        tail = f", {len(ids & lost)} of the lost tail" if lost else ""
        check(ids <= primary_ids, f"{name}: its {len(ids)} marker ids are all on {primary_name} "
                                  f"({len(ids - primary_ids)} are not{tail})")
    target = current_lsn(primary_host)
    for name, address in sorted(serving.items()):
        eventually(f"{name} replaying {primary_name}'s LSN", lambda: replay_lsn(address) >= target, 30)
        # With synchronous_commit off, the last marker's commit may still sit in the primary's WAL
        # buffers, past pg_current_wal_lsn(), for up to wal_writer_delay: the replica gets it a
        # moment later (seen once in CI). The writer is stopped, so the ids cannot change.
        same = eventually(f"{name} holding {primary_name}'s {len(primary_ids)} marker ids",
                          lambda: marker_ids(address) == primary_ids, 10, interval=0.2)
        check(same, f"{name}: caught up, the same {len(primary_ids)} marker ids as {primary_name}")
    return primary_ids
