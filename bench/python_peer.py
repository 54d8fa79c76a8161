#!/usr/bin/env python3
"""python_peer: streamscore's job done in Python, batched, as a benchmark reference.

Per batch (consume(num_messages=B), then up to --batch-wait-ms more to fill it):
  1. decode every value with fastavro.schemaless_reader (raw Avro, writer schema
     schemas/customer_event.avsc, logical types left as plain longs);
  2. map fields to the model's features by name: int/long/float/double -> float32,
     boolean -> 0/1, enum -> the symbol's index in the schema, null/absent/NaN/infinite
     (or a double beyond float32 range) -> NaN;
  3. read the batch's customers' cached features from Redis in one pipeline (HMGET
     <prefix><customer id> <feature names>; RESP packed and parsed here over one socket,
     redis-py's pure-Python packing and parsing being the slowest part otherwise:
     --redis-client redis-py uses redis-py pipelines instead, for comparison), then
     merge in batch (partition) order: an event's non-NaN value overrides the cached one,
     NaN keeps it, a customer's second event in the batch sees the first (vectorised: a
     per-customer forward fill);
  4. score the batch with one Booster.inplace_predict call (XGBoost, nthread 1);
  5. encode one prediction per event with fastavro (schemas/prediction.avsc, every field
     as the worker fills it; feature_hash = FNV-1a 64 of the float32 vector, NaN as
     0x7fc00000) and produce it keyed by customer id (idempotent producer, acks=all);
  6. write the merged vectors back to Redis in one pipeline (HSET of the known features as
     repr(float(float32)) text, EXPIRE --ttl), while the deliveries are in flight;
  7. wait until every delivery is acknowledged (flush), then store the batch's offsets
     (enable.auto.offset.store=false; auto-commit of stored offsets every 1 s, a synchronous
     commit on revocation and at exit).
A record that does not decode, or has no customer id, or scores non-finite, is counted
(`undecodable`, `non_finite`) and skipped: no dead-letter topic here. A delivery failure
stops the peer with exit 1 and that batch's offsets not stored.

  python bench/python_peer.py --bootstrap 127.0.0.1:19092 --input customer-events \\
      --output peer-predictions --group peer-1 --redis-port 16379 --prefix peer:features: \\
      --batch 1024 --stop-after 200000
  python bench/python_peer.py --bootstrap ... --output peer-predictions \\
      --verify-against predictions [--prefix peer:features: --verify-prefix streamscore:features:]

Prints one JSON line on stdout at exit: records (predictions produced and acknowledged),
seconds (first record consumed to the last acknowledgement), events_per_s, undecodable,
non_finite. Exit 0 on --stop-after reached or SIGTERM/SIGINT (after the batch in hand),
1 on a delivery or Redis failure, 2 on bad usage. --verify-against: exit 0 when every
prediction matches, 1 otherwise.
"""
import argparse
import gc
import io
import json
import math
import os
import signal
import socket
import sys
import time
import uuid

import fastavro
import numpy as np
import redis
import xgboost
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAN = float("nan")
NAN_BITS = 0x7FC00000
FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)
NUM, BOOL, ENUM = 0, 1, 2


def log(msg):
    print("python_peer: " + msg, file=sys.stderr, flush=True)


def strip_logical_types(node):
    """The schema without logicalType, so timestamps stay plain longs (as the worker)."""
    if isinstance(node, dict):
        return {k: strip_logical_types(v) for k, v in node.items() if k != "logicalType"}
    if isinstance(node, list):
        return [strip_logical_types(v) for v in node]
    return node


def load_schema(path):
    with open(path, encoding="utf-8") as f:
        return fastavro.parse_schema(strip_logical_types(json.load(f)))


def feature_plan(schema_path, names):
    """Per model feature: (field name, kind, enum symbol -> index)."""
    with open(schema_path, encoding="utf-8") as f:
        fields = {fd["name"]: fd["type"] for fd in json.load(f)["fields"]}
    plan = []
    for name in names:
        if name not in fields:
            raise SystemExit("python_peer: model feature %r is not a field of %s"
                             % (name, schema_path))
        t = fields[name]
        branches = t if isinstance(t, list) else [t]
        kinds = [b for b in branches if b != "null"]
        if len(kinds) != 1:
            raise SystemExit("python_peer: field %r: one non-null type expected" % name)
        k = kinds[0]
        ktype = k["type"] if isinstance(k, dict) else k
        if ktype in ("int", "long", "float", "double"):
            plan.append((name, NUM, None))
        elif ktype == "boolean":
            plan.append((name, BOOL, None))
        elif ktype == "enum":
            plan.append((name, ENUM, {s: float(i) for i, s in enumerate(k["symbols"])}))
        else:
            raise SystemExit("python_peer: field %r: type %r is not a feature type" % (name, k))
    return plan


def to_float32(matrix):
    """float64 rows -> float32, with non-finite values (and overflow) as NaN."""
    a = np.array(matrix, dtype=np.float64).reshape(len(matrix), -1)
    with np.errstate(over="ignore", invalid="ignore"):
        a = a.astype(np.float32)
    a[~np.isfinite(a)] = np.float32(NAN)
    return a


def parse_cached(v):
    """A Redis hash value -> float (NaN when absent, unparsable or non-finite)."""
    if v is None:
        return NAN
    try:
        x = float(v)
    except ValueError:
        return NAN
    return x if math.isfinite(x) else NAN


class RedisError(Exception):
    pass


class Resp:
    """A minimal Redis connection for the hot path: commands are packed as RESP bytes by the
    caller and sent in one write (a pipeline); replies are parsed here. redis-py's own
    packing and reply parsing (no hiredis in the venv) took most of the peer's time."""

    def __init__(self, host, port, timeout):
        self.sock = socket.create_connection((host, port), timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.pos = 0

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise RedisError("connection closed by Redis")
        self.buf = self.buf[self.pos:] + chunk
        self.pos = 0

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n", self.pos)
            if i >= 0:
                line = self.buf[self.pos:i]
                self.pos = i + 2
                return line
            self._fill()

    def reply(self):
        line = self._line()
        t = line[:1]
        if t == b"$":
            n = int(line[1:])
            if n < 0:
                return None
            while len(self.buf) < self.pos + n + 2:
                self._fill()
            v = self.buf[self.pos:self.pos + n]
            self.pos += n + 2
            return v
        if t == b"*":
            n = int(line[1:])
            return None if n < 0 else [self.reply() for _ in range(n)]
        if t == b":":
            return int(line[1:])
        if t == b"+":
            return line[1:]
        if t == b"-":
            raise RedisError("redis: " + line[1:].decode("utf-8", "replace"))
        raise RedisError("redis: unexpected reply %r" % line[:40])

    def arrays(self, n):
        """n array replies of bulk strings (HMGET): a flat loop, no recursion."""
        out = []
        for _ in range(n):
            line = self._line()
            if line[:1] != b"*":
                self.pos -= len(line) + 2
                out.append(self.reply())  # an error (raised) or something unexpected
                continue
            vals = []
            for _ in range(int(line[1:])):
                buf, pos = self.buf, self.pos
                i = buf.find(b"\r\n", pos)
                if i < 0 or buf[pos] != 36:  # '$'
                    vals.append(self.reply())
                    continue
                m = int(buf[pos + 1:i])
                if m < 0:
                    vals.append(None)
                    self.pos = i + 2
                    continue
                if len(buf) < i + 4 + m:
                    vals.append(self.reply())
                    continue
                vals.append(buf[i + 2:i + 2 + m])
                self.pos = i + 4 + m
            out.append(vals)
        return out

    def lines(self, n):
        """n one-line replies (integers from HSET and EXPIRE); an error reply fails."""
        while self.buf.count(b"\r\n", self.pos) < n:
            self._fill()
        data = self.buf[self.pos:]
        self.buf, self.pos = b"", 0  # nothing else was sent: the buffer held exactly these
        if data[:1] == b"-" or b"\n-" in data:
            i = 0 if data[:1] == b"-" else data.index(b"\n-") + 1
            raise RedisError("redis: " + data[i + 1:data.index(b"\r\n", i)].decode("utf-8",
                                                                                   "replace"))

    def pipeline(self, payload, n_replies):
        """Send the packed commands at once, then read their n replies (an error reply
        fails the run: the connection is then out of step)."""
        self.sock.sendall(payload)
        return [self.reply() for _ in range(n_replies)]


def bulk(b):
    return b"$%d\r\n%s\r\n" % (len(b), b)


def merge(events, slots, cached):
    """Rows scored for events (n x nf, batch order) and the final state of every customer
    (u x nf): cached[u] overridden by each of its events' non-NaN values, in order."""
    n, nf = events.shape
    u = cached.shape[0]
    counts = np.bincount(slots, minlength=u)
    starts = np.cumsum(counts + 1) - (counts + 1)  # group of customer s: cached, then events
    order = np.argsort(slots, kind="stable")
    so = slots[order]
    rank = np.arange(n) - (np.cumsum(counts) - counts)[so]
    pos = starts[so] + 1 + rank
    a = np.empty((u + n, nf), dtype=np.float32)
    a[starts] = cached
    a[pos] = events[order]
    idx = np.where(np.isnan(a), 0, np.arange(u + n)[:, None])
    idx[starts] = starts[:, None]  # never fill across customers: a group starts at its cache
    np.maximum.accumulate(idx, axis=0, out=idx)
    filled = a[idx, np.arange(nf)[None, :]]
    rows = np.empty((n, nf), dtype=np.float32)
    rows[order] = filled[pos]
    return rows, filled[starts + counts]


def feature_hashes(rows):
    """FNV-1a 64 over the little-endian float32 bytes of each row, NaN as 0x7fc00000."""
    bits = np.ascontiguousarray(rows, dtype="<f4").view("<u4").copy()
    bits[np.isnan(rows)] = NAN_BITS
    b = bits.astype("<u4").view(np.uint8).reshape(len(rows), -1).astype(np.uint64)
    h = np.full(len(rows), FNV_OFFSET, dtype=np.uint64)
    for j in range(b.shape[1]):
        h ^= b[:, j]
        h *= FNV_PRIME  # wraps modulo 2^64
    return ["%016x" % x for x in h.tolist()]


# ---------------------------------------------------------------------------- run
class Peer:
    def __init__(self, a):
        self.a = a
        with open(a.card, encoding="utf-8") as f:
            card = json.load(f)
        self.model_name = card["name"]
        self.model_version = card["version"]
        self.threshold = float(a.threshold if a.threshold is not None
                               else card.get("threshold", 0.5))
        self.booster = xgboost.Booster(model_file=a.model)
        self.booster.set_param({"nthread": 1})
        names = self.booster.feature_names or card.get("feature_names")
        if not names:
            raise SystemExit("python_peer: the model names no features")
        self.names = list(names)
        self.nf = len(self.names)
        self.plan = feature_plan(a.schema, self.names)
        self.event_schema = load_schema(a.schema)
        self.pred_schema = load_schema(a.prediction_schema)
        self.prefix = a.prefix
        self.rpy = None
        if a.redis_client == "redis-py":
            self.rpy = redis.Redis(host=a.redis_host, port=a.redis_port,
                                   socket_timeout=a.redis_timeout,
                                   socket_connect_timeout=a.redis_timeout)
            self.rpy.ping()
        else:
            self.redis = Resp(a.redis_host, a.redis_port, a.redis_timeout)
            self.redis.pipeline(b"*1\r\n$4\r\nPING\r\n", 1)
        self.names_b = [n.encode() for n in self.names]
        self.hmget_head = b"*%d\r\n$5\r\nHMGET\r\n" % (2 + self.nf)
        self.hmget_tail = b"".join(bulk(n) for n in self.names_b)
        self.field_bulks_s = [bulk(n).decode() for n in self.names_b]
        self.expire_tail = bulk(b"%d" % a.ttl)
        self.stop = False
        self.delivery_errors = []
        self.records = 0
        self.settled = 0
        self.undecodable = 0
        self.non_finite = 0
        self.t_first = None
        self.t_last = None
        self.consumer = Consumer({
            "bootstrap.servers": a.bootstrap,
            "group.id": a.group,
            "client.id": "bench-python-peer",
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
            "enable.auto.offset.store": False,
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 1000,
        })
        self.producer = Producer({
            "bootstrap.servers": a.bootstrap,
            "client.id": "bench-python-peer",
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 2,
            "delivery.report.only.error": True,  # successes only leave the queue (flush sees it)
            "on_delivery": self.on_delivery,
        })

    def on_delivery(self, err, msg):
        if err is not None:
            self.delivery_errors.append(str(err))

    def on_revoke(self, consumer, partitions):
        # hand over what is safe: offsets stored after acknowledgement, synchronously
        try:
            consumer.commit(asynchronous=False)
        except KafkaException as e:
            if e.args[0].code() != KafkaError._NO_OFFSET:
                log("commit on revocation: %s" % e)

    def on_lost(self, consumer, partitions):
        pass  # another member may own them already: nothing is committed

    def collect(self):
        a = self.a
        msgs = self.consumer.consume(num_messages=a.batch, timeout=0.1)
        if msgs and len(msgs) < a.batch and a.batch_wait_ms > 0:
            msgs += self.consumer.consume(num_messages=a.batch - len(msgs),
                                          timeout=a.batch_wait_ms / 1000.0)
        out = []
        for m in msgs:
            err = m.error()
            if err is None:
                out.append(m)
            elif err.code() != KafkaError._PARTITION_EOF:
                log("consumer: %s" % err)
        return out

    def process(self, msgs):
        # records of partitions revoked while the batch was collected belong to another member
        assigned = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
        msgs = [m for m in msgs if (m.topic(), m.partition()) in assigned]
        if not msgs:
            return
        if self.t_first is None:
            self.t_first = time.monotonic()

        # 1-2. decode and map to features
        reader = fastavro.schemaless_reader
        schema = self.event_schema
        plan = self.plan
        kept, raw, cids, slots = [], [], [], []
        slot_of = {}
        for m in msgs:
            try:
                ev = reader(io.BytesIO(m.value()), schema)
            except Exception:  # noqa: BLE001 - any decoding failure: count and skip
                self.undecodable += 1
                continue
            cid = ev.get("customer_id")
            if not isinstance(cid, str) or not cid:
                self.undecodable += 1
                continue
            row = []
            for name, kind, sym in plan:
                v = ev.get(name)
                if v is None:
                    row.append(NAN)
                elif kind == NUM:
                    row.append(float(v))
                elif kind == BOOL:
                    row.append(1.0 if v else 0.0)
                else:
                    row.append(sym.get(v, NAN))
            raw.append(row)
            s = slot_of.get(cid)
            if s is None:
                s = slot_of[cid] = len(cids)
                cids.append(cid)
            slots.append(s)
            t = ev.get("event_time")
            if not isinstance(t, int) or t < 0:
                t = m.timestamp()[1]
            kept.append((m, cid, ev.get("event_id") or "", t))
        n = len(kept)
        if n:
            events = to_float32(raw)
            keys = [self.prefix + c for c in cids]

            # 3. cached features, one pipeline; merge in order
            if self.rpy is not None:  # redis-py: its own packing and reply parsing
                pipe = self.rpy.pipeline(transaction=False)
                for k in keys:
                    pipe.hmget(k, self.names)
                replies = pipe.execute()
            else:
                kb = [bulk(k.encode()) for k in keys]
                head, tail = self.hmget_head, self.hmget_tail
                self.redis.sock.sendall(b"".join([head + k + tail for k in kb]))
                replies = self.redis.arrays(len(kb))
            try:  # the common case: every value is None or a number
                cached = to_float32([[NAN if v is None else float(v) for v in r]
                                     for r in replies])
            except ValueError:
                cached = to_float32([[parse_cached(v) for v in r] for r in replies])
            rows, final = merge(events, np.asarray(slots, dtype=np.int64), cached)

            # 4. score the batch in one call
            scores = self.booster.inplace_predict(rows, missing=np.nan).tolist()
            hashes = feature_hashes(rows)

            # 5. one prediction per event
            scored_at = int(time.time() * 1000)
            writer = fastavro.schemaless_writer
            pschema = self.pred_schema
            buf = io.BytesIO()
            produce = self.producer.produce
            out = self.a.output
            th = self.threshold
            rec = {"threshold": th, "model_name": self.model_name,
                   "model_version": self.model_version, "scored_at": scored_at,
                   "contributions": None, "degraded": False}
            for i, (m, cid, evid, t) in enumerate(kept):
                score = scores[i]
                if not math.isfinite(score):
                    self.non_finite += 1
                    continue
                rec["event_id"] = evid
                rec["customer_id"] = cid
                rec["score"] = score
                rec["decision"] = score >= th
                rec["source_topic"] = m.topic()
                rec["source_partition"] = m.partition()
                rec["source_offset"] = m.offset()
                rec["event_time"] = t
                rec["feature_hash"] = hashes[i]
                buf.seek(0)
                buf.truncate()
                writer(buf, pschema, rec)
                value = buf.getvalue()
                key = cid.encode()
                while True:
                    try:
                        produce(out, value=value, key=key)
                        break
                    except BufferError:
                        self.producer.poll(0.05)
                self.records += 1
            self.producer.poll(0)

            # 6. merged vectors back to Redis while the deliveries are in flight
            if self.rpy is not None:
                pipe = self.rpy.pipeline(transaction=False)
                names = self.names
                for k, vec in zip(keys, final.tolist()):
                    mapping = {names[j]: repr(x) for j, x in enumerate(vec) if x == x}
                    if mapping:  # nothing known about this customer yet: nothing to write
                        pipe.hset(k, mapping=mapping)
                        pipe.expire(k, self.a.ttl)
                pipe.execute()
            else:
                # text built as str: keys and field names as bulk strings, values repr(float)
                fb = self.field_bulks_s
                exp_tail = self.expire_tail.decode()
                parts = []
                n_cmds = 0
                for k, vec in zip(kb, final.tolist()):
                    k = k.decode()
                    fields = []
                    for j, x in enumerate(vec):
                        if x == x:
                            r = repr(x)
                            fields.append(f"{fb[j]}${len(r)}\r\n{r}\r\n")
                    if fields:  # nothing known about this customer yet: nothing to write
                        parts.append(f"*{2 + 2 * len(fields)}\r\n$4\r\nHSET\r\n{k}"
                                     f"{''.join(fields)}*3\r\n$6\r\nEXPIRE\r\n{k}{exp_tail}")
                        n_cmds += 2
                if n_cmds:
                    self.redis.sock.sendall("".join(parts).encode())
                    self.redis.lines(n_cmds)

        # 7. every delivery acknowledged before the offsets are stored
        while self.producer.flush(1.0) > 0:
            pass
        if self.delivery_errors:
            raise RuntimeError("%d record(s) of a batch not delivered: %s; offsets not stored"
                               % (len(self.delivery_errors), self.delivery_errors[0]))
        self.t_last = time.monotonic()
        nxt = {}
        for m in msgs:
            k = (m.topic(), m.partition())
            nxt[k] = max(nxt.get(k, 0), m.offset() + 1)
        try:
            self.consumer.store_offsets(offsets=[TopicPartition(t, p, o)
                                                 for (t, p), o in nxt.items()])
        except KafkaException as e:  # a partition revoked meanwhile: its next owner re-reads
            log("storing offsets: %s" % e)
        self.settled += len(msgs)

    def run(self):
        a = self.a
        self.consumer.subscribe([a.input], on_revoke=self.on_revoke, on_lost=self.on_lost)
        gc.freeze()  # the start-up objects (model, schemas, modules) out of every collection
        rc = 0
        try:
            while not self.stop:
                msgs = self.collect()
                if msgs:
                    self.process(msgs)
                    if a.stop_after and self.settled >= a.stop_after:
                        break
        except (RuntimeError, RedisError, redis.RedisError, OSError, KafkaException) as e:
            log(str(e))
            rc = 1
        finally:
            try:
                self.consumer.commit(asynchronous=False)
            except KafkaException as e:
                if e.args[0].code() != KafkaError._NO_OFFSET:
                    log("final commit: %s" % e)
            self.consumer.close()
            left = self.producer.flush(30)
            if left:
                log("%d record(s) undelivered at exit" % left)
        secs = (self.t_last - self.t_first) if self.t_first and self.t_last else 0.0
        print(json.dumps({"records": self.records, "seconds": round(secs, 3),
                          "events_per_s": round(self.records / secs, 1) if secs > 0 else None,
                          "undecodable": self.undecodable, "non_finite": self.non_finite}),
              flush=True)
        return rc


# ---------------------------------------------------------------------------- verify
def read_topic(bootstrap, topic, schema, timeout):
    """Every record of a topic up to its current end: [(key, decoded value)]."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "python-peer-verify-"
                  + uuid.uuid4().hex[:8], "enable.auto.commit": False,
                  "fetch.wait.max.ms": 50})
    md = c.list_topics(topic, timeout=10).topics.get(topic)
    if md is None or md.error is not None:
        c.close()
        raise SystemExit("python_peer: topic %s not found" % topic)
    parts = sorted(md.partitions)
    end = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
           for p in parts}
    c.assign([TopicPartition(topic, p, 0) for p in parts if end[p] > 0])
    pos = {p: 0 for p in parts}
    out = []
    deadline = time.monotonic() + timeout
    while any(pos[p] < end[p] for p in parts):
        if time.monotonic() > deadline:
            c.close()
            raise SystemExit("python_peer: could not read %s to its end within %.0f s"
                             % (topic, timeout))
        for m in c.consume(5000, timeout=0.2):
            if m.error():
                continue
            out.append((m.key(), fastavro.schemaless_reader(io.BytesIO(m.value()), schema)))
            pos[m.partition()] = m.offset() + 1
    c.close()
    return out


def verify_redis(r, peer_prefix, worker_prefix, names):
    """Both prefixes hold the same customers with the same float32 values."""
    def scan(prefix):
        keys = [k.decode()[len(prefix):] for k in r.scan_iter(match=prefix + "*", count=1000)]
        pipe = r.pipeline(transaction=False)
        for k in keys:
            pipe.hmget(prefix + k, names)
        return {k: [np.float32(parse_cached(v)) if v is not None else None for v in vals]
                for k, vals in zip(keys, pipe.execute())}

    p, w = scan(peer_prefix), scan(worker_prefix)
    differ = [k for k in set(p) & set(w)
              if any((x is None) != (y is None) or (x is not None and x != y)
                     for x, y in zip(p[k], w[k]))]
    return {"customers_peer": len(p), "customers_worker": len(w),
            "only_peer": len(set(p) - set(w)), "only_worker": len(set(w) - set(p)),
            "values_differ": len(differ), "example": sorted(differ)[:3]}


def verify(a):
    schema = load_schema(a.prediction_schema)
    ours = read_topic(a.bootstrap, a.output, schema, a.verify_timeout)
    theirs = read_topic(a.bootstrap, a.verify_against, schema, a.verify_timeout)

    def index(recs):
        out, dup = {}, 0
        for key, v in recs:
            k = ((v["source_partition"], v["source_offset"]) if a.by_offset
                 else (v["source_topic"], v["source_partition"], v["source_offset"]))
            if k in out:
                dup += 1
            else:
                out[k] = (key, v)
        return out, dup

    P, pdup = index(ours)
    W, wdup = index(theirs)
    common = sorted(set(P) & set(W))
    fields = ("event_id", "customer_id", "threshold", "model_name", "model_version",
              "event_time", "contributions", "degraded")
    mism = {"score": 0, "feature_hash": 0, "decision": 0, "key": 0}
    mism.update({f: 0 for f in fields})
    examples = []
    max_diff = 0.0
    n_bad = 0
    for k in common:
        (pk, p), (wk, w) = P[k], W[k]
        bad = []
        d = abs(p["score"] - w["score"])
        max_diff = max(max_diff, d)
        if not d <= 1e-6:
            bad.append("score")
        for f in ("feature_hash", "decision") + fields:
            if p[f] != w[f]:
                bad.append(f)
        if pk != wk:
            bad.append("key")
        for f in bad:
            mism[f] += 1
        if bad:
            n_bad += 1
            if len(examples) < 5:
                examples.append({"source": list(k), "fields": bad,
                                 "peer": {f: p[f] for f in bad if f != "key"},
                                 "worker": {f: w[f] for f in bad if f != "key"}})
    result = {"peer_topic": a.output, "worker_topic": a.verify_against,
              "peer_records": len(ours), "worker_records": len(theirs),
              "peer_duplicates": pdup, "worker_duplicates": wdup,
              "compared": len(common), "only_peer": len(set(P) - set(W)),
              "only_worker": len(set(W) - set(P)), "mismatched_predictions": n_bad,
              "mismatches_by_field": mism, "max_abs_score_diff": max_diff,
              "examples": examples}
    ok = n_bad == 0 and not result["only_peer"] and not result["only_worker"] and common
    if a.verify_prefix:
        r = redis.Redis(host=a.redis_host, port=a.redis_port)
        result["redis"] = verify_redis(r, a.prefix, a.verify_prefix,
                                       list(xgboost.Booster(model_file=a.model).feature_names))
        rr = result["redis"]
        ok = ok and not (rr["only_peer"] or rr["only_worker"] or rr["values_differ"])
    result["ok"] = bool(ok)
    print(json.dumps(result, indent=2, default=str))
    return 0 if ok else 1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", default="127.0.0.1:19092")
    ap.add_argument("--input", default="customer-events", help="input topic")
    ap.add_argument("--output", required=True, help="output topic of the predictions")
    ap.add_argument("--group", help="consumer group (required unless --verify-against)")
    ap.add_argument("--redis-host", default="127.0.0.1")
    ap.add_argument("--redis-port", type=int, default=16379)
    ap.add_argument("--redis-timeout", type=float, default=2.0, help="seconds")
    ap.add_argument("--redis-client", choices=("resp", "redis-py"), default="resp",
                    help="resp: the peer's own RESP packing and parsing over one socket "
                         "(the faster); redis-py: redis-py pipelines")
    ap.add_argument("--prefix", default="python-peer:features:",
                    help="Redis key prefix of the feature hashes")
    ap.add_argument("--ttl", type=int, default=604800, help="TTL of a feature hash, seconds")
    ap.add_argument("--batch", type=int, default=256, help="most records per batch")
    ap.add_argument("--batch-wait-ms", type=float, default=5,
                    help="longest extra wait to fill a batch once its first records arrived")
    ap.add_argument("--stop-after", type=int, default=0,
                    help="exit once N input records were settled (0: never)")
    ap.add_argument("--model", default=os.path.join(ROOT, "models/churn-1.0.0.json"))
    ap.add_argument("--card", help="model card (default: the model's .card.json)")
    ap.add_argument("--threshold", type=float, help="default: the card's threshold, else 0.5")
    ap.add_argument("--schema", default=os.path.join(ROOT, "schemas/customer_event.avsc"),
                    help="writer schema of the input values (raw Avro)")
    ap.add_argument("--prediction-schema", default=os.path.join(ROOT, "schemas/prediction.avsc"))
    ap.add_argument("--verify-against", metavar="TOPIC",
                    help="do not run: compare --output with the worker's predictions in TOPIC")
    ap.add_argument("--verify-prefix", metavar="PREFIX",
                    help="with --verify-against: also compare the Redis hashes under --prefix "
                         "with those under PREFIX (as float32 values)")
    ap.add_argument("--verify-timeout", type=float, default=120)
    ap.add_argument("--by-offset", action="store_true",
                    help="with --verify-against: pair predictions by source partition and "
                         "offset only, for two input topics holding the same records at the "
                         "same offsets (as make bench stages them)")
    a = ap.parse_args(argv)
    if a.card is None:
        a.card = a.model.rsplit(".", 1)[0] + ".card.json"
    if a.batch < 1 or a.stop_after < 0 or a.batch_wait_ms < 0:
        ap.error("--batch >= 1, --stop-after >= 0, --batch-wait-ms >= 0")
    if a.verify_against:
        return verify(a)
    if not a.group:
        ap.error("--group is required")
    peer = Peer(a)

    def on_signal(signum, frame):
        peer.stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return peer.run()


if __name__ == "__main__":
    sys.exit(main())
