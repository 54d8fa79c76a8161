"""Fault-injection building blocks: a paced stream of events (with malformed records among
them) produced while a fault hits the stack, a monitor that samples what the worker's group
has committed, and the account of every input offset that each fault test asserts on and
writes into the reliability report (docs/reliability.md, `make reliability`)."""

import datetime
import json
import logging
import os
import platform
import subprocess
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from confluent_kafka import Consumer, Producer, TopicPartition

import bad_inputs
import harness as h

CONNECT = "__connect.errors."


def java_hash(text):
    """Java's String.hashCode (UTF-16 code units), as an unsigned 32-bit int."""
    v = 0
    data = text.encode("utf-16-be")
    for i in range(0, len(data), 2):
        v = (31 * v + int.from_bytes(data[i:i + 2], "big")) & 0xFFFFFFFF
    return v


def coordinator_partition(key, partitions):
    """The partition of __consumer_offsets (group id) or __transaction_state (transactional
    id) that holds key: Kafka's Utils.abs(key.hashCode()) % partitions."""
    return (java_hash(key) & 0x7FFFFFFF) % partitions


def _malformed(rng, valid):
    """A record the worker cannot decode: truncated Avro, garbage, or empty."""
    kind = rng.integers(0, 3)
    if kind == 0 and len(valid) > 4:
        return valid[: int(rng.integers(1, len(valid) - 1))]
    if kind == 1:
        return bytes(rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8))
    return b""


class Stream(threading.Thread):
    """Produces n records to topic at a steady rate from its own thread: valid customer
    events, and every malformed_every-th record one the worker must dead-letter. The
    producer is idempotent with a long delivery timeout, so broker failures delay records
    but never drop or duplicate them. placed maps (partition, offset) -> (kind, customer)."""

    def __init__(self, topic, n, rate, seed, malformed_every=40, customers=400):
        super().__init__(daemon=True)
        self.topic = topic
        self.rate = rate
        rng = np.random.default_rng(seed)
        ids = [f"cust-{seed}-{i:04d}" for i in range(customers)]
        events = h.random_events(rng, ids, n)
        self.events = events  # the event of each record (a malformed one: what it garbles)
        self.where = [None] * n  # (partition, offset) of each record once delivered
        self.unreported = []  # delivered without an offset: found by reading the topic
        self.records = []
        for i, ev in enumerate(events):
            value = h.encode_avro(h.EVENT_SCHEMA_PATH, ev)
            if malformed_every and i % malformed_every == malformed_every // 2:
                self.records.append(("malformed", ev["customer_id"], _malformed(rng, value)))
            else:
                self.records.append(("event", ev["customer_id"], value))
        self.placed = {}
        self.errors = []
        self.sent = 0
        self.delivered = 0
        self.finished = threading.Event()
        self.abort = threading.Event()  # set: stop producing (a failed test)
        self._lock = threading.Lock()

    @property
    def n(self):
        return len(self.records)

    def run(self):
        p = Producer({"bootstrap.servers": h.BOOTSTRAP, "enable.idempotence": True,
                      "linger.ms": 5, "message.timeout.ms": 120000,
                      "logger": logging.getLogger("streamscore.it.stream")})

        def on_delivery(i, kind, customer):
            def cb(err, msg):
                with self._lock:
                    if err is not None:
                        self.errors.append(str(err))
                    elif msg.offset() < 0:
                        # persisted, offset not reported: an idempotent retry of a batch the
                        # broker had written before it crashed (DUPLICATE_SEQUENCE_NUMBER)
                        self.unreported.append((i, kind, customer, msg.partition()))
                        self.delivered += 1
                    else:
                        self.placed[(msg.partition(), msg.offset())] = (kind, customer)
                        self.where[i] = (msg.partition(), msg.offset())
                        self.delivered += 1
            return cb

        try:
            start = time.monotonic()
            for i, (kind, customer, value) in enumerate(self.records):
                if self.abort.is_set():
                    return
                due = start + i / self.rate
                while True:
                    wait = due - time.monotonic()
                    if wait <= 0:
                        break
                    p.poll(min(wait, 0.05))
                while True:
                    try:
                        p.produce(self.topic, key=customer.encode(), value=value,
                                  on_delivery=on_delivery(i, kind, customer))
                        break
                    except BufferError:
                        p.poll(0.05)
                self.sent = i + 1
                p.poll(0)
            left = p.flush(150) if not self.abort.is_set() else 0
            if left:
                self.errors.append(f"{left} records not delivered")
        finally:
            self.finished.set()

    def _locate_unreported(self):
        """Records delivered without an offset, found in the topic by key and value (records
        with the same key and value are the same for the accounting)."""
        records, _ = h.read_all(self.topic, decode=None, timeout=60.0)
        free = {}
        for r in records:
            where = (r["_partition"], r["_offset"])
            if where not in self.placed:
                free.setdefault((r["_partition"], r["_key"], r["_raw"]), []).append(where)
        for i, kind, customer, partition in self.unreported:
            value = self.records[i][2]
            spots = free.get((partition, customer.encode(), value))
            assert spots, f"record {i} ({kind}, {customer}) delivered but not in the topic"
            where = spots.pop(0)
            self.placed[where] = (kind, customer)
            self.where[i] = where
        self.unreported = []

    def wait_sent(self, count, timeout=120.0):
        """Wait until count records were handed to the producer."""
        deadline = time.monotonic() + timeout
        while self.sent < count and not self.finished.is_set():
            assert time.monotonic() < deadline, f"only {self.sent} of {count} records sent"
            time.sleep(0.05)

    def join_all(self, timeout=180.0):
        assert self.finished.wait(timeout), \
            f"stream still producing after {timeout}s ({self.delivered}/{self.n} delivered)"
        assert not self.errors, f"producing the input stream failed: {self.errors[:5]}"
        if self.unreported:
            self._locate_unreported()
        assert len(self.placed) == self.n, f"{len(self.placed)} of {self.n} records placed"
        return dict(self.placed)


class CommitMonitor(threading.Thread):
    """Samples, twice a second, the offsets the group committed on the input topic and then
    the end offsets of the output and dead-letter topics. An offset committed after its
    record's output was acknowledged has that output below the end offsets read after it:
    each sample is checked against the outputs in account()."""

    def __init__(self, group, input_topic, output_topic, dlq_topic, partitions, interval=0.5):
        super().__init__(daemon=True)
        self.group = group
        self.topics = {"input": input_topic, "output": output_topic, "dlq": dlq_topic}
        self.partitions = partitions
        self.interval = interval
        self.samples = []
        self.failed_samples = 0
        self.last_error = None
        self._halt = threading.Event()

    def run(self):
        c = Consumer({"bootstrap.servers": h.BOOTSTRAP, "group.id": self.group,
                      "enable.auto.commit": False,
                      "client.id": f"it-commit-monitor-{uuid.uuid4().hex[:6]}",
                      # end offsets are high watermarks, not last stable offsets: an output
                      # written in a transaction is below the high watermark from its ack on
                      "isolation.level": "read_uncommitted",
                      "logger": logging.getLogger("streamscore.it.monitor")})
        try:
            for topic in self.topics.values():  # into the client's metadata
                c.list_topics(topic, timeout=10)
            while not self._halt.wait(self.interval):
                try:
                    committed = {tp.partition: tp.offset for tp in c.committed(
                        [TopicPartition(self.topics["input"], p) for p in self.partitions],
                        timeout=3) if tp.offset >= 0}
                    ends = {}
                    for kind in ("output", "dlq"):
                        ends[kind] = {p: c.get_watermark_offsets(
                            TopicPartition(self.topics[kind], p), timeout=3, cached=False)[1]
                            for p in self.partitions}
                    if committed:
                        self.samples.append((committed, ends))
                except Exception as e:  # noqa: BLE001 - a broker down: this sample is skipped
                    self.failed_samples += 1
                    self.last_error = repr(e)
                    # a partition the client's metadata lacks ("Unknown partition") stays
                    # unknown until the metadata is asked for again
                    for topic in self.topics.values():
                        try:
                            c.list_topics(topic, timeout=2)
                        except Exception:  # noqa: BLE001 - the next sample tries again
                            pass
        finally:
            c.close()

    def stop(self):
        self._halt.set()
        self.join(30)


def _source_of_dead_letter(rec):
    headers = {k: v for k, v in rec["_headers"]}
    return (int(headers[CONNECT + "partition"]), int(headers[CONNECT + "offset"]))


def account(placed, predictions, dead_letters, samples=()):
    """Every input offset against what came out: lost, misrouted, duplicated, and every
    commit sample against the outputs (an offset committed before its output existed)."""
    outputs = {}  # source -> [(kind, partition, offset)]
    wrong_customer = []
    for r in predictions:
        src = (r["source_partition"], r["source_offset"])
        outputs.setdefault(src, []).append(("output", r["_partition"], r["_offset"]))
        want = placed.get(src)
        if want is not None and want[1] != r["customer_id"]:
            wrong_customer.append((src, r["customer_id"], want[1]))
    for r in dead_letters:
        src = _source_of_dead_letter(r)
        outputs.setdefault(src, []).append(("dlq", r["_partition"], r["_offset"]))
    kinds = {src: {o[0] for o in outs} for src, outs in outputs.items()}
    lost = sorted(src for src in placed if src not in outputs)
    unknown = sorted(src for src in outputs if src not in placed)
    misrouted = sorted(src for src, (kind, _) in placed.items() if src in kinds and
                       kinds[src] != ({"dlq"} if kind == "malformed" else {"output"}))
    duplicates = sum(len(outs) - 1 for outs in outputs.values())
    first = {}
    for src, outs in outputs.items():
        first[src] = min(outs, key=lambda o: o[2])
    by_partition = {}
    for (p, o) in placed:
        by_partition.setdefault(p, []).append(o)
    early = []
    for committed, ends in samples:
        for p, c in committed.items():
            for o in by_partition.get(p, ()):
                if o >= c:
                    continue
                out = first.get((p, o))
                if out is None or out[2] >= ends[out[0]].get(out[1], 0):
                    early.append(((p, o), c, out))
    return {
        "records_in": len(placed),
        "events": sum(1 for kind, _ in placed.values() if kind == "event"),
        "malformed": sum(1 for kind, _ in placed.values() if kind == "malformed"),
        "predictions_out": len(predictions),
        "dead_lettered": len(dead_letters),
        "duplicates": duplicates,
        "duplicated_offsets": sum(1 for outs in outputs.values() if len(outs) > 1),
        "lost": len(lost),
        "lost_examples": lost[:5],
        "unknown": unknown[:5],
        "misrouted": misrouted[:5],
        "wrong_customer": wrong_customer[:5],
        "commit_samples": len(samples),
        "committed_before_output": len(early),
        "early_examples": early[:3],
    }


def assert_nothing_lost(acc):
    """What every fault test asserts on its account."""
    summary = json.dumps({k: v for k, v in acc.items()}, default=str)
    assert acc["lost"] == 0, f"input offsets without any output: {summary}"
    assert not acc["unknown"], f"outputs for offsets never produced: {summary}"
    assert not acc["misrouted"], f"records on the wrong output: {summary}"
    assert not acc["wrong_customer"], f"predictions for the wrong customer: {summary}"
    assert acc["committed_before_output"] == 0, \
        f"offsets committed before their output was written: {summary}"


# --------------------------------------------------------------------------- the report


def _git(*args):
    try:
        return subprocess.run(["git", *args], cwd=str(h.ROOT), capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _worker_version():
    try:
        return subprocess.run([str(h.BIN), "--version"], capture_output=True, text=True,
                              timeout=10).stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "?"


def write_report(rows, paths):
    """The reliability report: one row per fault scenario, as measured by this run."""
    if not rows:
        return
    commit = _git("rev-parse", "--short", "HEAD") or "?"
    changed = _git("status", "--porcelain", "--untracked-files=no")
    dirty = " (with uncommitted changes)" if changed else ""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Reliability report",
        "",
        "Produced by the fault-injection tests (`tests/integration/test_faults.py`), not written",
        "by hand: `make reliability` runs them and rewrites this file; `make test` runs the same",
        "tests (ctest `integration.faults`) and writes `build/reliability/reliability.md`.",
        "",
        f"Run: {now}, commit {commit}{dirty}, `{_worker_version()}`, on a "
        f"{os.cpu_count()}-core {platform.machine()} Linux machine.",
        "Stack: Kafka 3.9.1, a three-node KRaft cluster on loopback (every node broker and",
        "controller, replication factor 3, min.insync.replicas 2), one Redis.",
        "",
        "Each scenario streams customer events into a live worker at a steady rate, with one",
        "malformed record (truncated Avro, garbage or empty) in every 40, applies its fault",
        "mid-stream, recovers, and waits until every input offset has an output. Then it reads",
        "everything back with an independent client and counts:",
        "",
        "- **records in**: input offsets produced (events + malformed);",
        "- **predictions out** / **dead-lettered**: records on the output and dead-letter topics",
        "  (for exactly-once: what a `read_committed` consumer sees);",
        "- **duplicates**: outputs beyond the first for the same input offset;",
        "- **lost**: input offsets with no output at all: every test asserts it is 0, that",
        "  every malformed record went to the dead-letter topic and every event to the output;",
        "- **commit checks**: samples (twice a second) of the group's committed offsets, each",
        "  checked against the output and dead-letter end offsets read right after it: an offset",
        "  committed before its output was written fails the test.",
        "",
        "| Scenario | Fault | Delivery | Records in | Predictions out | Dead-lettered "
        "| Duplicates | Lost | Commit checks |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        a = r["account"]
        checks = (f"{a['commit_samples']} ok" if a["commit_samples"] and
                  not a["committed_before_output"] else
                  (f"{a['committed_before_output']} violations" if a["commit_samples"]
                   else "in the transaction"))
        lines.append(f"| {r['scenario']} | {r['fault']} | {r['delivery']} | {a['records_in']} "
                     f"| {a['predictions_out']} | {a['dead_lettered']} | {a['duplicates']} "
                     f"| {a['lost']} | {checks} |")
    lines += ["", "## Scenarios", ""]
    for r in rows:
        lines.append(f"**{r['scenario']}**: {r['detail']}")
        if r.get("observed"):
            lines.append("")
            lines.append(f"Observed: {r['observed']}")
        lines.append("")
    text = "\n".join(lines)
    for path in paths:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # the bad-inputs section, written by the other tests, stays
        keep = bad_inputs.kept(path.read_text(encoding="utf-8")) if path.exists() else ""
        path.write_text(text + ("\n" + keep + "\n" if keep else ""), encoding="utf-8")
    json_path = h.ROOT / "build" / "reliability" / "reliability.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(rows, indent=2, default=str), encoding="utf-8")


def report_paths():
    paths = [h.ROOT / "build" / "reliability" / "reliability.md"]
    extra = os.environ.get("SS_RELIABILITY_DOC")
    if extra:
        paths.append(Path(extra) if Path(extra).is_absolute() else h.ROOT / extra)
    return paths

