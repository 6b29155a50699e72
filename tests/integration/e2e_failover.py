#!/usr/bin/python3
"""End to end (issue #12): a Patroni failover (kill -9 of the leader) that loses a tail of WAL
one replica already replayed. The service must fail that replica as diverged at once, take it
out of HAProxy, and replace it; the other replicas follow the new primary; once the service
knows the new primary, no replica it serves holds a row the new primary lacks.

The sandbox in its Patroni mode (pg1 leads, pg2 the candidate, the donor); the service with
max_lag_time 10s, timeouts.lagging 30s and a cycle a second. Three replicas serve (a manual count
of 3): R1, R2, R3. For the whole test: pgbench -C -S through HAProxy, an e2e_pg.Reader (max(id)
of e2e_marker through HAProxy every 0.1 s, with the server that answered) and an
e2e_pg.MarkerWriter (a row every 0.1 s on whoever is primary).

The tail only R1 holds:
  1. the walreceivers of R2, R3 and the donor are stopped (SIGSTOP), and ~8 MB written on pg1:
     pg2 (still streaming) gets it, R2, R3 and the donor only what fits in their sockets'
     buffers. The donor stops here rather than with pg2, so that it is strictly behind pg2 as
     well: the replacement is cloned from it, and a donor holding some of pg1's lost tail could
     not follow pg2 itself. More is written (8 MB at a time) until pg1's LSN is past what pg1
     managed to send them (pg_stat_replication.sent_lsn: what they can ever receive from pg1).
  2. pg2's walreceiver is stopped and ~24 MB written (more, 8 MB at a time, until pg1 is past
     what it sent pg2 by MIN_TAIL); R1 replays it all.
  3. positions are checked and printed: what R2, R3 and the donor can ever receive from pg1 is
     before what pg2 had replayed when it stopped, and what pg2 can ever receive is before R1's
     replay LSN.
  4. kill -9 of pg1 (Patroni and PostgreSQL), every stopped receiver resumed at once (a stopped
     walreceiver would keep pg2 from being promoted), and pg2 leads.
Measured and printed: kill -> new leader; new leader -> R1 failed (reason diverged, its event)
and out of HAProxy; new leader -> 3 serving again, all following pg2; what became of R2 and R3;
the reader's failed queries (count, window from the kill) and pgbench's; the lost tail (rows R1
or the writer had from pg1 that pg2 lacks) and how long it was still readable through HAProxy
after pg2 was promoted.
Asserted:
  - R1 fails with reason diverged within FAIL_BOUND s of the new leader (counted in
    provisioning_failures_total{reason="diverged"}), and a replacement, cloned from a golden
    snapshot taken after that failure, serves within REPLACE_BOUND s: in the end 3 replicas
    serve, each streaming from pg2 and passing the gate, none of them R1;
  - after the service's status shows pg2 as the primary (+ one cycle), every replica it reports
    serving holds no row of the lost tail (sampled every second), and no read through HAProxy
    returns a max(id) of the lost tail or is answered by R1 later than one cycle after R1's
    ejection (its maint or removal in HAProxy done, the actuator's action_succeeded event);
  - no query through HAProxy (reader or pgbench) fails before the kill or after 3 serve again;
    in between they may: R2 and R3 are in maint (more than max_lag_bytes behind) until they
    follow pg2, so once R1 is out nothing serves for a moment;
  - with the writer stopped: every serving replica's e2e_marker ids are a subset of pg2's, and
    equal to them once it has replayed pg2's current LSN.
pgbench runs in rounds (e2e_pg.PgbenchLoad): a client whose connection fails aborts for good.

  /usr/bin/python3 tests/integration/e2e_failover.py --binary build/bin/replica-autoscaler
"""
import calendar
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_pg  # noqa: E402
from e2e_common import check, eventually, log, metric_value, run, settled  # noqa: E402

C = "/v1/clusters/orders"
PG_PORT = 5432
REPLICAS = 3
LOOP = 1.0            # LOOP_INTERVAL below, in seconds
FAIL_BOUND = 20       # s from the new leader until R1 has failed as diverged
REPLACE_BOUND = 120   # s from the new leader until 3 replicas serve again, all following pg2
BASELINE = 5
MB = 1024 * 1024
CHUNK_ROWS = 8000     # rows of 1000 bytes: about 8 MB of WAL
MIN_GAP = 2 * MB      # pg2 at least this far past what R2, R3 and the donor can receive
MIN_TAIL = 8 * MB     # R1 at least this far past what pg2 can receive: the lost tail
MAX_TAIL = 40 * MB    # below Patroni's maximum_lag_on_failover (64 MB): pg2 must stay promotable
AFTER = 10            # s of load after the checks: nothing fails once 3 serve again
# The clients stop by themselves after this long at the latest.
MAX_SECONDS = BASELINE + 90 + REPLACE_BOUND + 60


def fmt_lsn(value):
    return "None" if value is None else f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def senders(host):
    """{application_name: {"sent", "replay", "state"}} from pg_stat_replication on `host`."""
    rows = e2e_pg.query(host, "SELECT application_name, state, sent_lsn::text, replay_lsn::text "
                              "FROM pg_stat_replication")
    return {name: {"state": state, "sent": e2e_pg.lsn(sent), "replay": e2e_pg.lsn(replay)}
            for name, state, sent, replay in rows}


def settle_sent(host, names, period=0.5, rounds=2, limit=15):
    """Waits until pg_stat_replication.sent_lsn of every stopped receiver in `names` has stopped
    moving for `rounds` polls in a row while pg1 writes (the sockets' buffers are full: nothing
    more of pg1's WAL can reach them), or until one of them is still within 256 kB of pg1's LSN
    (its buffers still take everything: more must be written); returns {name: sent_lsn}."""
    last, same = None, 0
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        current = e2e_pg.current_lsn(host)
        now = {n: senders(host)[n]["sent"] for n in names}
        if any(current - sent < 256 * 1024 for sent in now.values()):
            return now
        same = same + 1 if now == last else 0
        if same >= rounds:
            return now
        last = now
        time.sleep(period)
    return last


def write_chunk(sb, host):
    sb.sql(host, f"INSERT INTO big SELECT g, repeat('x', 1000) FROM generate_series(1, {CHUNK_ROWS}) g",
           timeout=120)


def event_time(event, wall_to_mono):
    """An event's `at` (RFC 3339, UTC, milliseconds) on this process's monotonic clock."""
    at = event["at"]
    base, _, frac = at.rstrip("Z").partition(".")
    wall = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + (float("0." + frac) if frac else 0.0)
    return wall + wall_to_mono


def promotion_time(sb, member, wall_to_mono):
    """When `member`'s PostgreSQL was promoted, from its log (Patroni's log file has PostgreSQL's
    stderr; the default log_line_prefix '%m [%p] ' starts with a time in milliseconds): the last
    "selected new timeline ID" line, on the monotonic clock. None when not found."""
    found = None
    try:
        with open(sb.path(f"patroni-{member}.log"), errors="replace") as f:
            for line in f:
                if "selected new timeline ID" in line:
                    found = line
    except OSError:
        return None
    m = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.(\d{3}) (UTC|GMT)\b", found or "")
    if not m:
        return None
    return calendar.timegm(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) + int(m.group(2)) / 1000 + wall_to_mono


def body(sb, args):
    pg1, pg2 = sb.primary_host, f"127.0.{sb.octet}.250"
    pg2_primary = f"{pg2}:{PG_PORT}"
    wall_to_mono = time.monotonic() - time.time()
    eventually("the service's primary is pg1", lambda: sb.cluster_status().get("primary") == f"{pg1}:{PG_PORT}", 60)
    code, out = sb.api("PUT", C + "/override", {"replicas": REPLICAS, "reason": "e2e failover"})
    check(code == 200, f"PUT override {REPLICAS} ({code} {out})")
    status = eventually(f"{REPLICAS} serving replicas",
                        lambda: (lambda st: st if settled(st, REPLICAS) else None)(sb.cluster_status()),
                        240, interval=1)
    replicas = sorted((r["name"], r["address"]) for r in status["replicas"])
    (r1, a1), (r2, a2), (r3, a3) = replicas
    log(f"R1 {r1} {a1}, R2 {r2} {a2}, R3 {r3} {a3}")
    streaming = e2e_pg.replication_states(pg1)
    check(all(streaming.get(n) == "streaming" for n, _ in replicas),
          f"the replicas stream from pg1 with their names as application_name ({streaming})")

    pgbench = e2e_pg.PgbenchLoad(sb, clients=4, max_seconds=MAX_SECONDS, tag="failover")
    pgbench.start()
    writer = e2e_pg.MarkerWriter(sb, max_seconds=MAX_SECONDS)
    sb.sql(pg1, "CREATE TABLE IF NOT EXISTS big (g int, t text)")
    reader = e2e_pg.Reader(sb, max_seconds=MAX_SECONDS)
    for name, address in replicas:
        eventually(f"e2e_marker on {name}", lambda: e2e_pg.marker_ids(address) is not None, 15)
    reader.start()
    writer.start()
    time.sleep(BASELINE)
    check(reader.results and not reader.failures(),
          f"the baseline: {reader.summary()} {[f[2] for f in reader.failures()[:3]]}")

    paused = {}
    try:
        # 1. R2, R3 and the donor stop receiving; pg2 gets ~8 MB more than they can.
        log("stopping the walreceivers of R2, R3 and the donor; writing ~8 MB on pg1")
        t_pause = time.monotonic()
        paused[r2] = e2e_pg.pause_walreceiver(sb, a2)
        paused[r3] = e2e_pg.pause_walreceiver(sb, a3)
        sb.pause_receiver("orders-donor")
        behind = [r2, r3, "orders-donor"]
        chunks1 = 0
        while True:
            write_chunk(sb, pg1)
            chunks1 += 1
            sent = settle_sent(pg1, behind)
            gap = e2e_pg.current_lsn(pg1) - max(sent.values())
            if gap >= MIN_GAP or chunks1 >= 5:
                break
        l1 = e2e_pg.current_lsn(pg1)
        eventually("pg2 replaying pg1's LSN", lambda: e2e_pg.replay_lsn(pg2) >= l1, 30, interval=0.2)
        # 2. pg2 stops receiving; R1 gets ~24 MB more than pg2 can.
        log("stopping pg2's walreceiver; writing ~24 MB on pg1")
        sb.pause_receiver("pg2")
        pg2_at_pause = e2e_pg.replay_lsn(pg2)
        chunks2 = 0
        while True:
            write_chunk(sb, pg1)
            chunks2 += 1
            if chunks2 < 3:
                continue
            sent_pg2 = settle_sent(pg1, ["pg2"])["pg2"]
            tail = e2e_pg.current_lsn(pg1) - sent_pg2
            if tail >= MIN_TAIL or tail + CHUNK_ROWS * 1100 > MAX_TAIL:
                break
        l2 = e2e_pg.current_lsn(pg1)
        eventually("R1 replaying pg1's LSN", lambda: e2e_pg.replay_lsn(a1) >= l2, 60, interval=0.2)

        # 3. Where everybody is.
        pos = senders(pg1)
        r1_replay = e2e_pg.replay_lsn(a1)
        current = e2e_pg.current_lsn(pg1)
        print("\n  positions before the kill (pg1's pg_stat_replication.sent_lsn: what each can ever receive):")
        print(f"    pg1 current {fmt_lsn(current)}; chunks of ~8 MB: {chunks1} then {chunks2}")
        for name in (r2, r3, "orders-donor", "pg2"):
            print(f"    {name:22} sent {fmt_lsn(pos[name]['sent'])}  replay {fmt_lsn(pos[name]['replay'])}"
                  f"  ({(current - pos[name]['sent']) / MB:.1f} MB behind pg1)")
        print(f"    pg2 replayed {fmt_lsn(pg2_at_pause)} when stopped")
        print(f"    {r1:22} replay {fmt_lsn(r1_replay)}  ({(current - r1_replay) / MB:.1f} MB behind pg1)", flush=True)
        most_behind = max(pos[n]["sent"] for n in behind)
        check(most_behind < pg2_at_pause,
              f"R2, R3 and the donor can receive at most up to {fmt_lsn(most_behind)}, before pg2's "
              f"{fmt_lsn(pg2_at_pause)} ({(pg2_at_pause - most_behind) / MB:.1f} MB)")
        check(pos["pg2"]["sent"] < r1_replay,
              f"pg2 can receive at most up to {fmt_lsn(pos['pg2']['sent'])}, before R1's replay "
              f"{fmt_lsn(r1_replay)} ({(r1_replay - pos['pg2']['sent']) / MB:.1f} MB: R1's tail)")

        # 4. The failover.
        log("kill -9 of pg1; resuming every stopped walreceiver")
        t_kill = time.monotonic()
        sb.kill_member("pg1")
        t_killed = time.monotonic()
        for name in (r2, r3):
            e2e_pg.resume_walreceiver(paused.pop(name))
        sb.resume_receiver("pg2")
        sb.resume_receiver("orders-donor")
        t_resumed = time.monotonic()
        committed_on_pg1 = set(writer.committed)  # pg2 takes no write before its promotion
        r1_ids = e2e_pg.marker_ids(a1)
        new = sb.wait_leader(60, not_name="pg1")
        t_leader = time.monotonic()
    finally:
        for pid in paused.values():
            e2e_pg.resume_walreceiver(pid)
    check(new["name"] == "pg2", f"pg2 leads {t_leader - t_kill:.1f} s after the kill")
    t_promoted = promotion_time(sb, "pg2", wall_to_mono)
    # The figures count from pg2's promotion (its log); wait_leader sees it a little later.
    t_new = t_promoted if t_promoted is not None and t_kill < t_promoted <= t_leader else t_leader
    try:
        r1_ids |= e2e_pg.marker_ids(a1)  # what R1 replayed after the first read
    except Exception:  # noqa: BLE001 - R1 may be gone already
        pass
    pg2_ids = e2e_pg.marker_ids(pg2)
    history = e2e_pg.query(pg2, "SELECT pg_read_file('pg_wal/' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) "
                                "|| '.history')")[0][0]
    switch_lsn = e2e_pg.lsn(history.strip().splitlines()[-1].split()[1])
    lost = (r1_ids | committed_on_pg1) - pg2_ids
    log(f"pg2's timeline switch at {fmt_lsn(switch_lsn)}; R1 replayed {fmt_lsn(r1_replay)} "
        f"({(r1_replay - switch_lsn) / MB:.1f} MB beyond); lost tail: {len(lost)} marker rows "
        f"({len(r1_ids - pg2_ids)} on R1, {len(committed_on_pg1 - pg2_ids)} acknowledged to the writer)")
    check(most_behind <= switch_lsn < r1_replay,
          f"after the fact: pg2 forked timeline 2 at {fmt_lsn(switch_lsn)}, at or past all R2, R3 and the donor "
          f"could receive ({fmt_lsn(most_behind)}) and {(r1_replay - switch_lsn) / MB:.1f} MB before R1's replay")
    check(lost and r1_ids - pg2_ids, "R1 holds marker rows that pg2 lacks (the lost tail)")

    # 5. Watch the service: R1 failed and out, the others follow, a replacement serves.
    t_primary = t_failed = t_out = t_done = None
    r1_event = None
    exposures = []       # (time, replica, lost ids it serves) after the service knew pg2
    others_failed = []
    last = ""
    deadline = t_leader + REPLACE_BOUND
    next_sample = 0.0
    while time.monotonic() < deadline:
        now = time.monotonic()
        try:
            st = sb.cluster_status()
            events = sb.events()
            backend = sb.backend_servers()
            states = e2e_pg.replication_states(pg2)
        except Exception as e:  # noqa: BLE001 - a moment without an answer
            last = f"(poll error: {e})"
            time.sleep(0.2)
            continue
        if t_primary is None and st.get("primary") == pg2_primary:
            t_primary = now
        for e in events:
            if e.get("type") != "replica_failed":
                continue
            if e.get("replica") == r1 and r1_event is None:
                r1_event = e
                t_failed = now
            elif e.get("replica") != r1 and e.get("replica") not in [x.get("replica") for x in others_failed]:
                others_failed.append(e)
        if t_out is None and (r1 not in backend or backend[r1].get("admin", 0) & 1):
            t_out = now
        by_name = {r["name"]: r for r in st.get("replicas", [])}
        if t_primary is not None and now >= t_primary + LOOP and now >= next_sample:
            next_sample = now + 1.0
            for r in st.get("replicas", []):
                if r.get("phase") != "serving":
                    continue
                try:
                    held = e2e_pg.marker_ids(r["address"]) & lost
                except Exception:  # noqa: BLE001 - going away
                    continue
                if held:
                    exposures.append((now, r["name"], sorted(held)[:5]))
        serving = [r for r in st.get("replicas", []) if r.get("phase") == "serving"]
        last = (f"primary {st.get('primary')}; " + ", ".join(f"{r['name']} {r['phase']} ({r.get('detail')})"
                                                          for r in st.get("replicas", [])) + f"; on pg2: {states}")
        if (r1_event is not None and st.get("primary") == pg2_primary and settled(st, REPLICAS)
                and r1 not in by_name and all(e2e_pg.gate_passed(r) for r in serving)
                and all(states.get(r["name"]) == "streaming" for r in serving)):
            t_done = now
            break
        time.sleep(0.2)

    check(r1_event is not None, f"R1 {r1} failed (last seen: {last})")
    check(r1_event.get("result") == "diverged",
          f"R1 failed with reason {r1_event.get('result')}: {r1_event.get('message')}")
    t_failed_event = event_time(r1_event, wall_to_mono)
    check(t_failed_event - t_new <= FAIL_BOUND,
          f"R1 failed {t_failed_event - t_new:.1f} s after the new leader (bound {FAIL_BOUND} s)")
    check(t_done is not None, f"within {REPLACE_BOUND} s of the new leader {REPLICAS} replicas serve, all streaming "
                              f"from pg2 and passing the gate, R1 gone (last seen: {last})")
    final = sb.cluster_status()
    now_names = sorted(r["name"] for r in final["replicas"])
    replacements = sorted(set(now_names) - {r1, r2, r3})
    kept = [n for n in (r2, r3) if n in now_names]
    diverged_metric = metric_value(sb, "replica_autoscaler_provisioning_failures_total", {"reason": "diverged"})
    check(diverged_metric >= 1, f"provisioning_failures_total{{reason=\"diverged\"}} counted R1 ({diverged_metric})")
    # The replacement is cloned from a golden snapshot taken after R1 failed (one that may hold
    # pg1's lost tail, or miss WAL pg2 no longer has, would not do).
    events = sb.events()
    fresh = {e.get("details", {}).get("detail", "").split("(")[-1].split(")")[0] for e in events
             if e.get("type") == "action_succeeded" and e.get("action") == "take_snapshot"
             and event_time(e, wall_to_mono) >= t_failed_event}
    sources = {e.get("replica"): (e.get("details") or {}).get("snapshot_id") for e in events
               if e.get("type") == "action_started" and e.get("action") == "create_volume"
               and e.get("replica") in replacements}
    check(replacements and all(sources.get(n) in fresh for n in replacements),
          f"the replacement(s) {sources} were cloned from a snapshot taken after R1 failed ({sorted(fresh)})")

    # 6. The markers.
    writer.stop()
    primary_ids = e2e_pg.check_replicas_hold_only_primary_rows(sb, pg2, "pg2", lost=lost)

    time.sleep(AFTER)
    pgbench.stop()
    reader.stop()
    totals = pgbench.totals()
    lost = (r1_ids | committed_on_pg1) - primary_ids  # with pg2's final rows
    lost_reads = [r for r in reader.results if r[1] and r[2] in lost]
    r1_reads = [r for r in reader.results if r[1] and r[3] == a1]
    after_leader = [r for r in lost_reads if r[0] >= t_new]
    # R1's ejection: the first of its maint and its removal from HAProxy done (the actuator's
    # action_succeeded events), or else when the poll saw it out.
    done_at = [event_time(e, wall_to_mono) for e in sb.events()
               if e.get("replica") == r1 and e.get("type") == "action_succeeded"
               and e.get("action") in ("maint", "remove_from_lb")]
    t_eject = min(done_at) if done_at else t_out
    eject = t_eject + LOOP
    late_lost = [r for r in lost_reads if r[0] > eject]
    late_r1 = [r for r in r1_reads if r[0] > eject]
    failures = reader.failures()

    print("\n==== e2e_failover: figures ====")
    print(f"  kill -9 pg1 took {t_killed - t_kill:.1f} s, receivers resumed {t_resumed - t_killed:.2f} s later")
    print("  kill -> pg2 promoted (its log, 'selected new timeline ID'): "
          + (f"{t_promoted - t_kill:.1f} s" if t_promoted else "not found in its log"))
    print(f"  kill -> pg2 leads and takes writes (wait_leader): {t_leader - t_kill:.1f} s")
    print(f"  (\"new leader\" below: {'the promotion' if t_new != t_leader else 'wait_leader'})")
    print("  new leader -> service's primary = pg2: "
          + (f"{t_primary - t_new:+.1f} s" if t_primary else "never"))
    print(f"  new leader -> R1 {r1} replica_failed ({r1_event.get('result')}): {t_failed_event - t_new:+.1f} s "
          f"(event at {r1_event.get('at')}; seen by the poll at {t_failed - t_new:+.1f} s)")
    print(f"      message: {r1_event.get('message')}")
    print(f"  new leader -> R1 out of HAProxy: {t_eject - t_new:+.1f} s (maint done, its event; "
          f"{t_eject - t_failed_event:.2f} s after the failure event; the poll saw it out at "
          + (f"{t_out - t_new:+.1f} s)" if t_out else "never)"))
    print(f"  new leader -> {REPLICAS} serving again, all following pg2: {t_done - t_new:.1f} s "
          f"(kill -> that: {t_done - t_kill:.1f} s); replacement(s): {replacements}")
    history = [e for e in sb.events() if e.get("type") == "phase_changed" and e.get("replica") in (r2, r3)
               and event_time(e, wall_to_mono) >= t_pause]
    for name in (r2, r3):
        steps = [f"{(e.get('details') or {}).get('to')} at {event_time(e, wall_to_mono) - t_kill:+.1f} s"
                 for e in history if e.get("replica") == name]
        print(f"  {'R2' if name == r2 else 'R3'} {name} (times from the kill; stopped at {t_pause - t_kill:+.1f} s): "
              + ", ".join(steps) + ("" if name in kept else "  [replaced]"))
    for e in others_failed:
        print(f"  other failure: {e.get('replica')} {e.get('result')}: {e.get('message')}")
    print(f"  provisioning_failures_total{{reason=\"diverged\"}} = {diverged_metric}")
    print(f"  lost tail: {len(lost)} marker rows (ids {min(lost)}..{max(lost)}); R1 holds "
          f"{len(r1_ids - primary_ids)}, the writer had {len(committed_on_pg1 - primary_ids)} acknowledged by pg1")
    print(f"  pg2's timeline switch {fmt_lsn(switch_lsn)}; R1 replayed {fmt_lsn(r1_replay)} "
          f"({(r1_replay - switch_lsn) / MB:.1f} MB beyond)")
    if after_leader:
        print(f"  lost-tail rows readable through HAProxy until {after_leader[-1][0] - t_new:+.1f} s after the "
              f"new leader ({len(after_leader)} reads after it; {len(lost_reads)} in all, the last "
              f"{lost_reads[-1][0] - t_failed_event:+.1f} s from R1's failure)")
    else:
        print(f"  lost-tail rows read through HAProxy: {len(lost_reads)}, none after the new leader")
    print(f"  reader: {reader.summary(origin=t_kill)} (times from the kill)")
    for f in failures[:10]:
        print(f"      failed at +{f[0] - t_kill:.2f} s: {f[2]}")
    print(f"  {pgbench.summary()}")
    for t, line in pgbench.errors[:10]:
        print(f"      pgbench at +{t - t_kill:.2f} s: {line}")
    print(f"  writer: {len(writer.committed)} rows, {writer.errors} failed attempts")
    print("===============================\n", flush=True)

    check(not exposures, f"after the service knew pg2 (+ one cycle) no serving replica held lost rows "
                         f"({[(round(t - t_new, 1), n, ids) for t, n, ids in exposures[:5]]})")
    check(not late_lost, f"no read through HAProxy returned a lost max(id) later than one cycle after R1's "
                         f"ejection ({[(round(r[0] - t_eject, 2), r[2], r[3]) for r in late_lost[:5]]})")
    check(not late_r1, f"no read through HAProxy reached R1 later than one cycle after its ejection "
                       f"({[(round(r[0] - t_eject, 2), r[2]) for r in late_r1[:5]]})")
    outside = [f for f in failures if not t_kill <= f[0] <= t_done]
    check(not outside, f"no read through HAProxy failed before the kill or after 3 served again "
                       f"({[(round(f[0] - t_kill, 2), f[2]) for f in outside[:5]]})")
    late = [(round(t - t_kill, 2), line) for t, line in pgbench.errors if not t_kill <= t <= t_done]
    check(not late, f"pgbench reported no error before the kill or after 3 served again ({late[:5]})")
    check(totals["processed"] > 0 and pgbench.rounds[0][0] < t_kill and pgbench.rounds[-1][1] > t_done + AFTER,
          f"pgbench ran from before the kill to the end ({pgbench.summary()})")
    check(len(now_names) == REPLICAS and r1 not in now_names,
          f"in the end {REPLICAS} replicas serve, R1 not among them: {now_names}")


if __name__ == "__main__":
    sys.exit(run("e2e_failover", body, settings={"MAX_LAG_TIME": "10s", "LAGGING_TIMEOUT": "30s", "LOOP_INTERVAL": "1s"},
                 budget=480, scale=1, patroni=True))
