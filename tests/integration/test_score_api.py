"""The on-demand score API (score.listen, worker/daemon/score_api.c): GET
/v1/customers/{id}/score answers with the customer's features as Redis holds them (the stream's
merge, as the worker last flushed it), the live model's score of them, the same feature_hash,
decision and threshold as the customer's last prediction, and with ?explain=k XGBoost's top-k
SHAP values. Errors have their status (404 unknown customer or path, 400 malformed id or
explain, 500 a key that is not a hash, 503 Redis unreachable, 405 a method other than GET or
HEAD, 413 a body: every one a JSON error) and every status is counted on /metrics.
A bearer token (a secret: from the environment or score.token.file) and client certificates
(HTTPS with a client CA: the stack's TLS material) keep out who lacks them. Off by default; a
score.listen that is metrics.listen, or client certificates without HTTPS, are configuration
errors."""

import http.client
import json
import os
import random
import socket
import ssl
import subprocess
import time
import urllib.parse

import numpy as np
import pytest

import harness as h
import objectives_lib as ol

PREFIX = "/v1/customers/"
MAX_ID = 256  # SS_SCORE_MAX_ID (worker/daemon/score_api.h)
MAX_EXPLAIN = 64  # SS_SCORE_MAX_EXPLAIN
TOP_K = 3
CODES = (200, 400, 401, 403, 404, 405, 413, 500, 503)  # streamscore_score_requests_total{code}
# The listeners the tests give the worker (score.listen, metrics.listen).
PORTS = range(23300, 23400)
_given = set()


def _encode(ev):
    return h.encode_avro(h.EVENT_SCHEMA_PATH, ev)


def _port():
    """A free loopback port of PORTS not given before in this session, none of the stack's."""
    candidates = [p for p in PORTS if p not in _given and p not in h.STACK_PORTS]
    random.shuffle(candidates)
    for port in candidates:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given.add(port)
        return port
    raise AssertionError(f"no free loopback port in {PORTS.start}..{PORTS.stop - 1}")


def _path(customer_id, explain=None):
    q = "" if explain is None else f"?explain={explain}"
    return f"{PREFIX}{urllib.parse.quote(customer_id, safe='')}/score{q}"


def _request(port, path, method="GET", headers=None, body=None, tls=None, timeout=5.0):
    """(status, {header (lower case): value}, body text) of one request; tls: an SSLContext
    (HTTPS to 127.0.0.1)."""
    if tls is not None:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=tls)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode("utf-8")
    finally:
        conn.close()


def _json(status, headers, text):
    """The JSON document of an answer of the score handler."""
    assert headers.get("content-type") == "application/json", (status, headers, text)
    try:
        return json.loads(text)
    except ValueError:
        raise AssertionError(f"{status}: not JSON: {text!r}")


def _error(status, headers, text):
    doc = _json(status, headers, text)
    assert set(doc) == {"error"} and isinstance(doc["error"], str) and doc["error"], \
        f"{status}: not an error document: {text!r}"
    return doc["error"]


def _wait_listening(port, worker, timeout=30.0):
    """Until the port accepts connections (no request made: none is counted)."""
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        assert worker.alive(), f"worker exited before listening on {port}" + worker.describe()
        assert time.monotonic() < deadline, f"nothing listens on {port} after {timeout:.0f}s" \
            + worker.describe()
        time.sleep(0.1)


def _start(ctx, overrides=None, env=None):
    """A worker with the score API and /metrics on ports of their own, both answering:
    (worker, score port, metrics port)."""
    sport, mport = _port(), _port()
    w = ctx.start_worker(ctx.props({"score.listen": f"127.0.0.1:{sport}",
                                    "metrics.listen": f"127.0.0.1:{mport}",
                                    **(overrides or {})}), env=env)
    _wait_listening(sport, w)
    _wait_listening(mport, w)
    return w, sport, mport


def _score_counts(port, want, worker):
    """/metrics once streamscore_score_requests_total shows `want` ({code: n}, the others 0):
    the samples."""
    def reached(s):
        return all(h.metric(s, "streamscore_score_requests_total", code=c) == want.get(c, 0)
                   for c in CODES)
    return h.wait_metrics(port, reached, timeout=10, worker=worker,
                          what=f"streamscore_score_requests_total {want}")


def _listening_ports(pid):
    """The TCP ports process `pid` listens on (its sockets in /proc/net/tcp*)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table, encoding="ascii").read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # LISTEN
                ports.add(int(f[1].rsplit(":", 1)[1], 16))
    return ports


def _seeded(ctx, suffix="known"):
    """A customer whose hash is in Redis (as the worker writes it): (id, its vector)."""
    cid = f"{suffix}-{ctx.uid}"
    feats = ctx.seed(cid, {"tenure_months": 7, "monthly_charges": 99.5, "contract_type": "TWO_YEAR",
                           "support_calls_30d": 4, "has_autopay": False})
    return cid, [feats.get(n, np.float32(np.nan)) for n in h.FEATURES]


def _check_score(doc, cid, vector):
    """doc is the answer for `cid` scored on `vector` by the live model."""
    ref = float(h.reference_scores(h.PRIMARY_MODEL, [vector])[0])
    assert doc["customer_id"] == cid, doc
    assert abs(doc["score"] - ref) <= h.SCORE_TOL, (doc["score"], ref)
    assert doc["feature_hash"] == h.feature_hash(vector), doc


def _wait_redis(ctx, final, worker, timeout=20.0):
    """Until every customer's Redis hash holds exactly its merged features (the flush)."""
    deadline = time.monotonic() + timeout
    while True:
        differ = []
        for cid, feats in final.items():
            stored = ctx.redis.hgetall(ctx.redis_key(cid))
            got = {n: np.float32(v) for n, v in stored.items()}
            if set(got) != set(feats) or any(got[n] != v for n, v in feats.items()):
                differ.append(f"{cid}: Redis {stored}, merged {feats}")
        if not differ:
            return
        assert worker.alive(), "worker exited before flushing" + worker.describe()
        assert time.monotonic() < deadline, \
            f"{len(differ)} customers' hashes not flushed after {timeout:.0f}s: {differ[:3]}"
        time.sleep(0.1)


# --------------------------------------------------------------------------- scores


def test_a_customer_is_scored_on_its_merged_features_as_its_last_prediction_was(ctx):
    rng = np.random.default_rng(1901)
    # one id to percent-encode: a space and non-ASCII bytes
    customers = [f"score-{ctx.uid}-{i:02d}" for i in range(11)] + [f"score ü-{ctx.uid}"]
    events = h.random_events(rng, customers, 150)
    placed = h.produce(ctx.input_topic, events, _encode)
    expected, final = h.expected_predictions(events, placed, h.PRIMARY_MODEL)
    assert set(final) == set(customers), "test data: a customer without events"
    vectors = {cid: [final[cid].get(n, np.float32(np.nan)) for n in h.FEATURES]
               for cid in customers}
    refs = dict(zip(customers, h.reference_scores(h.PRIMARY_MODEL,
                                                  [vectors[c] for c in customers])))
    # a threshold between the final scores: both decisions answered
    ordered = sorted(refs.values())
    threshold = round(float(ordered[len(ordered) // 2 - 1] + ordered[len(ordered) // 2]) / 2, 6)
    assert ordered[0] < threshold < ordered[-1] and threshold not in ordered, ordered
    card = h.model_card(h.PRIMARY_MODEL)

    w, port, mport = _start(ctx, {"model.threshold": threshold, "state.flush.interval.ms": 50})
    reader = h.TopicReader(ctx.output_topic)
    try:
        reader.wait_for(len(events), 60, worker=w, what="predictions")
        reader.drain()
    finally:
        reader.close()
    records = reader.records
    assert not reader.undecodable and len(records) == len(events), \
        f"{len(records)} predictions for {len(events)} events"
    first, n_bad = h.score_mismatches(records, expected)
    assert n_bad == 0, f"{n_bad} predictions differ from the reference: {first}"
    last = {}  # a customer's events are in one partition: its last is the highest offset
    for r in sorted(records, key=lambda r: r["source_offset"]):
        last[r["customer_id"]] = r
    _wait_redis(ctx, final, w)

    bst = h.booster(h.PRIMARY_MODEL)
    contribs = dict(zip(customers, ol.contributions_reference(
        bst, np.array([vectors[c] for c in customers], dtype=np.float32))))
    problems = []
    for cid in customers:
        vector, p = vectors[cid], last[cid]
        status, headers, text = _request(port, _path(cid))
        if status != 200:
            problems.append(f"{cid}: {status} {text}")
            continue
        doc = _json(status, headers, text)
        bad = []
        feats = doc.get("features", {})
        if set(feats) != set(h.FEATURES):
            bad.append(f"features named {sorted(feats)}")
        else:
            for n, v in zip(h.FEATURES, vector):
                got = feats[n]
                if (got is None) != bool(np.isnan(v)) or \
                        (got is not None and np.float32(got) != v):
                    bad.append(f"{n} {got!r} != merged {float(v)!r}")
        for field, want in (("customer_id", cid), ("route", "live"), ("features_from", "redis"),
                            ("model", {"name": card["name"], "version": card["version"]}),
                            ("feature_hash", p["feature_hash"]), ("decision", p["decision"]),
                            ("threshold", p["threshold"])):
            if doc.get(field) != want:
                bad.append(f"{field} {doc.get(field)!r} != {want!r}")
        if doc.get("feature_hash") != h.feature_hash(vector):
            bad.append(f"feature_hash {doc.get('feature_hash')} != the merge's "
                       f"{h.feature_hash(vector)}")
        if p["threshold"] != threshold or p["decision"] != (p["score"] >= threshold):
            bad.append(f"last prediction: threshold {p['threshold']}, decision {p['decision']}")
        score = doc.get("score")
        if not isinstance(score, float) or abs(score - p["score"]) > h.SCORE_TOL \
                or abs(score - float(refs[cid])) > h.SCORE_TOL:
            bad.append(f"score {score!r}: last prediction {p['score']!r}, XGBoost "
                       f"{float(refs[cid])!r}")
        if "contributions" in doc or "contributions_bias" in doc:
            bad.append("contributions without explain")
        # explained: XGBoost's top-3 SHAP values, the same score
        status, headers, text = _request(port, _path(cid, TOP_K))
        if status != 200:
            bad.append(f"explain={TOP_K}: {status} {text}")
        else:
            ex = _json(status, headers, text)
            c, bias, output = contribs[cid]
            bad += [f"explain={TOP_K}: {b}" for b in
                    ol.contribution_problems(ex, c, bias, output, vector, TOP_K, h.FEATURES)]
            if ex.get("score") != score or ex.get("feature_hash") != doc.get("feature_hash"):
                bad.append(f"explain={TOP_K}: score {ex.get('score')!r} / feature_hash "
                           f"{ex.get('feature_hash')} differ from the unexplained answer")
        if bad:
            problems.append(f"{cid} (vector {[float(v) for v in vector]}): {'; '.join(bad)}")
    assert not problems, f"{len(problems)} of {len(customers)} customers answered wrong: " \
                         f"{problems[:4]}"
    decisions = {last[c]["decision"] for c in customers}
    assert decisions == {True, False}, f"test data: decisions {decisions}"

    status, headers, text = _request(port, _path(customers[0], 0))
    assert status == 200 and "contributions" not in _json(status, headers, text), text
    s = _score_counts(mport, {200: 2 * len(customers) + 1}, w)
    assert h.metric(s, "streamscore_score_request_seconds_count") == 2 * len(customers) + 1
    w.stop()


# --------------------------------------------------------------------------- errors


def test_errors_answer_with_their_status_and_every_status_is_counted(ctx):
    cid, vector = _seeded(ctx)
    ctx.redis.set(ctx.redis_key(f"string-{ctx.uid}"), "not a hash")
    ctx.redis.hset(ctx.redis_key(f"other-{ctx.uid}"), mapping={"not_a_feature": "1"})
    w, port, mport = _start(ctx)
    known = _path(cid)
    # (method, path, body, status)
    cases = [
        ("GET", known, None, 200),
        ("HEAD", known, None, 200),
        ("GET", _path(f"nobody-{ctx.uid}"), None, 404),
        ("GET", _path("a" * MAX_ID), None, 404),  # the longest id: valid, unknown
        ("GET", _path(f"other-{ctx.uid}"), None, 404),  # a hash without features
        ("GET", _path(f"string-{ctx.uid}"), None, 500),  # a key that is not a hash
        ("GET", _path("a" * (MAX_ID + 1)), None, 400),
        ("GET", f"{PREFIX}ab%01cd/score", None, 400),
        ("GET", f"{PREFIX}%01/score", None, 400),
        ("GET", f"{PREFIX}ab%7Fcd/score", None, 400),
        ("GET", f"{PREFIX}/score", None, 400),  # an empty id
        ("GET", _path(cid, "abc"), None, 400),
        ("GET", _path(cid, ""), None, 400),
        ("GET", _path(cid, "-1"), None, 400),
        ("GET", _path(cid, MAX_EXPLAIN + 1), None, 400),
        ("GET", _path(cid, MAX_EXPLAIN), None, 200),
        ("GET", f"{PREFIX}{cid}", None, 404),
        ("GET", f"{PREFIX}{cid}/scores", None, 404),
        ("GET", "/metrics", None, 404),
        ("GET", "/", None, 404),
        ("POST", known, b"{}", 405),
        ("PUT", known, None, 405),
        ("DELETE", known, None, 405),
        ("GET", known, b"x" * 10, 413),
    ]
    wrong = []
    want = {}
    for method, path, body, expect in cases:
        status, headers, text = _request(port, path, method, body=body)
        want[status] = want.get(status, 0) + 1
        where = f"{method} {path[:60]}{'...' if len(path) > 60 else ''}"
        if status != expect:
            wrong.append(f"{where}: {status}, expected {expect}: {text[:200]!r}")
        elif status in (400, 404, 405, 413, 500):
            try:
                _error(status, headers, text)
            except AssertionError as e:
                wrong.append(f"{where}: {e}")
            if status == 405 and "GET" not in headers.get("allow", ""):
                wrong.append(f"{where}: 405 without Allow: GET ({headers})")
        elif status == 200 and method == "GET":
            doc = _json(status, headers, text)
            try:
                _check_score(doc, cid, vector)
            except AssertionError as e:
                wrong.append(f"{where}: {e}")
            if "explain" in path and len(doc.get("contributions") or []) != len(h.FEATURES):
                wrong.append(f"{where}: {len(doc.get('contributions') or [])} contributions, "
                             f"expected every feature ({len(h.FEATURES)})")
    assert not wrong, f"{len(wrong)} of {len(cases)} answers wrong:\n" + "\n".join(wrong)
    # the messages say what is wrong
    assert "unknown customer" in _error(*_request(port, _path(f"nobody-{ctx.uid}")))
    assert "256" in _error(*_request(port, _path("a" * (MAX_ID + 1))))
    assert "explain" in _error(*_request(port, _path(cid, "abc")))
    want[404] += 1
    want[400] += 2

    s = _score_counts(mport, want, w)
    assert h.metric(s, "streamscore_score_request_seconds_count") == sum(want.values())
    buckets = sorted(((float(dict(k[1])["le"]), v) for k, v in s.items()
                      if k[0] == "streamscore_score_request_seconds_bucket"), key=lambda b: b[0])
    assert buckets and buckets[-1][1] == sum(want.values()), buckets
    # /healthz on its own listener, untouched
    assert h.http_get(mport, "/healthz") == (200, "ok\n")
    w.stop()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the score API answers after exit"


def test_redis_unreachable_answers_503_and_the_next_request_after_it_returns_is_scored(
        ctx, redis_outage):
    cid, vector = _seeded(ctx)
    w, port, mport = _start(ctx)
    assert _request(port, _path(cid))[0] == 200
    redis_outage.stop()
    status, headers, text = _request(port, _path(cid))
    assert status == 503 and "redis" in _error(status, headers, text), (status, text)
    redis_outage.start()  # empty: Redis keeps nothing on disk
    _, vector = _seeded(ctx)
    status, headers, text = _request(port, _path(cid))
    assert status == 200, (status, text)
    _check_score(_json(status, headers, text), cid, vector)
    assert w.alive(), w.describe()
    _score_counts(mport, {200: 2, 503: 1}, w)
    w.stop()


# --------------------------------------------------------------------------- authentication


@pytest.mark.parametrize("source", ["environment", "file"])
def test_a_bearer_token_is_required_and_never_logged(ctx, source):
    """score.token from STREAMSCORE_SCORE_TOKEN, or from score.token.file (one trailing newline
    stripped, as a Kubernetes Secret's file may hold it)."""
    token = f"score-token-{ctx.uid}-Zq81"
    cid, vector = _seeded(ctx)
    if source == "environment":
        overrides, env = {}, {"STREAMSCORE_SCORE_TOKEN": token}
    else:
        secret = ctx.tmp / "score-token"
        secret.write_text(token + "\n", encoding="utf-8")
        overrides, env = {"score.token.file": secret}, None
    w, port, mport = _start(ctx, {"log.level": "debug", **overrides}, env=env)
    want = {}

    def ask(headers, path=None):
        status, hdrs, text = _request(port, path or _path(cid), headers=headers)
        want[status] = want.get(status, 0) + 1
        return status, hdrs, text

    refused = [({}, None), ({"Authorization": "Bearer wrong"}, None),
               ({"Authorization": f"Bearer {token}x"}, None),
               ({"Authorization": f"Bearer {token[:-1]}"}, None),
               ({"Authorization": token}, None),  # no scheme
               ({"Authorization": f"Basic {token}"}, None),
               ({"Authorization": "Bearer "}, None),
               ({}, "/elsewhere"),  # authentication first: no path is disclosed
               ({}, _path(f"nobody-{ctx.uid}"))]
    for headers, path in refused:
        status, hdrs, text = ask(headers, path)
        assert status == 401, (headers, path, status, text)
        assert hdrs.get("www-authenticate", "").startswith("Bearer"), (headers, hdrs)
        assert "token" in _error(status, hdrs, text)
        assert token not in text
    status, hdrs, text = ask({"Authorization": f"Bearer {token}"})
    assert status == 200, (status, text)
    assert "www-authenticate" not in hdrs, hdrs
    _check_score(_json(status, hdrs, text), cid, vector)
    status, _, text = ask({"Authorization": f"Bearer {token}"}, _path(f"nobody-{ctx.uid}"))
    assert status == 404, (status, text)

    assert want == {401: len(refused), 200: 1, 404: 1}, want
    s = _score_counts(mport, want, w)
    _, metrics_text = h.http_get(mport, "/metrics")
    assert token not in metrics_text
    w.stop()
    log = w.log_path.read_text(encoding="utf-8", errors="replace")
    assert "score api" in log, "no score api line in the log" + w.describe()
    assert token not in log, "the token is in the worker's log" + w.describe()
    lines = [r for r in w.log_lines() if "score api" in r.get("msg", "")]
    assert lines and lines[0].get("token") == 1, lines


def _other_client(tmp):
    """A client certificate (and key) of another CA, which score.tls.client.ca.file did not
    sign."""
    cert, key = tmp / "other-client.crt", tmp / "other-client.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=another client",
                    "-days", "1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def _refused(port, tls, path):
    """The status answered over HTTPS with `tls`, or the TLS handshake's error."""
    try:
        status, headers, text = _request(port, path, tls=tls)
    except (ssl.SSLError, ConnectionError, http.client.HTTPException, OSError) as e:
        return repr(e)
    if status == 401:
        _error(status, headers, text)
    return status


def test_https_with_a_client_ca_answers_only_clients_with_a_certificate_it_signed(ctx,
                                                                                   tls_stack):
    cid, vector = _seeded(ctx)
    w, port, mport = _start(ctx, {"score.tls.cert.file": tls_stack.dir / "server.crt",
                                  "score.tls.key.file": tls_stack.dir / "server.key",
                                  "score.tls.client.ca.file": tls_stack.ca_file})
    signed = ssl.create_default_context(cafile=str(tls_stack.ca_file))
    signed.load_cert_chain(str(tls_stack.client_cert), str(tls_stack.client_key))
    status, headers, text = _request(port, _path(cid), tls=signed)
    assert status == 200, (status, text)
    _check_score(_json(status, headers, text), cid, vector)
    status, headers, text = _request(port, _path(f"nobody-{ctx.uid}"), tls=signed)
    assert status == 404, (status, text)

    none = ssl.create_default_context(cafile=str(tls_stack.ca_file))
    other = ssl.create_default_context(cafile=str(tls_stack.ca_file))
    other.load_cert_chain(*[str(p) for p in _other_client(ctx.tmp)])
    for name, tls in (("no client certificate", none), ("another CA's certificate", other)):
        for path in (_path(cid), "/elsewhere"):
            got = _refused(port, tls, path)
            assert got == 401 or isinstance(got, str), f"{name}, {path}: {got}"
    # plain HTTP to the HTTPS listener: no answer of the handler
    try:
        status = _request(port, _path(cid))[0]
    except (ConnectionError, http.client.HTTPException, OSError) as e:
        status = repr(e)
    assert status != 200, "plain HTTP answered on the HTTPS listener"
    assert h.http_get(mport, "/healthz") == (200, "ok\n")  # metrics.listen stays plain HTTP
    w.stop()
    lines = [r for r in w.log_lines() if "score api" in r.get("msg", "")]
    assert lines and lines[0]["msg"].startswith(f"score api: https://127.0.0.1:{port}/"), lines
    assert lines[0].get("tls") == 1 and lines[0].get("client_certificates") == 1, lines


# --------------------------------------------------------------------------- off, config


def test_the_score_api_is_off_by_default(ctx):
    cid, _ = _seeded(ctx)
    mport, unused = _port(), _port()
    w = ctx.start_worker(ctx.props({"metrics.listen": f"127.0.0.1:{mport}"}))
    deadline = time.monotonic() + 30
    while h.http_get(mport, "/healthz")[0] != 200 or \
            not any(r.get("msg") == "worker started" for r in w.log_lines()):
        assert w.alive(), "worker exited" + w.describe()
        assert time.monotonic() < deadline, "worker not started after 30s" + w.describe()
        time.sleep(0.2)
    assert _listening_ports(w.proc.pid) == {mport}, \
        f"the worker listens on {_listening_ports(w.proc.pid)}, expected metrics.listen only"
    with socket.socket() as s:
        s.settimeout(2)
        assert s.connect_ex(("127.0.0.1", unused)) != 0
    s = h.scrape(mport)
    assert all(h.metric(s, "streamscore_score_requests_total", code=c) == 0 for c in CODES), \
        [x for x in s.items() if x[0][0] == "streamscore_score_requests_total"]
    assert h.http_get(mport, _path(cid))[0] == 404  # /metrics's listener does not answer scores
    w.stop()
    assert not any("score api" in r.get("msg", "") for r in w.log_lines()), w.describe()


def _config_error(tmp_path, props, env=None):
    """Run a worker with `props` over the base config: exit 2 with one plain line, returned."""
    base = {"input.topic": "it-score-cfg-events", "output.topic": "it-score-cfg-predictions",
            "input.schema": h.EVENT_SCHEMA_PATH, "output.schema": h.PREDICTION_SCHEMA_PATH,
            "model.path": h.PRIMARY_MODEL, "kafka.bootstrap.servers": h.BOOTSTRAP,
            "redis.port": h.REDIS_PORT}
    path = h.write_properties(tmp_path / f"worker-{len(list(tmp_path.iterdir()))}.properties",
                              {**base, **props})
    r = h.run_cli(["run", "-c", str(path)], env=env)
    plain = h.plain_lines(r.stderr)
    assert r.returncode == 2, (props, r.returncode, r.stderr[-800:])
    assert len(plain) == 1 and plain[0].startswith("streamscore: "), (props, plain)
    return plain[0], r.stdout + r.stderr


@pytest.mark.parametrize("case", ["same_as_metrics", "client_ca_without_cert",
                                  "cert_without_key", "not_host_port", "token_in_file",
                                  "shadow"])
def test_score_config_errors_exit_2_with_one_line_naming_the_key(case, tmp_path):
    port = _port()
    listen = f"127.0.0.1:{port}"
    secret = f"score-token-{port}-Qx"
    props, words = {
        "same_as_metrics": ({"score.listen": listen, "metrics.listen": listen},
                            ["score.listen", "metrics.listen", listen]),
        "client_ca_without_cert": ({"score.listen": listen,
                                    "score.tls.client.ca.file": h.EVENT_SCHEMA_PATH},
                                   ["score.tls.client.ca.file", "score.tls.cert.file"]),
        "cert_without_key": ({"score.listen": listen,
                              "score.tls.cert.file": h.EVENT_SCHEMA_PATH},
                             ["score.tls.cert.file", "score.tls.key.file"]),
        "not_host_port": ({"score.listen": str(port)}, ["score.listen"]),
        "token_in_file": ({"score.listen": listen, "score.token": secret},
                          ["score.token", "STREAMSCORE_SCORE_TOKEN", "score.token.file"]),
        "shadow": ({"score.listen": listen, "mode": "shadow", "shadow.topic": "it-score-cfg-s",
                    "model.path": h.CANDIDATE_MODEL}, ["score.listen", "shadow"]),
    }[case]
    line, output = _config_error(tmp_path, props)
    for word in words:
        assert word in line, f"{word!r} not in {line!r}"
    assert secret not in output, "the token is in the output"
