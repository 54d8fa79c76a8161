"""Kafka over SASL_SSL, as managed services ask for it: SCRAM-SHA-512 over TLS with a private
CA (the stack's listener, scripts/dev-stack TLS=1). The worker scores through it; a wrong
password or a CA that did not sign the broker's certificate stops it (and `compare`) at once,
with exit code 2 and one plain line that names the problem and the keys to check, and never a
secret."""

import subprocess
import time
import uuid

import numpy as np
import pytest

import harness as h

# The worker's wait for one connection (librdkafka's socket.connection.setup.timeout.ms): a
# refused login or certificate is known within it, and the worker must have exited a few
# seconds later (start-up, and a stop with nothing to flush).
CONNECT_TIMEOUT_MS = 3000
EXIT_WITHIN_S = CONNECT_TIMEOUT_MS / 1000 + 10


def _sasl_props(ctx, tls, ca_file=None):
    return ctx.props({"kafka.bootstrap.servers": f"127.0.0.1:{tls.kafka_sasl_port}",
                      "kafka.security.protocol": "SASL_SSL",
                      "kafka.sasl.mechanisms": "SCRAM-SHA-512",
                      "kafka.sasl.username": tls.kafka_user,
                      "kafka.ssl.ca.location": ca_file or tls.ca_file,
                      "kafka.socket.connection.setup.timeout.ms": CONNECT_TIMEOUT_MS})


def _password_env(password):
    return {"STREAMSCORE_KAFKA_SASL_PASSWORD": password}


def _produce_events(ctx, n, seed):
    """n events through the plain listener (the test's own client); the expected predictions."""
    rng = np.random.default_rng(seed)
    customers = [f"sasl-{ctx.uid}-{i:03d}" for i in range(12)]
    events = h.random_events(rng, customers, n)
    placed = h.produce(ctx.input_topic, events,
                       lambda ev: h.encode_avro(h.EVENT_SCHEMA_PATH, ev))
    expected, _ = h.expected_predictions(events, placed, h.PRIMARY_MODEL)
    return expected


def _stopped_with_one_line(worker, prefix):
    """Waits (EXIT_WITHIN_S) for the worker to exit 2 with one plain line, which starts with
    prefix; returns that line."""
    deadline = time.monotonic() + EXIT_WITHIN_S
    while worker.alive():
        if time.monotonic() > deadline:
            worker.kill()
            raise AssertionError(f"worker still running {EXIT_WITHIN_S:.0f}s after its start "
                                 "(it should have stopped on the refused connection)"
                                 + worker.describe())
        time.sleep(0.1)
    worker.kill()  # closes its log
    rc = worker.proc.returncode
    assert rc == 2, f"exit code {rc}, expected 2" + worker.describe()
    plain = _plain_lines(worker)
    assert len(plain) == 1, f"expected one plain line, got {plain!r}" + worker.describe()
    assert plain[0].startswith(prefix), f"{plain[0]!r} does not start with {prefix!r}"
    return plain[0]


def _plain_lines(worker):
    """The lines of the worker's output that are not JSON log lines."""
    text = worker.log_path.read_text(encoding="utf-8", errors="replace")
    return [line for line in text.splitlines() if line and not line.startswith("{")]


def _assert_no_secret(worker, *secrets):
    text = worker.log_path.read_text(encoding="utf-8", errors="replace")
    for s in secrets:
        assert s not in text, "a password appears in the worker's output" + worker.describe()


def test_the_worker_scores_through_the_sasl_ssl_listener(ctx, tls_stack):
    expected = _produce_events(ctx, 40, seed=1501)

    records, undecodable = ctx.run_until(_sasl_props(ctx, tls_stack), len(expected),
                                         env=_password_env(tls_stack.kafka_password))

    assert not undecodable, f"undecodable predictions: {undecodable[:3]}"
    assert len(records) == len(expected), f"{len(records)} predictions for {len(expected)} events"
    first, n_bad = h.score_mismatches(records, expected)
    assert n_bad == 0, f"{n_bad} of {len(records)} predictions differ from the reference: {first}"
    w = ctx.workers[0]
    _assert_no_secret(w, tls_stack.kafka_password)
    assert not _plain_lines(w), f"unexpected plain output: {_plain_lines(w)}"


# Where the worker first meets Kafka: at-least-once, its consumer and producer once started;
# exactly-once with owned state, the changelog's metadata at start-up; with shared state, the
# transactional producer's initialization.
DELIVERIES = {
    "at-least-once": {},
    "exactly-once": {"delivery": "exactly-once"},
    "exactly-once-shared-state": {"delivery": "exactly-once", "state.mode": "shared"},
}


@pytest.mark.parametrize("delivery", list(DELIVERIES))
def test_a_wrong_sasl_password_stops_the_worker_with_exit_2_and_one_line(ctx, tls_stack,
                                                                          delivery):
    wrong = f"wrong-{uuid.uuid4().hex}"
    props = _sasl_props(ctx, tls_stack)
    props.update(DELIVERIES[delivery])
    w = ctx.start_worker(props, env=_password_env(wrong))

    _stopped_with_one_line(w, "streamscore: kafka: SASL authentication failed (check "
                              "kafka.sasl.username, kafka.sasl.password): ")
    _assert_no_secret(w, wrong, tls_stack.kafka_password)


def test_an_untrusted_ca_stops_the_worker_with_exit_2_naming_the_tls_handshake(ctx, tls_stack):
    other_ca = ctx.tmp / "other-ca.crt"
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=not the stack's CA", "-keyout", str(ctx.tmp / "other-ca.key"),
                        "-out", str(other_ca)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"openssl failed: {r.stderr}"
    w = ctx.start_worker(_sasl_props(ctx, tls_stack, ca_file=other_ca),
                         env=_password_env(tls_stack.kafka_password))

    line = _stopped_with_one_line(w, "streamscore: kafka: TLS handshake failed (check "
                                     "kafka.ssl.ca.location): ")
    assert "certificate verify failed" in line, line
    _assert_no_secret(w, tls_stack.kafka_password)


def test_compare_refused_by_the_broker_exits_2_with_one_line_before_its_timeout(ctx, tls_stack):
    """`streamscore compare` meets the same refusal: it stops at once, exit 2 and one plain line,
    instead of waiting out compare.timeout.ms and calling the broker unreachable."""
    wrong = f"wrong-{uuid.uuid4().hex}"
    props = _sasl_props(ctx, tls_stack)
    cfg = h.compare_config(ctx.tmp / "compare.properties", ctx.output_topic, ctx.shadow_topic,
                           ctx.tmp / "compare-out",
                           extra={**{k: v for k, v in props.items() if k.startswith("kafka.")},
                                  "compare.timeout.ms": 120000})
    t0 = time.monotonic()
    r = h.run_cli(["compare", "-c", str(cfg)], env=_password_env(wrong), timeout=150)
    took = time.monotonic() - t0

    assert r.returncode == 2, f"exit {r.returncode}, expected 2; stderr: {r.stderr[-2000:]}"
    assert took < EXIT_WITHIN_S, f"compare took {took:.1f}s to give up (compare.timeout.ms 120 s)"
    plain = [line for line in r.stderr.splitlines() if line and not line.startswith("{")]
    assert len(plain) == 1, f"expected one plain line, got {plain!r}"
    assert plain[0].startswith("streamscore compare: kafka: SASL authentication failed (check "
                               "kafka.sasl.username, kafka.sasl.password): "), plain[0]
    assert wrong not in r.stderr and tls_stack.kafka_password not in r.stderr


def test_the_rollout_command_refused_by_the_broker_exits_2_with_one_line(ctx, tls_stack):
    """`streamscore rollout` meets the same refusal: exit 2 and one plain line, at once, with
    nothing written."""
    wrong = f"wrong-{uuid.uuid4().hex}"
    props = _sasl_props(ctx, tls_stack)
    cfg = ctx.tmp / "rollout.properties"
    h.write_properties(cfg, {**{k: v for k, v in props.items() if k.startswith("kafka.")},
                             "rollout.topic": f"it-rollout-{ctx.uid}"})
    t0 = time.monotonic()
    r = h.run_cli(["rollout", "status", "-c", str(cfg)], env=_password_env(wrong), timeout=150)
    took = time.monotonic() - t0

    assert r.returncode == 2, f"exit {r.returncode}, expected 2; stderr: {r.stderr[-2000:]}"
    assert took < EXIT_WITHIN_S, f"rollout took {took:.1f}s to give up"
    plain = [line for line in r.stderr.splitlines() if line and not line.startswith("{")]
    assert len(plain) == 1, f"expected one plain line, got {plain!r}"
    assert plain[0].startswith("streamscore rollout: kafka: SASL authentication failed (check "
                               "kafka.sasl.username, kafka.sasl.password): "), plain[0]
    assert wrong not in r.stderr and tls_stack.kafka_password not in r.stderr
