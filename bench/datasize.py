#!/usr/bin/python3
"""The data-size benchmark (issue #14): scaling a primary of real size, streaming catch-up against
catch-up from a pgBackRest WAL archive. Run through `bench/run.sh datasize`; figures to read, not
a timed test. Root only (it loop-mounts a file system). bench/README.md says what is measured.

  1. A sparse image file formatted XFS with reflink, loop-mounted as the sandbox's directory: the
     simulator's snapshots and volume clones (cp --reflink) are then copy-on-write, as Ceph RBD
     clones are in a real cloud, so a 20 GB primary, its donor and several replicas fit on one
     disk. Without a loop device it falls back to a plain directory (full copies; it says so).
  2. The primary (PostgreSQL 15, plain sandbox mode): pgbench -i -I dtGvp (server-side
     generation) at scale size_gb*1000/15, plus --tables small generated tables (a few rows and an
     index each, a few hundred per transaction); the donor standby as a cp --reflink copy of the
     cleanly stopped primary (pg_basebackup would write a second full copy). Built once
     per invocation (every run reuses it), or kept across invocations with --keep-data DIR.
  3. The sandbox (service, simulator, HAProxy, VictoriaMetrics) on it; the primary archives with
     pgBackRest. The service takes its golden snapshot of the donor and builds the first replica;
     then --wal-gb GB of WAL are written on the primary (bulk updates of pgbench_accounts), so the
     snapshot is that much WAL old, and the archive is waited for until it holds all of it.
  4. Throughout: pgbench TPC-B on the primary (rate-limited, -R) and pgbench -S -C through HAProxy.
  5. Per run and mode (stream, archive; alternating order): a baseline window with no replica
     catching up, then +N replicas (PUT override), then back to 1, then +2N, then back to 1. For
     each new replica: decision -> each phase the service reports (API status) -> serving; our
     own probe of replay lag (under 16 MiB = caught up), the WAL it received by streaming
     (pg_stat_wal_receiver) and the primary's walsender bytes read (/proc/PID/io); the primary's
     CPU (its postgres processes, /proc) during catch-up against the baseline window.
Every wait is bounded; the loads, the sandbox and the mount are stopped and removed on exit (also
after an error or SIGINT/SIGTERM).
"""
import argparse
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "sandbox"))
import pgctl  # noqa: E402
import sandbox as sandbox_mod  # noqa: E402

C = "/v1/clusters/orders"
MAX_LAG = 16 * 1024 * 1024
GIB = 1024 ** 3
MIB = 1024 ** 2
TICK = os.sysconf("SC_CLK_TCK")
PHASES = ("volume_creating", "server_building", "postgres_starting", "catching_up", "admitting", "serving")


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


def wait(what, predicate, timeout, interval=0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return time.monotonic()
        except Exception as e:  # noqa: BLE001 - e.g. a replica not answering yet
            last = e
        time.sleep(interval)
    raise BenchError(f"{what}: not within {timeout:.0f} s" + (f" (last error: {last})" if last else ""))


def run(argv, timeout, what, user=False):
    argv = pgctl.as_user(argv) if user else argv
    try:
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{what}: not done within {timeout:.0f} s") from None
    if r.returncode != 0:
        raise BenchError(f"{what} failed ({r.returncode}):\n{r.stdout[-3000:]}")
    return r.stdout


# ---------------------------------------------------------------------- the copy-on-write disk
class Disk:
    """A sparse XFS image with reflink, loop-mounted; or a plain directory when that is not
    possible. close() unmounts and (unless kept) deletes it."""

    def __init__(self, image, mountpoint, size_gb, keep):
        self.image, self.mountpoint, self.size_gb, self.keep = image, mountpoint, size_gb, keep
        self.mounted = False
        self.cow = False
        self.fallback_dir = None

    def open(self):
        os.makedirs(self.mountpoint, exist_ok=True)
        try:
            if not shutil.which("mkfs.xfs"):
                raise BenchError("mkfs.xfs is missing (apt-get install xfsprogs)")
            if not os.path.exists(self.image):
                with open(self.image, "wb") as f:
                    f.truncate(int(self.size_gb * GIB))
                run(["mkfs.xfs", "-q", "-m", "reflink=1", self.image], 300, "mkfs.xfs")
                log(f"datasize: {self.size_gb:.0f} GB sparse image {self.image} formatted XFS (reflink=1)")
            else:
                log(f"datasize: reusing the image {self.image}")
            run(["mount", "-o", "loop,noatime", self.image, self.mountpoint], 120, "mount -o loop")
            self.mounted = True
            probe_a, probe_b = os.path.join(self.mountpoint, ".reflink-a"), os.path.join(self.mountpoint, ".reflink-b")
            with open(probe_a, "wb") as f:
                f.write(b"x" * 65536)
            r = subprocess.run(["cp", "--reflink=always", probe_a, probe_b], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            self.cow = r.returncode == 0
            for p in (probe_a, probe_b):
                if os.path.exists(p):
                    os.unlink(p)
            os.chmod(self.mountpoint, 0o755)
            return self.mountpoint
        except (BenchError, OSError) as e:
            log(f"datasize: WARNING: no copy-on-write loop mount ({e}); falling back to a plain directory: "
                "every snapshot and clone is a full copy, so only small sizes fit")
            self._unmount()
            if os.path.exists(self.image) and not self.keep:
                os.unlink(self.image)
            self.fallback_dir = self.mountpoint
            os.makedirs(self.fallback_dir, exist_ok=True)
            os.chmod(self.fallback_dir, 0o755)
            return self.fallback_dir

    def _unmount(self):
        if not self.mounted:
            return
        for attempt in range(10):
            r = subprocess.run(["umount", self.mountpoint], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if r.returncode == 0:
                self.mounted = False
                return
            time.sleep(1 + attempt)
        log(f"datasize: umount {self.mountpoint} keeps failing; lazy unmount")
        subprocess.run(["umount", "-l", self.mountpoint])
        self.mounted = False

    def close(self):
        self._unmount()
        if self.keep:
            log(f"datasize: kept {self.image if self.fallback_dir is None else self.fallback_dir} (--keep-data)")
            return
        if self.fallback_dir:
            shutil.rmtree(self.fallback_dir, ignore_errors=True)
        elif os.path.exists(self.image):
            os.unlink(self.image)
        try:
            os.rmdir(self.mountpoint)
        except OSError:
            pass
        log("datasize: image unmounted and deleted")


# ---------------------------------------------------------------------- building the primary
def psql_sock(data_dir, sql, timeout=3600):
    return run(["psql", "-X", "-q", "-At", "-h", pgctl.socket_dir(data_dir), "-p", str(sandbox_mod.PG_PORT),
                "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql], timeout, "psql", user=True)


def build_primary(root, octet, args):
    """pg/primary and pg/donor under root (the sandbox's layout), stopped afterwards."""
    primary, donor = os.path.join(root, "pg", "primary"), os.path.join(root, "pg", "donor")
    shutil.rmtree(os.path.join(root, "pg"), ignore_errors=True)
    host, dhost = f"127.0.{octet}.1", f"127.0.{octet}.2"
    pgctl_py = os.path.join(REPO, "tests", "sandbox", "pgctl.py")
    scale = max(1, round(args.size_gb * 1000 / 15))
    t0 = time.monotonic()
    log(f"datasize: building the primary: pgbench scale {scale} (~{args.size_gb:g} GB) + {args.tables} tables")
    run(["/usr/bin/python3", pgctl_py, "init-primary", "--dir", primary, "--host", host, "--port", "5432",
         "--scale", "0"], 300, "pgctl init-primary")
    # Restartpoints on the donor follow the primary's checkpoints: frequent ones keep a clone's
    # crash recovery short. The primary keeps --wal-gb plus a margin of WAL for streaming
    # replicas (wal_keep_size); an archive makes that unnecessary, which is the point of it.
    keep_mb = int((args.wal_gb + 2) * 1024)
    for setting in ("shared_buffers = '256MB'", "maintenance_work_mem = '256MB'", "max_wal_size = '2GB'",
                    "checkpoint_timeout = '1min'", f"wal_keep_size = '{keep_mb}MB'"):
        psql_sock(primary, f"ALTER SYSTEM SET {setting}", 60)
    run(["/usr/bin/python3", pgctl_py, "stop", "--dir", primary], 120, "pgctl stop")
    run(["/usr/bin/python3", pgctl_py, "start", "--dir", primary], 120, "pgctl start")
    run(["pgbench", "-i", "-q", "-I", "dtGvp", "-s", str(scale), "-h", pgctl.socket_dir(primary), "-p", "5432",
         "-U", "postgres", "postgres"], args.build_timeout, "pgbench -i", user=True)
    log(f"datasize: pgbench data loaded in {time.monotonic() - t0:.0f} s")
    batch = 300
    for start in range(0, args.tables, batch):
        stmts = ["BEGIN"]
        for i in range(start, min(start + batch, args.tables)):
            stmts.append(f"CREATE TABLE IF NOT EXISTS gen_{i:05d} (id int PRIMARY KEY, v text, at timestamptz "
                         f"DEFAULT now()); INSERT INTO gen_{i:05d} (id, v) SELECT g, md5(g::text) FROM "
                         f"generate_series(1, 5) g ON CONFLICT DO NOTHING")
        stmts.append("COMMIT")
        psql_sock(primary, "; ".join(stmts), 600)
    psql_sock(primary, "VACUUM ANALYZE", args.build_timeout)
    psql_sock(primary, "CHECKPOINT", args.build_timeout)
    size = int(psql_sock(primary, "SELECT pg_database_size('postgres')", 60).strip())
    tables = int(psql_sock(primary, "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relnamespace = "
                                    "'public'::regnamespace", 60).strip())
    log(f"datasize: primary built in {time.monotonic() - t0:.0f} s: {size / GIB:.2f} GiB, {tables} tables; "
        "the donor: a copy-on-write copy of the stopped primary, made its standby")
    t1 = time.monotonic()
    make_donor(primary, donor, host, dhost, pgctl_py, args.build_timeout)
    log(f"datasize: donor built in {time.monotonic() - t1:.0f} s")
    for d in (donor, primary):
        run(["/usr/bin/python3", pgctl_py, "stop", "--dir", d], 300, "pgctl stop")
    meta = {"size_gb": args.size_gb, "tables": args.tables, "scale": scale, "octet": octet,
            "database_bytes": size, "table_count": tables, "build_seconds": round(time.monotonic() - t0, 1)}
    with open(os.path.join(root, "datasize.json"), "w") as f:
        json.dump(meta, f)
    return meta


def make_donor(primary, donor, host, dhost, pgctl_py, timeout):
    """The donor standby as a copy of the cleanly stopped primary (cp --reflink: on the
    copy-on-write image it shares the primary's blocks until either writes, where pg_basebackup
    would write a second full copy the disk may not have room for), made a standby of it."""
    run(["/usr/bin/python3", pgctl_py, "stop", "--dir", primary], 600, "pgctl stop (primary)")
    pgctl.prepare_dirs(donor)
    run(["cp", "-a", "--reflink=auto", primary, donor], timeout, "cp --reflink (donor)")
    for name in ("postmaster.pid", "postmaster.opts"):
        if os.path.exists(os.path.join(donor, name)):
            os.unlink(os.path.join(donor, name))
    auto = os.path.join(donor, "postgresql.auto.conf")
    with open(auto) as f:
        lines = [line for line in f if line.split("=")[0].strip() not in
                 ("listen_addresses", "port", "unix_socket_directories", "primary_conninfo")]
    with open(auto, "w") as f:
        f.writelines(lines)
    # wal_keep_size 0: the primary's would make the donor and every clone of it keep gigabytes of
    # WAL for standbys they never serve (and fill the disk).
    pgctl.write_conf(donor, dhost, 5432, f"primary_conninfo = 'host={host} port=5432 user=replicator "
                                         f"application_name={sandbox_mod.DONOR_NAME}'\nwal_keep_size = 0\n")
    open(os.path.join(donor, "standby.signal"), "w").close()
    pgctl.own(donor)
    run(["/usr/bin/python3", pgctl_py, "start", "--dir", primary], 600, "pgctl start (primary)")
    run(["/usr/bin/python3", pgctl_py, "start", "--dir", donor], 600, "pgctl start (donor)")


def reusable(root, octet, args):
    try:
        with open(os.path.join(root, "datasize.json")) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    if meta.get("size_gb") == args.size_gb and meta.get("tables") == args.tables and meta.get("octet") == octet \
            and all(os.path.exists(os.path.join(root, "pg", d, "PG_VERSION")) for d in ("primary", "donor")):
        return meta
    return None


# ---------------------------------------------------------------------- loads
class Load:
    """pgbench in rounds of at most `round_s` seconds (each bounded), results summed, until stop()."""

    def __init__(self, name, argv_for):
        self.name, self.argv_for = name, argv_for
        self.totals = {"processed": 0, "failed": 0, "aborted_clients": 0, "rounds": 0, "bad_rounds": 0,
                       "errors": {}}
        self._stop = threading.Event()
        self._proc = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            argv = self.argv_for(30)
            try:
                self._proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                              start_new_session=True, env=dict(os.environ, PGCONNECT_TIMEOUT="5"))
                out, _ = self._proc.communicate(timeout=120)
                r = sandbox_mod.parse_pgbench(out, self._proc.returncode)
                for line in out.splitlines():
                    if "error" in line.lower() or "abort" in line.lower():
                        # "pgbench: error: client 1 aborted ...: ERROR: canceling statement ..." -> its kind
                        kind = re.sub(r"\d+", "N", line.split("ERROR:")[-1].strip())[:120]
                        errs = self.totals["errors"]
                        if kind in errs or len(errs) < 10:
                            errs[kind] = errs.get(kind, 0) + 1
            except subprocess.TimeoutExpired:
                self._kill()
                r = {"processed": 0, "failed": 0, "aborted_clients": 0, "ok": False}
            if self._stop.is_set():
                break
            for k in ("processed", "failed", "aborted_clients"):
                self.totals[k] += r[k]
            self.totals["rounds"] += 1
            self.totals["bad_rounds"] += 0 if r["ok"] else 1
            if not r["ok"]:
                self._stop.wait(1)

    def _kill(self):
        p = self._proc
        if p is not None and p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def stop(self):
        self._stop.set()
        self._kill()
        self._thread.join(timeout=30)


# ---------------------------------------------------------------------- the primary's load
def proc_stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    fields = text[text.rindex(")") + 2:].split()
    return {"ppid": int(fields[1]), "utime": int(fields[11]), "stime": int(fields[12]),
            "cutime": int(fields[13]), "cstime": int(fields[14])}


def postmaster_pid(data_dir):
    with open(os.path.join(data_dir, "postmaster.pid")) as f:
        return int(f.readline())


def primary_cpu_seconds(pm):
    """CPU seconds of the primary's postmaster, its live children and the children it reaped."""
    st = proc_stat(pm)
    ticks = st["utime"] + st["stime"] + st["cutime"] + st["cstime"]
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            s = proc_stat(int(entry))
        except (OSError, ValueError, IndexError):
            continue
        if s["ppid"] == pm:
            ticks += s["utime"] + s["stime"]
    return ticks / TICK


def read_bytes(pid):
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                if line.startswith("rchar:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


# ---------------------------------------------------------------------- one scale-up
class ScaleUp:
    def __init__(self, sb, pm, base_names, snap_lsn):
        self.sb, self.pm, self.base, self.snap_lsn = sb, pm, set(base_names), snap_lsn
        self.phase_seen = {}   # name -> {phase: monotonic}
        self.address = {}
        self.caught = {}       # name -> monotonic
        self.receiver = {}     # name -> {"start_lsn", "flushed_lsn", "replay_lsn"}
        self.walsender = {}    # name -> (pid, rchar)

    def poll(self):
        now = time.monotonic()
        st = self.sb.cluster_status()
        for r in st.get("replicas", []):
            name = r.get("name")
            if not name or name in self.base:
                continue
            seen = self.phase_seen.setdefault(name, {})
            seen.setdefault(r.get("phase"), now)
            if r.get("address"):
                self.address[name] = r["address"]
        try:
            cur, senders = primary_probe(self.sb)
        except sandbox_mod.SandboxError:
            return st
        # The walsenders serving the new replicas (application_name = server name): bytes read
        # (rchar) and CPU, both since the walsender started, i.e. for this replica alone.
        for app, pid in senders:
            if app in self.phase_seen:
                b = read_bytes(pid)
                try:
                    ps = proc_stat(pid)
                    cpu = (ps["utime"] + ps["stime"]) / TICK
                except (OSError, ValueError, IndexError):
                    cpu = None
                if b is not None:
                    self.walsender[app] = (pid, b, cpu)
        for name, addr in self.address.items():
            if name in self.caught or not any(p in self.phase_seen.get(name, {})
                                              for p in ("catching_up", "admitting", "serving", "lagging")):
                continue
            try:
                row = self.sb.sql(addr, "SELECT (SELECT receive_start_lsn FROM pg_stat_wal_receiver), "
                                        "(SELECT flushed_lsn FROM pg_stat_wal_receiver), pg_last_wal_replay_lsn()",
                                  timeout=5)
                start, flushed, replay = (row.split("|") + ["", "", ""])[:3]
                lag = lsn_int(cur) - lsn_int(replay)
            except (sandbox_mod.SandboxError, ValueError):
                continue
            if lag <= MAX_LAG:
                self.caught[name] = time.monotonic()
                self.receiver[name] = {"start_lsn": start, "flushed_lsn": flushed, "replay_lsn": replay}
        return st

    def new_serving(self, st):
        return [r["name"] for r in st.get("replicas", []) if r.get("name") not in self.base
                and r.get("phase") == "serving"]


def primary_probe(sb):
    """One query on the primary per poll (the baseline window makes the same): its current LSN and
    the walsenders [(application_name, pid)]."""
    row = sb.sql_primary("SELECT pg_current_wal_lsn() || '|' || coalesce((SELECT string_agg(application_name "
                         "|| ':' || pid, ',') FROM pg_stat_replication), '')", timeout=5)
    cur, _, rest = row.partition("|")
    senders = []
    for item in (i for i in rest.split(",") if i):
        app, _, pid = item.rpartition(":")
        senders.append((app, int(pid)))
    return cur, senders


def snapshot_redo_lsn(sb):
    """Where a clone of the (one) golden snapshot starts replaying: its pg_control's REDO
    location (pg_controldata of the snapshot's directory)."""
    snaps = [s for s in sb.cloud_state().get("snapshots", []) if s.get("status") == "available"]
    if len(snaps) != 1:
        raise BenchError(f"expected one golden snapshot, found {len(snaps)}")
    d = sb.path("cloud", "snapshots", snaps[0]["id"])
    out = run([f"{pgctl.PG_BIN}/pg_controldata", d], 60, "pg_controldata")
    m = re.search(r"Latest checkpoint's REDO location:\s+([0-9A-F]+/[0-9A-F]+)", out)
    if not m:
        raise BenchError(f"pg_controldata {d}: no REDO location:\n{out[:1000]}")
    return lsn_int(m.group(1))


def lsn_int(text):
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) + int(lo, 16)


def scale_up(sb, pm, k, snap_lsn, timeout, baseline_cpu_rate):
    st = sb.cluster_status()
    base = [r["name"] for r in st.get("replicas", [])]
    target = len(base) + k
    su = ScaleUp(sb, pm, base, snap_lsn)
    cpu0, t0 = primary_cpu_seconds(pm), time.monotonic()
    code, out = sb.api("PUT", C + "/override", {"replicas": target, "reason": "datasize bench"})
    if code != 200:
        raise BenchError(f"PUT override {target}: {code} {out}")
    deadline = t0 + timeout
    cpu_caught = None
    while time.monotonic() < deadline:
        st = su.poll()
        if len(su.caught) >= k and cpu_caught is None:
            cpu_caught = (primary_cpu_seconds(pm), time.monotonic())
        if len(su.new_serving(st)) >= k and len(su.caught) >= k:
            break
        failed = [r["name"] for r in st.get("replicas", []) if r.get("name") not in base and r.get("phase") == "failed"]
        if failed:
            raise BenchError(f"replica(s) failed: {failed}; status: {json.dumps(st)[:2000]}")
        time.sleep(0.5)
    else:
        raise BenchError(f"+{k}: not all serving within {timeout:.0f} s (phases {su.phase_seen})")
    t_end = time.monotonic()
    if cpu_caught is None:
        cpu_caught = (primary_cpu_seconds(pm), t_end)
    per = []
    for name, seen in su.phase_seen.items():
        rec = su.receiver.get(name, {})
        item = {"name": name, "serving": seen.get("serving", t_end) - t0}
        for a, b, key in (("volume_creating", "server_building", "clone"),
                          ("server_building", "postgres_starting", "boot"),
                          ("postgres_starting", "catching_up", "pg_start"),
                          ("catching_up", "serving", "catch_up")):
            if a in seen and b in seen:
                item[key] = seen[b] - seen[a]
        if name in su.caught and "server_building" in seen:
            # our probe: the server built (postgres starting) -> lag under 16 MiB
            item["probe_catch_up"] = su.caught[name] - seen.get("postgres_starting", seen["server_building"])
        try:
            replay = lsn_int(rec["replay_lsn"])
            item["wal_bytes"] = replay - snap_lsn
            if rec.get("start_lsn") and rec.get("flushed_lsn"):
                item["streamed_bytes"] = lsn_int(rec["flushed_lsn"]) - lsn_int(rec["start_lsn"])
                item["from_archive_bytes"] = max(0, lsn_int(rec["start_lsn"]) - snap_lsn)
            elif name in su.caught:
                # Caught up before its WAL receiver started: everything came from the archive.
                item["streamed_bytes"] = 0
                item["from_archive_bytes"] = item["wal_bytes"]
        except (KeyError, ValueError, AttributeError):
            pass
        if name in su.walsender:
            item["walsender_read_bytes"] = su.walsender[name][1]
            item["walsender_cpu"] = su.walsender[name][2]
        if item.get("catch_up") and item.get("wal_bytes"):
            item["replay_mb_s"] = item["wal_bytes"] / MIB / item["catch_up"]
        per.append(item)
    window = cpu_caught[1] - t0
    rate = (cpu_caught[0] - cpu0) / window if window > 0 else float("nan")
    return {"k": k, "all_serving": t_end - t0, "replicas": per, "cpu_rate": rate,
            "extra_cpu": rate - baseline_cpu_rate, "catch_window": window}


def back_to_base(sb, timeout):
    sb.api("DELETE", C + "/override")
    wait("back to 1 serving replica", lambda: bench_settled(sb, 1), timeout, interval=1)
    wait("one server left", lambda: len(owned(sb)) == 1, timeout, interval=1)


def owned(sb):
    return [s for s in sb.cloud_state()["servers"]
            if s["name"] != sandbox_mod.DONOR_NAME and s["status"] != "DELETED"]


def bench_settled(sb, n):
    st = sb.cluster_status()
    return st.get("serving") == n and len(st.get("replicas", [])) == n


def baseline(sb, pm, seconds):
    """The primary's CPU (cores) over `seconds` with no replica catching up, polled as a scale-up
    polls it (the cluster's status and one query on the primary every 0.5 s)."""
    c0, t0 = primary_cpu_seconds(pm), time.monotonic()
    lsn0 = lsn_int(primary_probe(sb)[0])
    while time.monotonic() - t0 < seconds:
        try:
            sb.cluster_status()
            primary_probe(sb)
        except sandbox_mod.SandboxError:
            pass
        time.sleep(0.5)
    secs = time.monotonic() - t0
    wal_rate = (lsn_int(primary_probe(sb)[0]) - lsn0) / secs
    return (primary_cpu_seconds(pm) - c0) / secs, wal_rate


# ---------------------------------------------------------------------- WAL after the snapshot
def generate_wal(sb, wal_gb, timeout):
    start = sb.sql_primary("SELECT pg_current_wal_lsn()")
    rows = int(sb.sql_primary("SELECT max(aid) FROM pgbench_accounts", timeout=600))
    target = int(wal_gb * GIB)
    t0 = time.monotonic()
    chunk, aid = 200000, 0
    done = 0
    while done < target:
        if time.monotonic() - t0 > timeout:
            raise BenchError(f"--wal-gb {wal_gb}: only {done / GIB:.2f} GiB of WAL in {timeout:.0f} s")
        lo = aid % rows
        sb.sql_primary(f"UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid > {lo} AND aid <= {lo + chunk}",
                       timeout=600)
        aid = lo + chunk
        done = int(sb.sql_primary(f"SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{start}')::bigint"))
    secs = time.monotonic() - t0
    log(f"datasize: {done / GIB:.2f} GiB of WAL written after the snapshot in {secs:.0f} s "
        f"({done / MIB / secs:.0f} MB/s)")
    return done, secs


def wait_archived(sb, timeout):
    """Until the archiver has pushed the segment before the current one (bounded)."""
    sb.sql_primary("SELECT pg_switch_wal()")
    seg = sb.sql_primary("SELECT pg_walfile_name(pg_current_wal_lsn())")

    def pushed():
        last = sb.sql_primary("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
        return last != "" and last[8:] >= "%016X" % (int(seg[8:], 16) - 1) and last[:8] == seg[:8]
    t0 = time.monotonic()
    wait("the archive to hold the WAL since the snapshot", pushed, timeout, interval=2)
    return time.monotonic() - t0


# ---------------------------------------------------------------------- report
def med(values):
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return statistics.median(values) if values else None


def fmt(v, unit="", digits=1):
    return "-" if v is None else f"{v:.{digits}f}{unit}"


def report(results, meta, args, wal_meta):
    modes = [m for m in ("stream", "archive") if any(r["mode"] == m for r in results)]
    print()
    print(f"replica-autoscaler data-size benchmark: primary {meta['database_bytes'] / GIB:.1f} GiB "
          f"(pgbench scale {meta['scale']}), {meta['table_count']} tables; {wal_meta['wal_bytes'] / GIB:.2f} GiB of "
          f"WAL written after the golden snapshot; load: pgbench TPC-B -R {args.write_rate} on the primary, "
          f"pgbench -S -C -R {args.read_rate} through HAProxy; N = {args.n}; copy-on-write clones: "
          f"{'yes (XFS reflink)' if wal_meta['cow'] else 'NO (full copies)'}; medians of {args.runs} run(s)")

    def rows_for(k):
        out = []
        for label, key, unit, digits, scale in (
                (f"decision -> all +{k} serving", "all_serving", " s", 1, 1),
                ("  per replica: decision -> serving", "serving", " s", 1, 1),
                ("  volume clone (volume_creating)", "clone", " s", 1, 1),
                ("  server build (server_building)", "boot", " s", 1, 1),
                ("  PostgreSQL start (postgres_starting)", "pg_start", " s", 1, 1),
                ("  WAL catch-up (catching_up -> serving)", "catch_up", " s", 1, 1),
                ("  WAL replayed since the snapshot", "wal_bytes", " GiB", 2, 1 / GIB),
                ("  catch-up rate", "replay_mb_s", " MB/s", 0, 1),
                ("  streamed from the primary", "streamed_bytes", " GiB", 2, 1 / GIB),
                ("  restored from the archive", "from_archive_bytes", " GiB", 2, 1 / GIB),
                ("  primary walsender read (rchar)", "walsender_read_bytes", " GiB", 2, 1 / GIB),
                ("  primary walsender CPU", "walsender_cpu", " s", 2, 1),
                ("primary CPU during catch-up", "cpu_rate", " cores", 2, 1),
                ("  extra over the baseline window", "extra_cpu", " cores", 2, 1)):
            cells = []
            for m in modes:
                rs = [r for r in results if r["mode"] == m and r["k"] == k]
                if key in ("all_serving", "cpu_rate", "extra_cpu"):
                    v = med([r[key] for r in rs])
                else:
                    v = med([p.get(key) for r in rs for p in r["replicas"]])
                cells.append(fmt(None if v is None else v * scale, unit, digits))
            out.append((label, cells))
        return out
    rows = rows_for(args.n) + rows_for(2 * args.n)
    width = max(len(r[0]) for r in rows)
    head = f"{'':{width}}  " + "  ".join(f"{m:>14}" for m in modes)
    print("-" * len(head))
    print(head)
    for label, cells in rows:
        print(f"{label:{width}}  " + "  ".join(f"{c:>14}" for c in cells))
    print("-" * len(head))
    print(f"baseline (no catch-up): primary CPU {fmt(med([r['baseline_cpu'] for r in results]), ' cores', 2)}, "
          f"WAL {fmt(med([r['baseline_wal_rate'] / 1024 for r in results]), ' KB/s', 0)} "
          f"(pgbench TPC-B -R {args.write_rate} plus the sandbox's heartbeat)")
    print(f"WAL written after the snapshot: {wal_meta['wal_bytes'] / GIB:.2f} GiB in {wal_meta['wal_seconds']:.0f} s; "
          f"the archive held it {fmt(wal_meta.get('archive_wait'), ' s', 0)} after")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size-gb", type=float, default=20)
    p.add_argument("--tables", type=int, default=4500)
    p.add_argument("--wal-gb", type=float, default=2)
    p.add_argument("--n", type=int, default=1)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--mode", choices=["stream", "archive", "both"], default="both")
    p.add_argument("--keep-data", metavar="DIR",
                   help="keep the image (and the primary in it) in DIR across invocations; reused when "
                        "--size-gb and --tables match")
    p.add_argument("--work-dir", default="/work", help="where the sparse image lives without --keep-data")
    p.add_argument("--image-gb", type=float, help="sparse image size (default 3 x size + 2 x wal + 20)")
    p.add_argument("--write-rate", type=int, default=50, help="pgbench TPC-B transactions/s on the primary")
    p.add_argument("--read-rate", type=int, default=50, help="pgbench -S -C transactions/s through HAProxy")
    p.add_argument("--binary", default=os.path.join(REPO, "build", "bin", "replica-autoscaler"))
    p.add_argument("--octet", type=int, default=None, help="127.0.N.x addresses (default 239; fixed, so that --keep-data can reuse the primary)")
    p.add_argument("--build-timeout", type=float, default=None, help="seconds (default 900 + 600 per GB)")
    p.add_argument("--scale-timeout", type=float, default=None,
                   help="seconds for one scale-up to serve (default 600 + 300 per GB of WAL)")
    p.add_argument("--baseline-seconds", type=float, default=15)
    p.add_argument("--json", metavar="FILE", help="write every run's figures here")
    args = p.parse_args()
    if args.size_gb <= 0 or args.size_gb > 400 or args.tables < 0 or args.tables > 100000 or args.wal_gb <= 0 \
            or args.n < 1 or args.n > 8 or args.runs < 1 or args.runs > 20:
        p.error("--size-gb in (0, 400], --tables in [0, 100000], --wal-gb > 0, --n in 1..8, --runs in 1..20")
    if os.geteuid() != 0:
        p.error("run as root: the benchmark loop-mounts a file system and PostgreSQL runs as ra-test")
    if not os.access(args.binary, os.X_OK):
        p.error(f"{args.binary} is not an executable (scripts/setup.sh, or --binary)")
    for tool in ("pgbackrest", "pgbench", "psql"):
        if args.mode != "stream" or tool != "pgbackrest":
            if not shutil.which(tool):
                p.error(f"{tool} is not installed (apt-get install pgbackrest postgresql-client-15)")
    args.build_timeout = args.build_timeout or 900 + 600 * args.size_gb
    args.scale_timeout = args.scale_timeout or 600 + 300 * args.wal_gb
    octet = args.octet or 239
    image_gb = args.image_gb or 3 * args.size_gb + 2 * args.wal_gb + 20
    if args.keep_data:
        os.makedirs(args.keep_data, exist_ok=True)
        image = os.path.join(os.path.abspath(args.keep_data), "datasize.img")
        mnt = os.path.join(os.path.abspath(args.keep_data), "mnt")
    else:
        image = os.path.join(args.work_dir, f"ra-datasize-{os.getpid()}.img")
        mnt = os.path.join(args.work_dir, f"ra-datasize-{os.getpid()}.mnt")

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)
    modes = ["stream", "archive"] if args.mode == "both" else [args.mode]
    disk = Disk(image, mnt, image_gb, keep=bool(args.keep_data))
    loads = []
    results = []
    started = time.monotonic()
    try:
        root = os.path.join(disk.open(), "sb")
        os.makedirs(root, exist_ok=True)
        os.chmod(root, 0o755)
        meta = reusable(root, octet, args)
        if meta:
            log(f"datasize: reusing the primary in {root} ({meta['database_bytes'] / GIB:.2f} GiB)")
        else:
            shutil.rmtree(os.path.join(root, "pgbackrest"), ignore_errors=True)  # another primary's archive
            meta = build_primary(root, octet, args)
        settings = {"MIN_REPLICAS": 1, "MAX_REPLICAS": 1 + 2 * args.n, "TARGET": 1000, "SCALE_DOWN_WINDOW": "5s",
                    "SCALE_DOWN_STEP": 2 * args.n, "LOOP_INTERVAL": "2s", "SERVER_BUILD_TIMEOUT": "10m",
                    "POSTGRES_START_TIMEOUT": "30m", "CATCH_UP_TIMEOUT": "3h", "LAGGING_TIMEOUT": "3h",
                    "SNAPSHOT_INTERVAL": "24h", "DRAIN_TIMEOUT": "1m"}
        with sandbox_mod.Sandbox(root, profile="fast", octet=octet, binary=args.binary, settings=settings,
                                 log=log, archive=args.mode != "stream", keep_pg=True) as sb:
            pm = postmaster_pid(sb.path("pg", "primary"))
            wait("the first replica serving (golden snapshot taken)", lambda: bench_settled(sb, 1),
                 args.scale_timeout, interval=1)
            snap_lsn = snapshot_redo_lsn(sb)
            log(f"datasize: golden snapshot's redo point {snap_lsn >> 32:X}/{snap_lsn & 0xFFFFFFFF:X}")
            host, port = sb.primary_host, sandbox_mod.PG_PORT
            fe = sb.state["frontend_port"]
            loads.append(Load("write", lambda t: ["pgbench", "-n", "-c", "2", "-j", "1", "-R", str(args.write_rate),
                                                  "-T", str(t), "-h", host, "-p", str(port), "-U", "postgres",
                                                  "postgres"]).start())
            loads.append(Load("read", lambda t: ["pgbench", "-n", "-S", "-C", "-c", "2", "-j", "1", "-R",
                                                 str(args.read_rate), "-T", str(t), "-h", "127.0.0.1", "-p",
                                                 str(fe), "-U", "postgres", "postgres"]).start())
            wal_bytes, wal_secs = generate_wal(sb, args.wal_gb, args.build_timeout)
            archived_after = wait_archived(sb, args.scale_timeout) if args.mode != "stream" else None
            if archived_after is not None:
                log(f"datasize: the archive held it all {archived_after:.0f} s after the WAL was written")
            wal_meta = {"wal_bytes": wal_bytes, "wal_seconds": wal_secs, "cow": disk.cow or False,
                        "archive_wait": archived_after, "snap_lsn": snap_lsn}
            for i in range(1, args.runs + 1):
                order = modes if i % 2 else list(reversed(modes))
                for mode in order:
                    if sb.archive:
                        sb.set_replica_catch_up(mode)
                    for k in (args.n, 2 * args.n):
                        base_cpu, wal_rate = baseline(sb, pm, args.baseline_seconds)
                        log(f"run {i} {mode}: +{k} (baseline primary CPU {base_cpu:.2f} cores)")
                        r = scale_up(sb, pm, k, snap_lsn, args.scale_timeout, base_cpu)
                        r.update(mode=mode, run=i, baseline_cpu=base_cpu, baseline_wal_rate=wal_rate)
                        results.append(r)
                        log(f"run {i} {mode}: +{k} all serving after {r['all_serving']:.1f} s; "
                            + "; ".join(f"{p['name']}: catch-up {fmt(p.get('catch_up'), ' s')}, "
                                        f"WAL {fmt((p.get('wal_bytes') or 0) / GIB, ' GiB', 2)}, streamed "
                                        f"{fmt((p.get('streamed_bytes') or 0) / GIB, ' GiB', 2)}"
                                        for p in r["replicas"])
                            + f"; primary CPU {r['cpu_rate']:.2f} cores (extra {r['extra_cpu']:+.2f})")
                        back_to_base(sb, args.scale_timeout)
            for load in loads:
                load.stop()
            wal_meta["loads"] = {load.name: load.totals for load in loads}
            loads = []
        report(results, meta, args, wal_meta)
        print(f"loads: {json.dumps(wal_meta['loads'])}")
        print(f"total {time.monotonic() - started:.0f} s")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"meta": meta, "wal": wal_meta, "runs": results, "args": vars(args)}, f, indent=2)
        return 0
    except (BenchError, sandbox_mod.SandboxError, subprocess.TimeoutExpired, OSError) as e:
        log(f"datasize: FAILED: {e}")
        if results:
            log(f"datasize: runs completed before the failure: {json.dumps(results)[:4000]}")
        return 1
    except KeyboardInterrupt as e:
        log(f"datasize: interrupted ({e}); cleaning up")
        return 130
    finally:
        # Clean-up is not interrupted by a second signal (a half-done unmount would leave the
        # image busy).
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for load in loads:
            load.stop()
        # The sandbox (a context manager) has stopped what it started; a failed build may have
        # left the primary or the donor running in the mount.
        if os.path.isdir(mnt):
            for pid_file in sandbox_mod.find_postmasters(mnt):
                subprocess.run(pgctl.as_user([f"{pgctl.PG_BIN}/pg_ctl", "-D", os.path.dirname(pid_file), "-m",
                                              "immediate", "-w", "-t", "30", "stop"]),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        disk.close()


if __name__ == "__main__":
    sys.exit(main())
