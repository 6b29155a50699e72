"""What the sandbox's modules share (sandbox.py, patroni_cluster.py): the error they raise, bounded
waits, log tails, a small HTTP client, free ports and addresses, and process groups stopped with
a bounded grace. Debian's python3, standard library only.
"""
import json
import os
import signal
import socket
import time
import urllib.error
import urllib.request


class SandboxError(RuntimeError):
    pass


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, predicate, timeout, interval=0.2, proc=None, log=None):
    """Polls `predicate` until it is true; raises SandboxError after `timeout` seconds or when
    `proc` has exited (with the tail of `log`)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        if proc is not None and proc.poll() is not None:
            raise SandboxError(f"{what}: the process exited ({proc.returncode})\n{tail(log)}")
        if time.monotonic() > deadline:
            raise SandboxError(f"{what}: not ready after {timeout:.0f} s\n{tail(log)}")
        time.sleep(interval)


def tail(path, lines=30):
    if not path or not os.path.exists(path):
        return ""
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-lines:])


def tcp_open(host, port):
    with socket.create_connection((host, port), timeout=1):
        return True


def http(method, url, body=None, token=None, timeout=10):
    """(status, parsed JSON or text). Never raises on an HTTP error status."""
    data = None
    headers = {}
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = "Bearer " + token
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    text = raw.decode(errors="replace")
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text


def address_free(host, port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As PostgreSQL binds: connections of a previous run in TIME_WAIT do not count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def group_alive(pgid):
    """True while a process of the group runs. Zombies do not count: a group whose leader's
    parent has exited (a sandbox started by an earlier `up`) is reaped only when PID 1 gets to
    it, and on these machines that can take seconds."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        names = os.listdir("/proc")
    except OSError:
        return True
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # After the command's name: state, ppid, pgrp, ...
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


def stop_group(pgid, grace=10, first=signal.SIGTERM):
    """Signals a process group, waits up to `grace` s for it to go, then SIGKILLs it."""
    stop_groups([pgid], grace, first)


def stop_groups(pgids, grace=10, first=signal.SIGTERM):
    """Signals several process groups at once, waits up to `grace` s for all of them to go, then
    SIGKILLs those left. At once, because some stop faster together: the members of a Patroni
    cluster stopped one by one would each fail over to the next for nothing."""
    left = []
    for pgid in pgids:
        try:
            os.killpg(pgid, first)
            left.append(pgid)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while left and time.monotonic() < deadline:
        for pgid in list(left):
            # Reap our own child if it is one, so it does not linger as a zombie.
            try:
                os.waitpid(pgid, os.WNOHANG)
            except ChildProcessError:
                pass
            if not group_alive(pgid):
                left.remove(pgid)
        if left:
            time.sleep(0.1)
    for pgid in left:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
