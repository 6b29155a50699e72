#!/usr/bin/python3
"""End to end: the HTTP API and the client commands against a running service.

- 401 without a token or with a wrong one; 403 for the read-only token on admin routes (through
  the API and through the CLI); 400 with a message for a bad body
- a manual count through the API (PUT override) is reached, and cleared
- a manual count through the CLI (`scale orders N --wait`) is reached, `status --json` shows it
- pause: a surge of sessions does not scale the cluster while paused; resume: it does
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_common import check, cli, eventually, log, no_orphans, run, scenario, settled  # noqa: E402

C = "/v1/clusters/orders"


def status(sb):
    return sb.cluster_status()


def body(sb, args):
    eventually("one serving replica", lambda: settled(status(sb), 1), 150)
    check(True, "the service built its first replica")

    # --- authentication and roles
    code, _ = sb.api("GET", "/v1/clusters", token="")
    check(code == 401, f"GET /v1/clusters without a token: 401 (got {code})")
    code, _ = sb.api("GET", "/v1/clusters", token="not-the-token-0123456789")
    check(code == 401, f"GET /v1/clusters with a wrong token: 401 (got {code})")
    code, _ = sb.api("GET", "/v1/clusters", role="read-only")
    check(code == 200, f"GET /v1/clusters with the read-only token: 200 (got {code})")
    code, _ = sb.api("PUT", C + "/override", {"replicas": 2}, role="read-only")
    check(code == 403, f"PUT override with the read-only token: 403 (got {code})")
    code, _ = sb.api("POST", C + "/pause", {"reason": "x"}, role="read-only")
    check(code == 403, f"POST pause with the read-only token: 403 (got {code})")
    code, out = sb.api("PUT", C + "/override", {"replicas": "two"})
    check(code == 400 and "replicas" in json.dumps(out), f"PUT override with replicas \"two\": 400 naming the field ({code} {out})")
    code, out = sb.api("PUT", C + "/override", {"replicas": 99})
    check(code == 400, f"PUT override above max_replicas: 400 ({code} {out})")
    code, _ = sb.api("GET", "/v1/clusters/nosuch", role="read-only")
    check(code == 404, f"an unknown cluster: 404 (got {code})")
    rc, out = cli(sb, "scale", "orders", "2", role="read-only", timeout=30)
    check(rc == 1 and ("403" in out or "forbidden" in out.lower()),
          f"`scale` with the read-only token fails with 403 (exit {rc}: {out.strip()[:200]})")

    # --- manual count through the API
    code, out = sb.api("PUT", C + "/override", {"replicas": 2, "ttl": "10m", "reason": "e2e api"})
    check(code == 200, f"PUT override 2: 200 ({code} {out})")
    eventually("2 serving replicas after the API's override", lambda: settled(status(sb), 2), 120)
    st = status(sb)
    check((st.get("manual_override") or {}).get("replicas") == 2, "status shows the manual override of 2")

    # --- manual count through the CLI
    log("replica-autoscaler scale orders 3 --wait")
    rc, out = cli(sb, "scale", "orders", "3", "--wait", "--timeout", "2m")
    print(out[-1500:])
    check(rc == 0, f"`scale orders 3 --wait` exits 0 once 3 serve (exit {rc})")
    rc, out = cli(sb, "status", "orders", "--json", role="read-only", timeout=30)
    check(rc == 0, f"`status orders --json` exits 0 ({rc})")
    parsed = json.loads(out)
    parsed = parsed[0] if isinstance(parsed, list) else parsed
    check(parsed.get("serving") == 3, f"`status --json` shows 3 serving (got {parsed.get('serving')})")
    rc, out = cli(sb, "status", role="read-only", timeout=30)
    check(rc == 0 and "orders" in out, "`status` prints a table with the cluster")

    # --- clear: the policy (no load: 1 replica) takes over again
    rc, out = cli(sb, "scale", "orders", "--clear", timeout=30)
    check(rc == 0, f"`scale orders --clear` exits 0 ({rc}: {out.strip()[:200]})")
    eventually("back to 1 replica once the override is cleared", lambda: settled(status(sb), 1), 150)
    check(True, "the policy took over after the override was cleared")

    # --- pause / resume
    rc, out = cli(sb, "pause", "orders", "--reason", "e2e pause", timeout=30)
    check(rc == 0, f"`pause orders` exits 0 ({rc}: {out.strip()[:200]})")
    check(status(sb).get("paused") is True, "status shows paused")
    load = scenario.Load(sb, 16, round_seconds=5).start()
    try:
        time.sleep(15)
        st = status(sb)
        check(st.get("desired") == 1 and len(st.get("replicas", [])) == 1,
              f"while paused, 16 sessions do not scale (desired {st.get('desired')}, "
              f"replicas {len(st.get('replicas', []))})")
        rc, out = cli(sb, "resume", "orders", timeout=30)
        check(rc == 0, f"`resume orders` exits 0 ({rc})")
        eventually("scale-up after resume", lambda: status(sb).get("desired", 0) >= 2, 60)
        check(True, "after resume the same load scales the cluster up")
    finally:
        load.stop()
    check(load.failed == 0 and load.aborted == 0, f"no query failed ({load.summary()})")

    rc, out = cli(sb, "events", "--cluster", "orders", "--json", role="read-only", timeout=30)
    check(rc == 0, f"`events --json` exits 0 ({rc})")
    text = out.lower()
    check("pause" in text and "resume" in text, "the events show the pause and the resume")
    eventually("back to 1 replica after the load", lambda: settled(status(sb), 1), 180)
    eventually("the cloud holds one replica's server and volume", lambda: no_orphans(sb, 1), 60)
    check(True, "no orphan server or volume")


if __name__ == "__main__":
    sys.exit(run("e2e_api", body, settings={"LOOP_INTERVAL": "1s", "SCALE_DOWN_WINDOW": "5s",
                                             "SESSIONS_WINDOW": "4s"}, budget=420))
