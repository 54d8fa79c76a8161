#!/usr/bin/env python3
"""Measurements of bench/run (make bench): prepares the bench's topics, waits on consumer groups, reads
the outputs back and turns them into the table and build/bench/results.json.

  topics   create topics (LogAppendTime timestamps: the broker's clock on both sides)
  ready    wait until a consumer group is stable with every input partition assigned
  drained  wait until a consumer group committed every record of its input topic
  collect  read a topic's records: partition, offset, timestamp (and, of predictions, the
           source partition and offset) into a .npy file
  offsets  the end offset of every partition of a topic, as JSON
  avro-file  a topic's raw customer events (schemas/customer_event.avsc) written to an Avro
           container file, partition after partition (each customer's events in order)
  proc     CPU seconds (utime + stime) and peak RSS (VmHWM) of running processes, as JSON
  scrape   the worker's /metrics counters, gauges and histogram sums, as JSON
  sample   VmRSS and CPU of a process every few seconds while it runs (the soak), as JSON lines
           (with --listen also the local store's size from /metrics)
  score-load  a load on the worker's score API (GET /v1/customers/{id}/score): threads, each
           with one HTTP/1.1 connection kept open as long as the server keeps it, asking for
           random customers among those held in Redis under a prefix, back to back; every
           request's start, time and status into a .npy file, a summary as JSON
  redis-copy  copy the hashes under one Redis prefix to another (the score round's customers)
  report   the table, the ratios, the goals; writes results.json; exit 1 when a run lost
           records or a process failed
  markdown results.json as the Markdown tables of docs/performance.md
  calibrate  milliseconds a fixed single-threaded Python workload takes: how fast the machine
           runs now (a virtual machine's share of its host moves, and every figure with it)

Timestamps: every topic of the bench is created with message.timestamp.type=LogAppendTime,
so a record's timestamp is when the broker appended it. Throughput is records over the span
between the first and the last output record; latency is, per event, the append time of its
prediction minus the append time of the event.
"""
import argparse
import http.client
import io
import json
import math
import os
import platform
import random
import re
import resource
import subprocess
import sys
import textwrap
import threading
import time
import urllib.parse
import urllib.request

import fastavro
import numpy as np
from confluent_kafka import Consumer, ConsumerGroupState, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

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


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def last_json_line(path):
    """A tool's summary: the last JSON line of its stdout (None when there is none)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = [ln for ln in f.read().splitlines() if ln.strip().startswith("{")]
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------- topics
def cmd_topics(a):
    admin = AdminClient({"bootstrap.servers": a.bootstrap})
    cfg = {"message.timestamp.type": "LogAppendTime"}
    new = [NewTopic(t, num_partitions=a.partitions if not t.endswith(".dlq") else 1,
                    replication_factor=1, config=cfg) for t in a.names]
    rc = 0
    for t, f in admin.create_topics(new, request_timeout=30).items():
        try:
            f.result()
        except KafkaException as e:
            if e.args[0].name() != "TOPIC_ALREADY_EXISTS":
                log("creating topic %s: %s" % (t, e))
                rc = 1
    return rc


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
        if a.pid and not any(alive(p) for p in a.pid):
            log("group %s: the process(es) under test exited" % a.group)
            return 1
        time.sleep(0.2)
    log("group %s not ready after %.0f s: %s" % (a.group, a.timeout, last))
    return 1


# ---------------------------------------------------------------------------- drained
def cmd_drained(a):
    """Waits until the group committed every input record: offsets are committed only
    after the outputs are acknowledged, so then everything was processed. Cheap (no record
    is read), so it does not compete with the process under test for the CPU."""
    c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": a.group,
                  "enable.auto.commit": False})
    parts = sorted(c.list_topics(a.topic, timeout=10).topics[a.topic].partitions)
    tps = [TopicPartition(a.topic, p) for p in parts]
    deadline = time.monotonic() + a.timeout
    last_report = time.monotonic()
    rc = 1
    left = None
    end = {}
    while True:
        try:
            end = {p: c.get_watermark_offsets(TopicPartition(a.topic, p), timeout=10)[1]
                   for p in parts}
            if a.txn:  # the last offset of each written partition: the commit marker
                end = {p: e - 1 if e > 0 else e for p, e in end.items()}
            done = {tp.partition: max(tp.offset, 0) for tp in c.committed(tps, timeout=10)}
            left = sum(max(0, end[p] - done[p]) for p in parts)
        except KafkaException as e:  # e.g. the group coordinator still loading: ask again
            if time.monotonic() - last_report >= 5:
                log("%s: %s (asking again)" % (a.group, e.args[0].str()))
                last_report = time.monotonic()
        if left is not None and left <= 0:
            log("group %s committed all %d record(s) of %s" % (a.group, sum(end.values()), a.topic))
            rc = 0
            break
        if a.pid and not any(alive(p) for p in a.pid):
            log("the process(es) under test exited with %s record(s) of %s not committed"
                % (left, a.topic))
            break
        if time.monotonic() > deadline:
            log("timed out after %.0f s with %s record(s) of %s not committed by group %s"
                % (a.timeout, left, a.topic, a.group))
            break
        if left is not None and time.monotonic() - last_report >= 10:
            log("%s: %d record(s) not committed yet" % (a.topic, left))
            last_report = time.monotonic()
        time.sleep(0.1)
    c.close()
    return rc


# ---------------------------------------------------------------------------- collect
def cmd_collect(a):
    """Reads a topic up to its current end into an int64 array of rows [partition, offset,
    timestamp] (raw), or [partition, offset, timestamp, source_partition, source_offset,
    scored_at] (predictions, decoded with schemas/prediction.avsc)."""
    schema = None
    if a.predictions:
        with open(os.path.join(ROOT, "schemas/prediction.avsc"), encoding="utf-8") as f:
            schema = fastavro.parse_schema(json.load(f))
    c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": "streamscore-bench-reader",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 50,
                  "isolation.level": "read_uncommitted"})
    parts = sorted(c.list_topics(a.topic, timeout=10).topics[a.topic].partitions)
    end = {p: c.get_watermark_offsets(TopicPartition(a.topic, p), timeout=10)[1] for p in parts}
    c.assign([TopicPartition(a.topic, p, 0) for p in parts if end[p] > 0])
    pos = {p: 0 for p in parts}
    rows = []
    deadline = time.monotonic() + a.timeout
    reader = fastavro.schemaless_reader
    while any(pos[p] < end[p] - (1 if a.txn else 0) for p in parts) and time.monotonic() < deadline:
        for m in c.consume(10000, timeout=0.2):
            if m.error():
                continue
            p, o = m.partition(), m.offset()
            if schema is not None:
                v = reader(io.BytesIO(m.value()), schema)
                scored = v["scored_at"]  # timestamp-millis: a datetime from fastavro
                rows.append((p, o, m.timestamp()[1], v["source_partition"], v["source_offset"],
                             round(scored.timestamp() * 1000) if hasattr(scored, "timestamp")
                             else scored))
            else:
                rows.append((p, o, m.timestamp()[1]))
            pos[p] = o + 1
    c.close()
    width = 6 if schema is not None else 3
    arr = np.array(rows, dtype=np.int64).reshape(-1, width)
    np.save(a.out, arr)
    short = sum(max(0, end[p] - (1 if a.txn and end[p] else 0) - pos[p]) for p in parts)
    if short:
        log("%s: timed out after %.0f s, %d record(s) not read" % (a.topic, a.timeout, short))
        return 1
    log("%s: %d record(s) read" % (a.topic, len(arr)))
    return 0


# ---------------------------------------------------------------------------- avro-file
def cmd_avro_file(a):
    """Reads a topic of raw-framed events up to its current end and writes them to an Avro
    container file (deflate off: score-file's reading, not inflating, is what is measured)."""
    with open(os.path.join(ROOT, "schemas/customer_event.avsc"), encoding="utf-8") as f:
        schema = fastavro.parse_schema(json.load(f))
    c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": "streamscore-bench-reader",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 50,
                  "isolation.level": "read_committed"})
    parts = sorted(c.list_topics(a.topic, timeout=10).topics[a.topic].partitions)
    end = {p: c.get_watermark_offsets(TopicPartition(a.topic, p), timeout=10)[1] for p in parts}
    c.assign([TopicPartition(a.topic, p, 0) for p in parts if end[p] > 0])
    pos = {p: 0 for p in parts}
    by_part = {p: [] for p in parts}
    deadline = time.monotonic() + a.timeout
    reader = fastavro.schemaless_reader
    while any(pos[p] < end[p] for p in parts) and time.monotonic() < deadline:
        for m in c.consume(10000, timeout=0.2):
            if m.error():
                continue
            p = m.partition()
            by_part[p].append(reader(io.BytesIO(m.value()), schema))
            pos[p] = m.offset() + 1
    c.close()
    short = sum(max(0, end[p] - pos[p]) for p in parts)
    if short:
        log("%s: timed out after %.0f s, %d record(s) not read" % (a.topic, a.timeout, short))
        return 1
    tmp = a.out + ".partial"
    with open(tmp, "wb") as f:
        fastavro.writer(f, schema, (r for p in parts for r in by_part[p]), codec="null")
    os.replace(tmp, a.out)
    n = sum(len(v) for v in by_part.values())
    print(json.dumps({"records": n, "path": a.out, "bytes": os.path.getsize(a.out)}))
    log("%s: %d record(s) written to %s" % (a.topic, n, os.path.relpath(a.out, ROOT)))
    return 0


# ---------------------------------------------------------------------------- offsets
def cmd_offsets(a):
    c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": "streamscore-bench-offsets"})
    parts = sorted(c.list_topics(a.topic, timeout=10).topics[a.topic].partitions)
    end = {p: c.get_watermark_offsets(TopicPartition(a.topic, p), timeout=10, cached=False)[1]
           for p in parts}
    c.close()
    print(json.dumps({"time_ms": int(time.time() * 1000), "end": end}))
    return 0


# ---------------------------------------------------------------------------- proc
def proc_figures(pid):
    """(CPU seconds, peak RSS MB, current RSS MB) of a running process, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        hwm = rss = None
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) / 1024
                elif line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024
    except (OSError, IndexError, ValueError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks, hwm, rss  # utime, stime


def cmd_proc(a):
    figs = [proc_figures(p) for p in a.pids]
    if any(f is None for f in figs):
        log("process(es) %s not running: no CPU or RSS figures"
            % [p for p, f in zip(a.pids, figs) if f is None])
        print(json.dumps({"cpu_s": None, "rss_mb": None, "processes": len(a.pids)}))
        return 1
    out = {"cpu_s": round(sum(f[0] for f in figs), 2),
           "rss_mb": round(max(f[1] for f in figs), 1),
           "rss_mb_sum": round(sum(f[1] for f in figs), 1),
           "processes": len(a.pids)}
    if a.names:  # one figure per named process too
        if len(a.names) != len(figs):
            log("proc: %d names for %d pids" % (len(a.names), len(figs)))
            return 2
        out.update({"%s_cpu_s" % n: round(f[0], 2) for n, f in zip(a.names, figs)})
    print(json.dumps(out))
    return 0


# ---------------------------------------------------------------------------- scrape
def parse_metrics(text):
    """{name: value} of every streamscore_* sample of a Prometheus text page but histogram
    buckets. A labelled sample is kept as name{labels} too, and its name alone holds the sum
    over the labels (per thread or per partition: the worker's total) unless the page also
    has the name without labels."""
    out, summed, plain = {}, {}, set()
    for line in text.splitlines():
        m = re.match(r"^(streamscore_[a-z0-9_]+)(\{[^}]*\})? ([0-9.eE+-]+|[+-]?Inf|NaN)$", line)
        if not m or m.group(1).endswith("_bucket"):
            continue
        name, labels, v = m.group(1), m.group(2), float(m.group(3))
        if labels and labels != "{}":
            out[name + labels] = v
            summed[name] = summed.get(name, 0.0) + v
        else:
            out[name] = v
            plain.add(name)
    out.update({k: v for k, v in summed.items() if k not in plain})
    return out


def fetch_metrics(listen):
    """The worker's /metrics as parse_metrics gives them; None when unreachable."""
    try:
        text = urllib.request.urlopen("http://%s/metrics" % listen, timeout=5).read().decode()
    except OSError as e:
        log("metrics at %s: %s" % (listen, e))
        return None
    return parse_metrics(text)


def cmd_scrape(a):
    """The worker's counters, gauges and histogram sums and counts from /metrics."""
    out = fetch_metrics(a.listen)
    print(json.dumps(out or {}))
    return 0 if out is not None else 1


# ---------------------------------------------------------------------------- sample
def cmd_sample(a):
    """Every --interval s while pid runs (and --until-file does not exist): one JSON line
    {t, rss_mb, cpu_s}, with --listen also store_bytes and store_customers (the worker's
    streamscore_state_store_bytes and _customers gauges; null when it has none)."""
    t0 = time.monotonic()
    with open(a.out, "w", encoding="utf-8") as f:
        while alive(a.pid) and not (a.until_file and os.path.exists(a.until_file)):
            fig = proc_figures(a.pid)
            if fig is None:
                break
            row = {"t": round(time.monotonic() - t0, 2), "cpu_s": fig[0],
                   "rss_mb": round(fig[2], 2), "hwm_mb": round(fig[1], 2)}
            if a.listen:
                m = fetch_metrics(a.listen) or {}
                row["store_bytes"] = m.get("streamscore_state_store_bytes")
                row["store_customers"] = m.get("streamscore_state_store_customers")
            f.write(json.dumps(row) + "\n")
            f.flush()
            time.sleep(a.interval)
    return 0


# ---------------------------------------------------------------------------- score-load
def redis_client(a):
    import redis  # only these two commands need it
    return redis.Redis(host=a.redis_host, port=a.redis_port, socket_timeout=10)


def held_customers(r, prefix):
    """The customer ids whose hashes Redis holds under prefix (prefix + id), sorted."""
    pat = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*"
    return sorted(k.decode()[len(prefix):] for k in r.scan_iter(match=pat, count=1000))


def cmd_redis_copy(a):
    """Copies every hash under --from to --to (COPY ... REPLACE, TTL kept)."""
    r = redis_client(a)
    ids = held_customers(r, getattr(a, "from"))
    pipe = r.pipeline(transaction=False)
    for i, cid in enumerate(ids):
        pipe.copy(getattr(a, "from") + cid, a.to + cid, replace=True)
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()
    print(json.dumps({"copied": len(ids), "from": getattr(a, "from"), "to": a.to}))
    log("%d hash(es) copied from %s* to %s*" % (len(ids), getattr(a, "from"), a.to))
    return 0 if ids else 1


def cmd_score_load(a):
    """--threads threads, each with one HTTP/1.1 connection (http.client, kept open as long as
    the server keeps it: `connections_opened` in the summary) to
    --listen, ask for /v1/customers/{id}/score of random customers among those Redis holds
    under --prefix, back to back, from the moment every thread had its first answer (then
    --ready-file is created; exit 1 when one had none within 30 s) until --until-file exists
    or --seconds passed. A connection the
    server closed is opened again (a request that failed on a reused connection is sent once
    more on a new one); a request that fails on a new connection counts as status 0.
    Writes the rows [start (wall clock, µs), time (µs), status] of every request to --out
    and prints a summary as one JSON line: requests, seconds, requests/s, p50/p95/p99/max ms,
    the statuses, the client's CPU seconds."""
    host, port = a.listen.rsplit(":", 1)
    ids = held_customers(redis_client(a), a.prefix)
    if not ids:
        log("score-load: no customer held under %s in Redis" % a.prefix)
        print(json.dumps({"requests": 0, "ids": 0, "error": "no customers under " + a.prefix}))
        return 1
    paths = ["/v1/customers/%s/score" % urllib.parse.quote(c, safe="") for c in ids]
    stop = threading.Event()
    rows = [[] for _ in range(a.threads)]
    first = [threading.Event() for _ in range(a.threads)]
    opened = [0] * a.threads  # connections opened per thread
    failed = [0] * a.threads  # requests without an answer per thread

    def load(i):
        rnd = random.Random(a.seed * 1000 + i)
        conn = None
        out = rows[i]
        while not stop.is_set():
            path = paths[rnd.randrange(len(paths))]
            wall = time.time_ns() // 1000
            t0 = time.perf_counter_ns()
            status = 0
            for attempt in (0, 1):
                fresh = conn is None
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection(host, int(port), timeout=a.timeout)
                        opened[i] += 1
                    conn.request("GET", path)
                    resp = conn.getresponse()
                    resp.read()
                    status = resp.status
                    if resp.will_close:
                        conn.close()
                        conn = None
                    break
                except (OSError, http.client.HTTPException) as e:
                    if conn is not None:
                        conn.close()
                    conn = None
                    if fresh or attempt:
                        failed[i] += 1
                        if failed[i] <= 2:
                            log("score-load: thread %d: no answer: %r" % (i, e))
                        break
            out.append((wall, (time.perf_counter_ns() - t0) // 1000, status))
            if status:
                first[i].set()
            else:
                time.sleep(0.01)  # no answer: no busy loop on a server that is gone
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=load, args=(i,), daemon=True) for i in range(a.threads)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while not all(f.is_set() for f in first) and time.monotonic() < deadline:
        time.sleep(0.01)
    if not all(f.is_set() for f in first):
        stop.set()
        log("score-load: no answer from %s within 30 s" % a.listen)
        print(json.dumps({"requests": 0, "ids": len(ids), "error": "no answer"}))
        return 1
    # from here on: the rows before were the connections' first requests
    start = [len(r) for r in rows]
    t_begin = time.monotonic()
    w_begin = time.time_ns() // 1000
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    if a.ready_file:
        open(a.ready_file, "w").close()
    until = t_begin + a.seconds if a.seconds else None
    while not ((until and time.monotonic() >= until)
               or (a.until_file and os.path.exists(a.until_file))):
        time.sleep(0.01)
    stop.set()
    t_end = time.monotonic()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    for t in threads:
        t.join(a.timeout + 1)
    arr = np.array([x for i, r in enumerate(rows) for x in r[start[i]:]],
                   dtype=np.int64).reshape(-1, 3)
    arr = arr[np.argsort(arr[:, 0], kind="stable")]
    if a.out:
        np.save(a.out, arr)
    secs = t_end - t_begin
    summary = {"threads": a.threads, "ids": len(ids), "prefix": a.prefix,
               "started_ms": w_begin // 1000, "seconds": round(secs, 3),
               **request_figures(arr, secs),
               "connections_opened": sum(opened),
               "cpu_s": round(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, 2)}
    print(json.dumps(summary))
    log("score-load: %d request(s) in %.1f s, %s/s, p99 %s ms, statuses %s" % (
        summary["requests"], secs, summary["requests_per_s"], summary["p99_ms"],
        summary["statuses"]))
    return 0


def request_figures(arr, seconds):
    """Of the rows [start µs, time µs, status] of score requests over `seconds`: requests,
    requests/s, p50/p95/p99/max ms of their times, the count of each status (0: no answer)
    and of the answers other than 200."""
    t = np.sort(arr[:, 1]) if len(arr) else np.zeros(0, dtype=np.int64)

    def q(p):
        v = quantile(t, p)
        return round(v / 1e3, 3) if v is not None else None

    codes, counts = np.unique(arr[:, 2], return_counts=True) if len(arr) else ([], [])
    statuses = {str(int(c)): int(n) for c, n in zip(codes, counts)}
    return {"requests": int(len(arr)),
            "requests_per_s": round(len(arr) / seconds, 1) if seconds > 0 else None,
            "p50_ms": q(0.50), "p95_ms": q(0.95), "p99_ms": q(0.99),
            "max_ms": round(int(t[-1]) / 1e3, 3) if len(t) else None,
            "statuses": statuses,
            "not_200": int(sum(n for c, n in statuses.items() if c != "200"))}


# ---------------------------------------------------------------------------- calibrate
def calibration_ms():
    """Best of three: a fixed loop of integer arithmetic, in ms."""
    best = None
    for _ in range(3):
        t0 = time.perf_counter()
        x = 0
        for i in range(1_000_000):
            x = (x * 31 + i) & 0xFFFFFFFF
        dt = (time.perf_counter() - t0) * 1000
        best = dt if best is None or dt < best else best
    return round(best, 1)


def cmd_calibrate(a):
    print(json.dumps({"calibration_ms": calibration_ms(),
                      "loadavg": " ".join(open("/proc/loadavg").read().split()[:3])}))
    return 0


# ---------------------------------------------------------------------------- report
def quantile(sorted_values, q):
    """Nearest-rank quantile of an ascending array."""
    n = len(sorted_values)
    if not n:
        return None
    return int(sorted_values[max(0, math.ceil(q * n) - 1)])


def span_rate(ts):
    """(records/s from the first to the last timestamp, span s, records/s over p10..p90)."""
    ts = np.sort(ts)
    n = len(ts)
    if n < 2 or ts[-1] == ts[0]:
        return None, 0.0, None
    span = float(ts[-1] - ts[0]) / 1000
    lo, hi = int(ts[n // 10]), int(ts[(9 * n) // 10])
    mid = (0.8 * n) / ((hi - lo) / 1000) if hi > lo else None
    return n / span, span, mid


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2


def spread(xs, nd=1):
    """{median, min, max, runs} of figures from repeated runs."""
    v = [x for x in xs if x is not None]
    return {"median": round(median(v), nd) if v else None, "min": round(min(v), nd) if v else None,
            "max": round(max(v), nd) if v else None, "runs": [None if x is None else round(x, nd)
                                                            for x in xs]}


def stack_cpu(before, after, events):
    """CPU s per million events of the broker and of Redis between two stack samples."""
    b, e = last_json_line(before) or {}, last_json_line(after) or {}
    out = {}
    for k in ("kafka", "redis"):
        x, y = b.get(k + "_cpu_s"), e.get(k + "_cpu_s")
        out[k + "_cpu_s_per_million"] = (round((y - x) / events * 1e6, 2)
                                         if x is not None and y is not None and events else None)
    return out


def ratio(x, y, nd=4):
    return round(x / y, nd) if x is not None and y else None


def state_figures(m, records=None):
    """The local store's and Redis's figures of one worker from its /metrics: the store's
    hit rate (hits / (hits + misses)), size (customers, bytes) and evictions, the Redis time
    and round trips per batch (per label too, when the histogram has labels), the flushes.
    A figure the worker does not export is None."""
    def g(name):
        return m.get("streamscore_" + name)

    b = g("batches_total") or 0
    hits, misses = g("state_store_hits_total"), g("state_store_misses_total")
    customers, nbytes = g("state_store_customers"), g("state_store_bytes")
    flushes, flushed = g("state_flushes_total"), g("state_flushed_customers_total")
    rsum, rcount = g("redis_seconds_sum"), g("redis_seconds_count")
    records = records or g("records_consumed_total")
    out = {
        "hit_rate": ratio(hits, hits + misses) if None not in (hits, misses) else None,
        "hits": hits, "misses": misses, "evictions": g("state_store_evictions_total"),
        "store_customers": customers, "store_bytes": nbytes,
        "store_bytes_per_customer": ratio(nbytes, customers, 1),
        "flushes": flushes, "flushed_customers": flushed,
        "restored_records": g("state_restored_records_total"),
        "redis_errors": g("redis_errors_total"),
        "batches": int(b) if b else None,
        "redis_ms_per_batch": round(rsum / b * 1e3, 3) if rsum is not None and b else None,
        "redis_round_trips_per_batch": ratio(rcount, b, 3),
        "redis_ms_per_round_trip": round(rsum / rcount * 1e3, 3) if rsum and rcount else None,
        "flushes_per_batch": ratio(flushes, b, 3),
        "flushed_customers_per_flush": ratio(flushed, flushes, 1),
        "flushed_customers_per_event": ratio(flushed, records),
    }
    by_label = {k[len("streamscore_redis_seconds_sum"):]: v for k, v in m.items()
                if k.startswith("streamscore_redis_seconds_sum{")}
    if by_label and b:
        out["redis_ms_per_batch_by_label"] = {k: round(v / b * 1e3, 3)
                                              for k, v in sorted(by_label.items())}
    return out


def throughput_run(d, name, kind, events, a=None):
    """The figures of one throughput measurement (stage -> tool -> drained -> stop)."""
    out = {"kind": kind, "name": name}
    problems = []
    try:
        arr = np.load(os.path.join(d, name + "-out.npy"))
    except OSError:
        arr = np.zeros((0, 3), dtype=np.int64)
        problems.append("%s: its output was not read" % name)
    eps, span, mid = span_rate(arr[:, 2]) if len(arr) else (None, 0.0, None)
    out["records_out"] = int(len(arr))
    out["events_per_s"] = round(eps, 1) if eps else None
    out["p10_p90_events_per_s"] = round(mid, 1) if mid else None
    out["span_s"] = round(span, 3)
    stage = last_json_line(os.path.join(d, name + "-stage.json")) or {}
    if len(arr) and stage.get("committed_ms"):
        out["commit_to_first_output_s"] = round((int(arr[:, 2].min()) - stage["committed_ms"])
                                                / 1000, 3)
    # CPU from the release of the backlog to the last commit (start-up, e.g. Python's
    # imports, and the wait for the group left out); peak RSS over the whole life
    proc = last_json_line(os.path.join(d, name + "-proc.json")) or {}
    proc0 = last_json_line(os.path.join(d, name + "-proc0.json")) or {}
    cpu = (proc["cpu_s"] - proc0["cpu_s"]) if proc.get("cpu_s") is not None and proc0.get(
        "cpu_s") is not None else None
    out["cpu_s"] = round(cpu, 2) if cpu is not None else None
    out["cpu_s_whole_life"] = proc.get("cpu_s")
    out["rss_mb"] = proc.get("rss_mb")
    out["processes"] = proc.get("processes")
    out["cpu_s_per_million"] = round(cpu / events * 1e6, 2) if cpu is not None and events else None
    out.update(stack_cpu(os.path.join(d, name + "-stack0.json"),
                         os.path.join(d, name + "-stack.json"), events))
    # redis-server CPU s per million events is its CPU µs per event
    out["redis_cpu_us_per_event"] = out.get("redis_cpu_s_per_million")
    if a is not None and eps:  # the time a thread takes per batch (configured batch size)
        out["ms_per_batch_per_thread"] = round(a.threads * a.batch / eps * 1e3, 3)
    if arr.shape[1] == 5:  # predictions: every source offset once
        keys = arr[:, 3] * (1 << 40) + arr[:, 4]
        uniq = np.unique(keys)
        out["duplicates"] = int(len(keys) - len(uniq))
        out["missing"] = int(events - len(uniq))
    else:
        out["duplicates"] = max(0, int(len(arr) - events))
        out["missing"] = max(0, int(events - len(arr)))
    if out["missing"]:
        problems.append("%s: %d of %d events have no output" % (name, out["missing"], events))
    exits = read_json(os.path.join(d, name + "-exit.json")) if os.path.exists(
        os.path.join(d, name + "-exit.json")) else {"codes": []}
    out["exit"] = exits["codes"]
    if any(c != 0 for c in exits["codes"]):
        problems.append("%s: exit status %s after SIGTERM" % (name, exits["codes"]))
    summaries = [last_json_line(os.path.join(d, "%s-%d.out" % (name, i)))
                 for i in range(out["processes"] or 0)]
    if any(summaries):
        out["own_events_per_s"] = [s.get("events_per_s") if s else None for s in summaries]
    metrics_path = os.path.join(d, name + "-metrics.json")
    if os.path.exists(metrics_path):
        m = read_json(metrics_path)
        b = m.get("streamscore_batches_total") or 0
        if b:
            out["stages_ms_per_batch"] = {
                "redis_read_and_write": round(m.get("streamscore_redis_seconds_sum", 0) / b * 1e3,
                                              3),
                "predict": round(m.get("streamscore_predict_seconds_sum", 0) / b * 1e3, 3),
            }
            if m.get("streamscore_explain_seconds_sum") is not None:
                out["stages_ms_per_batch"]["explain"] = round(
                    m["streamscore_explain_seconds_sum"] / b * 1e3, 3)
            out["mean_batch"] = round(m.get("streamscore_batch_size_sum", 0) / b, 1)
            out["batches"] = int(b)
        out["state"] = state_figures(m, events)
        if kind in EXPLAIN_KINDS:
            out["explain"] = explain_figures(m, events)
    return out, problems


def explain_figures(m, events):
    """Of a worker explaining, from its /metrics: the predictions explained (and their share
    of the events), the time of the explain stage (streamscore_explain_seconds: contributions
    and top-k, wall clock) per batch and per explained prediction."""
    n = m.get("streamscore_predictions_explained_total")
    t = m.get("streamscore_explain_seconds_sum")
    b = m.get("streamscore_batches_total")
    return {"explained": int(n) if n is not None else None,
            "share_explained": ratio(n, events),
            "explain_ms_per_batch": round(t / b * 1e3, 3) if t is not None and b else None,
            "explain_us_per_explained": round(t / n * 1e6, 3) if t is not None and n else None}


def stage_quantiles(values):
    v = np.sort(values)
    return {"p50": quantile(v, 0.50), "p95": quantile(v, 0.95), "p99": quantile(v, 0.99),
            "max": int(v[-1]) if len(v) else None}


def latency_phases(d, phases, problems, windows=None):
    """Per offered rate: the latency of each event paced in that phase (its files
    lat-K-*, or STEM-* when the phase names a stem); with windows, windows[rate] = the append
    times (ms) of the phase's first and last event."""
    try:
        ins = np.load(os.path.join(d, "lat-in.npy"))
        outs = np.load(os.path.join(d, "lat-out.npy"))
    except OSError:
        problems.append("latency: the topics were not read")
        return {}, None
    # event append time by (partition, offset); the first prediction of each source offset
    ik = ins[:, 0] * (1 << 40) + ins[:, 1]
    order = np.argsort(outs[:, 2], kind="stable")
    ok = outs[order, 3] * (1 << 40) + outs[order, 4]
    uk, first = np.unique(ok, return_index=True)
    out_ts = outs[order][first, 2]
    dup = int(len(ok) - len(uk))
    pos = np.searchsorted(uk, ik)
    pos[pos >= len(uk)] = 0
    has = (uk[pos] == ik) if len(uk) else np.zeros(len(ik), dtype=bool)
    latency = np.where(has, out_ts[pos] - ins[:, 2], -1) if len(uk) else np.full(len(ik), -1)
    # the two stages of it: event append to scored_at (fetch, batch wait, the worker's work),
    # scored_at to prediction append (produce: linger, the broker's append)
    scored = outs[order][first, 5] if outs.shape[1] > 5 and len(uk) else None
    to_scored = np.where(has, scored[pos] - ins[:, 2], -1) if scored is not None else None
    to_out = np.where(has, out_ts[pos] - scored[pos], -1) if scored is not None else None
    result = {}
    for ph in phases:
        stem = ph.get("stem") or "lat-%d" % ph["k"]
        begin = read_json(os.path.join(d, stem + "-begin.json"))["end"]
        end = read_json(os.path.join(d, stem + "-end.json"))["end"]
        sel = np.zeros(len(ins), dtype=bool)
        for p, e in end.items():
            b = begin.get(p, 0)
            sel |= (ins[:, 0] == int(p)) & (ins[:, 1] >= b) & (ins[:, 1] < e)
        lats = np.sort(latency[sel & has])
        n = int(sel.sum())
        # the lag at the load's end: the latency of the events of its last second (a worker
        # that falls behind shows it there as the backlog's time)
        tail = None
        if sel.any():
            last = ins[sel, 2].max()
            t_sel = sel & (ins[:, 2] > last - 1000)
            tl = np.sort(latency[t_sel & has])
            tail = {"p50": quantile(tl, 0.50), "max": int(tl[-1]) if len(tl) else None,
                    "events": int(t_sel.sum()), "missing": int((t_sel & ~has).sum())}
        miss = int((sel & ~has).sum())
        load = last_json_line(os.path.join(d, stem + "-load.json")) or {}
        p0 = last_json_line(os.path.join(d, stem + "-proc0.json")) or {}
        p1 = last_json_line(os.path.join(d, stem + "-proc1.json")) or {}
        cpu = (p1["cpu_s"] - p0["cpu_s"]) if p0.get("cpu_s") is not None and p1.get(
            "cpu_s") is not None else None
        stack = stack_cpu(os.path.join(d, stem + "-stack0.json"),
                          os.path.join(d, stem + "-stack1.json"), n)
        key = format(round(ph["rate"]), "d")
        if windows is not None and sel.any():
            windows[key] = (int(ins[sel, 2].min()), int(ins[sel, 2].max()))
        result[key] = {
            "share_of_max": ph["share"],
            "offered_events_per_s": load.get("events_per_s"),
            "p50": quantile(lats, 0.50), "p95": quantile(lats, 0.95),
            "p99": quantile(lats, 0.99), "max": int(lats[-1]) if len(lats) else None,
            **({"append_to_scored": stage_quantiles(to_scored[sel & has]),
                "scored_to_append": stage_quantiles(to_out[sel & has])}
               if to_scored is not None else {}),
            "events": n, "missing": miss,
            "last_second": tail,
            "drain_after_load_s": ph.get("drain_s"),
            "cpu_s_per_million": round(cpu / n * 1e6, 2) if cpu is not None and n else None,
            "load_generator_cpu_s_per_million": (round(load["cpu_s"] / n * 1e6, 2)
                                                 if load.get("cpu_s") is not None and n else None),
            **stack,
        }
        if miss:
            problems.append("latency at %s/s: %d of %d events have no prediction"
                            % (key, miss, n))
    return result, {"events": int(len(ins)), "missing": int((~has).sum()), "duplicates": dup}


def soak_figures(d, entry, problems):
    path = os.path.join(d, "soak-samples.jsonl")
    if entry is None or not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        s = [json.loads(ln) for ln in f if ln.strip()]
    load = last_json_line(os.path.join(d, "soak-load.json")) or {}
    meta = {"rate": entry["rate"], "share_of_max": entry["share"],
            "offered_events_per_s": load.get("events_per_s"), "events": load.get("records")}
    codes = (last_json_line(os.path.join(d, "soak-exit.json")) or {}).get("codes", [])
    if any(c != 0 for c in codes):
        problems.append("soak: the worker exited with %s on SIGTERM" % codes)
    if len(s) < 4:
        problems.append("soak: fewer than 4 RSS samples")
        return {"samples": len(s), **meta}
    t = np.array([x["t"] for x in s])
    rss = np.array([x["rss_mb"] for x in s])

    def slope(tt, rr):  # MB per minute, least squares
        return float(np.polyfit(tt / 60, rr, 1)[0]) if len(tt) >= 2 else None

    half = t >= t[-1] / 2
    store = {}
    sb = [x.get("store_bytes") for x in s]
    if any(v is not None for v in sb):  # the local store's size, from /metrics
        hi = int(np.argmax(half))
        store = {"store_bytes_first": sb[0], "store_bytes_at_half": sb[hi],
                 "store_bytes_last": sb[-1],
                 "store_customers_last": s[-1].get("store_customers")}
    return {
        **meta,
        **store,
        "samples": len(s),
        "seconds": round(float(t[-1]), 1),
        "rss_mb_first": round(float(rss[0]), 1), "rss_mb_last": round(float(rss[-1]), 1),
        "rss_mb_max": round(float(rss.max()), 1),
        "rss_mb_at_half": round(float(rss[half][0]), 1),
        "slope_mb_per_min": round(slope(t, rss), 4),
        "slope_mb_per_min_second_half": round(slope(t[half], rss[half]), 4),
        "growth_mb_second_half": round(float(rss[half][-1] - rss[half][0]), 2),
    }


def conditions(a, d):
    ver = subprocess.run([a.bin, "--version"], capture_output=True, text=True).stdout.strip()
    m = re.search(r"streamscore (\S+) \(librdkafka (\S+), XGBoost (\S+)\)", ver)

    def git(*args):
        return subprocess.run(["git", "-C", ROOT] + list(args), capture_output=True,
                              text=True).stdout.strip()

    model = ""
    mem_mb = None
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f
                          if ln.startswith("model name")), "")
        with open("/proc/meminfo") as f:
            mem_mb = int(next(ln for ln in f if ln.startswith("MemTotal")).split()[1]) // 1024
    except (OSError, StopIteration):
        pass
    py = {}
    try:
        import confluent_kafka
        import redis
        import xgboost
        py = {"python": platform.python_version(), "confluent_kafka": confluent_kafka.__version__,
              "librdkafka_python": confluent_kafka.libversion()[0],
              "fastavro": fastavro.__version__, "xgboost": xgboost.__version__,
              "redis_py": redis.__version__, "numpy": np.__version__}
    except ImportError:
        pass
    kafka = ""
    libs = os.path.join(ROOT, ".deps/kafka/libs")
    if os.path.isdir(libs):
        kafka = next((re.sub(r"^kafka_[0-9.]+-|\.jar$", "", f) for f in sorted(os.listdir(libs))
                      if re.match(r"kafka_[0-9.]+-[0-9.]+\.jar$", f)), "")
    redis_v = subprocess.run(["redis-server", "--version"], capture_output=True,
                             text=True).stdout.strip()
    return {
        "events": a.events, "customers": a.customers, "partitions": a.partitions,
        "cold_events": a.cold_events,
        "explain_top_k": a.explain_top_k, "explain_sample": a.explain_sample,
        "threads": a.threads, "python_peer_processes": a.threads,
        "batch_max_messages": a.batch, "batch_max_wait_ms": a.batch_wait_ms,
        "python_peer_batch": a.peer_batch, "repeats": a.repeat,
        "latency_seconds_per_rate": a.latency_seconds,
        "nproc": os.cpu_count(), "cpu_model": model, "mem_total_mb": mem_mb,
        "kernel": platform.release(),
        "loadavg_at_start": a.loadavg, "loadavg_at_end": " ".join(
            open("/proc/loadavg").read().split()[:3]),
        "calibration_ms_at_start": (last_json_line(os.path.join(d, "calibrate.json")) or {}).get(
            "calibration_ms"),
        "calibration_ms_at_end": calibration_ms(),
        "calibration": "best of 3 runs of a fixed single-threaded Python loop: larger is a "
                       "slower machine",
        "version": ver,
        "streamscore": m.group(1) if m else None,
        "librdkafka": m.group(2) if m else None,
        "xgboost": m.group(3) if m else None,
        "kafka": kafka, "redis_server": redis_v,
        "python_side": py,
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "date": a.started,
        "timestamps": "LogAppendTime on every bench topic",
    }


def stage_budget(results, runs, a):
    """Where a batch's time goes: each stage from the component timings at the worker's batch
    size, beside the time per batch and thread that the worker and the pass-through took."""
    comp = results.get("components")
    if not comp:
        return None
    b = a.batch

    def at(table, key):  # the figure at batch size b, else interpolated per record
        if str(b) in table:
            return table[str(b)][key]
        sizes = sorted(int(k) for k in table)
        lo = max((x for x in sizes if x <= b), default=sizes[0])
        hi = min((x for x in sizes if x >= b), default=sizes[-1])
        if lo == hi:
            return table[str(lo)][key] * b / lo
        f = (b - lo) / (hi - lo)
        return table[str(lo)][key] + f * (table[str(hi)][key] - table[str(lo)][key])

    pr = comp["predict"]
    c = {
        "decode": comp["decode"]["ns_per_event"] * b / 1e6,
        "merge_and_hash": (comp["merge"]["ns_per_event"] + comp["merge"]["hash_ns_per_event"])
        * b / 1e6,
        "redis_read": at(comp["redis"], "read_ms"),
        "predict": at(pr, "us_per_batch") / 1e3,
        "encode": comp["encode"]["ns_per_event"] * b / 1e6,
        "redis_write": at(comp["redis"], "write_ms"),
        "produce_and_acks": at(comp["produce"], "ms_per_batch"),
    }
    c = {k: round(v, 3) for k, v in c.items()}
    per = {}
    for kind in ("worker", "passthrough"):
        e = results["events_per_s_runs"][kind]["median"]
        per[kind] = round(a.threads * b / e * 1e3, 3) if e else None
    wr = {}
    for key in ("redis_read_and_write", "predict"):
        vals = [r["worker"].get("stages_ms_per_batch", {}).get(key) for r in runs if "worker" in r]
        wr[key] = median(vals)
    return {"components": c, "components_sum": round(sum(c.values()), 3),
            "work_beyond_kafka": round(sum(v for k, v in c.items() if k != "produce_and_acks"), 3),
            "worker_measured": per["worker"], "passthrough_measured": per["passthrough"],
            "worker_run": wr,
            "note": "components: one thread alone; measured: threads x batch / events per s"}


def explain_summary(results, runs, a):
    """What an explanation costs: the worker explaining every event (explain.top.k) and a
    sample of them (explain.sample), each against the plain worker of the same round (events/s
    ratio, CPU µs per event beyond the worker's), the explain stage as the worker timed it, and
    the component timings by batch size: predict and explain µs per row, one thread. None when
    neither was measured."""
    comp = results.get("components") or {}
    ce = comp.get("explain")
    if not any(k in r for r in runs for k in EXPLAIN_KINDS) and not ce:
        return None
    out = {"top_k": a.explain_top_k, "sample": a.explain_sample}
    for k in EXPLAIN_KINDS:
        if not any(k in r for r in runs):
            continue

        def med(key, k=k):
            return median([r[k].get("explain", {}).get(key) for r in runs if k in r])

        out[k] = {
            "sample": 1.0 if k == "explain" else a.explain_sample,
            "events_per_s": results["events_per_s_runs"][k],
            "to_worker": results["ratios"][k + "_to_worker"],
            "cpu_us_per_event_over_worker": spread(
                [r.get(k + "_cpu_us_per_event_over_worker") for r in runs], 3),
            "share_explained": med("share_explained"),
            "explain_ms_per_batch": med("explain_ms_per_batch"),
            "explain_us_per_explained": med("explain_us_per_explained"),
        }
    if ce:
        pr = comp.get("predict", {})
        by = {}
        for size, e in ce.items():
            p = pr.get(size, {})
            pu = p.get("us_per_row")
            if pu is None and p.get("ns_per_row") is not None:
                pu = round(p["ns_per_row"] / 1e3, 3)
            by[size] = {"predict_us_per_row": pu, "explain_us_per_row": e["us_per_row"],
                        "contributions_us_per_row": e.get("contributions_us_per_row"),
                        "top_k_us_per_row": e.get("top_k_us_per_row"),
                        "explain_to_predict": ratio(e["us_per_row"], pu, 2)}
        out["components_by_batch"] = by
        out["components_top_k"] = comp.get("explain_top_k")
    return out


# the throughput runs: the worker (at-least-once, hot workload), the pass-through, the Python
# peer, the worker with delivery = exactly-once (hot), the worker on the cold workload, and the
# worker explaining (hot: explain.top.k on every event, and on a sample of them)
KINDS = ("worker", "passthrough", "python", "eos", "cold", "explain", "explain1")
WORKER_KINDS = ("worker", "eos", "cold")
EXPLAIN_KINDS = ("explain", "explain1")
KIND_LABELS = {"worker": "worker, hot", "eos": "worker, exactly-once", "cold": "worker, cold",
               "explain": "worker, explaining all", "explain1": "worker, explaining a sample",
               "passthrough": "Kafka pass-through", "python": "Python peer",
               "latency": "latency worker", "soak": "soak worker"}


def stage_figures(runs, kind):
    """Medians over the rounds of one kind of worker run: the time per batch and thread and
    what it is spent on (Redis, predict), the store's hit rate and the Redis load."""
    def med(get):
        return median([get(r[kind]) for r in runs if kind in r])

    out = {"ms_per_batch_per_thread": med(lambda f: f.get("ms_per_batch_per_thread")),
           "mean_batch": med(lambda f: f.get("mean_batch")),
           "predict_ms_per_batch": med(lambda f: f.get("stages_ms_per_batch", {}).get("predict")),
           "redis_cpu_us_per_event": med(lambda f: f.get("redis_cpu_us_per_event")),
           "kafka_cpu_s_per_million": med(lambda f: f.get("kafka_cpu_s_per_million")),
           "cpu_s_per_million": med(lambda f: f.get("cpu_s_per_million"))}
    for k in ("hit_rate", "redis_ms_per_batch", "redis_round_trips_per_batch",
              "redis_ms_per_round_trip", "flushes_per_batch", "flushed_customers_per_flush",
              "flushed_customers_per_event", "evictions"):
        out[k] = med(lambda f, k=k: f.get("state", {}).get(k))
    labels = sorted({lb for r in runs if kind in r
                     for lb in r[kind].get("state", {}).get("redis_ms_per_batch_by_label", {})})
    if labels:
        out["redis_ms_per_batch_by_label"] = {
            lb: med(lambda f, lb=lb: f.get("state", {}).get("redis_ms_per_batch_by_label",
                                                            {}).get(lb)) for lb in labels}
    return out


def state_summary(d, runs, a):
    """Per kind of worker run: the local store's hit rate (median and range over the rounds),
    its size at the end (largest customers and bytes over the rounds), the peak RSS, and the
    Redis figures; the same of the latency worker and the soak worker from their /metrics at
    the end."""
    out = {}
    for kind in WORKER_KINDS:
        if not any(kind in r for r in runs):
            continue
        sts = [r[kind].get("state", {}) for r in runs if kind in r]

        def biggest(key, sts=sts):
            v = [s.get(key) for s in sts if s.get(key) is not None]
            return max(v) if v else None

        out[kind] = {
            "events": a.cold_events if kind == "cold" else a.events,
            "hit_rate": spread([s.get("hit_rate") for s in sts], 4),
            "store_customers": biggest("store_customers"),
            "store_bytes": biggest("store_bytes"),
            "store_bytes_per_customer": median([s.get("store_bytes_per_customer") for s in sts]),
            "evictions": biggest("evictions"),
            "rss_mb": max((r[kind]["rss_mb"] for r in runs
                           if kind in r and r[kind].get("rss_mb") is not None), default=None),
            **{k: v for k, v in stage_figures(runs, kind).items() if k != "hit_rate"},
        }
    for name in ("lat", "soak"):
        path = os.path.join(d, name + "-metrics.json")
        if not os.path.exists(path):
            continue
        m = read_json(path)
        st = state_figures(m)
        proc = last_json_line(os.path.join(d, name + "-proc.json")) or {}
        out["latency" if name == "lat" else "soak"] = {
            "events": int(m.get("streamscore_records_consumed_total") or 0),
            "hit_rate": st["hit_rate"], "store_customers": st["store_customers"],
            "store_bytes": st["store_bytes"],
            "store_bytes_per_customer": st["store_bytes_per_customer"],
            "evictions": st["evictions"], "rss_mb": proc.get("rss_mb"),
            "redis_ms_per_batch": st["redis_ms_per_batch"],
            "redis_round_trips_per_batch": st["redis_round_trips_per_batch"],
            "flushes_per_batch": st["flushes_per_batch"],
            "mean_batch": ratio(m.get("streamscore_batch_size_sum"),
                                m.get("streamscore_batches_total"), 1),
            "predict_ms_per_batch": (round(m["streamscore_predict_seconds_sum"]
                                           / m["streamscore_batches_total"] * 1e3, 3)
                                     if m.get("streamscore_predict_seconds_sum") is not None
                                     and m.get("streamscore_batches_total") else None),
        }
    return out


def goal(value, met_if, criterion, stages=None, **extra):
    """One goal: its value, whether it is met (None: not measured), the criterion, and the
    measured stage figures behind it (printed when it is missed)."""
    g = {"value": value, "met": None if value is None else bool(met_if(value)),
         "criterion": criterion, **extra}
    if stages is not None:
        g["stages"] = stages
    return g


def goals_of(results, runs, a):
    """The goals of issue 13, as ratios and figures within this run."""
    goals = {}
    ratios = results["ratios"]
    pt = stage_figures(runs, "passthrough")["ms_per_batch_per_thread"]
    sb = results.get("stage_budget_ms_per_batch") or {}

    def behind(kind, against=None):
        """What a thread's batch costs in this kind of run beyond a pass-through batch (and
        beyond an at-least-once worker batch), and where it goes."""
        f = stage_figures(runs, kind)
        out = {"ms_per_batch_per_thread": f["ms_per_batch_per_thread"],
               "passthrough_ms_per_batch_per_thread": pt,
               "beyond_passthrough_ms": (round(f["ms_per_batch_per_thread"] - pt, 3)
                                         if f["ms_per_batch_per_thread"] and pt else None)}
        if against:
            w = stage_figures(runs, against)["ms_per_batch_per_thread"]
            out["at_least_once_ms_per_batch_per_thread"] = w
            out["beyond_at_least_once_ms"] = (round(f["ms_per_batch_per_thread"] - w, 3)
                                              if f["ms_per_batch_per_thread"] and w else None)
        out.update({k: v for k, v in f.items() if k != "ms_per_batch_per_thread"})
        comp = sb.get("components") or {}
        if comp and kind == "worker":  # the components run on the hot backlog
            out["components_one_thread_ms"] = comp
        # the largest of what a batch does beyond the pass-through's work, ms per batch:
        # Redis and predict as measured in these runs, the CPU work from the components,
        # the transaction's extra over an at-least-once batch
        parts = {"redis": f["redis_ms_per_batch"], "predict": f["predict_ms_per_batch"],
                 "decode_merge_encode": (round(sum(comp.get(k, 0) for k in (
                     "decode", "merge_and_hash", "encode")), 3) if comp else None),
                 "exactly_once_extra": out.get("beyond_at_least_once_ms")}
        parts = {k: v for k, v in parts.items() if v is not None}
        if parts:
            top = max(parts, key=parts.get)
            out = {"largest_stage": "%s %s ms per batch" % (top, parts[top]), **out}
        return out

    goals["worker_at_least_0.8_of_passthrough"] = goal(
        ratios["worker_to_passthrough"]["median"], lambda v: v >= 0.8,
        "hot workload: worker events/s >= 0.8 x the pass-through's (median over the rounds "
        "of the ratio within a round)", behind("worker"))
    goals["worker_at_least_10x_python"] = goal(
        ratios["worker_to_python"]["median"], lambda v: v >= 10,
        "worker events/s >= 10 x the Python peer's")
    goals["cold_at_least_0.5_of_passthrough"] = goal(
        ratios["cold_to_passthrough"]["median"], lambda v: v >= 0.5,
        "cold workload (every event a new customer): worker events/s >= 0.5 x the "
        "pass-through's", behind("cold"))
    goals["exactly_once_at_least_0.5_of_passthrough"] = goal(
        ratios["eos_to_passthrough"]["median"], lambda v: v >= 0.5,
        "hot workload, delivery = exactly-once: worker events/s >= 0.5 x the pass-through's",
        behind("eos", "worker"))
    hot = stage_figures(runs, "worker")
    goals["redis_cpu_at_most_1_us_per_event_hot"] = goal(
        results["redis_cpu_us_per_event"]["worker"], lambda v: v <= 1.0,
        "hot workload: redis-server CPU <= 1 us per event (at-least-once worker runs, median)",
        {k: hot.get(k) for k in ("redis_cpu_us_per_event", "hit_rate",
                                 "redis_round_trips_per_batch", "redis_ms_per_batch",
                                 "redis_ms_per_round_trip", "flushes_per_batch",
                                 "flushed_customers_per_flush", "flushed_customers_per_event",
                                 "mean_batch")},
        unit="us/event")
    half = next((v for v in results["latency_ms"].values() if v["share_of_max"] == 0.5), None)
    lat_state = results.get("state", {}).get("latency", {})
    goals["p99_under_10_ms_at_half_max"] = goal(
        half["p99"] if half else None, lambda v: v <= 10,
        "p99 latency (event append to prediction append) <= 10 ms at half the worker's "
        "maximum", {**({k: half.get(k) for k in ("p50", "p95", "p99", "max",
                                                 "cpu_s_per_million",
                                                 "offered_events_per_s")} if half else {}),
                    "batch_max_wait_ms": a.batch_wait_ms,
                    **{k: lat_state.get(k) for k in ("mean_batch", "redis_ms_per_batch",
                                                     "predict_ms_per_batch", "flushes_per_batch",
                                                     "hit_rate")}},
        unit="ms")
    soak = results["soak"]
    if soak and soak.get("slope_mb_per_min_second_half") is not None:
        growth = soak["growth_mb_second_half"]
        goals["memory_flat_over_soak"] = {
            "value": soak["slope_mb_per_min_second_half"], "unit": "MB/min, second half",
            "seconds": soak["seconds"], "growth_mb_second_half": growth,
            "criterion": "RSS grows less than 2 MB over the second half of a soak of at least "
                         "9 minutes",
            # a short soak says nothing about ten minutes
            "met": abs(growth) < 2.0 if soak["seconds"] >= 540 else None,
            "stages": {k: soak.get(k) for k in (
                "rss_mb_first", "rss_mb_at_half", "rss_mb_last", "rss_mb_max",
                "store_bytes_first", "store_bytes_at_half", "store_bytes_last",
                "store_customers_last")}}
    else:
        goals["memory_flat_over_soak"] = {"value": None, "met": None,
                                          "note": "not run (BENCH_SOAK_SECONDS=600 make bench)"}
    return goals


# the stage figures of the throughput goals that markdown puts in a table
TABLED_STAGES = ("ms_per_batch_per_thread", "beyond_passthrough_ms",
                 "passthrough_ms_per_batch_per_thread", "redis_ms_per_batch",
                 "redis_round_trips_per_batch", "predict_ms_per_batch", "hit_rate",
                 "flushes_per_batch", "components_one_thread_ms")
TABLED_GOALS = ("worker_at_least_0.8_of_passthrough", "exactly_once_at_least_0.5_of_passthrough",
                "cold_at_least_0.5_of_passthrough")


def fmt_any(v):
    """A stage figure in a line of text: numbers as they are, a table as name value pairs."""
    if isinstance(v, dict):
        return "{%s}" % ", ".join("%s %s" % (k, fmt_any(x)) for k, x in v.items())
    if isinstance(v, float):
        return "%g" % v
    return str(v)


def fmt(x, nd=0):
    if x is None:
        return "-"
    return ("{:,.%df}" % nd).format(x)


def jobs_figures(d, plan, worker_eps, events, problems):
    """replay and score-file (BENCH_JOBS) on the backlog's events, against the live worker's
    median events/s of the same run; None when they were not run."""
    entries = [e for e in plan if e["type"] == "job"]
    if not entries:
        return None

    def to_worker(x):
        return round(x / worker_eps, 3) if x and worker_eps else None

    out = {"worker_events_per_s": worker_eps, "replay": None, "score_file": []}
    for e in entries:
        s = last_json_line(os.path.join(d, e["name"] + ".json")) or {}
        if e.get("rc"):
            problems.append("%s: exited with %s (build/bench/%s.log)" % (e["name"], e["rc"],
                                                                         e["name"]))
        eps = s.get("events_per_second")
        if e["kind"] == "replay":
            out["replay"] = {"read": s.get("read"), "predictions": s.get("predictions"),
                             "seconds": s.get("seconds"), "events_per_s": eps,
                             "to_worker": to_worker(eps), "partitions": e.get("partitions")}
            if s.get("predictions") != events:
                problems.append("replay: %s predictions of %d events" % (s.get("predictions"),
                                                                        events))
        else:
            th = s.get("threads") or e.get("threads")
            per_core = eps / th if eps and th else None
            out["score_file"].append({
                "threads": th, "records": s.get("records"), "seconds": s.get("seconds"),
                "events_per_s": eps,
                "events_per_s_per_core": round(per_core) if per_core else None,
                "to_worker": to_worker(eps), "per_core_to_worker": to_worker(per_core)})
            if s.get("records") != events:
                problems.append("score-file, %s thread(s): %s records of %d events" % (
                    th, s.get("records"), events))
    return out


# the worker kept up with the offered load when the events of the load's last second waited
# at most this long for their predictions (median), no event went without a prediction, and
# the load generator offered at least 95 % of the rate. Not the drain time after the load: the
# worker commits offsets every second, once the state flush covering them is acknowledged, so
# a worker that kept up may take well over a second to have committed everything.
KEPT_UP_LAST_SECOND_P50_MS = 100


def score_requests(d, name, window=None):
    """The score requests of the load client of run `name` ({name}-score.npy), those that
    started within window (first, last ms) when given, as request_figures gives them, with
    the client's summary; None when it left none."""
    summary = last_json_line(os.path.join(d, name + "-score.json"))
    try:
        arr = np.load(os.path.join(d, name + "-score.npy"))
    except OSError:
        return None, summary
    if window is None:
        return request_figures(arr, (summary or {}).get("seconds") or 0), summary
    lo, hi = window
    sel = (arr[:, 0] >= lo * 1000) & (arr[:, 0] <= hi * 1000)
    return {"window_s": round((hi - lo) / 1000, 3),
            **request_figures(arr[sel], (hi - lo) / 1000)}, summary


def score_server(m):
    """The score API's own figures from the worker's /metrics: answers by status and the mean
    time from a request's arrival to its answer."""
    if not m or m.get("streamscore_score_requests_total") is None:
        return None
    pre = 'streamscore_score_requests_total{code="'
    n, t = m.get("streamscore_score_request_seconds_count"), m.get(
        "streamscore_score_request_seconds_sum")
    return {"requests": int(m["streamscore_score_requests_total"]),
            "statuses": {k[len(pre):-2]: int(v) for k, v in sorted(m.items())
                         if k.startswith(pre) and v},
            "mean_ms": round(t / n * 1e3, 3) if t is not None and n else None}


def answers_text(statuses):
    """{"200": n, ...} as "200: n, 404: m"."""
    return ", ".join("%s: %s" % (k, fmt(v)) for k, v in (statuses or {}).items()) or "-"


def score_api_figures(d, plan, results, a, problems):
    """The score API under load (BENCH_SCORE): requests/s and times of the load client while
    the latency worker streams at a share of its maximum, the worker's event latency and drain
    meanwhile beside the plain run at the same share; and the worker's events/s on the
    backlog while the client runs, as a ratio to the plain worker's median of the same run.
    None when it was not run."""
    le = next((e for e in plan if e["type"] == "score_latency"), None)
    te = next((e for e in plan if e["type"] == "score_throughput"), None)
    if not le and not te:
        return None
    out = {"clients": (le or te).get("clients"), "at_half_load": None, "throughput": None}

    def check(label, req, summary, name):
        if req is None:
            problems.append("score API, %s: the load client left no requests "
                            "(build/bench/%s-score.log)" % (label, name))
        elif req["requests"] == 0:
            problems.append("score API, %s: no request within the run" % label)
        elif req["not_200"]:
            problems.append("score API, %s: %d answer(s) other than 200 (statuses %s; 0: no answer)"
                            % (label, req["not_200"], req["statuses"]))

    if le:
        windows = {}
        res, _ = latency_phases(d, [le], problems, windows)
        key, ev = next(iter(res.items()), (None, None))
        req, summary = score_requests(d, le["stem"], windows.get(key))
        check("at %g of the maximum" % le["share"], req, summary, le["stem"])
        plain = next((v for v in results["latency_ms"].values()
                      if v["share_of_max"] == le["share"]), None)
        mpath = os.path.join(d, "lat-metrics.json")
        rate_ok = (ev and ev.get("offered_events_per_s") is not None
                   and ev["offered_events_per_s"] >= 0.95 * le["rate"])
        out["at_half_load"] = {
            "share_of_max": le["share"], "rate": le["rate"],
            **(req or {}),
            "client": summary,
            "server": score_server(read_json(mpath) if os.path.exists(mpath) else None),
            "events": ev,
            "plain_events": ({k: plain.get(k) for k in ("p50", "p95", "p99", "max",
                                                       "last_second", "drain_after_load_s",
                                                       "cpu_s_per_million")}
                             if plain else None),
            "kept_up": (bool(rate_ok and not ev["missing"] and ev.get("last_second")
                             and ev["last_second"]["p50"] is not None
                             and ev["last_second"]["p50"] <= KEPT_UP_LAST_SECOND_P50_MS)
                        if ev else None),
            "kept_up_criterion": "the events of the load's last second waited at most %d ms "
                                 "for their predictions (median), none went without one, and "
                                 ">= 95%% of the rate was offered" % KEPT_UP_LAST_SECOND_P50_MS,
        }
    if te:
        fig, pr = throughput_run(d, te["name"], "score", a.events, a)
        problems += pr
        window = None
        try:
            ts = np.load(os.path.join(d, te["name"] + "-out.npy"))[:, 2]
            window = (int(ts.min()), int(ts.max())) if len(ts) else None
        except OSError:
            pass
        req, summary = score_requests(d, te["name"], window) if window else (None, None)
        check("on the backlog", req, summary, te["name"])
        w = results["events_per_s"]
        e = fig.get("events_per_s")
        wc = results["cpu_s_per_million"].get("worker")
        xc = fig.get("cpu_s_per_million")
        mpath = os.path.join(d, te["name"] + "-metrics.json")
        out["throughput"] = {
            "events_per_s": e, "worker_events_per_s": w,
            "worker_runs": len([x for x in results["events_per_s_runs"]["worker"]["runs"]
                                if x is not None]),
            "to_worker": ratio(e, w, 3),
            "loss": round(1 - e / w, 3) if e and w else None,
            "requests": req,
            "client": summary,
            "server": score_server(read_json(mpath) if os.path.exists(mpath) else None),
            "cpu_s_per_million": xc, "worker_cpu_s_per_million": wc,
            "cpu_us_per_event_over_worker": round(xc - wc, 3) if xc is not None and wc is not None
            else None,
            "seeded_from": te.get("seeded_from"),
            "run": fig,
        }
    return out


def cmd_report(a):
    d = a.dir
    problems = []
    with open(os.path.join(d, "plan.jsonl"), encoding="utf-8") as f:
        plan = [json.loads(ln) for ln in f if ln.strip()]
    cond = conditions(a, d)
    runs = []
    for rep in sorted({e["repeat"] for e in plan if e["type"] == "throughput"}):
        entry = {"repeat": rep, "order": []}
        for e in plan:
            if e["type"] == "throughput" and e["repeat"] == rep:
                n = a.cold_events if e["kind"] == "cold" else a.events
                fig, pr = throughput_run(d, e["name"], e["kind"], n, a)
                entry[e["kind"]] = fig
                entry["order"].append(e["kind"])
                problems += pr
        w, p, y, x, cw = (entry.get(k, {}).get("events_per_s")
                          for k in ("worker", "passthrough", "python", "eos", "cold"))
        entry["worker_to_passthrough"] = round(w / p, 3) if w and p else None
        entry["eos_to_passthrough"] = round(x / p, 3) if x and p else None
        entry["cold_to_passthrough"] = round(cw / p, 3) if cw and p else None
        entry["worker_to_python"] = round(w / y, 2) if w and y else None
        wc = entry.get("worker", {}).get("cpu_s_per_million")
        yc = entry.get("python", {}).get("cpu_s_per_million")
        entry["worker_to_python_per_cpu_s"] = round(yc / wc, 2) if wc and yc else None
        for k in EXPLAIN_KINDS:  # within the round, against the plain worker
            xe = entry.get(k, {}).get("events_per_s")
            xc = entry.get(k, {}).get("cpu_s_per_million")
            entry[k + "_to_worker"] = round(xe / w, 3) if xe and w else None
            # CPU s per million events = CPU µs per event
            entry[k + "_cpu_us_per_event_over_worker"] = (
                round(xc - wc, 3) if xc is not None and wc is not None else None)
        runs.append(entry)

    def col(kind, key):
        return [r.get(kind, {}).get(key) for r in runs]

    results = {
        "events_per_s": median(col("worker", "events_per_s")),
        "passthrough_events_per_s": median(col("passthrough", "events_per_s")),
        "python_events_per_s": median(col("python", "events_per_s")),
    }
    results["ratios"] = {
        "worker_to_passthrough": spread([r["worker_to_passthrough"] for r in runs], 3),
        "eos_to_passthrough": spread([r["eos_to_passthrough"] for r in runs], 3),
        "cold_to_passthrough": spread([r["cold_to_passthrough"] for r in runs], 3),
        "worker_to_python": spread([r["worker_to_python"] for r in runs], 2),
        "worker_to_python_per_cpu_s": spread([r["worker_to_python_per_cpu_s"] for r in runs], 2),
        "explain_to_worker": spread([r["explain_to_worker"] for r in runs], 3),
        "explain1_to_worker": spread([r["explain1_to_worker"] for r in runs], 3),
    }
    results["events_per_s_runs"] = {k: spread(col(k, "events_per_s")) for k in KINDS}

    phases = [e for e in plan if e["type"] == "latency"]
    latency, lat_correct, lat = {}, None, {}
    if phases:
        latency, lat_correct = latency_phases(d, phases, problems)
        lat = last_json_line(os.path.join(d, "lat-proc.json")) or {}
        codes = (last_json_line(os.path.join(d, "lat-exit.json")) or {}).get("codes", [])
        if any(c != 0 for c in codes):
            problems.append("latency: the worker exited with %s on SIGTERM" % codes)
    results["latency_ms"] = latency
    results["cpu_s_per_million"] = {k: median(col(k, "cpu_s_per_million")) for k in KINDS}
    results["stack_cpu_s_per_million"] = {
        k: {"kafka": median(col(k, "kafka_cpu_s_per_million")),
            "redis": median(col(k, "redis_cpu_s_per_million"))}
        for k in KINDS}
    results["redis_cpu_us_per_event"] = {k: median(col(k, "redis_cpu_us_per_event"))
                                         for k in KINDS}
    results["rss_mb"] = max((x for x in col("worker", "rss_mb") if x is not None), default=None)
    results["rss_mb_by_tool"] = {k: max((x for x in col(k, "rss_mb") if x is not None),
                                        default=None) for k in KINDS}
    comp_path = os.path.join(d, "components.json")
    results["components"] = read_json(comp_path) if os.path.exists(comp_path) else None
    extra = {}
    if os.path.exists(os.path.join(d, "pyredis-out.npy")):
        fig, pr = throughput_run(d, "pyredis", "python", a.events, a)
        extra["python_redis_py"] = fig
        problems += pr
    results["python_redis_client"] = extra.get("python_redis_py")
    vpath = os.path.join(d, "verify.json")
    if os.path.exists(vpath):
        try:
            v = read_json(vpath)
        except ValueError:
            v = {}
        results["python_matches_worker"] = {
            k: v.get(k) for k in ("ok", "compared", "only_peer", "only_worker",
                                  "mismatched_predictions", "max_abs_score_diff", "redis")}
        if not v.get("ok"):
            problems.append("the Python peer's predictions differ from the worker's "
                            "(build/bench/verify.json)")
    results["soak"] = soak_figures(d, next((e for e in plan if e["type"] == "soak"), None),
                                   problems)
    results["correctness"] = {
        "throughput": {r["repeat"]: {k: {"missing": r[k]["missing"],
                                         "duplicates": r[k]["duplicates"]}
                                     for k in KINDS if k in r}
                       for r in runs},
        "latency": lat_correct,
    }
    results["runs"] = runs
    results["latency_worker"] = {k: lat.get(k) for k in ("rss_mb", "cpu_s")} if lat else None
    results["stage_budget_ms_per_batch"] = stage_budget(results, runs, a)
    results["explain"] = explain_summary(results, runs, a)
    results["state"] = state_summary(d, runs, a)
    results["jobs"] = jobs_figures(d, plan, results["events_per_s"], a.events, problems)
    results["score_api"] = score_api_figures(d, plan, results, a, problems)

    results["goals"] = goals_of(results, runs, a)
    results["conditions"] = cond
    results["ok"] = not problems
    results["problems"] = problems
    with open(os.path.join(d, "results.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2,
                  default=lambda v: v.item() if isinstance(v, np.generic) else str(v))
        f.write("\n")

    # the table
    c = cond
    ew = results["events_per_s_runs"]
    print()
    print("streamscore bench  %s  commit %s%s  %s" % (c["date"], c["git_commit"][:12],
                                                     " (dirty)" if c["git_dirty"] else "",
                                                     c["version"]))
    print("  %s, nproc %d, %s MB; load %s at start, %s at end; calibration %s ms at start, "
          "%s ms at end" % (c["cpu_model"], c["nproc"], c["mem_total_mb"], c["loadavg_at_start"],
                            c["loadavg_at_end"], c["calibration_ms_at_start"],
                            c["calibration_ms_at_end"]))
    print("  %d events (%d customers, %d partitions), %d thread(s) = %d peer process(es), "
          "batch %d (peer %d), wait %d ms, %d repeat(s)" % (
              c["events"], c["customers"], c["partitions"], c["threads"], c["threads"],
              c["batch_max_messages"], c["python_peer_batch"], c["batch_max_wait_ms"],
              c["repeats"]))
    line = "  " + "-" * 92
    print(line)
    row = "  %-24s %10s %20s %9s %10s %8s %8s"
    print(row % ("throughput (backlog)", "events/s", "range over runs", "CPU s/M", "peak RSS",
                 "Kafka", "Redis"))
    sc = results["stack_cpu_s_per_million"]
    xk, xpct = a.explain_top_k, "%g%%" % (a.explain_sample * 100)
    for k, label in (("worker", "streamscore worker"), ("passthrough", "Kafka pass-through (C)"),
                     ("python", "Python peer"), ("eos", "worker, exactly-once"),
                     ("cold", "worker, cold workload"),
                     ("explain", "worker, explain top-%d" % xk),
                     ("explain1", "worker, explain %s top-%d" % (xpct, xk))):
        e = ew[k]
        if k in ("eos", "cold") + EXPLAIN_KINDS and e["median"] is None:
            continue
        print(row % (label, fmt(e["median"]), "%s .. %s" % (fmt(e["min"]), fmt(e["max"])),
                     fmt(results["cpu_s_per_million"][k], 2),
                     "%s MB" % fmt(results["rss_mb_by_tool"][k], 1),
                     fmt(sc[k]["kafka"], 2), fmt(sc[k]["redis"], 2)))
    if results["python_redis_client"]:
        x = results["python_redis_client"]
        print(row % ("Python peer, redis-py", fmt(x["events_per_s"]), "(one run)",
                     fmt(x["cpu_s_per_million"], 2), "%s MB" % fmt(x["rss_mb"], 1),
                     fmt(x["kafka_cpu_s_per_million"], 2), fmt(x["redis_cpu_s_per_million"], 2)))
    print("  %-24s %s" % ("", "(CPU s/M: CPU seconds per million events of the process(es);"))
    print("  %-24s %s" % ("", " Kafka, Redis: of the broker and redis-server meanwhile; Redis CPU "
                              "s/M = its CPU us per event)"))
    if ew["cold"]["median"] is not None:
        print("  %-24s %s" % ("", "(cold workload: %s events, each of a new customer)"
                              % fmt(a.cold_events)))
    if ew["explain"]["median"] is not None or ew["explain1"]["median"] is not None:
        print("  %-24s %s" % ("", "(explain: the worker with explain.top.k = %d on every event, "
                                  "and on explain.sample = %g of them)" % (xk, a.explain_sample)))
    for k, label in (("worker_to_passthrough", "worker / pass-through"),
                     ("worker_to_python", "worker / Python peer"),
                     ("worker_to_python_per_cpu_s", "per CPU second: w / peer"),
                     ("eos_to_passthrough", "exactly-once / pass-thr."),
                     ("cold_to_passthrough", "cold / pass-through"),
                     ("explain_to_worker", "explain / worker"),
                     ("explain1_to_worker", "explain %s / worker" % xpct)):
        r = results["ratios"][k]
        if r["median"] is None and k in ("eos_to_passthrough", "cold_to_passthrough",
                                         "explain_to_worker", "explain1_to_worker"):
            continue
        print("  %-24s %10s %20s" % (label, r["median"], "%s .. %s" % (r["min"], r["max"])))
    jb = results["jobs"]
    if jb:
        print(line)
        row = "  %-24s %10s %10s %12s %12s"
        print(row % ("jobs (the same events)", "events/s", "per core", "/ worker", "seconds"))
        if jb["replay"]:
            x = jb["replay"]
            print(row % ("replay --from beginning", fmt(x["events_per_s"]), "", x["to_worker"],
                         fmt(x["seconds"], 2)))
        for x in jb["score_file"]:
            print(row % ("score-file, %s thread(s)" % x["threads"], fmt(x["events_per_s"]),
                         fmt(x["events_per_s_per_core"]), x["to_worker"], fmt(x["seconds"], 2)))
        print("  %-24s %s" % ("", "(/ worker: against the worker's median events/s above, %s; "
                                  "score-file: an Avro file, no Kafka)" % fmt(
                                      jb["worker_events_per_s"])))
    sa = results["score_api"]
    if sa:
        print(line)
        row = "  %-34s %9s %7s %7s %7s %7s %9s %7s"
        print(row % ("score API, %s client thread(s)" % sa["clients"], "req/s", "p50 ms",
                     "p95 ms", "p99 ms", "max ms", "requests", "not 200"))
        h, t = sa["at_half_load"], sa["throughput"]
        for label, q in (("worker at %s/s (%d%% of max)" % (fmt(h["rate"]), round(
                h["share_of_max"] * 100)) if h else "", h),
                         ("worker on the backlog, flat out", (t or {}).get("requests"))):
            if q and q.get("requests") is not None:
                print(row % (label, fmt(q["requests_per_s"]), fmt(q["p50_ms"], 2),
                             fmt(q["p95_ms"], 2), fmt(q["p99_ms"], 2), fmt(q["max_ms"], 1),
                             fmt(q["requests"]), fmt(q["not_200"])))
        if h and h.get("events"):
            ev, pl = h["events"], h["plain_events"] or {}
            print("    at %d%%: answers %s; event latency p50 %s, p99 %s ms (without requests %s, "
                  "%s ms)" % (round(h["share_of_max"] * 100), answers_text(h.get("statuses")),
                              ev["p50"], ev["p99"], pl.get("p50", "-"), pl.get("p99", "-")))
            ls, pls = ev.get("last_second") or {}, pl.get("last_second") or {}
            print("      the load's last second: p50 %s, max %s ms (without requests %s, %s ms); "
                  "drained %s s" % (ls.get("p50", "-"), ls.get("max", "-"), pls.get("p50", "-"),
                                    pls.get("max", "-"), ev.get("drain_after_load_s")))
            print("      after the load (without requests %s s): %s" % (
                pl.get("drain_after_load_s", "-"),
                "kept up" if h["kept_up"] else "DID NOT KEEP UP"))
        if t:
            print("    on the backlog: %s events/s answering, %s of the plain worker's %s (median "
                  "of %d): loss %s" % (fmt(t["events_per_s"]), t["to_worker"],
                                       fmt(t["worker_events_per_s"]), t["worker_runs"],
                                       "-" if t["loss"] is None else "%.1f%%" % (t["loss"] * 100)))
            print("      worker CPU s/M %s (plain %s); answers %s" % (
                fmt(t["cpu_s_per_million"], 1), fmt(t["worker_cpu_s_per_million"], 1),
                answers_text((t["requests"] or {}).get("statuses"))))
        for label, x in (("at half load", h), ("on the backlog", t)):
            cl, sv = (x or {}).get("client") or {}, (x or {}).get("server") or {}
            if cl.get("requests"):
                print("    %s, the whole client run: %s requests in %s s, %s connections opened, "
                      "client CPU %s s;" % (label, fmt(cl["requests"]), cl["seconds"],
                                            fmt(cl.get("connections_opened")),
                                            fmt(cl.get("cpu_s"), 2)))
                print("      the API's own time (streamscore_score_request_seconds), mean %s ms"
                      % fmt(sv.get("mean_ms"), 3))
        print("  (client: bench.py score-load, Python http.client, one connection per thread kept "
              "alive while the")
        print("   API keeps it, on the same CPUs; requests counted from the first to the last "
              "append of the events")
        print("   at half load, of the predictions on the backlog; answers 0: none)")
    xs = results["explain"]
    if xs:
        print(line)
        print("  explanations (explain.top.k = %d)" % xk)
        row = "  %-40s %24s %24s"
        cols = [k for k in EXPLAIN_KINDS if k in xs]
        if cols:
            print(row % ("", *("every event" if k == "explain" else "explain.sample %g"
                               % xs[k]["sample"] for k in cols), *([""] * (2 - len(cols)))))

            def cells(get):
                return [get(xs[k]) for k in cols] + [""] * (2 - len(cols))

            def rng(q, nd=3):
                return ("-" if q["median"] is None else "%s (%s..%s)" % (
                    fmt(q["median"], nd), fmt(q["min"], nd), fmt(q["max"], nd)))

            print(row % ("events/s / the worker's (range)", *cells(lambda v: rng(v["to_worker"]))))
            print(row % ("CPU us per event beyond the worker's", *cells(
                lambda v: rng(v["cpu_us_per_event_over_worker"], 2))))
            print(row % ("share of events explained", *cells(
                lambda v: fmt(v["share_explained"], 4))))
            print(row % ("in the worker: explain ms per batch", *cells(
                lambda v: fmt(v["explain_ms_per_batch"], 3))))
            print(row % ("in the worker: explain us per explained", *cells(
                lambda v: fmt(v["explain_us_per_explained"], 2))))
            print("  %s" % "(CPU: of the worker process, from the release of the backlog to the "
                         "last commit, minus the plain")
            print("  %s" % " worker's in the same round; in the worker: streamscore_explain_"
                         "seconds, wall clock)")
        cb = xs.get("components_by_batch")
        if cb:
            sizes = list(cb)
            row = "  %-40s" + " %9s" * len(sizes)
            print(row % ("one thread, us per row, by batch size", *sizes))
            print(row % ("  predict (ss_model_predict)", *(fmt(cb[z]["predict_us_per_row"], 3)
                                                          for z in sizes)))
            print(row % ("  explain: contributions + top-%s" % xs.get("components_top_k"),
                         *(fmt(cb[z]["explain_us_per_row"], 3) for z in sizes)))
            print(row % ("    of which contributions", *(
                fmt(cb[z]["contributions_us_per_row"], 3) for z in sizes)))
            print(row % ("    of which top-k", *(fmt(cb[z]["top_k_us_per_row"], 3)
                                                for z in sizes)))
            print(row % ("  explain / predict", *(fmt(cb[z]["explain_to_predict"], 2)
                                                 for z in sizes)))
    st = results["state"]
    if st:
        print(line)
        row = "  %-22s %8s %9s %9s %7s %8s %8s %8s %7s %7s"
        print(row % ("local store, Redis", "hit rate", "customers", "store MB", "B/cust",
                     "peak RSS", "Redis us", "Redis ms", "trips", "flushes"))
        for k, v in st.items():
            hr = v["hit_rate"]["median"] if isinstance(v["hit_rate"], dict) else v["hit_rate"]
            print(row % (KIND_LABELS[k], fmt(hr, 4) if hr is not None else "-",
                         fmt(v["store_customers"]),
                         fmt(v["store_bytes"] / 1e6 if v["store_bytes"] is not None else None, 1),
                         fmt(v["store_bytes_per_customer"]), "%s MB" % fmt(v["rss_mb"], 1),
                         fmt(v.get("redis_cpu_us_per_event"), 2), fmt(v["redis_ms_per_batch"], 3),
                         fmt(v["redis_round_trips_per_batch"], 2), fmt(v["flushes_per_batch"], 2)))
        print("  %-22s %s" % ("", "(from /metrics at the end of each run; hit rate = hits / "
                                  "(hits + misses);"))
        print("  %-22s %s" % ("", " Redis us: redis-server CPU per event; Redis ms, trips, "
                                  "flushes: per batch)"))
    print(line)
    row = "  %-26s %7s %7s %7s %7s %9s %8s %7s %7s %7s"
    print(row % ("latency (append to append)", "p50 ms", "p95 ms", "p99 ms", "max ms", "events",
                 "CPU s/M", "load", "Kafka", "Redis"))
    for key, v in latency.items():
        print(row % ("%s/s (%d%% of max)" % (key, round(v["share_of_max"] * 100)), v["p50"],
                     v["p95"], v["p99"], v["max"], v["events"], fmt(v["cpu_s_per_million"], 2),
                     fmt(v["load_generator_cpu_s_per_million"], 2),
                     fmt(v["kafka_cpu_s_per_million"], 2), fmt(v["redis_cpu_s_per_million"], 2)))
        for stage, label in (("append_to_scored", "  event append to scored"),
                             ("scored_to_append", "  scored to pred. append")):
            q = v.get(stage)
            if q:
                print(row % (label, q["p50"], q["p95"], q["p99"], q["max"], "", "", "", "", ""))
    comp = results["components"]
    if comp:
        print(line)
        pr = comp.get("predict", {})
        rd = comp.get("redis", {})
        pd = comp.get("produce", {})
        b = str(c["batch_max_messages"])
        print("  components (one thread): decode %s ns/event, merge %s ns, hash %s ns, "
              "encode %s ns" % (comp["decode"]["ns_per_event"], comp["merge"]["ns_per_event"],
                                comp["merge"]["hash_ns_per_event"],
                                comp["encode"]["ns_per_event"]))
        print("    predict ns/row by batch: " + ", ".join(
            "%s: %s" % (k, fmt(v["ns_per_row"])) for k, v in pr.items()))
        print("    redis read+write ms/batch: " + ", ".join(
            "%s: %s" % (k, v["round_trip_ms"]) for k, v in rd.items()))
        print("    produce+acks ms/batch: " + ", ".join(
            "%s: %s" % (k, v["ms_per_batch"]) for k, v in pd.items()))
    sb = results["stage_budget_ms_per_batch"]
    if sb:
        print("  per batch of %d, one thread (ms): %s" % (a.batch, ", ".join(
            "%s %s" % (k, v) for k, v in sb["components"].items())))
        print("    sum %s (work beyond Kafka %s); measured per batch and thread: worker %s, "
              "pass-through %s; in the worker run: redis %s, predict %s" % (
                  sb["components_sum"], sb["work_beyond_kafka"], sb["worker_measured"],
                  sb["passthrough_measured"], sb["worker_run"].get("redis_read_and_write"),
                  sb["worker_run"].get("predict")))
    soak = results["soak"]
    if soak and soak.get("slope_mb_per_min") is not None:
        print(line)
        print("  soak %s s at %s/s: RSS %s -> %s MB (max %s), slope %s MB/min, second half %s "
              "MB/min" % (soak["seconds"], fmt(soak.get("rate")), soak["rss_mb_first"],
                          soak["rss_mb_last"], soak["rss_mb_max"], soak["slope_mb_per_min"],
                          soak["slope_mb_per_min_second_half"]))
        if soak.get("store_bytes_last") is not None:
            print("    local store %s -> %s bytes (at half time %s), %s customers at the end" % (
                fmt(soak["store_bytes_first"]), fmt(soak["store_bytes_last"]),
                fmt(soak["store_bytes_at_half"]), fmt(soak["store_customers_last"])))
    goals = results["goals"]
    print(line)
    for k, g in goals.items():
        state = "met" if g["met"] else ("MISSED" if g["met"] is not None else
                                        "not run" if g["value"] is None else "too short")
        print("  goal %-40s %-8s %s" % (k, state, g["value"]))
        if g["met"] is False and g.get("stages"):
            print(textwrap.fill("held back by: " + ", ".join(
                "%s %s" % (n, fmt_any(v)) for n, v in g["stages"].items() if v is not None),
                width=100, initial_indent="    ", subsequent_indent="      "))
    if "python_matches_worker" in results:
        v = results["python_matches_worker"]
        print("  Python peer vs worker: %s predictions compared, %s mismatched, %s" % (
            v.get("compared"), v.get("mismatched_predictions"), "ok" if v.get("ok") else "DIFFER"))
    print("  results: %s" % os.path.relpath(os.path.join(d, "results.json"), ROOT))
    for p in problems:
        print("  FAILED: " + p)
    return 1 if problems else 0


def cmd_markdown(a):
    r = read_json(a.results)
    c = r["conditions"]
    ew, sc = r["events_per_s_runs"], r["stack_cpu_s_per_million"]
    out = []
    out.append("Run %s, commit `%s`%s, `%s`; load average %s at start, %s at end; calibration "
               "%s ms at start, %s ms at end." % (
                   c["date"], c["git_commit"][:12],
                   " (uncommitted changes)" if c["git_dirty"] else "", c["version"],
                   c["loadavg_at_start"], c["loadavg_at_end"], c.get("calibration_ms_at_start"),
                   c.get("calibration_ms_at_end")))
    out.append("")
    out.append("| throughput on a backlog | events/s (median) | range over %d rounds | CPU s per "
               "million events | broker CPU s/M | Redis CPU s/M | peak RSS |" % c["repeats"])
    out.append("|---|---:|---:|---:|---:|---:|---:|")
    for k, label in (("worker", "streamscore worker, %d threads" % c["threads"]),
                     ("passthrough", "Kafka pass-through (C), %d threads" % c["threads"]),
                     ("python", "Python peer, %d processes" % c["threads"]),
                     ("eos", "streamscore worker, exactly-once, %d threads" % c["threads"]),
                     ("cold", "streamscore worker, cold workload (%s new customers), %d threads"
                      % (fmt(c.get("cold_events")), c["threads"])),
                     ("explain", "streamscore worker, `explain.top.k = %s` on every event, %d "
                      "threads" % (c.get("explain_top_k"), c["threads"])),
                     ("explain1", "streamscore worker, `explain.top.k = %s`, `explain.sample = "
                      "%s`, %d threads" % (c.get("explain_top_k"), c.get("explain_sample"),
                                           c["threads"]))):
        e = ew.get(k)
        if not e or e["median"] is None:
            continue
        out.append("| %s | %s | %s – %s | %s | %s | %s | %s MB |" % (
            label, fmt(e["median"]), fmt(e["min"]), fmt(e["max"]),
            fmt(r["cpu_s_per_million"][k], 1), fmt(sc[k]["kafka"], 1), fmt(sc[k]["redis"], 1),
            fmt(r["rss_mb_by_tool"][k], 1)))
    x = r.get("python_redis_client")
    if x:
        out.append("| Python peer with redis-py, %d processes (one run) | %s | | %s | %s | %s | "
                   "%s MB |" % (c["threads"], fmt(x["events_per_s"]),
                                fmt(x["cpu_s_per_million"], 1),
                                fmt(x["kafka_cpu_s_per_million"], 1),
                                fmt(x["redis_cpu_s_per_million"], 1), fmt(x["rss_mb"], 1)))
    out.append("")
    out.append("| ratio (within a round) | median | range |")
    out.append("|---|---:|---:|")
    for k, label in (("worker_to_passthrough", "worker / pass-through"),
                     ("worker_to_python", "worker / Python peer"),
                     ("worker_to_python_per_cpu_s", "worker / Python peer, per CPU second"),
                     ("eos_to_passthrough", "worker exactly-once / pass-through"),
                     ("cold_to_passthrough", "worker on the cold workload / pass-through"),
                     ("explain_to_worker", "worker explaining every event / worker"),
                     ("explain1_to_worker", "worker explaining a share of %s / worker"
                      % c.get("explain_sample"))):
        q = r["ratios"].get(k)
        if not q or q["median"] is None:
            continue
        out.append("| %s | %s | %s – %s |" % (label, q["median"], q["min"], q["max"]))
    jb = r.get("jobs")
    if jb:
        out.append("")
        out.append("| jobs on the backlog's events (one run each) | events/s | events/s per "
                   "core | / the worker's events/s (%s) | seconds |"
                   % fmt(jb["worker_events_per_s"]))
        out.append("|---|---:|---:|---:|---:|")
        x = jb.get("replay")
        if x:
            out.append("| `streamscore replay --from beginning`, the backlog's topic (%s "
                       "partitions) into a new topic | %s | | %s | %s |" % (
                           x.get("partitions") or c["partitions"], fmt(x["events_per_s"]),
                           x["to_worker"], fmt(x["seconds"], 2)))
        for x in jb.get("score_file", []):
            out.append("| `streamscore score-file --threads %s`, an Avro container file, no "
                       "Kafka | %s | %s | %s | %s |" % (
                           x["threads"], fmt(x["events_per_s"]),
                           fmt(x["events_per_s_per_core"]), x["to_worker"],
                           fmt(x["seconds"], 2)))
    sa = r.get("score_api")
    if sa:
        h, t = sa.get("at_half_load"), sa.get("throughput")
        out.append("")
        out.append("| `GET /v1/customers/{id}/score`, %s client threads | "
                   "requests/s | p50 ms | p95 ms | p99 ms | answers | the worker meanwhile |"
                   % sa["clients"])
        out.append("|---|---:|---:|---:|---:|---|---|")

        def answers(q):
            return answers_text({k if k != "0" else "no answer": v
                                 for k, v in q["statuses"].items()})

        if h and h.get("requests") is not None:
            ev, pl = h.get("events") or {}, h.get("plain_events") or {}
            out.append("| while the worker streams at %d %% of its maximum (%s events/s) | %s | "
                       "%s | %s | %s | %s | event p99 %s ms (%s ms without requests), in the "
                       "load's last second p50 %s ms (%s ms), drained %s s after the load (%s "
                       "s): %s |" % (
                           round(h["share_of_max"] * 100), fmt(h["rate"]),
                           fmt(h["requests_per_s"]), fmt(h["p50_ms"], 2), fmt(h["p95_ms"], 2),
                           fmt(h["p99_ms"], 2), answers(h), ev.get("p99", "-"),
                           pl.get("p99", "-"), (ev.get("last_second") or {}).get("p50", "-"),
                           (pl.get("last_second") or {}).get("p50", "-"),
                           ev.get("drain_after_load_s", "-"), pl.get("drain_after_load_s", "-"),
                           "kept up" if h.get("kept_up") else "**fell behind**"))
        q = (t or {}).get("requests")
        if t and q:
            out.append("| while the worker consumes the backlog flat out | %s | %s | %s | %s | "
                       "%s | %s events/s, %s of the plain worker's %s (median of %d): a loss of "
                       "%s |" % (
                           fmt(q["requests_per_s"]), fmt(q["p50_ms"], 2), fmt(q["p95_ms"], 2),
                           fmt(q["p99_ms"], 2), answers(q), fmt(t["events_per_s"]),
                           t["to_worker"], fmt(t["worker_events_per_s"]), t["worker_runs"],
                           "-" if t["loss"] is None else "%.1f %%" % (t["loss"] * 100)))
        conns = [(x["client"]["requests"], x["client"].get("connections_opened"))
                 for x in (h, t) if x and (x.get("client") or {}).get("requests")]
        if conns:
            out.append("")
            out.append("The client opened %s connections for %s requests (requests/s and times "
                       "are the client's, Python on the same CPUs)." % (
                           " and ".join(fmt(c) for _, c in conns),
                           " and ".join(fmt(n) for n, _ in conns)))
    xs = r.get("explain")
    cols = [k for k in EXPLAIN_KINDS if xs and k in xs]
    if cols:
        out.append("")
        out.append("| explanations (`explain.top.k = %s`), against the plain worker of the same "
                   "round | %s |" % (xs["top_k"], " | ".join(
                       "every event" if k == "explain" else "`explain.sample = %s`"
                       % xs[k]["sample"] for k in cols)))
        out.append("|---|" + "---:|" * len(cols))

        def rng(q, nd):
            return ("-" if not q or q["median"] is None else "%s (%s – %s)" % (
                fmt(q["median"], nd), fmt(q["min"], nd), fmt(q["max"], nd)))

        for label, get in (
                ("events/s / the worker's (median, range)", lambda v: rng(v["to_worker"], 3)),
                ("CPU µs per event beyond the worker's (median, range)",
                 lambda v: rng(v["cpu_us_per_event_over_worker"], 2)),
                ("share of events explained", lambda v: fmt(v["share_explained"], 4)),
                ("explain stage in the worker (`streamscore_explain_seconds`), ms per batch",
                 lambda v: fmt(v["explain_ms_per_batch"], 3)),
                ("explain stage in the worker, µs per explained prediction",
                 lambda v: fmt(v["explain_us_per_explained"], 2))):
            out.append("| %s | %s |" % (label, " | ".join(get(xs[k]) for k in cols)))
    cb = xs.get("components_by_batch") if xs else None
    if cb:
        sizes = list(cb)
        out.append("")
        out.append("| µs per row by batch size, one thread (`bench-components`) | %s |"
                   % " | ".join(sizes))
        out.append("|---|" + "---:|" * len(sizes))
        for label, key, nd in (
                ("predict (`ss_model_predict`)", "predict_us_per_row", 3),
                ("explain: `ss_model_contributions` + `ss_explain_top` (top %s)"
                 % xs.get("components_top_k"), "explain_us_per_row", 3),
                ("of which contributions", "contributions_us_per_row", 3),
                ("of which top-k", "top_k_us_per_row", 3),
                ("explain / predict", "explain_to_predict", 2)):
            out.append("| %s | %s |" % (label, " | ".join(fmt(cb[z][key], nd) for z in sizes)))
    st = r.get("state")
    if st:
        out.append("")
        out.append("| local store and Redis, at the end of the run | store hit rate | customers "
                   "in the store | store bytes | bytes per customer | peak RSS | Redis CPU µs "
                   "per event | Redis ms per batch | Redis round trips per batch | flushes per "
                   "batch |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for k, v in st.items():
            hr = v["hit_rate"]
            if isinstance(hr, dict):
                hr = ("%s (%s – %s)" % (fmt(hr["median"], 4), fmt(hr["min"], 4),
                                        fmt(hr["max"], 4)) if hr["median"] is not None else "-")
            else:
                hr = fmt(hr, 4)
            out.append("| %s | %s | %s | %s | %s | %s MB | %s | %s | %s | %s |" % (
                KIND_LABELS.get(k, k), hr, fmt(v["store_customers"]), fmt(v["store_bytes"]),
                fmt(v["store_bytes_per_customer"]), fmt(v["rss_mb"], 1),
                fmt(v.get("redis_cpu_us_per_event"), 2), fmt(v["redis_ms_per_batch"], 3),
                fmt(v["redis_round_trips_per_batch"], 2), fmt(v["flushes_per_batch"], 2)))
    out.append("")
    out.append("| offered rate (share of the worker's maximum) | p50 ms | p95 ms | p99 ms | max ms "
               "| events | worker CPU s/M | load generator CPU s/M | broker CPU s/M | "
               "Redis CPU s/M |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key, v in r["latency_ms"].items():
        out.append("| %s/s (%d%%) | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            fmt(int(key)), round(v["share_of_max"] * 100), v["p50"], v["p95"], v["p99"],
            v["max"], fmt(v["events"]), fmt(v["cpu_s_per_million"], 1),
            fmt(v["load_generator_cpu_s_per_million"], 1), fmt(v["kafka_cpu_s_per_million"], 1),
            fmt(v["redis_cpu_s_per_million"], 1)))
    comp = r.get("components")
    if comp:
        out.append("")
        out.append("| component (one thread) | figure |")
        out.append("|---|---|")
        out.append("| decode (`ss_decoder_decode`) | %s ns/event |"
                   % comp["decode"]["ns_per_event"])
        out.append("| merge into the customer's state, row copy | %s ns/event |"
                   % comp["merge"]["ns_per_event"])
        out.append("| feature hash | %s ns/event |" % comp["merge"]["hash_ns_per_event"])
        out.append("| encode the prediction (Avro) | %s ns/event, %s bytes |" % (
            comp["encode"]["ns_per_event"], comp["encode"]["mean_bytes"]))
        out.append("| predict, µs per batch (ns per row) | %s |" % ", ".join(
            "%s: %s (%s)" % (k, v["us_per_batch"], fmt(v["ns_per_row"]))
            for k, v in comp["predict"].items()))
        out.append("| Redis read + write pipelines, ms per batch | %s |" % ", ".join(
            "%s: %s + %s" % (k, v["read_ms"], v["write_ms"]) for k, v in comp["redis"].items()))
        out.append("| produce a batch and wait for every ack, ms per batch | %s |" % ", ".join(
            "%s: %s" % (k, v["ms_per_batch"]) for k, v in comp["produce"].items()))
    sb = r.get("stage_budget_ms_per_batch")
    if sb:
        out.append("")
        out.append("Per batch of %d, from the components: %s; sum %s ms. Measured per batch and "
                   "thread: worker %s ms, pass-through %s ms." % (
                       c["batch_max_messages"], ", ".join("%s %s ms" % (k.replace("_", " "), v)
                                                          for k, v in sb["components"].items()),
                       sb["components_sum"], sb["worker_measured"], sb["passthrough_measured"]))
    goals = r.get("goals")
    if goals:
        out.append("")
        out.append("| goal | value | met | criterion |")
        out.append("|---|---:|---|---|")
        for k, g in goals.items():
            state = ("yes" if g["met"] else "**no**" if g["met"] is not None else
                     "not run" if g["value"] is None else "too short")
            out.append("| `%s` | %s | %s | %s |" % (k, "-" if g["value"] is None else g["value"],
                                                    state, g.get("criterion", g.get("note", ""))))
        runs = [(label, goals.get(k, {}).get("stages")) for label, k in (
            ("worker, hot", "worker_at_least_0.8_of_passthrough"),
            ("worker, exactly-once", "exactly_once_at_least_0.5_of_passthrough"),
            ("worker, cold", "cold_at_least_0.5_of_passthrough"))]
        runs = [(label, g) for label, g in runs if g and g.get("ms_per_batch_per_thread")]
        if runs:
            out.append("")
            out.append("| where a batch's time goes (medians over the rounds) | ms per batch and "
                       "thread | beyond the pass-through's | Redis ms per batch | Redis round "
                       "trips per batch | predict ms per batch | store hit rate | flushes per "
                       "batch | largest stage |")
            out.append("|---|---:|---:|---:|---:|---:|---:|---:|---|")
            for label, g in runs:
                out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                    label, g["ms_per_batch_per_thread"], g["beyond_passthrough_ms"],
                    fmt(g["redis_ms_per_batch"], 3), fmt(g["redis_round_trips_per_batch"], 2),
                    fmt(g["predict_ms_per_batch"], 3), fmt(g["hit_rate"], 4),
                    fmt(g["flushes_per_batch"], 2), g.get("largest_stage", "-")))
            out.append("")
            out.append("The pass-through takes %s ms per batch and thread." % fmt(
                runs[0][1]["passthrough_ms_per_batch_per_thread"], 3))
        for k, g in goals.items():
            if g["met"] is False and g.get("stages"):
                out.append("")
                out.append("`%s` missed; measured: %s." % (k, ", ".join(
                    "%s %s" % (n.replace("_", " "), fmt_any(v))
                    for n, v in g["stages"].items() if v is not None
                    and not (n in TABLED_STAGES and k in TABLED_GOALS))))
    s = r.get("soak")
    if s and s.get("slope_mb_per_min") is not None:
        out.append("")
        out.append("Soak: %s s at %s events/s (%s events): RSS %s MB at the first sample, %s MB "
                   "at half time, %s MB at the end (max %s MB); slope %s MB/min overall, %s "
                   "MB/min over the second half (growth %s MB)." % (
                       s["seconds"], fmt(s.get("offered_events_per_s")), fmt(s.get("events")),
                       s["rss_mb_first"], s["rss_mb_at_half"], s["rss_mb_last"], s["rss_mb_max"],
                       s["slope_mb_per_min"], s["slope_mb_per_min_second_half"],
                       s["growth_mb_second_half"]))
        if s.get("store_bytes_last") is not None:
            out[-1] += (" The local store: %s bytes at the first sample, %s at half time, %s at "
                        "the end (%s customers)." % (
                            fmt(s["store_bytes_first"]), fmt(s["store_bytes_at_half"]),
                            fmt(s["store_bytes_last"]), fmt(s["store_customers_last"])))
    print("\n".join(out))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("topics")
    t.add_argument("--bootstrap", required=True)
    t.add_argument("--partitions", type=int, required=True)
    t.add_argument("names", nargs="+", help="topics; a name ending in .dlq gets one partition")
    r = sub.add_parser("ready")
    r.add_argument("--bootstrap", required=True)
    r.add_argument("--group", required=True)
    r.add_argument("--topic", required=True)
    r.add_argument("--members", type=int, required=True)
    r.add_argument("--settle", type=float, default=1.0, help="seconds it must stay ready")
    r.add_argument("--timeout", type=float, default=60)
    r.add_argument("--pid", type=int, action="append", help="stop waiting when these exit")
    dr = sub.add_parser("drained")
    dr.add_argument("--bootstrap", required=True)
    dr.add_argument("--group", required=True)
    dr.add_argument("--topic", required=True)
    dr.add_argument("--pid", type=int, action="append", help="stop waiting when these exit")
    dr.add_argument("--timeout", type=float, default=120)
    dr.add_argument("--txn", action="store_true",
                    help="the topic was written in one transaction: the last offset of each "
                         "partition is its commit marker, never consumed")
    c = sub.add_parser("collect")
    c.add_argument("--bootstrap", required=True)
    c.add_argument("--topic", required=True)
    c.add_argument("--out", required=True, help=".npy file of the records read")
    c.add_argument("--predictions", action="store_true", help="decode source partition/offset")
    c.add_argument("--txn", action="store_true", help="as drained --txn")
    c.add_argument("--timeout", type=float, default=120)
    o = sub.add_parser("offsets")
    o.add_argument("--bootstrap", required=True)
    o.add_argument("--topic", required=True)
    p = sub.add_parser("proc")
    p.add_argument("--names", type=lambda v: v.split(","),
                   help="comma-separated names of the processes, in order")
    p.add_argument("pids", type=int, nargs="+")
    sc = sub.add_parser("scrape")
    sc.add_argument("--listen", required=True, help="host:port of the worker's metrics.listen")
    sa = sub.add_parser("sample")
    sa.add_argument("--pid", type=int, required=True)
    sa.add_argument("--interval", type=float, default=5)
    sa.add_argument("--out", required=True)
    sa.add_argument("--until-file", help="stop once this file exists")
    sa.add_argument("--listen", help="host:port of the worker's metrics.listen: sample the "
                                     "local store's size too")
    sl = sub.add_parser("score-load")
    sl.add_argument("--listen", required=True, help="host:port of the worker's score.listen")
    sl.add_argument("--threads", type=int, default=4,
                    help="threads, one connection each (the API takes 8 per address)")
    sl.add_argument("--redis-host", default="127.0.0.1")
    sl.add_argument("--redis-port", type=int, required=True)
    sl.add_argument("--prefix", required=True,
                    help="the worker's redis.key.prefix: the customers asked for are those "
                         "Redis holds under it")
    sl.add_argument("--seconds", type=float, default=0, help="stop after this long; 0: never")
    sl.add_argument("--until-file", help="stop once this file exists")
    sl.add_argument("--ready-file", help="created once every thread had its first answer")
    sl.add_argument("--timeout", type=float, default=10, help="of a request, s")
    sl.add_argument("--seed", type=int, default=1)
    sl.add_argument("--out", help=".npy file of every request: start (µs), time (µs), status")
    rc = sub.add_parser("redis-copy")
    rc.add_argument("--redis-host", default="127.0.0.1")
    rc.add_argument("--redis-port", type=int, required=True)
    rc.add_argument("--from", required=True, help="prefix of the hashes copied")
    rc.add_argument("--to", required=True, help="prefix of the copies")
    rp = sub.add_parser("report")
    rp.add_argument("--dir", required=True)
    rp.add_argument("--bin", required=True, help="the streamscore binary (for --version)")
    for k in ("events", "customers", "partitions", "threads", "batch", "batch-wait-ms",
              "peer-batch", "repeat"):
        rp.add_argument("--" + k, type=int, required=True)
    rp.add_argument("--latency-seconds", type=float, required=True)
    rp.add_argument("--cold-events", type=int, default=0,
                    help="events (and distinct customers) of the cold workload")
    rp.add_argument("--explain-top-k", type=int, default=3,
                    help="explain.top.k of the explain runs and of the explain component")
    rp.add_argument("--explain-sample", type=float, default=0.01,
                    help="explain.sample of the explain1 runs")
    rp.add_argument("--loadavg", required=True)
    rp.add_argument("--started", required=True, help="UTC date and time of the start")
    af = sub.add_parser("avro-file")
    af.add_argument("--bootstrap", required=True)
    af.add_argument("--topic", required=True)
    af.add_argument("--out", required=True)
    af.add_argument("--timeout", type=float, default=180)
    sub.add_parser("calibrate")
    md = sub.add_parser("markdown")
    md.add_argument("results", help="a results.json of make bench")
    a = ap.parse_args(argv)
    return {"topics": cmd_topics, "ready": cmd_ready, "drained": cmd_drained,
            "collect": cmd_collect, "offsets": cmd_offsets, "proc": cmd_proc,
            "scrape": cmd_scrape, "sample": cmd_sample, "report": cmd_report,
            "markdown": cmd_markdown, "calibrate": cmd_calibrate,
            "avro-file": cmd_avro_file, "score-load": cmd_score_load,
            "redis-copy": cmd_redis_copy}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
