"""The HTTP endpoints on metrics.listen: /metrics counts what the worker did (records by
fate, dead letters by reason, histograms, consumer lag per partition, the model's identity),
/healthz and /readyz say whether it lives and is in its group; a bad metrics.listen is a
configuration error, a port in use a runtime one."""

import socket
import time

import numpy as np

import harness as h

MAX_BYTES = 600


def _encode(ev):
    return h.encode_avro(h.EVENT_SCHEMA_PATH, ev)


def test_metrics_count_every_record_by_fate_and_show_lag_and_model(ctx):
    rng = np.random.default_rng(1201)
    customers = [f"cust-{ctx.uid}-{i:03d}" for i in range(60)]
    events = h.random_events(rng, customers, 400)
    good = [{"key": ev["customer_id"].encode(), "value": _encode(ev)} for ev in events]
    truncated = [{"key": b"t", "value": _encode(ev)[:7]} for ev in events[:9]]
    big_ev = h.make_event(f"big-{ctx.uid}", 1, rng, **h.random_features(rng, 11, 11))
    big_ev["event_id"] = "x" * (MAX_BYTES + 50)
    too_large = [{"key": b"b", "value": _encode(big_ev)} for _ in range(4)]
    messages = good + truncated + too_large
    h.produce_raw(ctx.input_topic, messages)

    port = h.free_port()
    w = ctx.start_worker(ctx.props({"metrics.listen": f"127.0.0.1:{port}",
                                    "metrics.lag.interval.ms": 500,
                                    "input.max.bytes": MAX_BYTES, "worker.threads": 2}))
    n = len(messages)
    def settled(s):  # every record has its output, no batch in flight, lag refreshed
        return (h.metric(s, "streamscore_records_produced_total") == 400
                and h.metric(s, "streamscore_records_dead_lettered_total", reason="bad_avro") == 9
                and h.metric(s, "streamscore_records_dead_lettered_total", reason="too_large") == 4
                and h.metric(s, "streamscore_batches_total")
                == h.metric(s, "streamscore_batch_size_count")
                and h.metric(s, "streamscore_event_latency_seconds_count") == n
                and all(h.metric(s, "streamscore_consumer_lag", topic=ctx.input_topic,
                                 partition=p) == 0 for p in range(3)))

    s = h.wait_metrics(port, settled, timeout=60, worker=w,
                       what="every record handled and lag 0")
    assert h.metric(s, "streamscore_records_consumed_total") == n
    assert h.metric(s, "streamscore_records_scored_total") == 400
    assert h.metric(s, "streamscore_records_dead_lettered_total", reason="bad_avro") == 9
    assert h.metric(s, "streamscore_records_dead_lettered_total", reason="too_large") == 4
    others = [k for k, v in s.items() if k[0] == "streamscore_records_dead_lettered_total"
              and dict(k[1])["reason"] not in ("bad_avro", "too_large") and v != 0]
    assert not others, f"dead letters counted under other reasons: {others}"
    assert h.metric(s, "streamscore_records_degraded_total") == 0
    # histograms: batch sizes add up to the records; one latency per record; buckets cumulative
    assert h.metric(s, "streamscore_batch_size_sum") == n
    batches = h.metric(s, "streamscore_batch_size_count")
    assert batches == h.metric(s, "streamscore_batches_total") == \
        h.metric(s, "streamscore_predict_seconds_count")
    assert h.metric(s, "streamscore_event_latency_seconds_count") == n
    # the local store: every batch customer a hit or a miss, misses read from Redis, customers
    # held in the stores
    looked_up = h.metric(s, "streamscore_state_store_hits_total") + \
        h.metric(s, "streamscore_state_store_misses_total")
    assert 0 < looked_up <= h.metric(s, "streamscore_records_scored_total")
    assert h.metric(s, "streamscore_redis_seconds_count") >= 1
    assert h.metric(s, "streamscore_state_store_customers") > 0
    assert h.metric(s, "streamscore_state_store_bytes") > 0
    for name in ("streamscore_batch_size", "streamscore_event_latency_seconds"):
        buckets = sorted(((float(dict(k[1])["le"]), v) for k, v in s.items()
                          if k[0] == name + "_bucket"), key=lambda b: b[0])
        counts = [v for _, v in buckets]
        assert counts == sorted(counts) and counts[-1] == h.metric(s, name + "_count"), buckets
    assert h.metric(s, "streamscore_model_info", mode="primary", name="churn",
                    version="1.0.0") == 1
    assert h.metric(s, "streamscore_drift_threshold") == 0.2
    assert h.http_get(port, "/healthz") == (200, "ok\n")
    # ready once both threads' consumers have their first assignment (one may have joined
    # after the other had already consumed everything)
    deadline = time.monotonic() + 30
    while h.http_get(port, "/readyz") != (200, "ready\n"):
        assert time.monotonic() < deadline, f"/readyz: {h.http_get(port, '/readyz')}"
        time.sleep(0.2)
    s = h.parse_metrics(h.http_get(port, "/metrics")[1])
    assert h.metric(s, "streamscore_rebalances_total") >= 2  # each consumer's first assignment
    status, body = h.http_get(port, "/nothing-here")
    assert status == 404 and "/metrics" in body

    # stop once the group is stable: a stop during the second thread's hand-over round can
    # wait for the session timeout (librdkafka 2.0.2)
    h.wait_group_assigned(ctx.admin, ctx.group, ctx.input_topic, 3, worker=w)
    w.stop()
    assert h.http_get(port, "/healthz")[0] is None, "endpoints still answer after exit"


def test_readyz_is_503_until_the_consumers_join_their_group(ctx):
    port = h.free_port()
    dead_kafka = h.free_port()
    w = ctx.start_worker(ctx.props({"metrics.listen": f"127.0.0.1:{port}",
                                    "kafka.bootstrap.servers": f"127.0.0.1:{dead_kafka}"}))
    deadline = time.monotonic() + 20
    while h.http_get(port, "/healthz")[0] != 200:
        assert w.alive(), "worker exited with Kafka unreachable" + w.describe()
        assert time.monotonic() < deadline, "/healthz never answered" + w.describe()
        time.sleep(0.2)
    status, body = h.http_get(port, "/readyz")
    assert status == 503, (status, body)
    assert "consumers in the group: 0 of 1" in body, body
    w.stop()


def test_bad_metrics_listen_exits_2_naming_the_key(ctx):
    for value in ("9464", "127.0.0.1:0", "127.0.0.1:70000", "host:port"):
        path = ctx.config(ctx.props({"metrics.listen": value}))
        r = h.run_cli(["run", "-c", str(path)])
        assert r.returncode == 2, (value, r.returncode, r.stderr[-500:])
        assert "metrics.listen" in r.stderr, r.stderr[-500:]


def test_metrics_port_in_use_exits_1_naming_the_key(ctx):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        path = ctx.config(ctx.props({"metrics.listen": f"127.0.0.1:{port}"}))
        r = h.run_cli(["run", "-c", str(path)], timeout=30)
    assert r.returncode == 1, (r.returncode, r.stderr[-800:])
    assert "metrics.listen" in r.stderr and str(port) in r.stderr, r.stderr[-800:]
