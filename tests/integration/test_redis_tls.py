"""Redis over TLS with an ACL user (the stack's TLS port, tls_stack): with the CA and the user's
password (from the environment or from redis.password.file, with or without a client
certificate) the worker scores and its features are in Redis. What a retry cannot fix stops it with exit 2 and one plain line that
names the problem and the keys to check, never a secret, under either redis.on.error: a wrong
password, a CA that did not sign the server's certificate, a server name the certificate does
not carry, and a user without write permission (NOPERM)."""

import subprocess
import time

import numpy as np
import pytest
import redis as redis_lib

import harness as h

EXIT_S = 30.0  # how long a worker that must stop is given


def _encode(ev):
    return h.encode_avro(h.EVENT_SCHEMA_PATH, ev)


def _tls_props(ctx, tls, user, overrides=None):
    p = {"redis.port": tls.redis_tls_port, "redis.tls": "true",
         "redis.tls.ca.file": tls.ca_file, "redis.username": user, "worker.threads": 1}
    p.update(overrides or {})
    return ctx.props(p)


def _tls_client(tls):
    """redis-py over TLS, verifying the server with the stack's CA, as the worker's user."""
    return redis_lib.Redis(host="127.0.0.1", port=tls.redis_tls_port, ssl=True,
                           ssl_ca_certs=str(tls.ca_file), username=tls.redis_user,
                           password=tls.redis_password, decode_responses=True,
                           socket_timeout=5)


def _events(ctx, rng, n_customers, n_events):
    ids = [f"tls-{ctx.uid}-{i:02d}" for i in range(n_customers)]
    events = h.random_events(rng, ids, n_events)
    return events, h.produce(ctx.input_topic, events, _encode)


def _scores_and_writes_features(ctx, tls, props, env, seed):
    """The worker scores every event as the reference does, and each customer's merged
    features are in Redis (read over TLS)."""
    rng = np.random.default_rng(seed)
    events, placed = _events(ctx, rng, 12, 40)
    expected, final = h.expected_predictions(events, placed, h.PRIMARY_MODEL)
    records, undecodable = ctx.run_until(props, len(events), env=env)
    assert not undecodable and len(records) == len(events), \
        f"{len(records)} predictions for {len(events)} events"
    first, n_bad = h.score_mismatches(records, expected)
    assert n_bad == 0, f"{n_bad} predictions differ from the reference: {first}"
    client = _tls_client(tls)
    try:
        problems = []
        for cid, feats in final.items():
            # HMGET: the commands the worker's user may run (scripts/dev-stack's ACL)
            got = client.hmget(ctx.redis_key(cid), h.FEATURES)
            stored = {n: v for n, v in zip(h.FEATURES, got) if v is not None}
            if set(stored) != set(feats) or any(np.float32(stored[n]) != v
                                                for n, v in feats.items()):
                problems.append(f"{cid}: stored {stored}, merged {feats}")
        assert not problems, f"{len(problems)} customers' features differ: {problems[:3]}"
    finally:
        client.close()
    return ctx.workers[-1]


def _stops_with_one_line(w, words, secrets):
    """The worker exits 2 within EXIT_S with one plain line on stderr holding every word, and
    no secret anywhere in its output. Returns the line."""
    try:
        rc = w.proc.wait(EXIT_S)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"worker still running {EXIT_S:.0f}s after start" + w.describe())
    text = w.log_path.read_text(encoding="utf-8", errors="replace")
    plain = [line for line in text.splitlines() if not line.startswith("{")]
    assert rc == 2, f"exit {rc}, expected 2" + w.describe()
    assert len(plain) == 1 and plain[0].startswith("streamscore: "), \
        f"expected one plain line, got {plain}" + w.describe()
    for word in words:
        assert word in plain[0], f"{word!r} not in the line: {plain[0]}"
    for s in secrets:
        assert s not in text, "a secret is in the worker's output" + w.describe()
    return plain[0]


def test_an_acl_user_over_tls_scores_and_writes_its_features(ctx, tls_stack):
    start = time.monotonic()
    w = _scores_and_writes_features(
        ctx, tls_stack, _tls_props(ctx, tls_stack, tls_stack.redis_user),
        {"STREAMSCORE_REDIS_PASSWORD": tls_stack.redis_password}, 1501)
    log = w.log_path.read_text(encoding="utf-8", errors="replace")
    assert tls_stack.redis_password not in log, "the password is in the worker's log"
    print(f"scored over TLS in {time.monotonic() - start:.1f}s")


def test_the_password_from_a_file_a_server_name_and_a_client_certificate_also_work(ctx,
                                                                                    tls_stack):
    """... with exactly-once delivery: the checkpoint hash and MULTI/EXEC are among what the
    user may run (the stack's ACL for it is the one docs/connecting.md gives)."""
    secret = ctx.tmp / "redis-password"
    secret.write_text(tls_stack.redis_password + "\n", encoding="utf-8")  # as a Secret volume
    props = _tls_props(ctx, tls_stack, tls_stack.redis_user,
                       {"redis.password.file": secret, "redis.tls.server.name": "localhost",
                        "delivery": "exactly-once",
                        "redis.tls.cert.file": tls_stack.client_cert,
                        "redis.tls.key.file": tls_stack.client_key})
    w = _scores_and_writes_features(ctx, tls_stack, props, None, 1502)
    log = w.log_path.read_text(encoding="utf-8", errors="replace")
    assert tls_stack.redis_password not in log, "the password is in the worker's log"


@pytest.mark.parametrize("policy", ["block", "degrade"])
def test_a_wrong_password_exits_2_naming_authentication_and_the_user(ctx, tls_stack, policy):
    wrong = f"wrong-{ctx.uid}"
    w = ctx.start_worker(_tls_props(ctx, tls_stack, tls_stack.redis_user,
                                    {"redis.on.error": policy}),
                         env={"STREAMSCORE_REDIS_PASSWORD": wrong})
    _stops_with_one_line(w, ["redis: authentication as user 'streamscore' failed",
                             "redis.username", "redis.password", "WRONGPASS"],
                         [wrong, tls_stack.redis_password])


def _other_ca(tmp):
    """A CA of its own, which signed nothing the stack's Redis presents."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=another CA", "-days", "1",
                    "-keyout", str(tmp / "other-ca.key"), "-out", str(tmp / "other-ca.crt")],
                   check=True, capture_output=True)
    return tmp / "other-ca.crt"


@pytest.mark.parametrize("policy", ["block", "degrade"])
def test_a_ca_that_did_not_sign_the_server_certificate_exits_2(ctx, tls_stack, policy):
    props = _tls_props(ctx, tls_stack, tls_stack.redis_user,
                       {"redis.tls.ca.file": _other_ca(ctx.tmp), "redis.on.error": policy})
    w = ctx.start_worker(props, env={"STREAMSCORE_REDIS_PASSWORD": tls_stack.redis_password})
    line = _stops_with_one_line(w, [f"redis 127.0.0.1:{tls_stack.redis_tls_port}: TLS:",
                                    "certificate", "redis.tls.ca.file"],
                                [tls_stack.redis_password])
    assert "verify failed" in line, line


def test_a_server_name_the_certificate_does_not_carry_exits_2(ctx, tls_stack):
    props = _tls_props(ctx, tls_stack, tls_stack.redis_user,
                       {"redis.tls.server.name": "other.example"})
    w = ctx.start_worker(props, env={"STREAMSCORE_REDIS_PASSWORD": tls_stack.redis_password})
    line = _stops_with_one_line(w, ["TLS:", "certificate", "redis.tls.server.name"],
                                [tls_stack.redis_password])
    assert "hostname mismatch" in line, line


@pytest.mark.parametrize("policy,delivery", [("block", "at-least-once"),
                                             ("degrade", "at-least-once"),
                                             ("block", "exactly-once")])
def test_a_user_without_write_permission_exits_2_naming_noperm_and_the_user(ctx, tls_stack,
                                                                            policy, delivery):
    """At-least-once: the events are read (HMGET is allowed), scored, and their features
    written back: refused. Exactly-once: the changelog's checkpoints, written when the
    partitions are assigned, are refused first."""
    rng = np.random.default_rng(1503)
    _events(ctx, rng, 6, 12)
    props = _tls_props(ctx, tls_stack, tls_stack.reader_user,
                       {"redis.on.error": policy, "delivery": delivery,
                        "state.flush.interval.ms": 0})
    w = ctx.start_worker(props, env={"STREAMSCORE_REDIS_PASSWORD": tls_stack.reader_password})
    _stops_with_one_line(w, ["redis: user 'reader' lacks a permission: NOPERM"],
                         [tls_stack.reader_password])
