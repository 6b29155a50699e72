"""What happens below the API: volume data on disk and the "virtual machines", which are real
PostgreSQL servers on loopback addresses started by the replica first-boot script.

  snapshot  = a point-in-time copy of the volume's directory (for a volume whose PostgreSQL is
              running, its processes are frozen with SIGSTOP for the copy: crash-consistent,
              like a block-level snapshot of an in-use volume)
  volume    = a clone of a snapshot (cp --reflink=auto: shared blocks where the file system
              can, a plain copy elsewhere)
  server    = a config drive (openstack/latest/meta_data.json, user_data, network_data.json)
              plus the first-boot script run against it, as cloud-init's systemd unit would
"""
import json
import os
import shutil
import signal
import socket
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
import pgctl  # the project's PostgreSQL conventions: user, sockets, binaries (tests/sandbox)

FIRSTBOOT = os.path.join(REPO, "ansible", "roles", "pg_replica", "files", "replica-first-boot.sh")
# KEY=VALUE lines for the first-boot script's environment (app.py --firstboot-env), read at each
# boot: what the image's /etc/default/replica-first-boot holds (e.g. RA_PGBACKREST_STANZA).
FIRSTBOOT_ENV_FILE = None


def firstboot_env():
    """The environment of the first-boot script: ours plus FIRSTBOOT_ENV_FILE's RA_* settings."""
    env = dict(os.environ)
    if not FIRSTBOOT_ENV_FILE or not os.path.exists(FIRSTBOOT_ENV_FILE):
        return env
    with open(FIRSTBOOT_ENV_FILE) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.partition("=")
            if not sep or not key.startswith("RA_") or not key.replace("_", "").isalnum():
                raise ValueError(f"{FIRSTBOOT_ENV_FILE}:{n}: expected RA_NAME=VALUE, not '{line}'")
            env[key] = value
    return env


def address_is_free(addr, port=5432):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((addr, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def postmaster_pid(data_dir):
    try:
        with open(os.path.join(data_dir, "postmaster.pid")) as f:
            pid = int(f.readline().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def children(pid):
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], stdout=subprocess.PIPE,
                         text=True).stdout
    return [int(x) for x in out.split()]


def _copy_tree(src, dst):
    """cp -a --reflink=auto; files that vanish during the copy (a running server's temp files)
    are not errors, anything else is."""
    os.makedirs(dst, exist_ok=True)
    r = subprocess.run(["cp", "-a", "--reflink=auto", src + "/.", dst + "/"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        real = [l for l in r.stderr.splitlines() if "No such file or directory" not in l]
        if real:
            raise RuntimeError("copy failed: " + "; ".join(real[:5]))


def snapshot_copy(src, dst):
    """A crash-consistent copy of `src` into `dst`."""
    pid = postmaster_pid(src)
    frozen = []
    try:
        if pid is not None:
            os.kill(pid, signal.SIGSTOP)  # no new backends while the rest is frozen
            frozen.append(pid)
            for child in children(pid):
                try:
                    os.kill(child, signal.SIGSTOP)
                    frozen.append(child)
                except ProcessLookupError:
                    pass
        _copy_tree(src, dst)
    finally:
        for p in reversed(frozen):
            try:
                os.kill(p, signal.SIGCONT)
            except ProcessLookupError:
                pass
    _same_owner(src, dst)


def _same_owner(src, dst):
    st = os.stat(src)
    if os.geteuid() == 0:
        os.chown(dst, st.st_uid, st.st_gid)
    os.chmod(dst, 0o700)


def clone(src, dst):
    _copy_tree(src, dst)
    _same_owner(src, dst)


def remove(path):
    shutil.rmtree(path, ignore_errors=True)


def write_config_drive(drive, server, user_data, address, network_name):
    """The OpenStack config drive layout (what cloud-init reads from the config-2 disk)."""
    latest = os.path.join(drive, "openstack", "latest")
    os.makedirs(latest, exist_ok=True)
    meta = {
        "uuid": server["id"],
        "name": server["name"],
        "hostname": server["name"],
        "availability_zone": server["availability_zone"],
        "project_id": server["tenant_id"],
        "launch_index": 0,
        "meta": server["metadata"],
        "public_keys": {server["key_name"]: "ssh-ed25519 AAAA... ops"} if server["key_name"] else {},
        "devices": [],
    }
    with open(os.path.join(latest, "meta_data.json"), "w") as f:
        json.dump(meta, f)
    network = {
        "links": [{"id": "tap0", "type": "ovs", "ethernet_mac_address": server["mac"], "mtu": 1450}],
        "networks": [{"id": "network0", "type": "ipv4", "link": "tap0", "ip_address": address,
                      "netmask": "255.0.0.0", "network_id": server["network_id"],
                      "routes": []}],
        "services": [],
    }
    with open(os.path.join(latest, "network_data.json"), "w") as f:
        json.dump(network, f)
    if user_data is not None:
        with open(os.path.join(latest, "user_data"), "wb") as f:
            f.write(user_data)
    with open(os.path.join(latest, "vendor_data.json"), "w") as f:
        f.write("{}")
    os.chmod(drive, 0o755)


def boot(server_dir, drive, data_dir):
    """Runs the first-boot script as a VM's init would; returns (ok, console output)."""
    sock = os.path.join(server_dir, "run")
    os.makedirs(sock, exist_ok=True)
    pgctl.own(sock)
    argv = ["/bin/bash", FIRSTBOOT, "--config-drive", drive, "--data-dir", data_dir,
            "--listen", "network", "--port", "5432", "--socket-dir", sock,
            "--log", os.path.join(server_dir, "postgresql.log"), "--start", "pg_ctl",
            "--wait", "30"]
    user = pgctl.run_user()
    if user:
        argv += ["--pg-user", user]
    try:
        env = firstboot_env()
    except (OSError, ValueError) as e:
        return False, f"cloudsim: first-boot settings: {e}\n"
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=120, env=env)
    with open(os.path.join(server_dir, "console.log"), "a") as f:
        f.write(r.stdout)
    return r.returncode == 0, r.stdout


def shutdown(data_dir):
    """Stops the VM's PostgreSQL (an ACPI shutdown: fast mode, then immediate)."""
    if postmaster_pid(data_dir) is None:
        return
    for mode in ("fast", "immediate"):
        r = subprocess.run(pgctl.as_user([f"{pgctl.PG_BIN}/pg_ctl", "-D", data_dir, "-m", mode,
                                          "-w", "-t", "30", "stop"]),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode == 0:
            return
