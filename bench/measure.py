"""What the benchmarks read from a running service (bench/cycle_cpu.py, bench/scale.py): its
process CPU and memory from /proc, the reconcile-duration histogram from its /metrics, and
latency percentiles. Standard library only.
"""
import re
import os
import urllib.request

HIST = "replica_autoscaler_reconcile_duration_seconds"
TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid):
    """utime + stime of the whole process (all threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # fields 14 and 15 of proc(5)


def proc_memory(pid):
    """(VmRSS, VmHWM) of the process in bytes, from /proc/<pid>/status."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024  # kB
    return out["VmRSS"], out["VmHWM"]


def histogram(api_url, timeout=10):
    """(count, {le: cumulative count}) of the reconcile-duration histogram on api_url/metrics."""
    with urllib.request.urlopen(api_url + "/metrics", timeout=timeout) as r:
        text = r.read().decode()
    count, buckets = None, {}
    for line in text.splitlines():
        if line.startswith(HIST + "_count"):
            count = float(line.split()[-1])
        elif line.startswith(HIST + "_bucket"):
            m = re.search(r'le="([^"]+)"', line)
            buckets[float("inf") if m.group(1) == "+Inf" else float(m.group(1))] = float(line.split()[-1])
    if count is None:
        raise RuntimeError(f"{HIST}_count not on /metrics")
    return count, buckets


def hist_median(b0, b1):
    """The median of the observations between two scrapes, interpolated within its bucket."""
    les = sorted(b1)
    diff = [(le, b1[le] - b0.get(le, 0)) for le in les]
    total = diff[-1][1] if diff else 0
    if total <= 0:
        return None
    half, prev_le, prev_n = total / 2, 0.0, 0.0
    for le, n in diff:
        if n >= half:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * (half - prev_n) / max(n - prev_n, 1e-9)
        prev_le, prev_n = le, n
    return None


def percentile(values, p):
    """The p-th percentile (0..100) of values, nearest rank; None for no values."""
    if not values:
        return None
    s = sorted(values)
    rank = max(1, min(len(s), int(-(-p * len(s) // 100))))  # ceil(p/100 * n), within 1..n
    return s[rank - 1]


def thread_cpu(pid):
    """{thread id: utime + stime in seconds} of each thread alive now (/proc/<pid>/task)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            out[int(tid)] = proc_cpu(f"{pid}/task/{tid}")
        except (OSError, ValueError, IndexError):
            pass  # gone meanwhile
    return out
