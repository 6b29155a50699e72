#!/usr/bin/python3
"""End to end: kill -9 the service mid-provisioning and mid-drain; restarted, it adopts what
exists, converges, and leaves no orphan server or volume.

1. one replica serves; the simulator's server_build latency is raised to 5 s; pgbench -C -S
   -c 16 asks for 3; once a new server is in BUILD, SIGKILL; restart; 3 serve; the cloud holds
   exactly 3 servers and 3 volumes (besides the donor's); no query failed
2. a manual count of 2; two psql sessions sleep through HAProxy (one on each replica, leastconn); a manual count of
   1 and a pause; once a replica drains, SIGKILL; restart; the manual count and the pause are
   still in effect (kept in state.json beside the journal); the drained replica stays in drain
   in HAProxy (the restarted service does not re-admit it) and gets no new session while pgbench
   connects; the sleeping sessions end; 1 replica serves; the cloud holds 1 server and 1 volume;
   resume and clear the count
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_common import check, eventually, log, no_orphans, owned_resources, run, scenario, settled  # noqa: E402

C = "/v1/clusters/orders"


def status(sb):
    return sb.cluster_status()


def restart(sb):
    log("kill -9 the service")
    sb.kill_service()
    check(not sb.service_alive(), "the service is gone")
    time.sleep(1)
    sb.start_service()
    log("the service restarted")


def body(sb, args):
    eventually("one serving replica", lambda: settled(status(sb), 1), 150)

    # --- mid-provisioning. Load, not a manual count, asks for the replicas, so that pgbench runs
    # through the kill and the restart (no query may fail) and the restarted service's policy has
    # to see the surge again by itself.
    sb.cloud("POST", "/control/profile", {"latency": {"server_build": 5}})
    load = scenario.Load(sb, 16, round_seconds=5).start()
    try:
        def building():
            servers, _ = owned_resources(sb)
            return [s for s in servers if s["status"] == "BUILD"]
        eventually("a server of the surge in BUILD", building, 60, interval=0.2)
        restart(sb)
        eventually("3 serving replicas after the restart", lambda: settled(status(sb), 3), 150)
        check(True, "the restarted service adopted or rebuilt what was in BUILD and reached 3")
        eventually("3 servers and 3 volumes in the cloud", lambda: no_orphans(sb, 3), 60)
        check(True, "no orphan after the kill mid-provisioning")
    finally:
        load.stop()
    check(load.failed == 0 and load.aborted == 0, f"no query failed across the restart ({load.summary()})")
    sb.cloud("POST", "/control/profile", {"latency": {"server_build": 0.3}})
    # From here a manual count decides, and it survives the restart below: what the policy wants
    # (the surge's samples may still be in its window) does not matter.
    code, out = sb.api("PUT", C + "/override", {"replicas": 2, "reason": "e2e restart"})
    check(code == 200, f"PUT override 2 ({code} {out})")
    eventually("2 serving replicas", lambda: settled(status(sb), 2), 120)

    # --- mid-drain
    fe = sb.state["frontend_port"]
    def sleeper():
        return subprocess.Popen(["psql", "-X", "-h", "127.0.0.1", "-p", str(fe), "-U", "postgres", "-d",
                                 "postgres", "-c", "SELECT pg_sleep(120)"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sleepers = [sleeper() for _ in range(2)]
    try:
        # HAProxy may send both to one replica (a reload just behind us restarts its balancing):
        # one more sleeper a second, at most 8, until each replica holds one.
        def each_has_a_sleeper():
            if all(s["scur"] >= 1 for s in sb.backend_servers().values()):
                return True
            if len(sleepers) < 8 and time.monotonic() - each_has_a_sleeper.last >= 1:
                sleepers.append(sleeper())
                each_has_a_sleeper.last = time.monotonic()
            return False
        each_has_a_sleeper.last = time.monotonic()
        eventually("a sleeping session on each replica", each_has_a_sleeper, 20, interval=0.2)
        code, out = sb.api("PUT", C + "/override", {"replicas": 1, "reason": "e2e drain"})
        check(code == 200, f"PUT override 1 ({code} {out})")
        # A pause as well: both are operator intent that the cloud cannot show, kept in state.json
        # and read back on start. A pause does not hold a manual count, so the drain goes on.
        code, out = sb.api("POST", C + "/pause", {"reason": "e2e restart"})
        check(code == 200, f"POST pause ({code} {out})")

        def draining():
            for name, s in sb.backend_servers().items():
                if s["status"].startswith("DRAIN") or (s.get("admin", 0) & 8):
                    return name
            return None
        victim = eventually("a replica in drain in HAProxy", draining, 60, interval=0.2)
        log(f"{victim} drains")
        restart(sb)
        st = status(sb)
        check((st.get("manual_override") or {}).get("replicas") == 1
              and st["manual_override"].get("reason") == "e2e drain",
              f"after the restart the manual count of 1 is still in effect ({st.get('manual_override')})")
        check(st.get("paused") is True and st.get("paused_reason") == "e2e restart",
              f"after the restart the cluster is still paused ({st.get('paused')}, {st.get('paused_reason')!r})")
        time.sleep(4)  # a few cycles of the restarted service
        servers = sb.backend_servers()
        check(victim in servers and (servers[victim]["status"].startswith("DRAIN") or servers[victim].get("admin", 0) & 8),
              f"after the restart {victim} is still in drain ({servers.get(victim)})")
        before = servers[victim]["stot"]
        r = sb.pgbench(clients=2, seconds=4)  # a manual count of 1 decides, whatever the load
        check(r["ok"], f"pgbench through HAProxy while {victim} drains ({r['processed']} tx, {r['failed']} failed)")
        after = sb.backend_servers().get(victim, {}).get("stot", before)
        check(after == before, f"{victim} got no new session while draining ({before} -> {after})")
    finally:
        for p in sleepers:
            p.kill()
            p.wait()
    eventually("1 serving replica once the sessions ended", lambda: settled(status(sb), 1), 120)
    survivor = status(sb)["replicas"][0]["name"]
    check(survivor != victim, f"the drained replica left, {survivor} stays")
    eventually("1 server and 1 volume in the cloud", lambda: no_orphans(sb, 1), 60)
    check(True, "no orphan after the kill mid-drain")
    check(set(sb.backend_servers()) == {survivor}, "HAProxy's backend holds only the survivor")

    code, out = sb.api("POST", C + "/resume", {})
    check(code == 200, f"POST resume ({code} {out})")
    code, out = sb.api("DELETE", C + "/override", {})
    check(code == 200, f"DELETE override ({code} {out})")
    st = status(sb)
    check(st.get("paused") is False and st.get("manual_override") is None,
          f"resumed and the manual count cleared ({st.get('paused')}, {st.get('manual_override')})")
    with open(sb.path("service", "state.json")) as f:
        kept = f.read()
    check("e2e drain" not in kept and "e2e restart" not in kept,
          f"state.json no longer holds the count or the pause ({kept.strip()[:200]})")

    # --- a pause that cannot be saved is refused (503), not in force
    state = sb.path("service", "state.json")
    os.mkdir(state + ".tmp")  # in the way of the atomic write, for root too
    try:
        code, out = sb.api("POST", C + "/pause", {"reason": "unsaved"})
        check(code == 503 and "not in force" in str(out),
              f"a pause whose state.json write fails answers 503 ({code} {str(out)[:200]})")
        check(status(sb).get("paused") is False, "and the cluster is not paused")
    finally:
        os.rmdir(state + ".tmp")
    code, out = sb.api("POST", C + "/pause", {"reason": "saved"})
    check(code == 200 and status(sb).get("paused") is True, f"once writable, the pause is saved ({code})")

    # --- a corrupt state.json: serve refuses to start rather than drop the pause silently
    sb.kill_service()
    with open(state, "w") as f:
        f.write('{"version": 1, "clusters": {"' + C.rsplit("/", 1)[-1] + '": {"paus')
    r = subprocess.run([sb.binary, "serve", "--config", sb.state["config"]], capture_output=True,
                       text=True, timeout=30, stdin=subprocess.DEVNULL)
    check(r.returncode == 2 and "state.json" in r.stderr and "move it aside" in r.stderr,
          f"serve refuses a corrupt state.json (exit {r.returncode}: {r.stderr.strip()[:300]})")


if __name__ == "__main__":
    sys.exit(run("e2e_restart", body, settings={"LOOP_INTERVAL": "1s", "SCALE_DOWN_WINDOW": "5s",
                                                 "DRAIN_TIMEOUT": "3m"}, budget=420))
