#!/usr/bin/env python3
"""Write the seed corpora of the streamscore fuzz targets (tests/fuzz/corpus/<target>/) and the
config dictionary (tests/fuzz/fuzz_config.dict). Run once and commit the files; rerun after a
schema or config key change. Deterministic: the same tree gives the same bytes.

fuzz_decode inputs are one framing byte (even: raw, odd: confluent) and a Kafka value:
generated events (scripts/churn_data.py) encoded with fastavro in both framings and with both
writer schemas, then edge cases (all attributes null, empty customer id, enum index out of
range, truncated header or body, bad magic byte, unknown schema id, trailing bytes, empty).
fuzz_config inputs are the sample properties files of config/ and variants of them.
fuzz_registry inputs are answers of a Confluent-compatible registry (Confluent Schema Registry,
Apicurio's ccompat API): schemas by id (both event schemas, with and without schemaType and
references, Protobuf, JSON Schema, not a record), registrations and error bodies.
fuzz_tools_json inputs are one parser byte (tests/fuzz/fuzz_tools_json.c) and what that parser
reads: predictions (JSON, Avro raw and framed), label values and CSV files, the model cards of
models/ (as the worker and as validate-model read them) and variants of each.

  .deps/venv/bin/python tests/fuzz/make_corpus.py [TARGET ...]   (default: every target)"""
import os
import pathlib
import re
import shutil
import struct
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import churn_data  # noqa: E402

FUZZ = ROOT / "tests" / "fuzz"
V1 = ROOT / "schemas" / "customer_event.avsc"
V2 = ROOT / "tests" / "data" / "customer_event_v2.avsc"
RAW, CONFLUENT = b"\x00", b"\x01"


def confluent(schema_id, body):
    return b"\x00" + struct.pack(">I", schema_id) + body


def write_dir(name, files):
    d = FUZZ / "corpus" / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    for fname, data in files.items():
        (d / fname).write_bytes(data)
    print("make_corpus: %d files in %s" % (len(files), d.relative_to(ROOT)))


def decode_corpus():
    v1 = churn_data.load_schema(str(V1))
    v2 = churn_data.load_schema(str(V2))
    events = list(churn_data.events(12, 5, seed=11))
    files = {}
    for i, ev in enumerate(events[:6]):
        files["raw-%02d" % i] = RAW + churn_data.encode_event(ev, v1, "raw")
    for i, ev in enumerate(events[6:9]):
        files["confluent-v1-%02d" % i] = CONFLUENT + churn_data.encode_event(ev, v1, "confluent", 1)
    for i, ev in enumerate(events[9:12]):
        files["confluent-v2-%02d" % i] = CONFLUENT + churn_data.encode_event(ev, v2, "confluent", 2)
    # the same event with a non-default 'channel' under v2
    files["confluent-v2-channel"] = CONFLUENT + churn_data.encode_event(
        dict(events[0], channel="app"), v2, "confluent", 2)

    full = dict(events[0])
    for f in churn_data.FEATURES:
        if full.get(f) is None:
            full[f] = {"contract_type": "TWO_YEAR", "has_autopay": True,
                       "monthly_charges": 99.5, "total_charges": 1234.25,
                       "data_usage_gb": 7.5}.get(f, 3)
    nulls = dict(events[0], **{f: None for f in churn_data.FEATURES})
    extreme = dict(full, tenure_months=2**31 - 1, days_since_last_login=-(2**63),
                   monthly_charges=1e300, total_charges=-0.0, data_usage_gb=float("inf"))
    files["raw-full"] = RAW + churn_data.encode_event(full, v1, "raw")
    files["raw-all-null"] = RAW + churn_data.encode_event(nulls, v1, "raw")
    files["raw-extreme-values"] = RAW + churn_data.encode_event(extreme, v1, "raw")
    files["confluent-v1-full"] = CONFLUENT + churn_data.encode_event(full, v1, "confluent", 1)
    files["confluent-v2-all-null"] = CONFLUENT + churn_data.encode_event(nulls, v2, "confluent", 2)
    files["raw-empty-customer-id"] = RAW + churn_data.encode_event(
        dict(full, customer_id=""), v1, "raw")
    files["raw-long-ids"] = RAW + churn_data.encode_event(
        dict(full, customer_id="C" * 300, event_id="e" * 200), v1, "raw")

    raw_full = churn_data.encode_event(full, v1, "raw")
    c1_full = churn_data.encode_event(full, v1, "confluent", 1)
    c2_full = churn_data.encode_event(full, v2, "confluent", 2)
    files["raw-truncated-half"] = RAW + raw_full[: len(raw_full) // 2]
    files["raw-truncated-last-byte"] = RAW + raw_full[:-1]
    files["raw-trailing-bytes"] = RAW + raw_full + b"\x02\x04\x06"
    files["confluent-v1-truncated-body"] = CONFLUENT + c1_full[: len(c1_full) - 7]
    files["confluent-v2-truncated-body"] = CONFLUENT + c2_full[:20]
    files["confluent-truncated-header"] = CONFLUENT + c1_full[:3]
    files["confluent-header-only"] = CONFLUENT + c2_full[:5]
    files["confluent-bad-magic"] = CONFLUENT + b"\x01" + c1_full[1:]
    files["confluent-unknown-id"] = CONFLUENT + confluent(7, raw_full)
    files["confluent-negative-id"] = CONFLUENT + b"\x00\xff\xff\xff\xff" + raw_full
    # a raw value that is a confluent one, and the other way round
    files["raw-given-confluent"] = RAW + c1_full
    files["confluent-given-raw"] = CONFLUENT + raw_full
    # customer_id claims a length far past the end; contract_type enum index 9 of 3;
    # union branch 5 of 2 for tenure_months
    cid_at = 1 + len(full["event_id"])  # after event_id (1-byte length for a 36-char UUID)
    files["raw-string-length-past-end"] = RAW + raw_full[:cid_at] + b"\xfe\xff\xff\xff\x0f"
    body = bytearray(churn_data.encode_event(nulls, v1, "raw"))
    # nulls: event_id, customer_id, event_time, event_type, then 11 union indexes of 0
    tail = len(body) - 11
    bad_enum = bytearray(body)
    bad_enum[tail + 3: tail + 4] = b"\x02\x12"  # contract_type: branch 1, symbol 9
    files["raw-enum-index-out-of-range"] = RAW + bytes(bad_enum)
    bad_branch = bytearray(body)
    bad_branch[tail] = 0x0A  # tenure_months: branch 5
    files["raw-union-branch-out-of-range"] = RAW + bytes(bad_branch)
    files["raw-empty"] = RAW
    files["confluent-empty"] = CONFLUENT
    write_dir("fuzz_decode", files)


PROPERTIES_VARIANTS = {
    "minimal.properties": "model.path = models/churn-1.0.0.json\n"
    "kafka.bootstrap.servers = 127.0.0.1:19092\n",
    "confluent.properties": "model.path: models/churn-1.0.0.json\n"
    "kafka.bootstrap.servers: 127.0.0.1:19092\n"
    "input.framing = confluent\n"
    "input.schema.map = 1=schemas/customer_event.avsc, 2 = tests/data/customer_event_v2.avsc\n",
    "rename-and-sides.properties": "! sides and renames\n"
    "model.path = models/churn-1.1.0.json\nmodel.card = models/churn-1.1.0.card.json\n"
    "kafka.bootstrap.servers = 127.0.0.1:19092\n"
    "kafka.consumer.auto.offset.reset = earliest\nkafka.producer.linger.ms = 5\n"
    "features.rename = tenure_months=tenure,num_products=products\n"
    "output.format = json\nmodel.threshold = 0.42\n",
    "continuation-crlf.properties": "# continued lines, CRLF endings\r\n"
    "model.path = models/\\\r\n    churn-1.0.0.json\r\n"
    "kafka.bootstrap.servers = a:1,\\\r\n  b:2\r\n"
    "redis.host=\t127.0.0.1  \r\nredis.port=16379\r\n",
    "shadow-file.properties": "mode = shadow\nmodel.path = models/churn-1.1.0.json\n"
    "kafka.bootstrap.servers = 127.0.0.1:19092\n"
    "shadow.output = file\nshadow.file = build/shadow.avro\n",
    "shadow-file-missing.properties": "mode = shadow\nmodel.path = m.json\n"
    "kafka.bootstrap.servers = x:1\nshadow.output = file\n",
    "colliding-topics.properties": "model.path = m.json\nkafka.bootstrap.servers = x:1\n"
    "input.topic = a\noutput.topic = b\ndlq.topic = b\n",
    "confluent-no-map.properties": "model.path = m.json\nkafka.bootstrap.servers = x:1\n"
    "input.framing = confluent\n",
    "bad-schema-map.properties": "model.path = m.json\nkafka.bootstrap.servers = x:1\n"
    "input.framing = confluent\ninput.schema.map = 1=a.avsc,,x=b.avsc,3=\n",
    "bad-values.properties": "model.path = m.json\nkafka.bootstrap.servers = x:1\n"
    "worker.threads = 0x10\nbatch.max.messages = 99999999999999999999\n",
    "out-of-range.properties": "model.path = m.json\nredis.port = 70000\n",
    "unknown-key.properties": "model.path = m.json\nno.such.key = 1\n",
    "bad-kafka.properties": "model.path = m.json\nkafka.no.such.property = 1\nkafka. = x\n",
    "no-separator.properties": "model.path m.json\n",
    "empty-key.properties": " = value\n",
    "trailing-backslash.properties": "model.path = m.json\\",
    "comments-only.properties": "# nothing\n! nothing either\n\n   \n",
    "empty.properties": "",
    "nul-byte.properties": "model.path = m\x00.json\n",
    "pairs.txt": "1=schemas/customer_event.avsc, 2 = x.avsc ,,=3, a=, b ,c==d",
}


def config_corpus():
    files = {}
    for p in sorted((ROOT / "config").glob("*.properties")):
        files[p.name] = p.read_bytes()
    for name, text in PROPERTIES_VARIANTS.items():
        files[name] = text.encode()
    write_dir("fuzz_config", files)


def config_dict():
    """Every key of the reference table in README.md, plus the syntax of properties files."""
    keys = re.findall(r"^\| `([a-z0-9_.]+)` \|", (ROOT / "README.md").read_text(), re.M)
    if not keys:
        sys.exit("make_corpus: no configuration keys found in README.md")
    words = keys + ["kafka.", "kafka.consumer.", "kafka.producer.", "bootstrap.servers",
                    "group.id", "primary", "shadow", "raw", "confluent", "avro", "json",
                    "file", "topic", "debug", "info", "warn", "error", " = ", ": ", "\\\n",
                    "\r\n", "# ", "! "]
    lines = ["# libFuzzer dictionary for fuzz_config, written by tests/fuzz/make_corpus.py"]
    for w in words:
        esc = "".join(c if c.isprintable() and c not in '"\\' else "\\x%02x" % ord(c) for c in w)
        lines.append('"%s"' % esc)
    (FUZZ / "fuzz_config.dict").write_text("\n".join(lines) + "\n")
    print("make_corpus: %d entries in tests/fuzz/fuzz_config.dict" % len(words))


def registry_corpus():
    import json

    v1, v2 = (json.dumps(json.loads(p.read_text())) for p in (V1, V2))
    answers = {
        "schema-v1.json": {"schema": v1},
        "schema-v2-avro.json": {"schema": v2, "schemaType": "AVRO", "references": []},
        "schema-apicurio.json": {"schema": v1, "references": []},
        "schema-references.json": {"schema": v1, "references": [
            {"name": "Address", "subject": "address-value", "version": 1}]},
        "schema-protobuf.json": {"schema": 'syntax = "proto3"; message E { string id = 1; }',
                                 "schemaType": "PROTOBUF"},
        "schema-json.json": {"schema": '{"type":"object"}', "schemaType": "JSON"},
        "schema-string.json": {"schema": '"string"'},
        "schema-no-customer.json": {"schema": json.dumps(
            {"type": "record", "name": "E", "fields": [{"name": "x", "type": "int"}]})},
        "schema-bad-type.json": {"schema": json.dumps(
            {"type": "record", "name": "E", "fields": [
                {"name": "customer_id", "type": "string"},
                {"name": "tenure_months", "type": ["null", "string"]}]})},
        # a field's namespace is not its types': the enum is defined twice (Avro C leaks)
        "schema-field-namespace-twice.json": {"schema": json.dumps(
            {"type": "record", "name": "C", "fields": [
                {"name": "e", "type": {"type": "enum", "name": "T", "symbols": ["A"]}},
                {"name": "f", "namespace": "s",
                 "type": {"type": "enum", "name": "T", "symbols": ["A"]}}]})},
        "register.json": {"id": 42},
        "register-big.json": {"id": 2**31},
        "error-404.json": {"error_code": 40403, "message": "Schema 987654 not found"},
        "error-409.json": {"error_code": 409, "message":
                           "Schema being registered is incompatible with an earlier schema"},
        "error-apicurio.json": {"message": "No content with id: 987654.", "error_code": 40403,
                                "detail": "ContentNotFoundException: No content with id"},
    }
    files = {name: json.dumps(a).encode() for name, a in answers.items()}
    files["error-html.txt"] = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    files["url.txt"] = b"https://scorer:s3cret@registry:8081/apis/ccompat/v7"
    files["empty.txt"] = b""
    write_dir("fuzz_registry", files)
    words = ["schema", "schemaType", "references", "AVRO", "PROTOBUF", "id", "error_code",
             "message", "type", "record", "fields", "name", "namespace", "default", "null",
             "string", "long", "int", "double", "float", "boolean", "enum", "symbols", "union",
             "customer_id", "tenure_months", "{", "}", "[", "]", ":", ",", "\\\"", "://", "@"]
    lines = ["# libFuzzer dictionary for fuzz_registry, written by tests/fuzz/make_corpus.py"]
    lines += ['"%s"' % "".join(c if c.isprintable() and c not in '"\\' else "\\x%02x" % ord(c)
                               for c in w) for w in words]
    (FUZZ / "fuzz_registry.dict").write_text("\n".join(lines) + "\n")
    print("make_corpus: %d entries in tests/fuzz/fuzz_registry.dict" % len(words))


# fuzz_tools_json: the parser byte of each input
PRED_JSON, PRED_AVRO, PRED_FRAMED, LABEL_JSON, LABEL_CSV, CARD, VLD_CARD = (bytes([i]) for i in range(7))


def prediction(i):
    return {"event_id": "ev-%d" % i, "customer_id": "C%04d" % i, "score": 0.125 * (i % 8),
            "decision": i % 8 >= 4, "threshold": 0.5, "model_name": "churn",
            "model_version": "1.0.0", "source_topic": "customer-events", "source_partition": i % 3,
            "source_offset": 1000 + i, "event_time": 1700000000000 + i, "scored_at": 1700000000500 + i,
            "feature_hash": "%016x" % (0x9e3779b97f4a7c15 * (i + 1) % (1 << 64))}


def tools_json_corpus():
    import io
    import json

    import fastavro

    schema = fastavro.parse_schema(json.loads((ROOT / "schemas" / "prediction.avsc").read_text()))
    files = {}
    for i in range(3):
        p = prediction(i)
        files["pred-json-%02d" % i] = PRED_JSON + json.dumps(p).encode()
        body = io.BytesIO()
        fastavro.schemaless_writer(body, schema, p)
        files["pred-avro-%02d" % i] = PRED_AVRO + body.getvalue()
        files["pred-framed-%02d" % i] = PRED_FRAMED + confluent(7, body.getvalue())
    # regression: an Avro boolean byte other than 0 or 1 (compare read decision 91)
    body = io.BytesIO()
    fastavro.schemaless_writer(body, schema, prediction(0))
    bad = bytearray(body.getvalue())
    bad[len(b"\x08ev-0\x0aC0000") + 8] = 0x5b
    files["pred-avro-decision-91"] = PRED_AVRO + bytes(bad)
    nulls = dict(prediction(3), event_time=None, scored_at=None, customer_id=None)
    files["pred-json-nulls"] = PRED_JSON + json.dumps(nulls).encode()
    files["pred-json-bad-hash"] = PRED_JSON + json.dumps(dict(prediction(4), feature_hash="x")).encode()
    files["pred-json-int-decision"] = PRED_JSON + json.dumps(dict(prediction(5), decision=1)).encode()
    labels = [{"customer_id": "C0001", "label": True, "time": "2024-03-01T12:30:00Z"},
              {"customer_id": "C0002", "label": 0, "time": 1709296200000},
              {"customer_id": "C0003", "label": "false", "time": "2024-03-01 12:30:00.250+02:00"},
              {"customer_id": "C0004", "label": "1", "time": 1709296200000.5},
              {"customer_id": "", "label": 1, "time": 0},
              {"customer_id": "C0005", "label": 2, "time": "2024-02-30"},
              # regression: a real time beyond 64 bits (its conversion was undefined)
              {"customer_id": "C0006", "label": "1", "time": 1.71e87}]
    for i, lab in enumerate(labels):
        files["label-json-%02d" % i] = LABEL_JSON + json.dumps(lab).encode()
    csv = ("\ufeffcustomer_id,label,time\r\nC0001,1,2024-03-01T12:30:00Z\r\n"
           "C0002,false,1709296200000\r\n\"C,0003\",\"true\",2024-03-01 12:30:00.5\r\n"
           "cmp-bad-1,maybe,2024-03-01\ncmp-bad-2,1,not-a-time\n\n")
    files["label-csv-mixed"] = LABEL_CSV + csv.encode()
    files["label-csv-reordered"] = LABEL_CSV + b"time , Label,CUSTOMER_ID,extra\n0,0,C9,x\n"
    files["label-csv-no-header"] = LABEL_CSV + b"customer,label,when\nC1,1,0\n"
    for card in ("models/churn-1.0.0.card.json", "models/churn-1.1.0.card.json",
                 "models/data/churn-weak.card.json"):
        text = (ROOT / card).read_bytes()
        name = pathlib.Path(card).name.replace(".card.json", "")
        files["card-" + name] = CARD + text
        files["vld-card-" + name] = VLD_CARD + text
    small = {"name": "m", "version": "1", "threshold": 0.3, "feature_names": ["a", "b"],
             "baseline": {"a": {"edges": [0.5], "proportions": [0.25, 0.75], "missing_rate": 0.1}},
             "score_baseline": {"edges": [0.1, 0.9], "proportions": [0.2, 0.6, 0.2]}}
    files["card-small"] = CARD + json.dumps(small).encode()
    files["card-bad-threshold"] = CARD + json.dumps(dict(small, threshold=1.5)).encode()
    # regression: a baseline share beyond 1 (the score's PSI was infinite)
    huge = dict(small, score_baseline={"edges": [0.1, 0.9], "proportions": [0.21e308, 0.6, 0.2]})
    files["card-huge-proportion"] = CARD + json.dumps(huge).encode()
    files["card-not-object"] = CARD + b"[1, 2.5e300, -0.0, 0.1]"
    files["vld-card-reals"] = VLD_CARD + b'{"threshold": 0.1, "x": [1e-300, 0.30000000000000004, 3]}'
    # regression: a framed prediction whose failed read made more allocations than compare
    # tracked (one leaked)
    files["pred-framed-leak"] = (ROOT / "tests" / "data" / "compare_prediction_leak.bin").read_bytes()
    write_dir("fuzz_tools_json", files)


def tools_json_dict():
    words = ["customer_id", "label", "time", "score", "decision", "threshold", "model_name",
             "model_version", "source_topic", "source_partition", "source_offset", "event_time",
             "scored_at", "feature_hash", "name", "version", "feature_names", "model_sha256",
             "baseline", "score_baseline", "edges", "proportions", "missing_rate", "validation",
             "true", "false", "null", "T00:00:00", "Z", "+02:00", ".250", "\ufeff", "\r\n",
             '","', '""', "1e308", "-0.0", "0.1", "\\u0000"]
    lines = ["# libFuzzer dictionary for fuzz_tools_json, written by tests/fuzz/make_corpus.py"]
    for w in words:
        raw = w.encode()
        esc = "".join(chr(c) if 32 <= c < 127 and chr(c) not in '"\\' else "\\x%02x" % c for c in raw)
        lines.append('"%s"' % esc)
    (FUZZ / "fuzz_tools_json.dict").write_text("\n".join(lines) + "\n")
    print("make_corpus: %d entries in tests/fuzz/fuzz_tools_json.dict" % len(words))


TARGETS = {"fuzz_decode": [decode_corpus], "fuzz_config": [config_corpus, config_dict],
           "fuzz_registry": [registry_corpus],
           "fuzz_tools_json": [tools_json_corpus, tools_json_dict]}

if __name__ == "__main__":
    os.chdir(ROOT)
    for target in sys.argv[1:] or TARGETS:
        if target not in TARGETS:
            sys.exit("make_corpus: unknown target %s (%s)" % (target, ", ".join(TARGETS)))
        for step in TARGETS[target]:
            step()
