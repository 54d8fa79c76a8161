"""delivery = exactly-once: a worker killed with SIGKILL mid-stream and restarted leaves a
read_committed reader exactly one prediction per input event, while an at-least-once
worker's kill is only guaranteed to lose nothing."""

import numpy as np

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
