#!/usr/bin/env python3
"""Measurements of scripts/bench: reads the bench's topics back and turns them into numbers.

  ready    wait until a consumer group is stable with every input partition assigned
  drained  wait until a consumer group committed every record of its input topic
  collect  read every prediction of the output topic (after the worker stopped)
  proc     CPU seconds (utime + stime) and peak RSS (VmHWM) of a running process, as JSON
  report   match events with predictions, print the table, write results.json; exit 1 when
           any produced event has no prediction

Events come from produce_events.py --out-jsonl (partition, offset, Kafka timestamp per
event); predictions are matched to them by (source_partition, source_offset). All times
are Kafka record timestamps (CreateTime, ms): the produce time of an event and the time
the worker produced its prediction.
"""
import argparse
import io
import json
import math
import os
import re
import subprocess
import sys
import time

import fastavro
from confluent_kafka import Consumer, ConsumerGroupState, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(msg):
    print("bench.py: " + msg, file=sys.stderr, flush=True)


def alive(pid):
    """True while process pid runs (a zombie does not count)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def load_events(paths):
    """{(partition, offset): Kafka timestamp} of every event in the JSON-lines files."""
    events = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                e = json.loads(line)
                events[(e["partition"], e["offset"])] = e["timestamp"]
    return events


# ---------------------------------------------------------------------------- ready
def cmd_ready(a):
    admin = AdminClient({"bootstrap.servers": a.bootstrap})
    parts = len(admin.list_topics(a.topic, timeout=10).topics[a.topic].partitions)
    deadline = time.monotonic() + a.timeout
    stable_since = None
    last = ""
    while time.monotonic() < deadline:
        try:
            g = admin.describe_consumer_groups([a.group], request_timeout=5)[a.group].result()
        except KafkaException as e:  # e.g. the group coordinator still loading: ask again
            last = e.args[0].str()
            time.sleep(0.2)
            continue
        assigned = [len([tp for tp in m.assignment.topic_partitions if tp.topic == a.topic])
                    for m in g.members]
        ok = (g.state == ConsumerGroupState.STABLE and len(g.members) == a.members
              and sum(assigned) == parts and all(assigned))
        last = "state %s, %d member(s), partitions per member %s" % (
            g.state.name, len(g.members), assigned)
        if ok:
            stable_since = stable_since or time.monotonic()
            if time.monotonic() - stable_since >= a.settle:
                log("group %s ready: %s" % (a.group, last))
                return 0
        else:
            stable_since = None
        time.sleep(0.2)
    log("group %s not ready after %.0f s: %s" % (a.group, a.timeout, last))
    return 1


# ---------------------------------------------------------------------------- drained
def cmd_drained(a):
    """Waits until the group committed every input record: offsets are committed only
    after the predictions are acknowledged, so then the worker has scored everything.
    Cheap (no record is read), so it does not compete with the worker for the CPU."""
    c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": a.group,
                  "enable.auto.commit": False})
    parts = sorted(c.list_topics(a.topic, timeout=10).topics[a.topic].partitions)
    tps = [TopicPartition(a.topic, p) for p in parts]
    deadline = time.monotonic() + a.timeout
    last_report = time.monotonic()
    rc = 1
    left = None
    while True:
        try:
            end = {p: c.get_watermark_offsets(TopicPartition(a.topic, p), timeout=10)[1]
                   for p in parts}
            done = {tp.partition: max(tp.offset, 0) for tp in c.committed(tps, timeout=10)}
            left = sum(end[p] - done[p] for p in parts)
        except KafkaException as e:  # e.g. the group coordinator still loading: ask again
            if time.monotonic() - last_report >= 5:
                log("%s: %s (asking again)" % (a.group, e.args[0].str()))
                last_report = time.monotonic()
        if left is not None and left <= 0:
            log("group %s committed all %d record(s) of %s" % (a.group, sum(end.values()), a.topic))
            rc = 0
            break
        if a.pid is not None and not alive(a.pid):
            log("the worker (pid %d) exited with %s record(s) of %s not committed"
                % (a.pid, left, a.topic))
            break
        if time.monotonic() > deadline:
            log("timed out after %.0f s with %s record(s) of %s not committed by group %s"
                % (a.timeout, left, a.topic, a.group))
            break
        if left is not None and time.monotonic() - last_report >= 5:
            log("%s: %d record(s) not committed yet" % (a.topic, left))
            last_report = time.monotonic()
        time.sleep(0.2)
    c.close()
    return rc


# ---------------------------------------------------------------------------- collect
def cmd_collect(a):
    """Reads the whole output topic, up to its current end (the worker has stopped, so
    late duplicates count too), into a JSON list of [partition, offset, Kafka timestamp,
    source_partition, source_offset]."""
    schema = fastavro.parse_schema(json.load(open(os.path.join(ROOT, "schemas/prediction.avsc"))))
    c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": "streamscore-bench-reader",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 50})
    parts = sorted(c.list_topics(a.topic, timeout=10).topics[a.topic].partitions)
    end = {p: c.get_watermark_offsets(TopicPartition(a.topic, p), timeout=10)[1] for p in parts}
    c.assign([TopicPartition(a.topic, p, 0) for p in parts if end[p] > 0])
    pos = {p: 0 for p in parts}
    records = []
    deadline = time.monotonic() + a.timeout
    reader = fastavro.schemaless_reader
    while any(pos[p] < end[p] for p in parts) and time.monotonic() < deadline:
        for m in c.consume(5000, timeout=0.2):
            if m.error():
                continue
            v = reader(io.BytesIO(m.value()), schema)
            records.append([m.partition(), m.offset(), m.timestamp()[1],
                            v["source_partition"], v["source_offset"]])
            pos[m.partition()] = m.offset() + 1
    c.close()
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(records, f, separators=(",", ":"))
    short = sum(max(0, end[p] - pos[p]) for p in parts)
    if short:
        log("%s: timed out after %.0f s, %d record(s) not read" % (a.topic, a.timeout, short))
        return 1
    log("%s: %d prediction record(s) read" % (a.topic, len(records)))
    return 0


# ---------------------------------------------------------------------------- proc
def cmd_proc(a):
    if not alive(a.pid):
        log("process %d is not running: no CPU or RSS figures" % a.pid)
        print(json.dumps({"cpu_s": None, "rss_mb": None}))
        return 1
    with open("/proc/%d/stat" % a.pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu_s = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14, 15)
    rss_kb = None
    with open("/proc/%d/status" % a.pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                rss_kb = int(line.split()[1])
    print(json.dumps({"cpu_s": round(cpu_s, 2), "rss_mb": round(rss_kb / 1024, 1)}))
    return 0


# ---------------------------------------------------------------------------- report
def quantile(sorted_values, q):
    """Nearest-rank quantile of an ascending list."""
    if not sorted_values:
        return None
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def match(events, records):
    """Per event the first prediction's output timestamp, plus duplicate and missing counts."""
    out_ts, dup, foreign = {}, 0, 0
    for _part, _off, ts, sp, so in sorted(records, key=lambda r: r[2]):
        key = (sp, so)
        if key not in events:
            foreign += 1
        elif key in out_ts:
            dup += 1
        else:
            out_ts[key] = ts
    return out_ts, dup, len(events) - len(out_ts), foreign


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def last_json_line(path):
    """The producer's summary: the last line of its stdout."""
    with open(path, encoding="utf-8") as f:
        lines = [ln for ln in f.read().splitlines() if ln.strip()]
    return json.loads(lines[-1])


def conditions(a):
    """What the numbers depend on: load, machine, versions, commit, date."""
    ver = subprocess.run([a.bin, "--version"], capture_output=True, text=True).stdout.strip()
    m = re.search(r"streamscore (\S+) \(librdkafka (\S+), XGBoost (\S+)\)", ver)
    git = lambda *args: subprocess.run(["git", "-C", ROOT] + list(args), capture_output=True,
                                       text=True).stdout.strip()
    return {
        "events": a.events, "customers": a.customers, "threads": a.threads,
        "batch_max_messages": a.batch, "batch_max_wait_ms": a.batch_wait_ms,
        "rate": a.rate, "latency_seconds": a.latency_seconds,
        "nproc": os.cpu_count(), "loadavg_at_start": a.loadavg,
        "version": ver,
        "streamscore": m.group(1) if m else None,
        "librdkafka": m.group(2) if m else None,
        "xgboost": m.group(3) if m else None,
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "date": a.started,
    }


def cmd_report(a):
    d = a.dir
    cond = conditions(a)
    problems = []

    # throughput: the backlog
    t_events = load_events([os.path.join(d, "tput-events.jsonl")])
    t_out, t_dup, t_miss, t_foreign = match(t_events, read_json(os.path.join(d, "tput-out.json")))
    t_proc = read_json(os.path.join(d, "tput-proc.json"))
    ts = sorted(t_out.values())
    span_s = (ts[-1] - ts[0]) / 1000 if len(ts) > 1 else 0.0
    eps = round(len(ts) / span_s, 1) if span_s > 0 else None
    start_ms = int(open(os.path.join(d, "tput-worker.start_ms")).read())
    backlog = last_json_line(os.path.join(d, "tput-producer.out"))

    # latency: paced events to a caught-up worker (the warm-up events only count for correctness)
    l_events = load_events([os.path.join(d, "lat-events.jsonl")])
    l_warm = load_events([os.path.join(d, "lat-warmup.jsonl")])
    l_out, l_dup, l_miss, l_foreign = match({**l_warm, **l_events},
                                            read_json(os.path.join(d, "lat-out.json")))
    lat = sorted(l_out[k] - l_events[k] for k in l_events if k in l_out)
    paced = last_json_line(os.path.join(d, "lat-producer.out"))
    l_proc = read_json(os.path.join(d, "lat-proc.json"))
    rate_key = format(a.rate, "g")
    latency = {rate_key: {"p50": quantile(lat, 0.50), "p95": quantile(lat, 0.95),
                          "p99": quantile(lat, 0.99), "max": lat[-1] if lat else None,
                          "events": len(lat),
                          "offered_events_per_s": paced.get("events_per_s")}}

    correctness = {
        "throughput": {"events": len(t_events), "missing": t_miss, "duplicates": t_dup,
                       "unexpected": t_foreign},
        "latency": {"events": len(l_events) + len(l_warm), "missing": l_miss,
                    "duplicates": l_dup, "unexpected": l_foreign},
    }
    for phase, c in correctness.items():
        if c["missing"]:
            problems.append("%s: %d of %d events have no prediction" % (phase, c["missing"], c["events"]))
    for phase, rc in (("throughput", a.tput_exit), ("latency", a.lat_exit)):
        if rc != 0:
            problems.append("%s: the worker exited with %s on SIGTERM" % (phase, rc))

    n = len(t_events)
    results = {
        "events_per_s": eps,
        "latency_ms": latency,
        "cpu_s_per_million": round(t_proc["cpu_s"] / n * 1e6, 1)
        if n and t_proc["cpu_s"] is not None else None,
        "rss_mb": t_proc["rss_mb"],
        "throughput": {
            "scored": len(ts),
            "first_to_last_prediction_s": round(span_s, 3),
            "worker_start_to_first_prediction_s": round((ts[0] - start_ms) / 1000, 3) if ts else None,
            "worker_cpu_s": t_proc["cpu_s"],
            "backlog_produced_events_per_s": backlog.get("events_per_s"),
        },
        "latency_worker": {"cpu_s": l_proc["cpu_s"], "rss_mb": l_proc["rss_mb"]},
        "correctness": correctness,
        "conditions": cond,
        "worker_exit": {"throughput": a.tput_exit, "latency": a.lat_exit},
        "ok": not problems,
        "problems": problems,
    }
    with open(os.path.join(d, "results.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
        f.write("\n")

    c = cond
    L = latency[rate_key]
    rows = [
        ("throughput (backlog)", "%s events/s" % eps,
         "%d events in %.2f s, first to last prediction" % (len(ts), span_s)),
        ("worker CPU", "%s s / million events" % results["cpu_s_per_million"],
         "%s CPU s over the backlog worker's whole life" % t_proc["cpu_s"]),
        ("worker peak RSS", "%s MB" % t_proc["rss_mb"], "VmHWM of the backlog worker"),
        ("latency @ %s/s" % rate_key,
         "p50 %s  p95 %s  p99 %s  max %s ms" % (L["p50"], L["p95"], L["p99"], L["max"]),
         "%d events over %s s, offered %s/s" % (len(lat), c["latency_seconds"],
                                               paced.get("events_per_s"))),
        ("correctness", "missing %d  duplicates %d" % (t_miss + l_miss, t_dup + l_dup),
         "over %d events (both phases)" % (len(t_events) + len(l_events) + len(l_warm))),
    ]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    print()
    print("streamscore bench  %s  commit %s  %s" % (c["date"], c["git_commit"][:12], c["version"]))
    print("  %d events, %d customers, worker.threads %d, batch.max.messages %d, "
          "nproc %d, load %s" % (c["events"], c["customers"], c["threads"], c["batch_max_messages"],
                                 c["nproc"], c["loadavg_at_start"]))
    print("  " + "-" * (w0 + w1 + 40))
    for r in rows:
        print("  %-*s  %-*s  %s" % (w0, r[0], w1, r[1], r[2]))
    print("  " + "-" * (w0 + w1 + 40))
    print("  results: %s" % os.path.relpath(os.path.join(d, "results.json"), ROOT))
    for p in problems:
        print("  FAILED: " + p)
    return 1 if problems else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("ready")
    r.add_argument("--bootstrap", required=True)
    r.add_argument("--group", required=True)
    r.add_argument("--topic", required=True)
    r.add_argument("--members", type=int, required=True)
    r.add_argument("--settle", type=float, default=1.0, help="seconds it must stay ready")
    r.add_argument("--timeout", type=float, default=60)
    dr = sub.add_parser("drained")
    dr.add_argument("--bootstrap", required=True)
    dr.add_argument("--group", required=True)
    dr.add_argument("--topic", required=True)
    dr.add_argument("--pid", type=int, help="stop waiting when this process (the worker) exits")
    dr.add_argument("--timeout", type=float, default=120)
    c = sub.add_parser("collect")
    c.add_argument("--bootstrap", required=True)
    c.add_argument("--topic", required=True)
    c.add_argument("--out", required=True, help="JSON file of the records read")
    c.add_argument("--timeout", type=float, default=60)
    p = sub.add_parser("proc")
    p.add_argument("pid", type=int)
    rp = sub.add_parser("report")
    rp.add_argument("--dir", required=True)
    rp.add_argument("--bin", required=True, help="the streamscore binary (for --version)")
    for k in ("events", "customers", "threads", "batch", "batch-wait-ms", "latency-seconds",
              "tput-exit", "lat-exit"):
        rp.add_argument("--" + k, type=int, required=True)
    rp.add_argument("--rate", type=float, required=True)
    rp.add_argument("--loadavg", required=True)
    rp.add_argument("--started", required=True, help="UTC date and time of the start")
    a = ap.parse_args(argv)
    return {"ready": cmd_ready, "drained": cmd_drained, "collect": cmd_collect, "proc": cmd_proc,
            "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
