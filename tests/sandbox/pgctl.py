#!/usr/bin/python3
"""PostgreSQL servers for tests and the sandbox, on loopback, as an unprivileged user.

PostgreSQL refuses to run as root, so when started as root every server runs as the
system user `ra-test` (created on first use). Each server listens on its own loopback
address and keeps its socket in its data directory's parent, so many can run at once.

  pgctl.py init-primary --dir D --host 127.0.0.1 --port 5432 [--scale N]
  pgctl.py init-standby --dir D --host 127.0.1.1 --port 5432 --primary-host H --primary-port P
  pgctl.py start --dir D          (waits until it accepts connections)
  pgctl.py stop --dir D [--mode fast|immediate]
  pgctl.py status --dir D         (exit 0 when running)

Connection facts: database `postgres`, superuser `postgres` (trust on loopback), replication
user `replicator` (trust). Nothing here is for production.
"""
import argparse
import os
import pwd
import shutil
import subprocess
import sys
import time

PG_BIN = "/usr/lib/postgresql/15/bin"
TEST_USER = "ra-test"


def run_user():
    """The user PostgreSQL runs as: ra-test when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--create-home", "--shell", "/bin/sh", TEST_USER],
                       check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pwd.getpwnam(TEST_USER)  # raises if useradd failed
    return TEST_USER


def as_user(argv):
    user = run_user()
    return argv if user is None else ["runuser", "-u", user, "--"] + argv


def own(path):
    user = run_user()
    if user is None:
        return
    pw = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for name in files:
            os.chown(os.path.join(root, name), pw.pw_uid, pw.pw_gid)
    os.chown(path, pw.pw_uid, pw.pw_gid)


def sh(argv, **kw):
    result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    if result.returncode != 0:
        sys.exit(f"pgctl: {' '.join(argv)} failed ({result.returncode}):\n{result.stdout}")
    return result.stdout


def socket_dir(data_dir):
    return os.path.join(os.path.dirname(os.path.abspath(data_dir)),
                        os.path.basename(os.path.abspath(data_dir)) + ".sock")


def prepare_dirs(data_dir):
    parent = os.path.dirname(os.path.abspath(data_dir))
    os.makedirs(parent, exist_ok=True)
    os.chmod(parent, 0o755)
    sock = socket_dir(data_dir)
    os.makedirs(sock, exist_ok=True)
    own(sock)


def write_conf(data_dir, host, port, extra=""):
    with open(os.path.join(data_dir, "postgresql.auto.conf"), "a") as f:
        f.write(f"listen_addresses = '{host}'\nport = {port}\n"
                f"unix_socket_directories = '{socket_dir(data_dir)}'\n{extra}")


def init_primary(args):
    if os.path.exists(args.dir):
        sys.exit(f"pgctl: {args.dir} exists; remove it first")
    prepare_dirs(args.dir)
    os.makedirs(args.dir)
    own(args.dir)
    sh(as_user([f"{PG_BIN}/initdb", "-D", args.dir, "-U", "postgres", "--auth=trust",
                "--no-instructions", "-E", "UTF8", "--locale=C"]))
    with open(os.path.join(args.dir, "pg_hba.conf"), "a") as f:
        f.write("host all all 127.0.0.0/8 trust\nhost replication all 127.0.0.0/8 trust\n")
    write_conf(args.dir, args.host, args.port,
               "wal_level = replica\nmax_wal_senders = 20\nmax_replication_slots = 20\n"
               "wal_keep_size = '512MB'\nhot_standby = on\nmax_connections = 200\n"
               "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
               "shared_buffers = '64MB'\ncheckpoint_timeout = '5min'\n")
    start(args)
    psql(args.dir, "CREATE ROLE replicator WITH REPLICATION LOGIN")
    if args.scale > 0:
        sh(as_user(["pgbench", "-i", "-q", "-s", str(args.scale), "-h", socket_dir(args.dir),
                    "-p", str(args.port), "-U", "postgres", "postgres"]))


def init_standby(args):
    if os.path.exists(args.dir):
        sys.exit(f"pgctl: {args.dir} exists; remove it first")
    prepare_dirs(args.dir)
    os.makedirs(args.dir, mode=0o700)
    own(args.dir)
    sh(as_user(["pg_basebackup", "-D", args.dir, "-h", args.primary_host, "-p",
                str(args.primary_port), "-U", "replicator", "-X", "stream", "-c", "fast",
                "--no-sync"]))
    # pg_basebackup copied the primary's postgresql.auto.conf; overwrite the address lines.
    with open(os.path.join(args.dir, "postgresql.auto.conf")) as f:
        lines = [l for l in f if not l.split("=")[0].strip() in
                 ("listen_addresses", "port", "unix_socket_directories", "primary_conninfo")]
    with open(os.path.join(args.dir, "postgresql.auto.conf"), "w") as f:
        f.writelines(lines)
    app = args.application_name or os.path.basename(os.path.abspath(args.dir))
    write_conf(args.dir, args.host, args.port,
               f"primary_conninfo = 'host={args.primary_host} port={args.primary_port} "
               f"user=replicator application_name={app}'\n")
    open(os.path.join(args.dir, "standby.signal"), "w").close()
    own(args.dir)
    start(args)


def start(args):
    log = os.path.join(os.path.dirname(os.path.abspath(args.dir)),
                       os.path.basename(os.path.abspath(args.dir)) + ".log")
    if not os.path.exists(log):
        open(log, "w").close()
    own(log)
    sh(as_user([f"{PG_BIN}/pg_ctl", "-D", args.dir, "-l", log, "-w", "-t", "60", "start"]))


def stop(args):
    sh(as_user([f"{PG_BIN}/pg_ctl", "-D", args.dir, "-m", args.mode, "-w", "-t", "60", "stop"]))


def status(args):
    r = subprocess.run(as_user([f"{PG_BIN}/pg_ctl", "-D", args.dir, "status"]),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sys.exit(0 if r.returncode == 0 else 1)


def psql(data_dir, sql):
    port = None
    with open(os.path.join(data_dir, "postgresql.auto.conf")) as f:
        for line in f:
            if line.startswith("port"):
                port = line.split("=")[1].strip()
    return sh(as_user(["psql", "-X", "-q", "-h", socket_dir(data_dir), "-p", port, "-U", "postgres",
                       "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql]))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("init-primary")
    a.add_argument("--dir", required=True)
    a.add_argument("--host", default="127.0.0.1")
    a.add_argument("--port", type=int, default=5432)
    a.add_argument("--scale", type=int, default=0, help="pgbench -i scale (0: no data)")
    a.set_defaults(func=init_primary)
    a = sub.add_parser("init-standby")
    a.add_argument("--dir", required=True)
    a.add_argument("--host", required=True)
    a.add_argument("--port", type=int, default=5432)
    a.add_argument("--primary-host", required=True)
    a.add_argument("--primary-port", type=int, default=5432)
    a.add_argument("--application-name")
    a.set_defaults(func=init_standby)
    for name, func in (("start", start), ("stop", stop), ("status", status)):
        a = sub.add_parser(name)
        a.add_argument("--dir", required=True)
        if name == "stop":
            a.add_argument("--mode", choices=["smart", "fast", "immediate"], default="fast")
        a.set_defaults(func=func)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
