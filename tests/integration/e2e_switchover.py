#!/usr/bin/python3
"""End to end (issue #12): a planned Patroni switchover under read load; the service's replicas
follow the new primary, and no query through HAProxy fails outside the switchover itself.

The sandbox in its Patroni mode (pg1 leads, pg2 the candidate, the donor). Three replicas serve
(a manual count of 3). For the whole test: pgbench -C -S through HAProxy, an e2e_pg.Reader (a
new connection through HAProxy every 0.1 s, max(id) of e2e_marker) and an e2e_pg.MarkerWriter
(one row every 0.1 s on whoever is primary). Then switchover('pg2'). Measured and printed:
  (a) the switchover's own duration (request -> pg2 takes writes);
  (b) from the request until all 3 replicas follow pg2 (pg2's pg_stat_replication lists each
      replica's name, its application_name, as streaming) and the service's status shows 3
      serving with primary = pg2, each passing its gate (its detail the session count, not
      "no WAL receiver running for ...");
  (c) the reader's failed queries (count, window relative to the request), pgbench's failed
      transactions and aborted clients.
Asserted:
  - 3 replicas follow pg2 (or were replaced and their replacements serve and follow) within
    FOLLOW_BOUND s of the request;
  - no reader query fails outside [request, switchover end + GRACE s];
  - no value the reader read through HAProxy is missing on the new primary;
  - with the writer stopped: every serving replica's e2e_marker ids are a subset of pg2's at once,
    and equal to them once the replica has replayed pg2's current LSN.

  /usr/bin/python3 tests/integration/e2e_switchover.py --binary build/bin/replica-autoscaler
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_pg  # noqa: E402
from e2e_common import check, eventually, log, run, settled  # noqa: E402

C = "/v1/clusters/orders"
PG_PORT = 5432
REPLICAS = 3
FOLLOW_BOUND = 90   # s from the switchover request until all 3 follow pg2 and serve
GRACE = 5           # s after the switchover ends in which a failed query is still the switchover's
BASELINE = 5        # s of load before the switchover
AFTER = 10          # s of load after the checks: nothing fails once all follow
# The clients stop by themselves after this long at the latest.
MAX_SECONDS = BASELINE + 60 + FOLLOW_BOUND + 60


def replica_names(status):
    return sorted(r["name"] for r in status.get("replicas", []))


def body(sb, args):
    pg1, pg2 = sb.primary_host, f"127.0.{sb.octet}.250"
    pg2_primary = f"{pg2}:{PG_PORT}"
    eventually("the service's primary is pg1", lambda: sb.cluster_status().get("primary") == f"{pg1}:{PG_PORT}", 60)
    code, out = sb.api("PUT", C + "/override", {"replicas": REPLICAS, "reason": "e2e switchover"})
    check(code == 200, f"PUT override {REPLICAS} ({code} {out})")
    t_build = time.monotonic()
    status = eventually(f"{REPLICAS} serving replicas",
                        lambda: (lambda st: st if settled(st, REPLICAS) else None)(sb.cluster_status()),
                        240, interval=1)
    before = replica_names(status)
    log(f"{REPLICAS} serve after {time.monotonic() - t_build:.0f} s: "
        + ", ".join(f"{r['name']} {r.get('address')}" for r in status["replicas"]))
    streaming = e2e_pg.replication_states(pg1)
    check(all(streaming.get(n) == "streaming" for n in before),
          f"the replicas stream from pg1 with their names as application_name ({streaming})")

    pgbench = e2e_pg.PgbenchLoad(sb, clients=4, max_seconds=MAX_SECONDS, tag="switchover")
    pgbench.start()
    # The writer creates e2e_marker on the primary; the reader starts once every replica has it.
    writer = e2e_pg.MarkerWriter(sb, max_seconds=MAX_SECONDS)
    reader = e2e_pg.Reader(sb, max_seconds=MAX_SECONDS)
    for name in before:
        address = next(r["address"] for r in status["replicas"] if r["name"] == name)
        eventually(f"e2e_marker on {name}", lambda: e2e_pg.marker_ids(address) is not None, 15)
    reader.start()
    writer.start()
    time.sleep(BASELINE)
    check(reader.results and not reader.failures(),
          f"the baseline: {reader.summary()} {[f[2] for f in reader.failures()[:3]]}")

    log("switchover to pg2")
    t_req = time.monotonic()
    new = sb.switchover("pg2")
    t_end = time.monotonic()
    check(new["name"] == "pg2", f"pg2 leads and takes writes {new['seconds']:.1f} s after the request")

    # (b) Poll until every replica streams from pg2 and the service shows them serving under pg2.
    first_primary = None
    first_service_follows = None
    first_streaming = {}
    followed = None
    deadline = t_req + FOLLOW_BOUND
    last = ""
    while time.monotonic() < deadline:
        now = time.monotonic()
        try:
            st = sb.cluster_status()
            states = e2e_pg.replication_states(pg2)
        except Exception as e:  # noqa: BLE001 - the service or pg2 answering late
            last = f"(poll error: {e})"
            time.sleep(0.25)
            continue
        if first_primary is None and st.get("primary") == pg2_primary:
            first_primary = now
        for name, state in states.items():
            if state == "streaming" and name not in first_streaming:
                first_streaming[name] = now
        serving = [r["name"] for r in st.get("replicas", []) if r.get("phase") == "serving"]
        last = (f"primary {st.get('primary')}, " + ", ".join(f"{r['name']} {r['phase']} ({r.get('detail')})"
                                                         for r in st.get("replicas", []))
                + f"; on pg2: {states}")
        if first_service_follows is None and st.get("primary") == pg2_primary and settled(st, REPLICAS) \
                and all(e2e_pg.gate_passed(r) for r in st["replicas"]):
            first_service_follows = now
        if (st.get("primary") == pg2_primary and settled(st, REPLICAS)
                and all(states.get(n) == "streaming" for n in serving)
                and all(e2e_pg.gate_passed(r) for r in st["replicas"])):
            followed = now
            break
        time.sleep(0.25)
    check(followed is not None, f"within {FOLLOW_BOUND} s of the request all {REPLICAS} replicas stream from pg2 "
                                f"and serve (last seen: {last})")
    after = replica_names(sb.cluster_status())
    replaced = sorted(set(before) - set(after))
    failed_events = [e for e in sb.events() if e.get("type") == "replica_failed"]
    log(f"followed {followed - t_req:.1f} s after the request; the service's primary was pg2 at "
        f"+{first_primary - t_req:.1f} s, its gate passed all {REPLICAS} at +{first_service_follows - t_req:.1f} s; "
        f"streaming from pg2 at "
        + ", ".join(f"{n} +{t - t_req:.1f} s" for n, t in sorted(first_streaming.items()) if n in after or n in before))
    log(f"replicas replaced: {replaced or 'none'}; replica_failed events: "
        f"{[(e.get('replica'), e.get('message')) for e in failed_events] or 'none'}")

    # The markers: stop the writer, then every serving replica against pg2.
    writer.stop()
    primary_ids = e2e_pg.check_replicas_hold_only_primary_rows(sb, pg2, "pg2")
    committed = set(writer.committed)
    log(f"writer: {len(committed)} rows acknowledged, {writer.errors} failed attempts; "
        f"{len(committed - primary_ids)} acknowledged rows missing on pg2")

    time.sleep(AFTER)
    pgbench.stop()
    reader.stop()
    totals = pgbench.totals()
    read_values = {r[2] for r in reader.results if r[1]}
    final_ids = e2e_pg.marker_ids(pg2) | {0}
    unknown = sorted(v for v in read_values if v not in final_ids)
    failures = reader.failures()
    outside = [f for f in failures if not t_req <= f[0] <= t_end + GRACE]
    inside = [f for f in failures if t_req <= f[0] <= t_end + GRACE]

    print("\n==== e2e_switchover: figures ====")
    print(f"  (a) switchover pg1 -> pg2: {new['seconds']:.1f} s (request -> pg2 takes writes)")
    print(f"  (b) all {REPLICAS} replicas following pg2 and serving: {followed - t_req:.1f} s after the request "
          f"(service's primary = pg2 at +{first_primary - t_req:.1f} s, "
          f"its gate passing all {REPLICAS} under pg2 at +{first_service_follows - t_req:.1f} s; "
          + ", ".join(f"{n} streaming at +{t - t_req:.1f} s" for n, t in sorted(first_streaming.items())
                      if n in after) + ")")
    print(f"      replaced: {replaced or 'none'}")
    print(f"  (c) reader: {reader.summary(origin=t_req)}; {len(inside)} inside [request, end + {GRACE} s], "
          f"{len(outside)} outside")
    for f in failures[:10]:
        print(f"      failed at +{f[0] - t_req:.2f} s: {f[2]}")
    print(f"      {pgbench.summary()}")
    for t, line in pgbench.errors[:10]:
        print(f"      pgbench at +{t - t_req:.2f} s: {line}")
    print(f"      writer: {len(committed)} rows, {writer.errors} failed attempts (on the switchover)")
    print("=================================\n", flush=True)

    check(not outside, f"no query through HAProxy failed outside the switchover "
                       f"({[(round(f[0] - t_req, 2), f[2]) for f in outside[:5]]})")
    check(not unknown, f"every max(id) read through HAProxy is on the new primary ({unknown[:10]} are not)")
    late = [(round(t - t_req, 2), line) for t, line in pgbench.errors if not t_req <= t <= t_end + GRACE]
    check(not late, f"pgbench reported no error outside the switchover ({late[:5]})")
    check(totals["processed"] > 0 and pgbench.rounds[0][0] < t_req and pgbench.rounds[-1][1] > followed + AFTER,
          f"pgbench ran from before the switchover to the end ({pgbench.summary()})")


if __name__ == "__main__":
    sys.exit(run("e2e_switchover", body, settings={"LOOP_INTERVAL": "1s"}, budget=480, scale=1,
                 patroni=True))
