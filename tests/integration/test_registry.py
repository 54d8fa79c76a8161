"""The worker against a real schema registry (Apicurio Registry, Confluent-compatible API):
events serialized by an independent client with the registry serializer are scored, a schema
evolved and registered mid-stream is picked up, predictions read back with the registry
deserializer, unknown ids and a registry outage dead-letter (never lose) records, and the
registry being stopped mid-stream loses nothing."""

import json
import struct

import numpy as np
import pytest

import bad_inputs
import harness as h
import registry

REMOVED = "support_calls_30d"
CONNECT = "__connect.errors."


def _encoder(reg, topic, schema_path):
    """Events as an upstream producer with the Confluent serializer writes them: the schema
    registered under <topic>-value on first use, each value framed with its id."""
    ser = registry.serializer(reg.url, schema_path, f"{topic}-value")
    return lambda ev: ser(h.record_for_schema(ev, schema_path))


def _deserializer(reg):
    """The Confluent deserializer, for TopicReader."""
    de = registry.deserializer(reg.url)
    return lambda raw, topic: de(raw)


def _schema_id(raw):
    assert raw[:1] == b"\x00", f"not the Confluent wire format: {raw[:8]!r}"
    return struct.unpack(">I", raw[1:5])[0]


def _registry_props(ctx, registry, extra=None):
    p = ctx.props({"input.framing": "confluent", "schema.registry.url": registry.url,
                   "schema.registry.retry.backoff.ms": 50,
                   "schema.registry.retry.backoff.max.ms": 200})
    p.update(extra or {})
    return p


def _headers(rec):
    return {k: v.decode() for k, v in rec["_headers"]}


def _events(ctx, rng, n_customers, n):
    customers = [f"cust-{ctx.uid}-{i:03d}" for i in range(n_customers)]
    events = h.random_events(rng, customers, n)
    for ev in events:
        ev["referral_channel"] = ["web", "shop", None][int(rng.integers(0, 3))]
    return events


def _check_scores(records, expected):
    assert set(h.index_by_source(records)) == set(expected), \
        f"{len(records)} predictions for {len(expected)} events"
    first, n_bad = h.score_mismatches(records, expected)
    assert n_bad == 0, f"{n_bad} of {len(records)} predictions differ from the reference: {first}"


def test_registry_serialized_events_are_scored_and_predictions_read_with_the_registry_deserializer(
        ctx, schema_registry):
    client = registry.client(schema_registry.url)
    rng = np.random.default_rng(7001)
    events = _events(ctx, rng, 50, 300)
    placed = h.produce(ctx.input_topic, events,
                       _encoder(schema_registry, ctx.input_topic, h.EVENT_SCHEMA_PATH))
    input_id = client.get_latest_version(f"{ctx.input_topic}-value").schema_id
    expected, _ = h.expected_predictions(events, placed, h.PRIMARY_MODEL)

    w = ctx.start_worker(_registry_props(ctx, schema_registry))
    reader = h.TopicReader(ctx.output_topic, decode=_deserializer(schema_registry))
    try:
        reader.wait_for(len(events), 90, worker=w, what="predictions")
        w.stop()
        reader.drain()
    finally:
        reader.close()
    assert not reader.undecodable, f"the registry deserializer failed: {reader.undecodable[:3]}"
    _check_scores(reader.records, expected)
    # Every value is framed with the id of the prediction schema under <topic>-value.
    out = client.get_latest_version(f"{ctx.output_topic}-value")
    assert out.schema.schema_type in (None, "AVRO")
    assert json.loads(out.schema.schema_str)["name"] == "Prediction"
    assert {_schema_id(r["_raw"]) for r in reader.records} == {out.schema_id}
    assert out.schema_id != input_id
    assert not ctx.dead_letters()
    fetched = [line for line in w.log_lines()
               if line.get("msg", "").startswith(f"writer schema {input_id} fetched")]
    assert len(fetched) == 1, "the writer schema must be fetched once and cached" + w.describe()


def test_a_schema_evolved_and_registered_mid_stream_is_picked_up(ctx, schema_registry):
    client = registry.client(schema_registry.url)
    rng = np.random.default_rng(7002)
    evolved = h.write_evolved_schema(ctx.tmp / "customer_event_v2.avsc", remove_field=REMOVED)
    first = _events(ctx, rng, 40, 200)
    for ev in first:  # every customer has a support_calls_30d value cached by the first part
        ev[REMOVED] = h.random_feature_value(rng, REMOVED)
    enc1 = _encoder(schema_registry, ctx.input_topic, h.EVENT_SCHEMA_PATH)
    placed1 = h.produce(ctx.input_topic, first, enc1)

    w = ctx.start_worker(_registry_props(ctx, schema_registry))
    reader = h.TopicReader(ctx.output_topic, decode=_deserializer(schema_registry))
    try:
        reader.wait_for(len(first), 90, worker=w, what="predictions of the first schema")
        # the upstream producer moves to the evolved schema: registered on its first record
        second = _events(ctx, rng, 40, 200)
        enc2 = _encoder(schema_registry, ctx.input_topic, evolved)
        placed2 = h.produce(ctx.input_topic, second, enc2)
        versions = client.get_versions(f"{ctx.input_topic}-value")
        assert len(versions) == 2, f"subject versions {versions}: the evolved schema not registered"
        reader.wait_for(len(first) + len(second), 90, worker=w, what="predictions")
        w.stop()
        reader.drain()
    finally:
        reader.close()
    assert not reader.undecodable, reader.undecodable[:3]
    assert not ctx.dead_letters()
    # What the worker saw: the second part has no support_calls_30d (missing: the cached
    # value of the first part applies).
    seen = first + [dict(ev, **{REMOVED: None}) for ev in second]
    expected, _ = h.expected_predictions(seen, placed1 + placed2, h.PRIMARY_MODEL)
    _check_scores(reader.records, expected)
    ids = {_schema_id(enc1(first[0])), _schema_id(enc2(second[0]))}
    assert len(ids) == 2
    fetched = {line.get("schema_id") for line in w.log_lines()
               if "fetched from the schema registry" in line.get("msg", "")}
    assert fetched == ids, f"fetched {fetched}, expected {ids}" + w.describe()


def test_unknown_schema_id_is_dead_lettered_with_the_reason_and_the_rest_scored(
        ctx, schema_registry):
    rng = np.random.default_rng(7003)
    events = _events(ctx, rng, 20, 60)
    enc = _encoder(schema_registry, ctx.input_topic, h.EVENT_SCHEMA_PATH)
    good = [enc(ev) for ev in events]
    unknown = h.encode_confluent(987654, h.EVENT_SCHEMA_PATH, h.record_for_schema(
        events[0], h.EVENT_SCHEMA_PATH))
    messages = [{"key": ev["customer_id"].encode(), "value": v} for ev, v in zip(events, good)]
    messages.insert(30, {"key": b"k-unknown", "value": unknown,
                         "headers": [("origin", b"upstream")]})
    placed = h.produce_raw(ctx.input_topic, messages)

    records, undecodable = ctx.run_until(
        _registry_props(ctx, schema_registry, {"schema.registry.miss.ttl.ms": 60000}),
        len(events), decode=_deserializer(schema_registry))
    assert not undecodable
    assert len(records) == len(events)
    dead = ctx.dead_letters()
    assert len(dead) == 1, f"{len(dead)} dead letters"
    d = dead[0]
    hd = _headers(d)
    assert d["_raw"] == unknown and d["_key"] == b"k-unknown"
    assert hd["origin"] == "upstream"
    assert hd[CONNECT + "exception.class.name"] == "unknown_schema"
    assert "987654" in hd[CONNECT + "exception.message"]
    assert (int(hd[CONNECT + "partition"]), int(hd[CONNECT + "offset"])) == placed[30]


def test_registry_stopped_mid_stream_loses_nothing(ctx, schema_registry):
    rng = np.random.default_rng(7004)
    first = _events(ctx, rng, 30, 150)
    enc = _encoder(schema_registry, ctx.input_topic, h.EVENT_SCHEMA_PATH)
    placed1 = h.produce(ctx.input_topic, first, enc)
    port = h.free_port()
    props = _registry_props(ctx, schema_registry, {"schema.registry.retries": 2,
                                                   "schema.registry.miss.ttl.ms": 1000,
                                                   "metrics.listen": f"127.0.0.1:{port}"})
    w = ctx.start_worker(props)
    reader = h.TopicReader(ctx.output_topic)  # plain Avro after the 5-byte header
    reader.decode = lambda raw, topic: h.decode_prediction(raw[5:])
    try:
        reader.wait_for(len(first), 90, worker=w, what="predictions before the outage")
        schema_registry.stop()
        # known id: decoded from the worker's cache; a never-seen id: dead-lettered
        second = _events(ctx, rng, 30, 150)
        placed2 = h.produce(ctx.input_topic, second, enc)
        stray = h.encode_confluent(4242, h.EVENT_SCHEMA_PATH,
                                   h.record_for_schema(second[0], h.EVENT_SCHEMA_PATH))
        placed3 = h.produce_raw(ctx.input_topic, [{"key": b"stray", "value": stray}])
        reader.wait_for(len(first) + len(second), 90, worker=w, what="predictions")
        dlq = h.TopicReader(ctx.dlq_topic, decode=None)
        try:
            dlq.wait_for(1, 60, worker=w, what="dead letters")
        finally:
            dlq.close()
        assert w.alive(), "the worker stopped while the registry was down" + w.describe()
        m = h.wait_metrics(port, lambda s: h.metric(
            s, "streamscore_records_dead_lettered_total", reason="registry_unavailable") == 1,
            timeout=30, worker=w, what="the dead letter counted")
        assert h.metric(m, "streamscore_schema_registry_retries_total") >= 2
        assert h.metric(m, "streamscore_schema_registry_requests_total", result="error") >= 1
        assert h.metric(m, "streamscore_writer_schemas") == 1
        schema_registry.start()
        w.stop()
        reader.drain()
    finally:
        reader.close()
    placed = placed1 + placed2 + placed3
    preds = h.index_by_source(reader.records)
    dead = ctx.dead_letters()
    dead_at = {(int(_headers(d)[CONNECT + "partition"]), int(_headers(d)[CONNECT + "offset"])):
               _headers(d) for d in dead}
    assert set(preds) | set(dead_at) == set(placed), "input offsets without an output"
    assert all(len(v) == 1 for v in preds.values()), "duplicate predictions"
    assert set(dead_at) == set(placed3)
    assert dead_at[placed3[0]][CONNECT + "exception.class.name"] == "registry_unavailable"
    expected, _ = h.expected_predictions(first + second, placed1 + placed2, h.PRIMARY_MODEL)
    _check_scores(reader.records, expected)
    retries = [line for line in w.log_lines() if line.get("component") == "schema-registry"]
    assert retries, "no retry was logged while the registry was down" + w.describe()


def test_output_schema_id_from_config_frames_outputs_without_a_registry(ctx):
    rng = np.random.default_rng(7005)
    events = h.random_events(rng, [f"c-{ctx.uid}-{i}" for i in range(10)], 40)
    h.produce(ctx.input_topic, events, lambda ev: h.encode_avro(h.EVENT_SCHEMA_PATH, ev))
    w = ctx.start_worker(ctx.props({"output.schema.id": 4711}))
    reader = h.TopicReader(ctx.output_topic, decode=None)
    try:
        reader.wait_for(len(events), 60, worker=w, what="predictions")
        w.stop()
    finally:
        reader.close()
    for r in reader.records:
        assert _schema_id(r["_raw"]) == 4711
        assert h.decode_prediction(r["_raw"][5:])["customer_id"].startswith(f"c-{ctx.uid}-")


def test_unreachable_registry_at_start_exits_1_naming_it(ctx):
    props = ctx.props({"schema.registry.url": "http://127.0.0.1:9/apis/ccompat/v7",
                       "schema.registry.retries": 1, "schema.registry.retry.backoff.ms": 10})
    w = ctx.start_worker(props)
    assert w.proc.wait(60) == 1, w.describe()
    errors = [line["msg"] for line in w.log_lines() if line.get("level") == "error"]
    assert any("schema registry http://127.0.0.1:9/apis/ccompat/v7" in m and
               f"{ctx.output_topic}-value" in m for m in errors), errors


def test_a_registered_schema_that_does_not_resolve_is_dead_lettered_as_unresolvable(
        ctx, schema_registry):
    rng = np.random.default_rng(7006)
    # upstream changed a feature field's type: tenure_months became a string
    schema = h.load_schema_json(h.EVENT_SCHEMA_PATH)
    for f in schema["fields"]:
        if f["name"] == "tenure_months":
            f["type"] = ["null", "string"]
    bad_path = ctx.tmp / "customer_event_bad.avsc"
    bad_path.write_text(json.dumps(schema), encoding="utf-8")
    events = _events(ctx, rng, 10, 40)
    enc = _encoder(schema_registry, ctx.input_topic, h.EVENT_SCHEMA_PATH)
    bad_enc = _encoder(schema_registry, ctx.input_topic, bad_path)
    good = [enc(ev) for ev in events]
    bads = [bad_enc(dict(ev, tenure_months="twelve")) for ev in events[:3]]
    messages = [{"key": ev["customer_id"].encode(), "value": v} for ev, v in zip(events, good)]
    messages[10:10] = [{"key": b"bad", "value": v} for v in bads]
    placed = h.produce_raw(ctx.input_topic, messages)

    records, undecodable = ctx.run_until(_registry_props(ctx, schema_registry), len(events),
                                         decode=_deserializer(schema_registry))
    assert not undecodable and len(records) == len(events)
    dead = ctx.dead_letters()
    assert sorted(d["_raw"] for d in dead) == sorted(bads)
    for d in dead:
        hd = _headers(d)
        assert hd[CONNECT + "exception.class.name"] == "unresolvable_schema"
        assert "tenure_months" in hd[CONNECT + "exception.message"]
    assert {(int(_headers(d)[CONNECT + "partition"]), int(_headers(d)[CONNECT + "offset"]))
            for d in dead} == set(placed[10:13])


def test_compare_reads_registry_framed_primary_and_shadow_outputs(ctx, schema_registry):
    rng = np.random.default_rng(7007)
    ctx.add_topics(ctx.shadow_topic)
    events = _events(ctx, rng, 30, 120)
    h.produce(ctx.input_topic, events,
              _encoder(schema_registry, ctx.input_topic, h.EVENT_SCHEMA_PATH))
    primary = ctx.start_worker(_registry_props(ctx, schema_registry))
    shadow = ctx.start_worker(ctx.shadow_props({"input.framing": "confluent",
                                                "schema.registry.url": schema_registry.url}))
    for topic, w in ((ctx.output_topic, primary), (ctx.shadow_topic, shadow)):
        reader = h.TopicReader(topic, decode=_deserializer(schema_registry))
        try:
            reader.wait_for(len(events), 90, worker=w, what=f"records on {topic}")
        finally:
            reader.close()
        assert not reader.undecodable
    primary.stop()
    shadow.stop()
    client = registry.client(schema_registry.url)
    assert client.get_latest_version(f"{ctx.shadow_topic}-value").schema_id >= 1
    out = ctx.tmp / "compare"
    cfg = h.compare_config(ctx.tmp / "compare.properties", ctx.output_topic, ctx.shadow_topic,
                           out, extra={"schema.registry.url": schema_registry.url})
    r = h.run_cli(["compare", "-c", str(cfg)], timeout=60)
    assert r.returncode in (0, 3), r.stderr[-800:]
    report = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    assert report["counts"]["matched"] == len(events), report["counts"]


class _Gateway:
    """An HTTPS gateway with basic authentication in front of the stack's registry, as a
    registry is often exposed: TLS with a certificate of a private CA, USER:PASSWORD checked,
    requests passed on to the real registry unchanged."""

    USER, PASSWORD = "scorer", "s3cret:with-colon"

    def __init__(self, tmp, upstream):
        import base64
        import http.server
        import ssl
        import subprocess
        import threading
        import urllib.error
        import urllib.request

        self.cert = tmp / "gateway.pem"
        key = tmp / "gateway.key"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", str(key), "-out", str(self.cert)],
                       check=True, capture_output=True, timeout=60)
        want = "Basic " + base64.b64encode(f"{self.USER}:{self.PASSWORD}".encode()).decode()
        base = upstream.rsplit("/apis/", 1)[0]
        self.requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _forward(gw_self):
                gw = gw_self.server.gateway
                body = gw_self.rfile.read(int(gw_self.headers.get("Content-Length") or 0))
                auth_ok = gw_self.headers.get("Authorization") == want
                gw.requests.append((gw_self.command, gw_self.path, auth_ok))
                if not auth_ok:
                    out, status = b'{"error_code":401,"message":"Unauthorized"}', 401
                else:
                    req = urllib.request.Request(base + gw_self.path, data=body or None,
                                                 method=gw_self.command)
                    for k in ("Content-Type", "Accept"):
                        if gw_self.headers.get(k):
                            req.add_header(k, gw_self.headers[k])
                    try:
                        with urllib.request.urlopen(req, timeout=10) as r:
                            out, status = r.read(), r.status
                    except urllib.error.HTTPError as e:
                        out, status = e.read(), e.code
                gw_self.send_response(status)
                gw_self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                gw_self.send_header("Content-Length", str(len(out)))
                gw_self.end_headers()
                gw_self.wfile.write(out)

            do_GET = do_POST = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.gateway = self
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(str(self.cert), str(key))
        self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.url = (f"https://127.0.0.1:{self.server.server_address[1]}"
                    + upstream[len(base):])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# a secret: only from the environment (or schema.registry.basic.auth.user.info.file)
USER_INFO_ENV = "STREAMSCORE_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO"


def test_registry_behind_https_and_basic_auth_is_used_with_the_ca_and_credentials(
        ctx, schema_registry):
    gw = _Gateway(ctx.tmp, schema_registry.url)
    try:
        rng = np.random.default_rng(7008)
        events = _events(ctx, rng, 10, 40)
        h.produce(ctx.input_topic, events,
                  _encoder(schema_registry, ctx.input_topic, h.EVENT_SCHEMA_PATH))
        tls = {"schema.registry.url": gw.url, "schema.registry.ssl.ca.location": gw.cert,
               "schema.registry.retries": 0}
        # wrong password: refused at start-up (the output schema's registration), exit 2
        bad = ctx.start_worker(_registry_props(ctx, schema_registry, tls),
                               env={USER_INFO_ENV: f"{gw.USER}:wrong"})
        assert bad.proc.wait(60) == 2, bad.describe()
        assert any("HTTP 401" in line.get("msg", "") for line in bad.log_lines()), bad.describe()
        # no CA: the gateway's certificate is not trusted, nothing is sent in the clear
        untrusted = ctx.start_worker(_registry_props(ctx, schema_registry, {
            **tls, "schema.registry.ssl.ca.location": None}),
            env={USER_INFO_ENV: f"{gw.USER}:{gw.PASSWORD}"})
        assert untrusted.proc.wait(60) == 1, untrusted.describe()
        assert any("certificate" in line.get("msg", "").lower()
                   for line in untrusted.log_lines()), untrusted.describe()
        seen = len(gw.requests)
        # the CA and the credentials: every event scored, through the gateway
        records, undecodable = ctx.run_until(
            _registry_props(ctx, schema_registry, tls), len(events),
            decode=_deserializer(schema_registry),
            env={USER_INFO_ENV: f"{gw.USER}:{gw.PASSWORD}"})
        assert not undecodable and len(records) == len(events)
        made = gw.requests[seen:]
        assert ("POST", f"/apis/ccompat/v7/subjects/{ctx.output_topic}-value/versions", True) \
            in made, made
        assert any(m == "GET" and p.startswith("/apis/ccompat/v7/schemas/ids/") and ok
                   for m, p, ok in made), made
    finally:
        gw.close()


def _metrics_port_props(ctx, registry, extra=None):
    port = h.free_port()
    return port, _registry_props(ctx, registry, {"metrics.listen": f"127.0.0.1:{port}",
                                                 **(extra or {})})


def _unknown_framed(ids, event):
    body = h.record_for_schema(event, h.EVENT_SCHEMA_PATH)
    return [h.encode_confluent(i, h.EVENT_SCHEMA_PATH, body) for i in ids]


def test_a_burst_of_random_unknown_schema_ids_is_dead_lettered_and_known_ids_keep_flowing(
        ctx, schema_registry):
    import random
    import time

    rng = np.random.default_rng(7009)
    events = _events(ctx, rng, 30, 200)
    enc = _encoder(schema_registry, ctx.input_topic, h.EVENT_SCHEMA_PATH)
    good = [{"key": ev["customer_id"].encode(), "value": enc(ev)} for ev in events]
    ids = random.Random(7009).sample(range(1_000_000, 2**31 - 1), 1500)
    bad = [{"key": b"random-id", "value": v} for v in _unknown_framed(ids, events[0])]
    # the input schema's id is known first (fetched for the first 50 events); then a producer
    # writes random ids all through the next 150 events
    burst = []
    for i in range(150):
        burst.extend(bad[i * 10:(i + 1) * 10])
        burst.append(good[50 + i])

    port, props = _metrics_port_props(ctx, schema_registry)
    placed = h.produce_raw(ctx.input_topic, good[:50])
    w = ctx.start_worker(props)
    reader = h.TopicReader(ctx.output_topic, decode=_deserializer(schema_registry))
    dlq = h.TopicReader(ctx.dlq_topic, decode=None)
    try:
        reader.wait_for(50, 90, worker=w, what="predictions before the burst")
        t0 = time.monotonic()
        placed_burst = h.produce_raw(ctx.input_topic, burst)
        reader.wait_for(len(good), 120, worker=w, what="predictions")
        dlq.wait_for(len(bad), 120, worker=w, what="dead letters")
        elapsed = time.monotonic() - t0
        m = h.wait_metrics(port, lambda s: h.metric(
            s, "streamscore_schema_registry_requests_total", result="not_found") is not None,
            timeout=30, worker=w)
        assert w.alive(), w.describe()
        w.stop()
        reader.drain()
    finally:
        reader.close()
        dlq.close()
    assert not reader.undecodable
    at = dict(zip(map(id, burst), placed_burst))
    expected, _ = h.expected_predictions(events, placed + [at[id(g)] for g in good[50:]],
                                         h.PRIMARY_MODEL)
    _check_scores(reader.records, expected)
    # The registry was asked at most schema.registry.fetch.rate (10) times a second, plus the
    # full bucket: one request per id was 1500.
    asked = h.metric(m, "streamscore_schema_registry_requests_total", result="not_found")
    assert 1 <= asked <= 10 + 10 * elapsed, f"{asked} ids asked in {elapsed:.1f} s"
    reasons = {}
    for d in dlq.records:
        hd = _headers(d)
        reason, msg = hd[CONNECT + "exception.class.name"], hd[CONNECT + "exception.message"]
        reasons[reason] = reasons.get(reason, 0) + 1
        sid = _schema_id(d["_raw"])
        assert sid in ids and f"schema id {sid}" in msg, msg
        if reason == "registry_unavailable":
            assert "schema.registry.fetch.rate" in msg, msg
        else:
            assert reason == "unknown_schema", reason
    assert reasons.get("unknown_schema") == asked, reasons
    assert reasons.get("registry_unavailable", 0) == len(bad) - asked, reasons
    assert {(int(_headers(d)[CONNECT + "partition"]), int(_headers(d)[CONNECT + "offset"]))
            for d in dlq.records} == {at[id(b)] for b in bad}
    bad_inputs.record("Burst of random unknown schema ids", f"{len(bad)} distinct ids, registry up",
                      f"dead-lettered: {int(asked)} as `unknown_schema` (fetched), the rest as "
                      "`registry_unavailable` (over schema.registry.fetch.rate); known ids "
                      "scored meanwhile", len(bad), 0,
                      "test_registry.py::test_a_burst_of_random_unknown_schema_ids")


class _BlackHole:
    """A registry that accepts connections and never answers: each request lasts the whole
    schema.registry.request.timeout.ms."""

    def __init__(self):
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", h.free_port()))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def close(self):
        self.sock.close()


@pytest.mark.partitions(2)
def test_a_registry_that_does_not_answer_holds_up_no_other_worker_thread(ctx):
    import time

    rng = np.random.default_rng(7010)
    hole = _BlackHole()
    encode = (lambda ev: h.encode_confluent(1, h.EVENT_SCHEMA_PATH,
                                            h.record_for_schema(ev, h.EVENT_SCHEMA_PATH)))
    props = ctx.props({"input.framing": "confluent", "worker.threads": 2,
                       "input.schema.map": f"1={h.EVENT_SCHEMA_PATH}",
                       "schema.registry.url": hole.url, "schema.registry.retries": 0,
                       "schema.registry.request.timeout.ms": 12000,
                       "schema.registry.miss.ttl.ms": 600000, "output.schema.id": 4711})
    w = ctx.start_worker(props)
    reader = h.TopicReader(ctx.output_topic)
    reader.decode = lambda raw, topic: h.decode_prediction(raw[5:])
    dlq = h.TopicReader(ctx.dlq_topic, decode=None)

    def known(n, partition):
        evs = _events(ctx, rng, 10, n)
        return evs, [{"key": ev["customer_id"].encode(), "value": encode(ev),
                      "partition": partition} for ev in evs]

    try:
        h.wait_group_assigned(ctx.admin, ctx.group, ctx.input_topic, 2, 60, worker=w, members=2)
        # id 888 on partition 1: its fetch times out after 12 s, then it is remembered missing
        ev1, msgs1 = known(5, 1)
        h.produce_raw(ctx.input_topic, [{"key": b"k888", "value": _unknown_framed(
            [888], ev1[0])[0], "partition": 1}] + msgs1)
        reader.wait_for(len(ev1), 60, worker=w, what="predictions after the first fetch")
        dlq.wait_for(1, 30, worker=w, what="the dead letter of id 888")
        # partition 0's thread fetches id 777 (12 s); meanwhile partition 1 gets the
        # remembered id 888 and events of the configured id 1
        ev0, msgs0 = known(5, 0)
        h.produce_raw(ctx.input_topic, [{"key": b"k777", "value": _unknown_framed(
            [777], ev0[0])[0], "partition": 0}] + msgs0)
        time.sleep(1.5)
        ev2, msgs2 = known(20, 1)
        t0 = time.monotonic()
        h.produce_raw(ctx.input_topic, [{"key": b"k888", "value": _unknown_framed(
            [888], ev2[0])[0], "partition": 1}] + msgs2)
        reader.wait_for(len(ev1) + len(ev2), 60, worker=w, what="partition 1's predictions")
        took = time.monotonic() - t0
        # waiting behind the fetch would take most of its 12 s; the order below is the proof
        assert took < 9, (f"partition 1's records waited {took:.1f} s for partition 0's "
                          "fetch" + w.describe())
        dlq.poll_for(0.5, worker=w)
        assert 777 not in {_schema_id(d["_raw"]) for d in dlq.records}, \
            "id 777's fetch was over already: the test proves nothing"
        reader.wait_for(len(ev1) + len(ev2) + len(ev0), 60, worker=w, what="all predictions")
        dlq.wait_for(3, 30, worker=w, what="the dead letter of id 777")
        w.stop()
    finally:
        reader.close()
        dlq.close()
        hole.close()
    by_id = sorted(_schema_id(d["_raw"]) for d in dlq.records)
    assert by_id == [777, 888, 888], by_id
    assert {_headers(d)[CONNECT + "exception.class.name"] for d in dlq.records} == \
        {"registry_unavailable"}


def test_registry_credentials_in_the_url_appear_in_no_log_line_error_or_dead_letter(ctx):
    secret = f"s3cret-{ctx.uid}"
    url = f"http://scorer:{secret}@127.0.0.1:{h.free_port()}/apis/ccompat/v7"
    rng = np.random.default_rng(7011)
    events = _events(ctx, rng, 5, 10)
    encode = (lambda ev: h.encode_confluent(1, h.EVENT_SCHEMA_PATH,
                                            h.record_for_schema(ev, h.EVENT_SCHEMA_PATH)))
    msgs = [{"key": ev["customer_id"].encode(), "value": encode(ev)} for ev in events]
    msgs.insert(3, {"key": b"k4242", "value": _unknown_framed([4242], events[0])[0]})
    h.produce_raw(ctx.input_topic, msgs)
    base = {"input.framing": "confluent", "input.schema.map": f"1={h.EVENT_SCHEMA_PATH}",
            "schema.registry.url": url, "schema.registry.retries": 1,
            "schema.registry.retry.backoff.ms": 10}
    # running: a record of an unknown id, dead-lettered after a retry
    w = ctx.start_worker(ctx.props({**base, "output.schema.id": 4711}))
    dlq = h.TopicReader(ctx.dlq_topic, decode=None)
    try:
        dlq.wait_for(1, 60, worker=w, what="the dead letter")
        w.stop()
    finally:
        dlq.close()
    msg = _headers(dlq.records[0])[CONNECT + "exception.message"]
    assert secret not in msg and "scorer" not in msg, msg
    assert "http://***@127.0.0.1:" in msg, msg
    log = w.log_path.read_text(encoding="utf-8", errors="replace")
    assert "retrying" in log and "***@127.0.0.1" in log, w.describe()
    assert secret not in log, w.describe()
    # at start-up: registering the output schema fails, the worker exits 1
    w2 = ctx.start_worker(ctx.props(base))
    assert w2.proc.wait(60) == 1, w2.describe()
    log2 = w2.log_path.read_text(encoding="utf-8", errors="replace")
    assert "***@127.0.0.1" in log2 and secret not in log2, w2.describe()
    # a URL that is not http(s): refused by check-config without showing the password
    cfg = ctx.config(ctx.props({**base, "schema.registry.url": f"ftp://scorer:{secret}@reg"}))
    r = h.run_cli(["check-config", "-c", str(cfg)])
    assert r.returncode == 2 and "schema.registry.url" in r.stderr, r.stderr
    assert secret not in r.stderr + r.stdout and "ftp://***@reg" in r.stderr, r.stderr
