"""delivery = exactly-once: a worker killed with SIGKILL mid-stream and restarted leaves a
read_committed reader exactly one prediction per input event, while an at-least-once
worker's kill is only guaranteed to lose nothing."""

import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import harness as h

N = 4000


def test_exactly_once_survives_sigkill_with_one_prediction_per_event_for_read_committed(ctx):
    rng = np.random.default_rng(4242)
    customers = [f"cust-{ctx.uid}-{i:04d}" for i in range(300)]
    events = h.random_events(rng, customers, N)
    placed = h.produce(ctx.input_topic, events,
                       lambda ev: h.encode_avro(h.EVENT_SCHEMA_PATH, ev))
    # Small batches, one transaction each (delivery.commit.interval.ms = 0), so the first run
    # is mid-stream when it is killed; a short session timeout, so the killed members leave
    # the group quickly. Transactions spanning batches (the default) are killed at named
    # points in test_state_eos.py.
    props = ctx.props({"delivery": "exactly-once", "batch.max.messages": 25,
                       "delivery.commit.interval.ms": 0,
                       "kafka.consumer.session.timeout.ms": 6000})
    committed_reader = h.TopicReader(ctx.output_topic)  # read_committed (librdkafka default)
    try:
        w1 = ctx.start_worker(props)
        committed_reader.wait_for(N // 4, timeout=90, worker=w1, what="committed predictions")
        w1.kill()
        committed_reader.drain()
        after_kill = len(committed_reader.records)
        assert after_kill < N, "the first run finished before it was killed: nothing was tested"

        w2 = ctx.start_worker(props)
        wanted = set(placed)
        committed_reader.wait_until(lambda recs: wanted <= set(h.index_by_source(recs)),
                                    timeout=120, worker=w2,
                                    what="committed predictions (every input offset)")
        w2.stop()
        committed_reader.drain()

        by_source = h.index_by_source(committed_reader.records)
        duplicates = {k: len(v) for k, v in by_source.items() if len(v) > 1}
        missing = sorted(wanted - set(by_source))
        report = (f"{N} events, {len(committed_reader.records)} committed predictions, "
                  f"{after_kill} before SIGKILL, {len(duplicates)} duplicated offsets "
                  f"{sorted(duplicates.items())[:5]}, {len(missing)} missing {missing[:5]}")
        print(report)
        assert not missing and not duplicates, report
        ends = h.end_offsets(ctx.input_topic)
        committed = h.committed_offsets(ctx.group, ctx.input_topic, sorted(ends))
        assert committed == ends, f"committed offsets {committed} != end offsets {ends}"
    finally:
        committed_reader.close()


def _start_failing(ctx, props, spec):
    """A worker of the failpoint build whose points in `spec` fail (STREAMSCORE_FAILPOINT_ERROR)."""
    binary = Path(os.environ.get("FAILPOINTS_BIN") or h.BIN.parent / "streamscore-failpoints")
    assert binary.exists(), f"failpoint binary {binary} not found: build it first"
    plain, h.BIN = h.BIN, binary
    try:
        return ctx.start_worker(props, env={"STREAMSCORE_FAILPOINT_ERROR": spec})
    finally:
        h.BIN = plain


@pytest.mark.parametrize("rewind", ["succeeds", "fails"])
def test_an_aborted_transaction_is_read_again_and_a_rewind_that_fails_stops_the_worker(ctx,
                                                                                        rewind):
    """The third transaction's commit fails and is aborted: its batch is read and scored again
    from where the transaction began. When that rewind cannot be done, the worker stops (exit
    1) with nothing more committed, and the next run scores what is left: either way a
    read_committed reader sees one prediction per event."""
    n = 600
    rng = np.random.default_rng(4243)
    customers = [f"rw-{ctx.uid}-{i:03d}" for i in range(60)]
    placed = h.produce(ctx.input_topic, h.random_events(rng, customers, n),
                       lambda ev: h.encode_avro(h.EVENT_SCHEMA_PATH, ev))
    props = ctx.props({"delivery": "exactly-once", "batch.max.messages": 25,
                       "delivery.commit.interval.ms": 0,
                       "kafka.consumer.session.timeout.ms": 6000})
    spec = "eos.commit:3" + (",eos.rewind" if rewind == "fails" else "")
    reader = h.TopicReader(ctx.output_topic)  # read_committed
    wanted = set(placed)
    try:
        w = _start_failing(ctx, props, spec)
        if rewind == "fails":
            try:
                rc = w.proc.wait(60)
            except subprocess.TimeoutExpired:
                w.kill()
                raise AssertionError("the worker went on after a rewind that failed"
                                     + w.describe())
            assert rc == 1, f"exit {rc}" + w.describe()
            assert "rewinding after an aborted transaction" in w.log_tail(), w.describe()
            reader.drain()
            committed = h.committed_offsets(ctx.group, ctx.input_topic, [0, 1, 2])
            scored = h.index_by_source(reader.records)
            beyond = [k for k in scored if k[1] >= max(committed.get(k[0], 0), 0)]
            assert not beyond, f"predictions committed past the committed offsets: {beyond[:5]}"
            w = ctx.start_worker(props)
        reader.wait_until(lambda recs: wanted <= set(h.index_by_source(recs)), timeout=120,
                          worker=w, what="committed predictions (every input offset)")
        w.stop()
        reader.drain()
    finally:
        reader.close()
    by_source = h.index_by_source(reader.records)
    duplicates = sorted(k for k, v in by_source.items() if len(v) > 1)
    assert set(by_source) == wanted and not duplicates, \
        f"{len(wanted - set(by_source))} missing, duplicates {duplicates[:5]}"
    ends = h.end_offsets(ctx.input_topic)
    assert h.committed_offsets(ctx.group, ctx.input_topic, sorted(ends)) == ends


def test_a_rewind_with_nothing_committed_yet_keeps_to_auto_offset_reset(ctx):
    """auto.offset.reset = latest, and the worker's first transaction aborts before anything
    was ever committed: it is read again from where it began, not from the partitions' start
    (the records before the worker joined are never scored)."""
    rng = np.random.default_rng(4244)
    customers = [f"lt-{ctx.uid}-{i:02d}" for i in range(30)]
    old = h.produce(ctx.input_topic, h.random_events(rng, customers, 60),
                    lambda ev: h.encode_avro(h.EVENT_SCHEMA_PATH, ev))
    props = ctx.props({"delivery": "exactly-once", "batch.max.messages": 25,
                       "delivery.commit.interval.ms": 0,
                       "kafka.consumer.auto.offset.reset": "latest"})
    w = _start_failing(ctx, props, "eos.commit:1")
    deadline = time.monotonic() + 60
    # the partitions are the worker's once their changelog is replayed (it took 2.5 s on a busy
    # machine): only then does the consumer look up the ends it starts from
    while "changelog: replayed" not in w.log_tail(50):
        assert w.alive() and time.monotonic() < deadline, "no partitions assigned" + w.describe()
        time.sleep(0.2)
    time.sleep(2)  # the consumer has its positions at the ends
    new = h.produce(ctx.input_topic, h.random_events(rng, customers, 100),
                    lambda ev: h.encode_avro(h.EVENT_SCHEMA_PATH, ev))
    reader = h.TopicReader(ctx.output_topic)
    try:
        reader.wait_until(lambda recs: set(new) <= set(h.index_by_source(recs)), timeout=90,
                          worker=w, what="committed predictions of the new events")
        w.stop()
        reader.drain()
    finally:
        reader.close()
    by_source = h.index_by_source(reader.records)
    before = sorted(set(by_source) & set(old))
    assert not before, f"{len(before)} events from before the worker joined were scored"
    assert all(len(v) == 1 for v in by_source.values())
