"""SIGTERM while the worker waits on something that does not answer: it stops within
shutdown.timeout.ms (plus its own start-up and leave), exits 0, commits nothing it has not
delivered, and the next run scores every event once it can."""

import signal
import time

import numpy as np

import harness as h

SHUTDOWN_MS = 2000


def _wait_exit(w, timeout):
    try:
        return w.proc.wait(timeout)
    except Exception:  # noqa: BLE001 - still running
        w.kill()
        raise AssertionError(f"the worker did not exit within {timeout}s of SIGTERM"
                             + w.describe()) from None


def _produce_events(ctx, n, seed):
    rng = np.random.default_rng(seed)
    customers = [f"sd-{ctx.uid}-{i:02d}" for i in range(20)]
    return h.produce(ctx.input_topic, h.random_events(rng, customers, n),
                     lambda ev: h.encode_avro(h.EVENT_SCHEMA_PATH, ev))


def _committed_nothing(ctx):
    committed = h.committed_offsets(ctx.group, ctx.input_topic, list(range(ctx.partitions)))
    return all(off < 0 for off in committed.values()), committed


def test_sigterm_while_the_output_topic_is_missing_exits_0_within_the_timeout(ctx):
    """The output topic does not exist (the broker creates none by itself): the producer holds
    the batch's records waiting for it, and the batch waits for acknowledgements that do not
    come. SIGTERM: the wait ends after shutdown.timeout.ms, not when the records time out."""
    stuck = f"{ctx.output_topic}-missing"
    _produce_events(ctx, 50, 3101)
    w = ctx.start_worker(ctx.props({"output.topic": stuck,
                                    "shutdown.timeout.ms": SHUTDOWN_MS,
                                    "kafka.producer.message.timeout.ms": 300000,
                                    "kafka.producer.topic.metadata.propagation.max.ms": 300000}))
    deadline = time.monotonic() + 60
    while "assigned" not in w.log_tail(50):
        assert w.alive() and time.monotonic() < deadline, "no partitions assigned" + w.describe()
        time.sleep(0.2)
    time.sleep(3)  # the batch is produced, its writes retried (librdkafka logs them at debug)
    assert w.alive(), "the worker stopped" + w.describe()
    start = time.monotonic()
    w.proc.send_signal(signal.SIGTERM)
    rc = _wait_exit(w, 30)
    took = time.monotonic() - start
    assert rc == 0, f"exit {rc}" + w.describe()
    assert took < 25, f"{took:.1f}s to stop" + w.describe()
    nothing, committed = _committed_nothing(ctx)
    assert nothing, f"offsets committed for undelivered records: {committed}"


def test_sigterm_while_redis_is_down_under_block_exits_0_and_loses_nothing(ctx, redis_outage):
    """redis.on.error = block: the batch's feature reads are retried while Redis is away.
    SIGTERM: the worker stops at once with exit 0 and nothing committed; with Redis back, the
    next run scores every event."""
    props = ctx.props({"redis.on.error": "block", "state.mode": "shared",
                       "shutdown.timeout.ms": SHUTDOWN_MS})
    w = ctx.start_worker(props)
    deadline = time.monotonic() + 60
    while "assigned" not in w.log_tail(50):
        assert w.alive() and time.monotonic() < deadline, "no partitions assigned" + w.describe()
        time.sleep(0.2)
    redis_outage.stop()
    placed = _produce_events(ctx, 40, 3102)
    while "retrying in" not in w.log_tail(50):
        assert w.alive() and time.monotonic() < deadline, \
            "the worker never retried Redis" + w.describe()
        time.sleep(0.2)
    w.proc.send_signal(signal.SIGTERM)
    rc = _wait_exit(w, 30)
    assert rc == 0, f"exit {rc} after SIGTERM while Redis was retried" + w.describe()
    nothing, committed = _committed_nothing(ctx)
    assert nothing, f"offsets committed while Redis was down: {committed}"
    redis_outage.start()
    records, _ = ctx.run_until(props, len(placed))
    scored = h.index_by_source(records)
    assert set(placed) <= set(scored), f"{len(set(placed) - set(scored))} events never scored"
