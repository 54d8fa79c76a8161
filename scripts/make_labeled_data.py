#!/usr/bin/env python3
"""Labeled data sets for `streamscore validate-model`: Avro object container files of events.

Each record is one customer of scripts/churn_data.py's generating process, as its first event
would be if it carried every attribute the customer's systems know (a PROFILE_UPDATE snapshot;
attributes never known stay null), plus the churn label drawn by the same process. The writer
schema is the event schema (schemas/customer_event.avsc) with the label field appended, so it
resolves against input.schema by field name. Output is deterministic for the same arguments
(seeded data, fixed sync marker, no timestamps in the file).

  python scripts/make_labeled_data.py --out models/data/churn-holdout.avro --count 5000 --seed 2026

Variants for tests of the command's checks:
  --drop-features all|f1,f2   the writer schema lacks these model features
  --no-label                  no label field at all
  --label-type int            label as int 0/1 instead of boolean
  --unlabeled-share 0.1       nullable label, this share of records null
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import churn_data  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def labeled_schema(event_schema, label_field, label_type, nullable, drop):
    """The event schema without the `drop` fields, plus the label field (None: no label)."""
    s = json.loads(json.dumps(event_schema))
    s["name"] = "Labeled" + s["name"]
    s["doc"] = ("A customer event with its churn label, for offline model validation. "
                + s.get("doc", ""))
    s["fields"] = [f for f in s["fields"] if f["name"] not in drop]
    if label_field:
        field = {"name": label_field, "type": label_type,
                 "doc": "True when the customer churned (ground truth)."}
        if nullable:
            field["type"] = ["null", label_type]
            field["default"] = None
        s["fields"].append(field)
    return s


def records(count, seed, drift, label_field, label_type, unlabeled_share, start_ms):
    """One labeled event dict per customer (deterministic)."""
    c = churn_data.customers(count, seed)
    y = churn_data.churn_labels(c, seed, drift)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 3]))
    ids = [int.from_bytes(rng.bytes(16), "big") for _ in range(count)]
    unlabeled = rng.random(count) < unlabeled_share
    width = max(6, len(str(count)))
    for i in range(count):
        rec = {
            "event_id": churn_data._uuid4(ids[i]),
            "customer_id": "C%0*d" % (width, i + 1),
            "event_time": start_ms + 1000 * i,
            "event_type": "PROFILE_UPDATE",
        }
        for j, f in enumerate(churn_data.FEATURES):
            rec[f] = churn_data._value(f, c[f][i]) if c["known"][i, j] else None
        if label_field:
            label = bool(y[i]) if label_type == "boolean" else int(y[i])
            rec[label_field] = None if unlabeled[i] else label
        yield rec


def main(argv=None):
    import fastavro

    ap = argparse.ArgumentParser(description="Write a labeled Avro container file of events.")
    ap.add_argument("--out", required=True, help="output .avro file")
    ap.add_argument("--count", type=int, default=5000, help="customers (records)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--drift", type=float, default=0.0, help="churn_data cohort drift")
    ap.add_argument("--schema", default=os.path.join(ROOT, churn_data.DEFAULT_SCHEMA),
                    help="event schema the writer schema starts from")
    ap.add_argument("--label-field", default="churned")
    ap.add_argument("--label-type", choices=("boolean", "int"), default="boolean")
    ap.add_argument("--unlabeled-share", type=float, default=0.0,
                    help="make the label nullable and leave this share of records unlabeled")
    ap.add_argument("--no-label", action="store_true", help="write no label field")
    ap.add_argument("--drop-features", default="",
                    help="'all' or comma-separated model features the writer schema omits")
    ap.add_argument("--codec", choices=("null", "deflate"), default="deflate")
    ap.add_argument("--start-ms", type=int, default=churn_data.DEFAULT_START_MS)
    a = ap.parse_args(argv)

    drop = (set(churn_data.FEATURES) if a.drop_features == "all"
            else {f for f in a.drop_features.split(",") if f})
    unknown = drop - set(churn_data.FEATURES)
    if unknown:
        ap.error("--drop-features: not model features: %s" % ",".join(sorted(unknown)))
    if a.count < 1:
        ap.error("--count must be >= 1")
    with open(a.schema, encoding="utf-8") as fh:
        event_schema = json.load(fh)
    label_field = None if a.no_label else a.label_field
    schema = labeled_schema(event_schema, label_field, a.label_type, a.unlabeled_share > 0, drop)
    parsed = fastavro.parse_schema(schema)
    keep = {f["name"] for f in schema["fields"]}
    recs = ({k: v for k, v in r.items() if k in keep}
            for r in records(a.count, a.seed, a.drift, label_field, a.label_type,
                             a.unlabeled_share, a.start_ms))
    meta = {
        "streamscore.generator": "scripts/make_labeled_data.py",
        "streamscore.args": json.dumps({"count": a.count, "seed": a.seed, "drift": a.drift,
                                        "label_field": label_field, "label_type": a.label_type,
                                        "unlabeled_share": a.unlabeled_share,
                                        "drop_features": sorted(drop)}, sort_keys=True),
    }
    sync = hashlib.sha256(b"streamscore-labeled-%d" % a.seed).digest()[:16]
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    tmp = a.out + ".tmp"
    with open(tmp, "wb") as fh:
        fastavro.writer(fh, parsed, recs, codec=a.codec, metadata=meta, sync_marker=sync)
    os.replace(tmp, a.out)
    print("wrote %s: %d records, seed %d, drift %.2f, label %s, %d bytes"
          % (a.out, a.count, a.seed, a.drift, label_field or "(none)", os.path.getsize(a.out)),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
