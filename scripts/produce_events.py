#!/usr/bin/env python3
"""Load generator: produce synthetic customer events (scripts/churn_data.py) to Kafka as Avro.

Key = customer id; value = the event in raw Avro (body only) or Confluent framing (0x00,
4-byte big-endian schema id, body), written with --writer-schema: fields the writer schema
lacks are dropped, fields it adds take their default. The producer is idempotent with
acks=all and linger.ms=5; the Kafka timestamp is the produce time. --rate paces the
events in small bursts (about 2 ms of events at a time) so that high rates hold.

  python scripts/produce_events.py --count 10000 --customers 500 --rate 2000
  python scripts/produce_events.py --count 0 --rate 200          # until SIGINT/SIGTERM

Prints one JSON summary line on stdout at the end (count, delivered, failed, seconds,
events_per_s). Exit 0 when every event was delivered, 1 when any delivery failed,
2 on bad usage, 130 when interrupted before --count events.
"""
import argparse
import io
import json
import os
import signal
import struct
import sys
import time

import fastavro
from confluent_kafka import KafkaException, Producer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import churn_data  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BURST_SECONDS = 0.002


def parse_args(argv):
    ap = argparse.ArgumentParser(description="Produce synthetic customer events to Kafka.")
    ap.add_argument("--bootstrap", default="127.0.0.1:19092")
    ap.add_argument("--topic", default="customer-events")
    ap.add_argument("--count", type=int, default=1000, help="events to produce (0 = until stopped)")
    ap.add_argument("--customers", type=int, default=1000, help="distinct customers")
    ap.add_argument("--rate", type=float, default=0.0, help="events per second (0 = unpaced)")
    ap.add_argument("--framing", choices=("raw", "confluent"), default="raw")
    ap.add_argument("--schema-id", type=int, default=1, help="schema id for confluent framing")
    ap.add_argument("--writer-schema", default=os.path.join(ROOT, churn_data.DEFAULT_SCHEMA))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--event-time", choices=("produce", "generated"), default="produce",
                    help="event_time = wall clock at produce (default) or the generator's "
                         "deterministic time starting at --start-ms")
    ap.add_argument("--start-ms", type=int, default=churn_data.DEFAULT_START_MS)
    ap.add_argument("--out-jsonl", help="write each delivered event (as written) with its "
                                        "partition, offset and timestamp, one JSON per line")
    ap.add_argument("-X", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                    help="extra librdkafka producer property")
    a = ap.parse_args(argv)
    if a.count < 0 or a.customers < 1 or a.rate < 0 or not 0 <= a.schema_id < 2 ** 31:
        ap.error("--count >= 0, --customers >= 1, --rate >= 0, 0 <= --schema-id < 2^31")
    for kv in a.extra:
        if "=" not in kv:
            ap.error("-X wants KEY=VALUE, got %r" % kv)
    return a


def _json_default(v):
    if isinstance(v, (bytes, bytearray)):
        return v.decode("latin-1")
    raise TypeError("not JSON serialisable: %r" % type(v))


def main(argv=None):
    a = parse_args(argv)
    schema = churn_data.load_schema(a.writer_schema)
    header = b"\x00" + struct.pack(">I", a.schema_id) if a.framing == "confluent" else b""
    conf = {
        "bootstrap.servers": a.bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "queue.buffering.max.messages": 500000,
        "client.id": "streamscore-produce-events",
    }
    for kv in a.extra:
        k, v = kv.split("=", 1)
        conf[k] = v
    producer = Producer(conf)
    out = open(a.out_jsonl, "w", encoding="utf-8") if a.out_jsonl else None
    stats = {"delivered": 0, "failed": 0, "first_error": None}

    def report(err, msg, record):
        if err is not None:
            stats["failed"] += 1
            if stats["first_error"] is None:
                stats["first_error"] = str(err)
            return
        stats["delivered"] += 1
        if out is not None:
            line = dict(record)
            line["partition"] = msg.partition()
            line["offset"] = msg.offset()
            line["timestamp"] = msg.timestamp()[1]
            out.write(json.dumps(line, default=_json_default) + "\n")

    stop = {"now": False}

    def on_signal(signum, _frame):
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    print("producing %s events about %d customers to %s at %s (%s framing, rate %s)"
          % (a.count or "unbounded", a.customers, a.topic, a.bootstrap, a.framing,
             a.rate or "unpaced"), file=sys.stderr)
    gen = churn_data.events(a.count or None, a.customers, a.seed, a.start_ms)
    buf = io.BytesIO()
    produced = 0
    t0 = time.monotonic()
    for rec in gen:
        if stop["now"]:
            break
        if a.rate > 0:
            ahead = t0 + produced / a.rate - time.monotonic()
            while ahead > BURST_SECONDS and not stop["now"]:
                producer.poll(0)
                time.sleep(min(ahead, 0.1))
                ahead = t0 + produced / a.rate - time.monotonic()
            if stop["now"]:
                break
        if a.event_time == "produce":
            rec["event_time"] = int(time.time() * 1000)
        written = churn_data.project(rec, schema)
        buf.seek(0)
        buf.truncate()
        buf.write(header)
        fastavro.schemaless_writer(buf, schema, written)
        value = buf.getvalue()
        while True:
            try:
                producer.produce(a.topic, value=value, key=rec["customer_id"].encode(),
                                 on_delivery=lambda err, msg, r=written: report(err, msg, r))
                break
            except BufferError:
                producer.poll(0.05)
            except KafkaException as e:
                print("error: produce: %s" % e, file=sys.stderr)
                return 1
        produced += 1
        if produced % 1000 == 0:
            producer.poll(0)
    remaining = producer.flush(60)
    seconds = time.monotonic() - t0
    stats["failed"] += remaining
    if out is not None:
        out.close()
    summary = {
        "count": produced,
        "delivered": stats["delivered"],
        "failed": stats["failed"],
        "seconds": round(seconds, 3),
        "events_per_s": round(produced / seconds, 1) if seconds > 0 else None,
        "topic": a.topic,
        "framing": a.framing,
        "customers": a.customers,
        "seed": a.seed,
    }
    if stats["first_error"]:
        summary["first_error"] = stats["first_error"]
    print(json.dumps(summary))
    sys.stdout.flush()
    if stats["failed"]:
        return 1
    if a.count and produced < a.count:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
