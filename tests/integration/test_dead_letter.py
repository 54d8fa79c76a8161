"""Records that cannot be decoded go to the dead-letter topic with their original key, value
and headers and the Kafka Connect __connect.errors.* headers naming where they came from and
why; good events around them are scored as usual, and every input offset gets exactly one
output (a prediction or a dead letter) before its offset is committed."""

import struct

import numpy as np

import bad_inputs
import harness as h

MAX_BYTES = 512
SCHEMA_ID = 7
CONNECT = "__connect.errors."
CONNECT_NAMES = {CONNECT + n for n in ("topic", "partition", "offset", "stage", "class.name",
                                       "exception.class.name", "exception.message")}


def _good_events(ctx, rng, n_customers=15):
    """Two events per customer (the second partial), each customer pinned to one partition."""
    events, partitions = [], []
    for i in range(n_customers):
        cid = f"good-{ctx.uid}-{i:02d}"
        events.append(h.make_event(cid, 1_700_000_000_000 + i, rng,
                                   **h.random_features(rng, 6, 11)))
        events.append(h.make_event(cid, 1_700_000_100_000 + i, rng,
                                   **h.random_features(rng, 1, 3)))
        partitions += [i % 3, i % 3]
    order = sorted(range(len(events)), key=lambda k: (k % 2, k))  # first events first
    return [events[k] for k in order], [partitions[k] for k in order]


def _big_event(ctx, rng):
    """A valid event whose encoding exceeds input.max.bytes."""
    ev = h.make_event(f"big-{ctx.uid}", 1_700_000_200_000, rng, **h.random_features(rng, 11, 11))
    ev["event_id"] = "x" * (MAX_BYTES + 100)
    return ev


def _mix(goods, bads):
    """Interleave: a bad record after every other good event, bad ones spread over the
    partitions; the input ends with good events on every partition."""
    messages = []
    for i, (ev, part, value) in enumerate(goods):
        messages.append({"key": ev["customer_id"].encode(), "value": value, "partition": part,
                         "good": ev})
        j = i // 2
        if i % 2 == 1 and j < len(bads):
            messages.append(dict(bads[j], partition=j % 3))
    assert len(bads) <= len(goods) // 2 - 3, "test data: too few good events to interleave"
    return messages


def _run_and_check(ctx, props, messages, test):
    placed = h.produce_raw(ctx.input_topic, [{k: m.get(k) for k in ("key", "value", "headers",
                                                                      "partition")}
                                             for m in messages])
    good_idx = [i for i, m in enumerate(messages) if "good" in m]
    bad_idx = [i for i, m in enumerate(messages) if "good" not in m]
    # Test data: in every partition a good event comes after the last bad record.
    for p in range(3):
        last_bad = max((placed[i][1] for i in bad_idx if placed[i][0] == p), default=-1)
        last_good = max((placed[i][1] for i in good_idx if placed[i][0] == p), default=-1)
        assert last_bad >= 0 and last_good > last_bad, f"test data: partition {p} mix"

    w = ctx.start_worker(props)
    preds = h.TopicReader(ctx.output_topic)
    dlq = h.TopicReader(ctx.dlq_topic, decode=None)
    try:
        preds.wait_for(len(good_idx), timeout=45, worker=w, what="predictions")
        dlq.wait_for(len(bad_idx), timeout=45, worker=w, what="dead letters")
        w.stop()
        preds.drain()
        dlq.drain()
    finally:
        preds.close()
        dlq.close()

    # Every input offset has exactly one output: a prediction or a dead letter.
    good_places = {placed[i]: messages[i] for i in good_idx}
    bad_places = {placed[i]: messages[i] for i in bad_idx}
    assert not preds.undecodable, f"undecodable predictions: {preds.undecodable[:3]}"
    by_source = h.index_by_source(preds.records)
    assert set(by_source) == set(good_places) and all(len(v) == 1 for v in by_source.values()), (
        f"predictions for sources {sorted(by_source)} (counts "
        f"{sorted(len(v) for v in by_source.values())[-3:]}), expected each of "
        f"{sorted(good_places)} once")
    letters = {}
    problems = []
    for r in dlq.records:
        names = [n for n, _ in r["_headers"]]
        connect = {n: v for n, v in r["_headers"] if n.startswith(CONNECT)}
        if set(connect) != CONNECT_NAMES or sum(n.startswith(CONNECT) for n in names) != 7:
            problems.append(f"dead letter {r['_partition']}/{r['_offset']}: connect headers "
                            f"{names}")
            continue
        src = (int(connect[CONNECT + "partition"]), int(connect[CONNECT + "offset"]))
        letters.setdefault(src, []).append((r, connect))
    assert not problems, f"{len(problems)} dead letters without the error headers: {problems[:5]}"
    assert set(letters) == set(bad_places) and all(len(v) == 1 for v in letters.values()), (
        f"dead letters for sources {sorted(letters)} (counts "
        f"{sorted(len(v) for v in letters.values())[-3:]}), expected each of "
        f"{sorted(bad_places)} once")

    # Each dead letter: the original record unchanged, plus where and why.
    for src, [(r, connect)] in sorted(letters.items()):
        m = bad_places[src]
        where = f"{m['reason']} record at {src}"
        own_headers = [(n, v) for n, v in r["_headers"] if not n.startswith(CONNECT)]
        expect = {"key": m.get("key"), "value": m.get("value"),
                  "headers": list(m.get("headers") or []),
                  "topic": ctx.input_topic.encode(), "partition": str(src[0]).encode(),
                  "offset": str(src[1]).encode(), "stage": b"decode",
                  "class.name": b"streamscore", "exception.class.name": m["reason"].encode()}
        got = {"key": r["_key"], "value": r["_raw"], "headers": own_headers,
               "topic": connect[CONNECT + "topic"], "partition": connect[CONNECT + "partition"],
               "offset": connect[CONNECT + "offset"], "stage": connect[CONNECT + "stage"],
               "class.name": connect[CONNECT + "class.name"],
               "exception.class.name": connect[CONNECT + "exception.class.name"]}
        for field in expect:
            if got[field] != expect[field]:
                problems.append(f"{where}: {field} {got[field]!r:.120} != {expect[field]!r:.120}")
        if not connect[CONNECT + "exception.message"]:
            problems.append(f"{where}: empty exception message")
    assert not problems, f"{len(problems)} dead-letter problems: {problems[:10]}"

    # The good events are scored as if the bad records were not there.
    goods = [good_places[p]["good"] for p in sorted(good_places)]
    expected, _ = h.expected_predictions(goods, sorted(good_places), h.PRIMARY_MODEL)
    first, n_bad = h.score_mismatches(preds.records, expected)
    assert n_bad == 0, f"{n_bad} predictions differ from the reference: {first}"
    assert {r["degraded"] for r in preds.records} == {False}

    ends = h.end_offsets(ctx.input_topic)
    committed = h.committed_offsets(ctx.group, ctx.input_topic, sorted(ends))
    assert committed == ends, f"committed offsets {committed} != end offsets {ends}"
    for m in (messages[i] for i in bad_idx):
        bad_inputs.record(m["what"], _sample(m), f"dead-lettered as `{m['reason']}`", 1, 0, test)


def _sample(m):
    v = m.get("value")
    if v is None:
        return "null value"
    return f"{len(v)} bytes" + (f", starting `{v[:6].hex()}`" if v else "")


def test_raw_framing_bad_records_go_to_the_dead_letter_topic_and_good_ones_are_scored(ctx):
    rng = np.random.default_rng(1001)
    events, parts = _good_events(ctx, rng)
    goods = [(ev, p, h.encode_avro(h.EVENT_SCHEMA_PATH, ev)) for ev, p in zip(events, parts)]
    body = h.encode_avro(h.EVENT_SCHEMA_PATH, h.make_event(f"cut-{ctx.uid}", 1, rng,
                                                          **h.random_features(rng, 11, 11)))
    no_id = h.make_event("", 2, rng, **h.random_features(rng, 3, 5))
    big = h.encode_avro(h.EVENT_SCHEMA_PATH, _big_event(ctx, rng))
    assert len(big) > MAX_BYTES and all(len(v) < MAX_BYTES for _, _, v in goods)
    bads = [
        {"reason": "bad_avro", "value": b"\xff" * 12, "key": b"garbage-key",
         "headers": [("trace-id", b"t-1"), ("source", b"crm")], "what": "Garbage bytes"},
        {"reason": "bad_avro", "value": b"this is not avro at all", "key": None,
         "what": "Text, no key"},
        {"reason": "bad_avro", "value": body[:len(body) // 2], "key": f"cut-{ctx.uid}".encode(),
         "headers": [("bin", b"\x00\x01\xff")], "what": "Avro cut in half"},
        {"reason": "no_customer_id", "value": h.encode_avro(h.EVENT_SCHEMA_PATH, no_id),
         "key": b"", "headers": [("empty", b"")], "what": "Event with an empty customer id"},
        {"reason": "too_large", "value": big, "key": f"big-{ctx.uid}".encode(),
         "headers": [("dup", b"1"), ("dup", b"2")], "what": "Value over input.max.bytes"},
        {"reason": "bad_avro", "value": b"", "key": b"\xfe\xff-binary-key",
         "what": "Empty value, binary key"},
        {"reason": "bad_avro", "value": None, "key": b"tombstone",
         "headers": [("trace-id", b"t-2")], "what": "Tombstone (null value)"},
    ]
    props = ctx.props({"input.max.bytes": MAX_BYTES, "batch.max.messages": 5})
    _run_and_check(ctx, props, _mix(goods, bads), "test_dead_letter.py::test_raw_framing")


def test_confluent_framing_bad_records_go_to_the_dead_letter_topic_and_good_ones_are_scored(ctx):
    rng = np.random.default_rng(1002)
    events, parts = _good_events(ctx, rng)
    goods = [(ev, p, h.encode_confluent(SCHEMA_ID, h.EVENT_SCHEMA_PATH, ev))
             for ev, p in zip(events, parts)]
    sample = h.make_event(f"framed-{ctx.uid}", 1, rng, **h.random_features(rng, 11, 11))
    body = h.encode_avro(h.EVENT_SCHEMA_PATH, sample)
    framed = h.encode_confluent(SCHEMA_ID, h.EVENT_SCHEMA_PATH, sample)
    no_id = h.make_event("", 2, rng, **h.random_features(rng, 3, 5))
    big = h.encode_confluent(SCHEMA_ID, h.EVENT_SCHEMA_PATH, _big_event(ctx, rng))
    assert len(big) > MAX_BYTES and all(len(v) < MAX_BYTES for _, _, v in goods)
    bads = [
        {"reason": "bad_magic", "value": b"\x01" + struct.pack(">I", SCHEMA_ID) + body,
         "key": b"magic", "headers": [("trace-id", b"t-1")],
         "what": "Confluent frame, magic byte 1"},
        {"reason": "bad_magic", "value": b"\x00\x00\x00", "key": None,
         "headers": [("source", b"crm")], "what": "Frame shorter than its header"},
        {"reason": "unknown_schema", "value": h.encode_confluent(99, h.EVENT_SCHEMA_PATH, sample),
         "key": f"framed-{ctx.uid}".encode(), "headers": [("bin", b"\x00\xff")],
         "what": "Schema id not in input.schema.map"},
        {"reason": "bad_avro", "value": framed[:5 + len(body) // 2], "key": b"cut",
         "what": "Framed Avro cut in half"},
        {"reason": "no_customer_id",
         "value": h.encode_confluent(SCHEMA_ID, h.EVENT_SCHEMA_PATH, no_id), "key": None,
         "headers": [("dup", b"1"), ("dup", b"2")], "what": "Framed event, empty customer id"},
        {"reason": "too_large", "value": big, "key": f"big-{ctx.uid}".encode(),
         "what": "Framed value over input.max.bytes"},
        {"reason": "bad_magic", "value": b"", "key": b"empty", "what": "Empty value (framed)"},
    ]
    props = ctx.props({"input.framing": "confluent",
                       "input.schema.map": f"{SCHEMA_ID}={h.EVENT_SCHEMA_PATH}",
                       "input.max.bytes": MAX_BYTES, "batch.max.messages": 5})
    _run_and_check(ctx, props, _mix(goods, bads), "test_dead_letter.py::test_confluent_framing")


def test_a_record_scored_non_finite_changes_no_features(ctx, tmp_path):
    """A record the model scores +inf is dead-lettered as non_finite_score, and its features
    count for nothing: the customer's later event in the same batch is scored without them,
    and Redis never holds them."""
    rng = np.random.default_rng(1401)
    model = h.model_infinite_above(tmp_path / "inf-above.json", "monthly_charges", 1000.0)
    cid = f"nf-{ctx.uid}"
    first = h.make_event(cid, 1_700_000_000_000, rng, monthly_charges=50.0, tenure_months=3)
    poison = h.make_event(cid, 1_700_000_000_001, rng, monthly_charges=5000.0, logins_30d=9)
    later = h.make_event(cid, 1_700_000_000_002, rng, support_calls_30d=2)
    other = h.make_event(f"ok-{ctx.uid}", 1_700_000_000_003, rng, monthly_charges=70.0)
    events = [first, poison, later, other]
    placed = h.produce(ctx.input_topic, events, lambda ev: h.encode_avro(h.EVENT_SCHEMA_PATH, ev))
    assert len({placed[i][0] for i in range(3)}) == 1  # one customer, one partition
    w = ctx.start_worker(ctx.props({"model.path": str(model), "model.name": "inf-above",
                                    "model.version": "1", "batch.max.messages": 100,
                                    "batch.max.wait.ms": 500}))
    reader = h.TopicReader(ctx.output_topic)
    try:
        reader.wait_for(3, 60, worker=w, what="predictions")
        w.stop()
        reader.drain()
    finally:
        reader.close()
    by_source = h.index_by_source(reader.records)
    assert set(by_source) == {placed[0], placed[2], placed[3]}, \
        f"predictions for {sorted(by_source)}, expected {[placed[i] for i in (0, 2, 3)]}"
    dlq = ctx.dead_letters()
    assert len(dlq) == 1, f"{len(dlq)} dead letters, expected the poison event's only"
    headers = dict(dlq[0]["_headers"])
    assert headers.get(CONNECT + "exception.class.name") == b"non_finite_score", headers
    assert headers.get(CONNECT + "offset") == str(placed[1][1]).encode(), headers
    # the later event: merged with the first only
    vectors, final = h.simulate_merge([first, later])
    got = by_source[placed[2]][0]
    assert got["feature_hash"] == h.feature_hash(vectors[1]), \
        "the later event was scored with the dead-lettered event's features"
    assert np.isfinite(got["score"])
    stored = ctx.redis.hgetall(ctx.redis_key(cid))
    assert float(stored.get("monthly_charges", "nan")) == 50.0, stored
    assert "logins_30d" not in stored, stored
    assert set(stored) == set(final[cid]), (stored, final[cid])
    bad_inputs.record("Event the model scores +inf", "monthly_charges 5000 (leaves 3e38)",
                      "dead-lettered as `non_finite_score`; its features kept out of the state "
                      "and the customer's later event", 1, 0,
                      "test_dead_letter.py::test_a_record_scored_non_finite_changes_no_features")


def test_a_dead_letter_too_big_for_kafka_is_sent_without_its_value(ctx):
    """Values too big to be sent again with the dead-letter headers (the producer's
    message.max.bytes, 1,000,000 by default): the dead letter leaves the value out, says so
    and keeps where the record came from; the worker carries on with the records after it.
    One is rejected as too_large (above input.max.bytes), one is read and is bad Avro."""
    rng = np.random.default_rng(1402)
    big = 999_800
    before = h.make_event(f"before-{ctx.uid}", 1_700_000_000_000, rng, monthly_charges=10.0)
    after = h.make_event(f"after-{ctx.uid}", 1_700_000_000_001, rng, monthly_charges=20.0)
    messages = [
        {"key": b"b", "value": h.encode_avro(h.EVENT_SCHEMA_PATH, before), "partition": 0},
        {"key": b"too-large", "value": b"\x02" * (big + 1), "partition": 0,
         "headers": [("trace-id", b"t-1")]},
        {"key": b"bad-avro", "value": b"\xff" * big, "partition": 0},
        {"key": b"a", "value": h.encode_avro(h.EVENT_SCHEMA_PATH, after), "partition": 0},
    ]
    placed = h.produce_raw(ctx.input_topic, messages)
    w = ctx.start_worker(ctx.props({"input.max.bytes": big, "batch.max.messages": 10}))
    preds = h.TopicReader(ctx.output_topic)
    try:
        preds.wait_for(2, 60, worker=w, what="predictions")
        w.stop()
        preds.drain()
    finally:
        preds.close()
    by_source = h.index_by_source(preds.records)
    assert set(by_source) == {placed[0], placed[3]}, sorted(by_source)
    letters = {dict(r["_headers"])[CONNECT + "offset"]: r for r in ctx.dead_letters()}
    expected = {placed[1]: (b"too_large", big + 1), placed[2]: (b"bad_avro", big)}
    assert set(letters) == {str(off).encode() for _, off in expected}, sorted(letters)
    for (part, off), (reason, size) in expected.items():
        r = letters[str(off).encode()]
        hd = dict(r["_headers"])
        assert hd[CONNECT + "exception.class.name"] == reason, hd
        assert hd[CONNECT + "topic"] == ctx.input_topic.encode(), hd
        assert hd[CONNECT + "partition"] == str(part).encode(), hd
        assert hd["streamscore.dead_letter.dropped"] == b"value", hd
        assert hd["streamscore.dead_letter.value.bytes"] == str(size).encode(), hd
        assert not r["_raw"], f"{len(r['_raw'] or b'')} value bytes kept"
        assert r["_key"] == messages[[placed[1], placed[2]].index((part, off)) + 1]["key"]
    assert dict(letters[str(placed[1][1]).encode()]["_headers"])["trace-id"] == b"t-1"
    for what, reason in (("Value too big to dead-letter whole, over input.max.bytes", "too_large"),
                         ("Value too big to dead-letter whole, bad Avro", "bad_avro")):
        bad_inputs.record(what, f"about {big:,} bytes",
                          f"dead-lettered as `{reason}` without its value "
                          "(`streamscore.dead_letter.dropped: value`)", 1, 0,
                          "test_dead_letter.py::test_a_dead_letter_too_big_for_kafka")
