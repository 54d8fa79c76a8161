#!/usr/bin/env python3
"""Summary of a demo run: waits until every produced event has its prediction on the
output topic, then prints how many were scored, the score distribution, example
predictions and where the predictions and the features live.

Events are matched to predictions by (source partition, source offset), read from the
--events file written by produce_events.py --out-jsonl, so earlier runs on the same
topics do not count.
"""
import argparse
import io
import json
import os
import sys
import time

import fastavro
import redis
from confluent_kafka import Consumer, TopicPartition

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_until_complete(bootstrap, topic, wanted, schema, deadline, log):
    """Predictions of `topic` for the wanted (partition, offset) pairs, or None on time-out."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "streamscore-demo-report",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    md = c.list_topics(topic, timeout=10)
    parts = list(md.topics[topic].partitions)
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    got = {}
    last_report = 0
    while len(got) < len(wanted) and time.time() < deadline:
        for m in c.consume(1000, timeout=0.5):
            if m.error():
                continue
            p = fastavro.schemaless_reader(io.BytesIO(m.value()), schema)
            k = (p["source_partition"], p["source_offset"])
            if k in wanted:
                p["_ts"] = m.timestamp()[1]
                got[k] = p
        if time.time() - last_report > 5:
            print(f"   {topic}: {len(got)}/{len(wanted)} scored", flush=True)
            last_report = time.time()
    c.close()
    if len(got) < len(wanted):
        print(f"only {len(got)} of {len(wanted)} events have a record on {topic}", file=sys.stderr)
        if log and os.path.exists(log):
            print("worker log tail:", file=sys.stderr)
            print("".join(open(log).readlines()[-20:]), file=sys.stderr)
        return None
    return got


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", default="127.0.0.1:19092")
    ap.add_argument("--topic", default="predictions")
    ap.add_argument("--events", required=True, help="JSON lines from produce_events.py")
    ap.add_argument("--redis-port", type=int, default=16379)
    ap.add_argument("--redis-prefix", default="streamscore:features:")
    ap.add_argument("--worker-log")
    ap.add_argument("--timeout", type=float, default=180)
    ap.add_argument("--also-wait", metavar="TOPIC",
                    help="then wait until TOPIC (e.g. the shadow's) has a record for every event")
    ap.add_argument("--also-wait-log", help="log to show if --also-wait times out")
    a = ap.parse_args()

    wanted = {}
    deadline = time.time() + a.timeout
    with open(a.events) as f:
        for line in f:
            e = json.loads(line)
            wanted[(e["partition"], e["offset"])] = e
    schema = fastavro.parse_schema(json.load(open(os.path.join(ROOT, "schemas/prediction.avsc"))))

    got = read_until_complete(a.bootstrap, a.topic, wanted, schema, deadline, a.worker_log)
    if got is None:
        return 1
    if a.also_wait and read_until_complete(a.bootstrap, a.also_wait, wanted, schema, deadline,
                                           a.also_wait_log) is None:
        return 1

    preds = list(got.values())
    scores = sorted(p["score"] for p in preds)
    n = len(scores)
    flagged = sum(p["decision"] for p in preds)
    lat = sorted(max(0, p["_ts"] - wanted[(p["source_partition"], p["source_offset"])]["timestamp"])
                 for p in preds)
    q = lambda v, x: v[min(len(v) - 1, int(x * len(v)))]
    p0 = preds[0]
    print(f"\nScored {n} of {len(wanted)} events with model {p0['model_name']} "
          f"{p0['model_version']} (threshold {p0['threshold']}): {flagged} flagged as likely "
          f"to churn ({100.0 * flagged / n:.1f}%).")
    print(f"Event-to-prediction time (Kafka timestamps): p50 {q(lat, 0.5)} ms, "
          f"p99 {q(lat, 0.99)} ms.")
    print("\nScore distribution:")
    bins = [0] * 10
    for s in scores:
        bins[min(9, int(s * 10))] += 1
    for i, b in enumerate(bins):
        bar = "#" * max(1 if b else 0, round(50 * b / max(bins)))
        print(f"  {i / 10:.1f}-{(i + 1) / 10:.1f} {b:6d} {bar}")
    print("\nExample predictions (latest event per customer):")
    latest = {}
    for p in preds:
        latest[p["customer_id"]] = p
    r = redis.Redis(port=a.redis_port)
    examples = sorted(latest.values(), key=lambda p: -p["score"])[:3] + \
        sorted(latest.values(), key=lambda p: p["score"])[:2]
    for p in examples:
        print(f"  customer {p['customer_id']:<8} score {p['score']:.4f} "
              f"{'CHURN RISK' if p['decision'] else 'ok':<10} event {p['event_id'][:8]}… "
              f"partition {p['source_partition']} offset {p['source_offset']}")
    cid = examples[0]["customer_id"]
    h = r.hgetall(a.redis_prefix + cid)
    ttl = r.ttl(a.redis_prefix + cid)
    print(f"\nFeatures of {cid} in Redis (key {a.redis_prefix}{cid}, TTL {ttl} s):")
    for k, v in sorted(h.items()):
        print(f"  {k.decode():<24} {v.decode()}")
    print(f"\nPredictions: topic '{a.topic}' on {a.bootstrap} (Avro, schemas/prediction.avsc, "
          f"key = customer id).")
    print(f"Features:    Redis 127.0.0.1:{a.redis_port}, one hash per customer "
          f"({a.redis_prefix}<customer id>).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
