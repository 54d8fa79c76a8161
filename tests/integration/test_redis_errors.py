"""Error replies from a running Redis (not an outage): WRONGTYPE names one key that is not a
hash, and concerns that key alone: a customer whose key cannot be read has its events
dead-lettered (feature_key_wrong_type), a write to such a key is dropped, and the rest of
the batch, the partition and the commits go on. Any other error reply (READONLY from a master
demoted under a live connection, OOM, NOAUTH, ...) is the server's state: the connection is
dropped, so that the next attempt connects again, and redis.on.error decides as for an
outage. Every error reply is named in the log and counted by name in the metrics."""

import collections
import contextlib
import time

import numpy as np
import pytest

import bad_inputs
import harness as h

CONNECT = "__connect.errors."
PAUSE_S = 3.0  # how long a blocked worker is watched while Redis answers READONLY


def _encode(ev):
    return h.encode_avro(h.EVENT_SCHEMA_PATH, ev)


def _metrics_props(ctx, port, overrides=None):
    props = {"metrics.listen": f"127.0.0.1:{port}", "worker.threads": 1}
    props.update(overrides or {})
    return ctx.props(props)


def _predictions_of(reader, placed):
    wanted = set(placed)
    return [r for r in reader.records if (r["source_partition"], r["source_offset"]) in wanted]


def _wait_sources(reader, placed, worker, what, timeout=20.0):
    wanted = set(placed)
    reader.wait_until(lambda recs: wanted <= set(h.index_by_source(recs)), timeout=timeout,
                      worker=worker, what=f"predictions ({len(wanted)} {what})")
    return _predictions_of(reader, placed)


def _scored_once_as_merged(records, events, placed, seeded=None):
    """One prediction per event placed, each scored on its customer's merged vector (from
    `seeded`); returns the final merged vectors."""
    got = collections.Counter((r["source_partition"], r["source_offset"]) for r in records)
    want = collections.Counter(placed)
    assert got == want, (f"{len(placed)} events, {len(records)} predictions: without one "
                         f"{sorted(want - got)[:5]}, extra {sorted(got - want)[:5]}")
    expected, final = h.expected_predictions(events, placed, h.PRIMARY_MODEL, seeded)
    first, n_bad = h.score_mismatches(records, expected)
    assert n_bad == 0, f"{n_bad} predictions differ from the merge: {first}"
    return final


def _stored(ctx, cid):
    return {n: np.float32(v) for n, v in ctx.redis.hgetall(ctx.redis_key(cid)).items()}


def _reply_errors(samples, error):
    return h.metric(samples, "streamscore_redis_reply_errors_total", error=error) or 0


def test_a_customer_whose_key_is_not_a_hash_is_dead_lettered_and_the_rest_scored(ctx):
    rng = np.random.default_rng(1401)
    bad = f"bad-{ctx.uid}"
    ctx.redis.set(ctx.redis_key(bad), "x")  # under the prefix, not a hash
    good_ids = [f"good-{ctx.uid}-{i:02d}" for i in range(12)]
    seeded = {cid: ctx.seed(cid, h.random_features(rng, 6, 11)) for cid in good_ids[:6]}
    goods = h.random_events(rng, good_ids, 36)
    bads = [h.make_event(bad, 1_700_000_500_000 + i, rng, **h.random_features(rng, 2, 5))
            for i in range(3)]
    events = goods[:12] + bads[:1] + goods[12:24] + bads[1:] + goods[24:]
    placed = h.produce(ctx.input_topic, events, _encode)
    good_places = [p for ev, p in zip(events, placed) if ev["customer_id"] != bad]
    bad_places = [p for ev, p in zip(events, placed) if ev["customer_id"] == bad]

    port = h.free_port()
    w = ctx.start_worker(_metrics_props(ctx, port))  # redis.on.error = block (default)
    with contextlib.closing(h.TopicReader(ctx.output_topic)) as preds, \
            contextlib.closing(h.TopicReader(ctx.dlq_topic, decode=None)) as dlq:
        _wait_sources(preds, good_places, w, "events of customers with a hash")
        dlq.wait_for(len(bad_places), timeout=20, worker=w, what="dead letters")
        h.wait_committed(ctx.group, ctx.input_topic, worker=w)
        s = h.wait_metrics(port, lambda s: h.metric(
            s, "streamscore_records_dead_lettered_total", reason="feature_key_wrong_type") == 3,
            timeout=10, worker=w, what="3 feature_key_wrong_type dead letters")
        assert _reply_errors(s, "WRONGTYPE") >= 1, "the WRONGTYPE reply was not counted"
        assert w.alive(), "the worker exited" + w.describe()
        w.stop()
        preds.drain()
        dlq.drain()

    _scored_once_as_merged(preds.records, [ev for ev in events if ev["customer_id"] != bad],
                           good_places, seeded)
    letters = {}
    for r in dlq.records:
        hdr = dict(r["_headers"])
        letters[(int(hdr[CONNECT + "partition"]), int(hdr[CONNECT + "offset"]))] = hdr
    assert sorted(letters) == sorted(bad_places), \
        f"dead letters for {sorted(letters)}, expected {sorted(bad_places)}"
    for hdr in letters.values():
        assert hdr[CONNECT + "exception.class.name"] == b"feature_key_wrong_type", hdr
        assert ctx.redis_key(bad).encode() in hdr[CONNECT + "exception.message"], hdr
    assert ctx.redis.get(ctx.redis_key(bad)) == "x", "the non-hash key was changed"
    named = [line for line in w.log_lines() if line.get("redis_error") == "WRONGTYPE"
             and ctx.redis_key(bad) in line.get("msg", "")]
    assert named, "no log line names WRONGTYPE and the key" + w.describe()
    # a partition none of the 13 customers hashed to has nothing to commit (1.5 % of runs)
    ends = {p: end for p, end in h.end_offsets(ctx.input_topic).items() if end > 0}
    assert h.committed_offsets(ctx.group, ctx.input_topic, sorted(ends)) == ends
    bad_inputs.record("Customer whose Redis key is not a hash", "a string under the key prefix",
                      "its events dead-lettered as `feature_key_wrong_type` (key named), the "
                      "rest of the batch scored and committed", len(bad_places), 0,
                      "test_redis_errors.py::test_a_customer_whose_key_is_not_a_hash")


def _wait_hash(ctx, cid, worker, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not _stored(ctx, cid):
        assert time.monotonic() < deadline, f"{cid}'s hash was not written" + worker.describe()
        time.sleep(0.1)


@pytest.mark.parametrize("delivery", ["at-least-once", "exactly-once"])
def test_a_write_to_a_key_that_became_a_non_hash_is_dropped_and_the_partition_goes_on(
        ctx, delivery):
    """exactly-once flushes in MULTI/EXEC: the WRONGTYPE is an element of EXEC's reply."""
    rng = np.random.default_rng(1402)
    ids = [f"cust-{ctx.uid}-{i:02d}" for i in range(9)]
    victim = ids[0]
    port = h.free_port()
    # owned (default): the victim is held in the local store after round 1, so round 2 reads
    # nothing from Redis and meets the changed key only in the flush
    w = ctx.start_worker(_metrics_props(ctx, port, {"delivery": delivery}))
    with contextlib.closing(h.TopicReader(ctx.output_topic)) as preds:
        ev1 = [h.make_event(cid, 1_700_000_000_000 + i, rng, **h.random_features(rng, 5, 9))
               for i, cid in enumerate(ids)]
        pl1 = h.produce(ctx.input_topic, ev1, _encode)
        _wait_sources(preds, pl1, w, "first round")
        h.wait_committed(ctx.group, ctx.input_topic, worker=w)
        _wait_hash(ctx, victim, w)  # flushed (exactly-once: after the commit)
        ctx.redis.set(ctx.redis_key(victim), "x")  # replaces the hash by a string

        ev2 = [h.make_event(cid, 1_700_000_100_000 + i, rng, **h.random_features(rng, 1, 3))
               for i, cid in enumerate(ids * 2)]
        pl2 = h.produce(ctx.input_topic, ev2, _encode)
        _wait_sources(preds, pl2, w, "second round")
        h.wait_committed(ctx.group, ctx.input_topic, timeout=15, worker=w)
        s = h.wait_metrics(port, lambda s: (h.metric(
            s, "streamscore_redis_dropped_writes_total") or 0) >= 1, timeout=10, worker=w,
            what="a dropped write")
        assert _reply_errors(s, "WRONGTYPE") >= 1, "the WRONGTYPE reply was not counted"
        assert w.alive(), "the worker exited" + w.describe()
        w.stop()
        preds.drain()

    final = _scored_once_as_merged(preds.records, ev1 + ev2, pl1 + pl2)
    assert ctx.redis.get(ctx.redis_key(victim)) == "x", "the string key was overwritten"
    wrong = [cid for cid in ids[1:] if _stored(ctx, cid) != final[cid]]
    assert not wrong, f"hashes not written for {wrong}"
    named = [line for line in w.log_lines() if line.get("redis_error") == "WRONGTYPE"
             and ctx.redis_key(victim) in line.get("msg", "")]
    assert named, "no log line names WRONGTYPE and the key" + w.describe()


def _connections(ctx):
    return int(ctx.redis.info("stats")["total_connections_received"])


def test_readonly_drops_the_connection_and_block_resumes_when_the_master_is_back(ctx):
    rng = np.random.default_rng(1403)
    ids = [f"cust-{ctx.uid}-{i:02d}" for i in range(9)]
    port = h.free_port()
    w = ctx.start_worker(_metrics_props(ctx, port))  # block (default), owned
    with contextlib.closing(h.TopicReader(ctx.output_topic)) as preds:
        ev1 = h.random_events(rng, ids, 18)
        pl1 = h.produce(ctx.input_topic, ev1, _encode)
        _wait_sources(preds, pl1, w, "first round")
        ends1 = h.wait_committed(ctx.group, ctx.input_topic, worker=w)

        # a replica of a master that does not answer: reads are served, writes are READONLY
        ctx.redis.execute_command("REPLICAOF", "127.0.0.1", str(h.free_port()))
        try:
            before = _connections(ctx)
            ev2 = h.random_events(rng, ids + [f"new-{ctx.uid}-{i}" for i in range(4)], 26,
                                  t0=1_700_000_900_000)
            pl2 = h.produce(ctx.input_topic, ev2, _encode)
            time.sleep(PAUSE_S)
            assert w.alive(), "the worker exited while Redis answered READONLY" + w.describe()
            committed = h.committed_offsets(ctx.group, ctx.input_topic, sorted(ends1))
            assert committed == ends1, f"offsets committed past unwritten features: {committed}"
            reconnects = _connections(ctx) - before
            assert reconnects >= 2, (f"{reconnects} new connections while writes were refused: "
                                     f"the connection that got READONLY was kept")
            s = h.parse_metrics(h.http_get(port, "/metrics")[1])
            assert _reply_errors(s, "READONLY") >= 1, "READONLY replies not counted"
            named = [line for line in w.log_lines() if line.get("redis_error") == "READONLY"
                     and line.get("policy") == "block"]
            assert named, "no block retry naming READONLY logged" + w.describe()
        finally:
            ctx.redis.execute_command("REPLICAOF", "NO", "ONE")

        _wait_sources(preds, pl2, w, "second round")
        h.wait_committed(ctx.group, ctx.input_topic, timeout=15, worker=w)
        w.stop()
        preds.drain()

    final = _scored_once_as_merged(preds.records, ev1 + ev2, pl1 + pl2)
    wrong = [cid for cid in final if _stored(ctx, cid) != final[cid]]
    assert not wrong, f"{len(wrong)} hashes differ from the merge after the master came back"
