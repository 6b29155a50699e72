#!/usr/bin/python3
"""Proves the operations files work, with the real tools:

1. `promtool check rules` accepts ops/alerts/replica-autoscaler.rules.yml and `promtool test rules`
   passes its unit tests (each alert fires on its condition, after its `for`, and not otherwise);
2. the dashboard (ops/grafana/replica-autoscaler.json) uses only metrics docs/metrics.md defines,
   covers every one of them, and each of its queries runs on VictoriaMetrics and returns data for
   series shaped like the service's;
3. a real vmalert loads the rules against a VictoriaMetrics started here, evaluates them without
   error, and raises exactly the alerts the loaded series call for.

    tests/deploy/ops_test.py            (needs promtool, victoria-metrics, vmalert)

Everything runs on 127.0.0.1 with free ports and a temporary directory, and is stopped at the end.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RULES = os.path.join(SRC, "ops", "alerts", "replica-autoscaler.rules.yml")
RULE_TESTS = os.path.join(SRC, "ops", "alerts", "replica-autoscaler.rules.test.yml")
DASHBOARD = os.path.join(SRC, "ops", "grafana", "replica-autoscaler.json")
METRICS_DOC = os.path.join(SRC, "docs", "metrics.md")

failures = []


def check(what, ok, detail=""):
    print(("ok: " if ok else "FAIL: ") + what + ("" if ok or not detail else f" — {detail}"), flush=True)
    if not ok:
        failures.append(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url, data=None, timeout=10):
    req = urllib.request.Request(url, data=data)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read().decode()


def wait_http(url, proc, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            http(url, timeout=2)
            return True
        except OSError:
            time.sleep(0.2)
    return False


def start(argv, log_path):
    log = open(log_path, "wb")
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)


def stop(proc):
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def contract_metrics():
    """Metric names defined by docs/metrics.md (first column of its tables)."""
    names = set(re.findall(r"^\| `(replica_autoscaler_[a-z_]+)` \|", open(METRICS_DOC).read(), re.M))
    return names


def contract_histograms():
    """The histograms among them (their type column), whose _bucket/_sum/_count series are theirs."""
    return set(re.findall(r"^\| `(replica_autoscaler_[a-z_]+)` \| histogram \|", open(METRICS_DOC).read(), re.M))


def base_name(name, histograms):
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in histograms:
            return name[: -len(suffix)]
    return name


# ---- the series the service will export, in a troubled state ------------------------------------
def fixture(now):
    """Prometheus text lines with millisecond timestamps covering the last 30 minutes.

    Cluster "main" is in trouble (a stalled loop, failed scale-ups in az2, one lagging replica, no
    instances quota, a forced drain, fewer ready replicas than desired, a replica not serving 15
    minutes after the decision to create it); cluster "calm" is healthy.
    """
    lines = []
    step = 30
    start_t = now - 1800
    hist_buckets = ["1", "5", "10", "30", "60", "120", "300", "600", "1200", "1800", "3600", "+Inf"]

    def put(name, labels, value, t):
        lab = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        lines.append(f"{name}{{{lab}}} {value} {int(t * 1000)}")

    for i in range(0, 1800 // step + 1):
        t = start_t + i * step
        k = i  # samples so far
        # The loop stopped 20 minutes ago.
        put("replica_autoscaler_last_successful_cycle_timestamp_seconds", {"instance": "svc:8080"},
            min(t, now - 1200), t)
        for cluster, desired, ready in (("main", 4, 2), ("calm", 2, 2)):
            put("replica_autoscaler_desired_replicas", {"cluster": cluster}, desired, t)
            for phase in ("creating", "booting", "catching_up", "ready", "ejected", "draining", "deleting", "failed"):
                n = ready if phase == "ready" else (desired - ready if phase == "creating" else 0)
                put("replica_autoscaler_replicas", {"cluster": cluster, "phase": phase}, n, t)
            put("replica_autoscaler_decisions_total", {"cluster": cluster, "direction": "up"}, k // 20, t)
            put("replica_autoscaler_decisions_total", {"cluster": cluster, "direction": "down"}, 0, t)
            for verdict in ("scale_up", "hold"):
                put("replica_autoscaler_policy_triggers_total",
                    {"cluster": cluster, "policy": "sessions", "verdict": verdict}, k * (2 if verdict == "hold" else 1), t)
            # provisioning histogram: one observation per minute per phase
            for phase, secs in (("volume", 40), ("server", 70), ("postgres", 8), ("catch_up", 25), ("admit", 2), ("total", 150)):
                count = k // 2
                for le in hist_buckets:
                    fits = le == "+Inf" or float(le) >= secs
                    put("replica_autoscaler_provisioning_phase_duration_seconds_bucket",
                        {"cluster": cluster, "phase": phase, "le": le}, count if fits else 0, t)
                put("replica_autoscaler_provisioning_phase_duration_seconds_sum", {"cluster": cluster, "phase": phase}, count * secs, t)
                put("replica_autoscaler_provisioning_phase_duration_seconds_count", {"cluster": cluster, "phase": phase}, count, t)
        # main: three quota failures in az2 within the last 10 minutes
        put("replica_autoscaler_provisioning_failures_total", {"cluster": "main", "zone": "az2", "reason": "quota"},
            0 if t < now - 600 else (1 if t < now - 400 else (2 if t < now - 200 else 3)), t)
        put("replica_autoscaler_provisioning_failures_total", {"cluster": "calm", "zone": "az1", "reason": "capacity"}, 0, t)
        put("replica_autoscaler_quota_remaining", {"cluster": "main", "resource": "instances"}, 0, t)
        put("replica_autoscaler_quota_remaining", {"cluster": "calm", "resource": "instances"}, 12, t)
        put("replica_autoscaler_forced_drains_total", {"cluster": "main"}, 0 if t < now - 900 else 1, t)
        put("replica_autoscaler_forced_drains_total", {"cluster": "calm"}, 0, t)
        for instance, leading in (("svc-a:8080", 1), ("svc-b:8080", 0)):
            put("replica_autoscaler_leader", {"instance": instance}, leading, t)
        for cluster, blocked in (("main", 1), ("calm", 0)):
            put("replica_autoscaler_creation_blocked", {"cluster": cluster, "reason": "lagging"}, blocked, t)
        for cluster, replica, lag_s, lag_b in (("main", "main-replica-a1", 180, 3 << 30), ("main", "main-replica-b2", 0.4, 8192),
                                               ("calm", "calm-replica-c3", 0.2, 4096)):
            put("replica_autoscaler_replica_lag_seconds", {"cluster": cluster, "replica": replica}, lag_s, t)
            put("replica_autoscaler_replica_lag_bytes", {"cluster": cluster, "replica": replica}, lag_b, t)
        # service-level objectives: both clusters at the defaults (10 minutes, 1 second)
        tts_buckets = ["15", "30", "60", "90", "120", "180", "240", "300", "420", "600", "900", "1200", "1800",
                       "3600", "+Inf"]
        for cluster, secs in (("main", 480), ("calm", 200)):
            put("replica_autoscaler_time_to_serve_budget_seconds", {"cluster": cluster}, 600, t)
            put("replica_autoscaler_replay_lag_alert_seconds", {"cluster": cluster}, 1, t)
            count = k // 10
            for le in tts_buckets:
                fits = le == "+Inf" or float(le) >= secs
                put("replica_autoscaler_time_to_serve_seconds_bucket", {"cluster": cluster, "le": le},
                    count if fits else 0, t)
            put("replica_autoscaler_time_to_serve_seconds_sum", {"cluster": cluster}, count * secs, t)
            put("replica_autoscaler_time_to_serve_seconds_count", {"cluster": cluster}, count, t)
        # main-replica-d4 was decided 15 minutes ago and still does not serve; calm-replica-e5 1 minute ago
        if t >= now - 900:
            put("replica_autoscaler_replica_pending_seconds", {"cluster": "main", "replica": "main-replica-d4"},
                t - (now - 900), t)
        if t >= now - 60:
            put("replica_autoscaler_replica_pending_seconds", {"cluster": "calm", "replica": "calm-replica-e5"},
                t - (now - 60), t)
        for cluster, zone, latency in (("main", "az1", 0.0008), ("main", "az2", 0.031), ("calm", "az1", 0.0011)):
            put("replica_autoscaler_zone_latency_seconds", {"cluster": cluster, "zone": zone}, latency, t)
        for le, n in (("0.05", k), ("0.5", 3 * k), ("5", 4 * k), ("60", 4 * k), ("+Inf", 4 * k)):
            put("replica_autoscaler_reconcile_duration_seconds_bucket", {"le": le}, n, t)
        put("replica_autoscaler_reconcile_duration_seconds_sum", {}, 0.8 * k, t)
        put("replica_autoscaler_reconcile_duration_seconds_count", {}, 4 * k, t)
        put("replica_autoscaler_errors_total", {"component": "cloud", "kind": "quota"}, k // 10, t)
        put("replica_autoscaler_cloud_requests_total", {"service": "compute", "method": "POST", "code": "403"}, k // 10, t)
        put("replica_autoscaler_cloud_requests_total", {"service": "compute", "method": "GET", "code": "200"}, 10 * k, t)
        put("replica_autoscaler_dataplane_requests_total", {"method": "GET", "code": "200"}, 5 * k, t)
    return "\n".join(lines) + "\n"


EXPECTED_ALERTS = {
    # name -> label subset that must match one active alert
    "ReplicaAutoscalerLoopStalled": {"instance": "svc:8080"},
    "ReplicaAutoscalerProvisioningFailures": {"cluster": "main", "zone": "az2", "reason": "quota"},
    "ReplicaAutoscalerReplicaLagHigh": {"cluster": "main", "replica": "main-replica-a1"},
    "ReplicaAutoscalerReplicaLagBytesHigh": {"cluster": "main", "replica": "main-replica-a1"},
    "ReplicaAutoscalerQuotaExhausted": {"cluster": "main", "resource": "instances"},
    "ReplicaAutoscalerForcedDrains": {"cluster": "main"},
    "ReplicaAutoscalerBelowDesired": {"cluster": "main"},
    "ReplicaAutoscalerCreationBlocked": {"cluster": "main", "reason": "lagging"},
    "ReplicaAutoscalerReplayLagOverThreshold": {"cluster": "main", "replica": "main-replica-a1"},
    "ReplicaAutoscalerTimeToServeBudget": {"cluster": "main", "replica": "main-replica-d4"},
}


def main():
    for tool in ("promtool", "victoria-metrics", "vmalert"):
        if not shutil.which(tool):
            print(f"FAIL: {tool} not found (scripts/setup.sh installs it)")
            return 1

    # 1. promtool
    r = subprocess.run(["promtool", "check", "rules", RULES], capture_output=True, text=True, timeout=60)
    check("promtool check rules", r.returncode == 0, r.stdout + r.stderr)
    r = subprocess.run(["promtool", "test", "rules", os.path.basename(RULE_TESTS)], capture_output=True,
                       text=True, timeout=120, cwd=os.path.dirname(RULE_TESTS))
    check("promtool test rules (every alert fires on its condition, after its for, and only then)",
          r.returncode == 0, r.stdout + r.stderr)

    # 2. the dashboard against the contract
    contract = contract_metrics()
    check("docs/metrics.md defines the 22 metrics of the contract", len(contract) == 22, sorted(contract))
    histograms = contract_histograms()
    check("docs/metrics.md's histograms are the three the service exports", histograms == {
        "replica_autoscaler_provisioning_phase_duration_seconds", "replica_autoscaler_reconcile_duration_seconds",
        "replica_autoscaler_time_to_serve_seconds"}, sorted(histograms))
    dash = json.load(open(DASHBOARD))
    exprs = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            exprs.append((p["title"], t["expr"]))
    used = set()
    for _, e in exprs:
        used |= {base_name(n, histograms) for n in re.findall(r"replica_autoscaler_[a-z_]+", e)}
    check("dashboard uses only metrics of the contract", used <= contract, sorted(used - contract))
    check("dashboard shows every metric of the contract", contract <= used, sorted(contract - used))
    ids = [p["id"] for p in dash["panels"]]
    check("dashboard panel ids are unique", len(ids) == len(set(ids)))
    check("dashboard has a datasource variable (no hard-coded datasource)",
          any(v["type"] == "datasource" for v in dash["templating"]["list"]) and
          all(t.get("datasource", {}).get("uid") == "${datasource}" for p in dash["panels"] for t in p.get("targets", [])))
    rules_text = open(RULES).read()
    alert_metrics = {base_name(n, histograms) for n in re.findall(r"replica_autoscaler_[a-z_]+", rules_text)}
    check("alert rules use only metrics of the contract", alert_metrics <= contract, sorted(alert_metrics - contract))

    work = tempfile.mkdtemp(prefix="ra-ops-test-")
    vm = alert = None
    try:
        vm_port, alert_port = free_port(), free_port()
        vm = start(["victoria-metrics", f"-httpListenAddr=127.0.0.1:{vm_port}", f"-storageDataPath={work}/vm",
                    "-retentionPeriod=1d", "-search.latencyOffset=0s", "-search.disableCache"], f"{work}/vm.log")
        base = f"http://127.0.0.1:{vm_port}"
        check("VictoriaMetrics started", wait_http(base + "/health", vm, 30), open(f"{work}/vm.log").read()[-2000:])
        if failures:
            return 1
        now = int(time.time())
        http(base + "/api/v1/import/prometheus", fixture(now).encode())
        http(base + "/internal/force_flush")

        # every dashboard query runs and returns data
        for title, e in exprs:
            q = e.replace("$cluster", ".*").replace("$__rate_interval", "5m")
            try:
                body = json.loads(http(base + "/api/v1/query?" + urllib.parse.urlencode({"query": q, "time": now})))
                ok = body.get("status") == "success" and len(body["data"]["result"]) > 0
                check(f"dashboard query returns data: {title}", ok, f"{q} -> {json.dumps(body)[:300]}")
            except OSError as err:
                check(f"dashboard query returns data: {title}", False, f"{q} -> {err}")

        # 3. vmalert
        r = subprocess.run(["vmalert", f"-rule={RULES}", "-dryRun", "-loggerLevel=ERROR"], capture_output=True,
                           text=True, timeout=60)
        check("vmalert -dryRun accepts the rules", r.returncode == 0, r.stdout + r.stderr)
        alert = start(["vmalert", f"-rule={RULES}", f"-datasource.url={base}", f"-httpListenAddr=127.0.0.1:{alert_port}",
                       "-evaluationInterval=2s", "-notifier.url=http://127.0.0.1:1", "-rule.validateExpressions"],
                      f"{work}/vmalert.log")
        abase = f"http://127.0.0.1:{alert_port}"
        check("vmalert started with the rules", wait_http(abase + "/api/v1/rules", alert, 30),
              open(f"{work}/vmalert.log").read()[-2000:])
        if failures:
            return 1
        # Groups evaluate every 30 s (the file's interval); the first evaluation happens at start.
        deadline = time.monotonic() + 90
        active = []
        while time.monotonic() < deadline:
            active = json.loads(http(abase + "/api/v1/alerts"))["data"]["alerts"] or []
            names = {a["name"] for a in active}
            if set(EXPECTED_ALERTS) <= names:
                break
            time.sleep(1)
        groups = json.loads(http(abase + "/api/v1/rules"))["data"]["groups"]
        rules = [rl for g in groups for rl in g["rules"]]
        check("vmalert loaded all 12 rules", len(rules) == 12, [rl["name"] for rl in rules])
        errors = [(rl["name"], rl.get("lastError")) for rl in rules if rl.get("lastError")]
        check("every rule evaluated without error", not errors, errors)
        for name, labels in EXPECTED_ALERTS.items():
            match = [a for a in active if a["name"] == name and all(a["labels"].get(k) == v for k, v in labels.items())]
            check(f"{name} is active for {labels}", bool(match),
                  [(a["name"], a["labels"], a["state"]) for a in active])
        calm = [(a["name"], a["labels"]) for a in active if a["labels"].get("cluster") == "calm"]
        check("no alert for the healthy cluster", not calm, calm)
        check("ReplicaAutoscalerNoLeader is not active while one instance leads", all(
            a["name"] != "ReplicaAutoscalerNoLeader" for a in active))
        check("ReplicaAutoscalerAbsent is not active while the service exports", all(
            a["name"] != "ReplicaAutoscalerAbsent" for a in active))
        firing = {a["name"] for a in active if a["state"] == "firing"}
        check("alerts without a 'for' fire at once (provisioning failures, forced drains, time to serve)",
              {"ReplicaAutoscalerProvisioningFailures", "ReplicaAutoscalerForcedDrains",
               "ReplicaAutoscalerTimeToServeBudget"} <= firing, sorted(firing))
        late = [a["labels"].get("replica") for a in active if a["name"] == "ReplicaAutoscalerTimeToServeBudget"]
        check("only the replica past its budget is late", late == ["main-replica-d4"], late)
        over = sorted(a["labels"].get("replica") for a in active
                      if a["name"] == "ReplicaAutoscalerReplayLagOverThreshold")
        check("only the replica over the replay-lag threshold alerts (0.4 s and 0.2 s do not)",
              over == ["main-replica-a1"], over)
    finally:
        stop(alert)
        stop(vm)
        if failures:
            for log in ("vm.log", "vmalert.log"):
                path = os.path.join(work, log)
                if os.path.exists(path):
                    print(f"--- {log} (tail)")
                    print(open(path, errors="replace").read()[-3000:])
        shutil.rmtree(work, ignore_errors=True)

    print(f"{len(failures)} failed" if failures else "ops test passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
